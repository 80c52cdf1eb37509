"""Segmenter backends behind one protocol, chosen by name.

``SEGMENTER_CONFIGS`` maps each backend name to its config dataclass, whose ``setup()`` builds the
segmenter; adding a backend is one entry there. ``make_segmenter("classical")`` needs no weights;
``make_segmenter("sam", SamSegmenterConfig(checkpoint=...))`` wraps segment-anything. Backend
modules import their heavy dependencies (scikit-image, torch, segment_anything) only when a
segmenter is built or used.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from mastsam_splat.segmenters.base import Segmenter
from mastsam_splat.segmenters.classical import ClassicalSegmenter, ClassicalSegmenterConfig
from mastsam_splat.segmenters.sam import SamSegmenter, SamSegmenterConfig
from mastsam_splat.segmenters.simulated import SimulatedSamConfig
from mastsam_splat.registry import build_backend

SEGMENTER_CONFIGS: dict[str, type] = {
    "classical": ClassicalSegmenterConfig,
    "sam": SamSegmenterConfig,
    "simulated": SimulatedSamConfig,
}
"""Registry: name -> config class; ``config.setup()`` builds the segmenter."""

SegmenterName = Literal[tuple(SEGMENTER_CONFIGS)]  # type: ignore[valid-type]
"""The registered names, as a type for command-line options."""


def make_segmenter(name: str, config: Optional[Any] = None) -> Segmenter:
    """Build the segmenter registered as ``name`` from its config (or a mapping of its fields, or defaults)."""
    return build_backend("segmenter", SEGMENTER_CONFIGS, name, config)


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
