"""Pixel-correspondence backends behind one protocol, chosen by name.

``MATCHER_CONFIGS`` maps each backend name to its config dataclass, whose ``setup()`` builds the
matcher; adding a backend is one entry there. ``make_matcher("sift" | "geometric" | "mast3r" | "sfm",
config)`` builds a matcher; ``config`` is the backend's config dataclass, a mapping of its fields,
or None for the defaults.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from mastsam_splat.matchers.base import Matcher
from mastsam_splat.matchers.geometric import GeometricMatcher, GeometricMatcherConfig
from mastsam_splat.matchers.mast3r import Mast3rInputTransform, Mast3rMatcher, Mast3rMatcherConfig
from mastsam_splat.matchers.sfm_tracks import SfmTrackMatcher, SfmTrackMatcherConfig
from mastsam_splat.matchers.sift import SiftMatcher, SiftMatcherConfig
from mastsam_splat.registry import build_backend

MATCHER_CONFIGS: dict[str, type] = {
    "sift": SiftMatcherConfig,
    "geometric": GeometricMatcherConfig,
    "mast3r": Mast3rMatcherConfig,
    "sfm": SfmTrackMatcherConfig,
}
"""Registry: name -> config class; ``config.setup()`` builds the matcher."""

MatcherName = Literal[tuple(MATCHER_CONFIGS)]  # type: ignore[valid-type]
"""The registered names, as a type for command-line options."""


def make_matcher(name: str, config: Optional[Any] = None) -> Matcher:
    """Build the matcher registered as ``name`` from its config (or a mapping of its fields, or defaults)."""
    return build_backend("matcher", MATCHER_CONFIGS, name, config)


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
    "SfmTrackMatcher",
    "SfmTrackMatcherConfig",
    "SiftMatcher",
    "SiftMatcherConfig",
]
