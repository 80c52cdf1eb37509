"""Matcher registry: backends by name, configs, errors."""

from __future__ import annotations

import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import (
    MATCHER_CONFIGS,
    GeometricMatcher,
    GeometricMatcherConfig,
    Matcher,
    SiftMatcher,
    SiftMatcherConfig,
    make_matcher,
)


def test_names():
    assert set(MATCHER_CONFIGS) == {"sift", "geometric", "mast3r"}


def test_build_by_name_with_defaults_config_or_mapping():
    sift = make_matcher("sift")
    assert isinstance(sift, SiftMatcher) and isinstance(sift, Matcher)
    assert make_matcher("sift", SiftMatcherConfig(ratio=0.7)).config.ratio == 0.7
    assert make_matcher("sift", {"ratio": 0.6}).config.ratio == 0.6
    geometric = make_matcher("geometric", GeometricMatcherConfig(step=4))
    assert isinstance(geometric, GeometricMatcher) and geometric.config.step == 4


def test_errors():
    with pytest.raises(InputError, match="unknown matcher 'loftr'.*sift, geometric, mast3r"):
        make_matcher("loftr")
    with pytest.raises(InputError, match="unknown option.*radius"):
        make_matcher("sift", {"radius": 3})
    with pytest.raises(InputError, match="takes a GeometricMatcherConfig"):
        make_matcher("geometric", SiftMatcherConfig())
    with pytest.raises(InputError, match="checkpoint"):
        make_matcher("mast3r")
