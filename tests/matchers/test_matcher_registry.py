"""Matcher registry: backends by name, configs, errors."""

from __future__ import annotations

import typing

import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import (
    MATCHER_CONFIGS,
    GeometricMatcher,
    GeometricMatcherConfig,
    Matcher,
    MatcherName,
    SiftMatcher,
    SiftMatcherConfig,
    make_matcher,
)


def test_names():
    assert set(MATCHER_CONFIGS) == {"sift", "geometric", "mast3r", "sfm"}
    assert typing.get_args(MatcherName) == tuple(MATCHER_CONFIGS)


def test_build_by_name_with_defaults_config_or_mapping():
    sift = make_matcher("sift")
    assert isinstance(sift, SiftMatcher) and isinstance(sift, Matcher)
    assert make_matcher("sift", SiftMatcherConfig(ratio=0.7)).config.ratio == 0.7
    assert make_matcher("sift", {"ratio": 0.6}).config.ratio == 0.6
    geometric = make_matcher("geometric", GeometricMatcherConfig(step=4))
    assert isinstance(geometric, GeometricMatcher) and geometric.config.step == 4
    assert isinstance(GeometricMatcherConfig(step=3).setup(), GeometricMatcher)


def test_errors():
    with pytest.raises(InputError, match="unknown matcher 'loftr'; choose one of: sift, geometric, mast3r, sfm"):
        make_matcher("loftr")
    with pytest.raises(InputError, match="unknown option.*radius for matcher 'sift'"):
        make_matcher("sift", {"radius": 3})
    with pytest.raises(TypeError, match="matcher 'geometric' takes a GeometricMatcherConfig, got SiftMatcherConfig"):
        make_matcher("geometric", SiftMatcherConfig())
    with pytest.raises(InputError, match="checkpoint"):
        make_matcher("mast3r")
