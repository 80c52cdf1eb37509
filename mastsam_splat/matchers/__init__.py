"""Pixel-correspondence backends, chosen by name.

``make_matcher("sift" | "geometric" | "mast3r", config)`` builds a matcher; ``config`` is the
backend's config dataclass, a mapping of its fields, or None for the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Optional, Union

from mastsam_splat.errors import InputError
from mastsam_splat.matchers.base import Matcher
from mastsam_splat.matchers.geometric import GeometricMatcher, GeometricMatcherConfig
from mastsam_splat.matchers.mast3r import Mast3rInputTransform, Mast3rMatcher, Mast3rMatcherConfig
from mastsam_splat.matchers.sift import SiftMatcher, SiftMatcherConfig

MATCHER_CONFIGS: dict[str, type] = {
    "sift": SiftMatcherConfig,
    "geometric": GeometricMatcherConfig,
    "mast3r": Mast3rMatcherConfig,
}
"""Config class of every matcher name; ``config.setup()`` builds the matcher."""


def make_matcher(name: str, config: Optional[Union[Any, Mapping[str, Any]]] = None) -> Matcher:
    """Build the matcher called ``name`` from its config (or field mapping, or defaults).

    Raises:
        InputError: unknown name, or a config for another backend / with unknown fields.
    """
    config_cls = MATCHER_CONFIGS.get(name)
    if config_cls is None:
        raise InputError(f"unknown matcher {name!r}; choose one of {', '.join(MATCHER_CONFIGS)}")
    if config is None:
        config = config_cls()
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(config_cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)} for matcher {name!r}; known: {', '.join(sorted(known))}"
            )
        config = config_cls(**config)
    elif not isinstance(config, config_cls):
        raise InputError(f"matcher {name!r} takes a {config_cls.__name__}, got {type(config).__name__}")
    return config.setup()


__all__ = [
    "MATCHER_CONFIGS",
    "Matcher",
    "make_matcher",
    "GeometricMatcher",
    "GeometricMatcherConfig",
    "Mast3rInputTransform",
    "Mast3rMatcher",
    "Mast3rMatcherConfig",
    "SiftMatcher",
    "SiftMatcherConfig",
]
