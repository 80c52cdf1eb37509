"""Segmenter backends behind one protocol, chosen by name.

``SEGMENTER_CONFIGS`` maps each backend name to its config dataclass, whose ``setup()`` builds the
segmenter; adding a backend is one entry there. ``make_segmenter("classical")`` needs no weights;
``make_segmenter("sam", SamSegmenterConfig(checkpoint=...))`` wraps segment-anything. Backend
modules import their heavy dependencies (scikit-image, torch, segment_anything) only when a
segmenter is built or used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal, Optional

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters.base import Segmenter
from mastsam_splat.segmenters.classical import ClassicalSegmenter, ClassicalSegmenterConfig
from mastsam_splat.segmenters.sam import SamSegmenter, SamSegmenterConfig
from mastsam_splat.segmenters.simulated import SimulatedSamConfig

SEGMENTER_CONFIGS: dict[str, type] = {
    "classical": ClassicalSegmenterConfig,
    "sam": SamSegmenterConfig,
    "simulated": SimulatedSamConfig,
}
"""Registry: name -> config class; ``config.setup()`` builds the segmenter."""

SegmenterName = Literal[tuple(SEGMENTER_CONFIGS)]  # type: ignore[valid-type]
"""The registered names, as a type for command-line options."""


def make_segmenter(name: str, config: Optional[Any] = None) -> Segmenter:
    """Build the segmenter registered as ``name`` from its config (or a mapping of its fields, or defaults).

    Raises:
        InputError: unknown name, or a mapping with fields the backend's config does not have.
        TypeError: a config of another backend.
    """
    config_class = SEGMENTER_CONFIGS.get(name)
    if config_class is None:
        raise InputError(f"unknown segmenter {name!r}; choose one of: {', '.join(SEGMENTER_CONFIGS)}")
    if config is None:
        config = config_class()
    elif isinstance(config, Mapping):
        known = {f.name for f in fields(config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise InputError(
                f"unknown option(s) {', '.join(unknown)} for segmenter {name!r}; known: {', '.join(sorted(known))}"
            )
        config = config_class(**config)
    elif not isinstance(config, config_class):
        raise TypeError(f"segmenter {name!r} takes a {config_class.__name__}, got {type(config).__name__}")
    return config.setup()


__all__ = [
    "SEGMENTER_CONFIGS",
    "ClassicalSegmenter",
    "ClassicalSegmenterConfig",
    "SamSegmenter",
    "SamSegmenterConfig",
    "Segmenter",
    "SegmenterName",
    "make_segmenter",
]
