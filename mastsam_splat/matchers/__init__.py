"""Pixel-correspondence backends behind one protocol, chosen by name.

``MATCHER_CONFIGS`` maps each backend name to its config dataclass, whose ``setup()`` builds the
matcher; adding a backend is one entry there. ``make_matcher("sift" | "geometric" | "mast3r",
config)`` builds a matcher; ``config`` is the backend's config dataclass, a mapping of its fields,
or None for the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal, Optional

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
"""Registry: name -> config class; ``config.setup()`` builds the matcher."""

MatcherName = Literal[tuple(MATCHER_CONFIGS)]  # type: ignore[valid-type]
"""The registered names, as a type for command-line options."""


def make_matcher(name: str, config: Optional[Any] = None) -> Matcher:
    """Build the matcher registered as ``name`` from its config (or a mapping of its fields, or defaults).

    Raises:
        InputError: unknown name, or a mapping with fields the backend's config does not have.
        TypeError: a config of another backend.
    """
    config_class = MATCHER_CONFIGS.get(name)
    if config_class is None:
        raise InputError(f"unknown matcher {name!r}; choose one of: {', '.join(MATCHER_CONFIGS)}")
    if config is None:
        config = config_class()
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)} for matcher {name!r}; known: {', '.join(sorted(known))}"
            )
        config = config_class(**config)
    elif not isinstance(config, config_class):
        raise TypeError(f"matcher {name!r} takes a {config_class.__name__}, got {type(config).__name__}")
    return config.setup()


__all__ = [
    "MATCHER_CONFIGS",
    "Matcher",
    "MatcherName",
    "make_matcher",
    "GeometricMatcher",
    "GeometricMatcherConfig",
    "Mast3rInputTransform",
    "Mast3rMatcher",
    "Mast3rMatcherConfig",
    "SiftMatcher",
    "SiftMatcherConfig",
]
