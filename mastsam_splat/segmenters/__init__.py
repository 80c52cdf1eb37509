"""Segmenter backends behind one protocol, chosen by name.

``make_segmenter("classical")`` needs no weights; ``make_segmenter("sam", SamSegmenterConfig(
checkpoint=...))`` wraps segment-anything. Backend modules import their heavy dependencies
(scikit-image, torch, segment_anything) only when a segmenter is built or used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Optional, Union

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters.base import Segmenter
from mastsam_splat.segmenters.classical import ClassicalSegmenterConfig
from mastsam_splat.segmenters.sam import SamSegmenterConfig
from mastsam_splat.segmenters.simulated import SimulatedSamConfig, make_simulated_segmenter

BackendConfig = Union[ClassicalSegmenterConfig, SamSegmenterConfig]


def _make_classical(config: ClassicalSegmenterConfig) -> Segmenter:
    from mastsam_splat.segmenters.classical import ClassicalSegmenter

    return ClassicalSegmenter(config)


def _make_sam(config: SamSegmenterConfig) -> Segmenter:
    from mastsam_splat.segmenters.sam import SamSegmenter

    return SamSegmenter(config)


SEGMENTERS: dict[str, tuple[type, Callable[[object], Segmenter]]] = {
    "classical": (ClassicalSegmenterConfig, _make_classical),
    "sam": (SamSegmenterConfig, _make_sam),
    "simulated": (SimulatedSamConfig, make_simulated_segmenter),
}
"""Registry: name -> (config class, factory taking that config)."""


@dataclass
class SegmenterConfig:
    """Which segmenter to use, with the settings of every backend."""

    name: Literal["classical", "sam"] = "classical"
    """Backend: ``classical`` (no weights) or ``sam`` (segment-anything, needs a checkpoint)."""
    classical: ClassicalSegmenterConfig = field(default_factory=ClassicalSegmenterConfig)
    """Settings of the ``classical`` backend."""
    sam: SamSegmenterConfig = field(default_factory=SamSegmenterConfig)
    """Settings of the ``sam`` backend."""

    def backend_config(self) -> BackendConfig:
        """The settings of the selected backend."""
        return getattr(self, self.name)

    def make(self) -> Segmenter:
        """Build the selected segmenter."""
        return make_segmenter(self.name, self)


def make_segmenter(name: str, config: Optional[Union[BackendConfig, SegmenterConfig]] = None) -> Segmenter:
    """Build the segmenter registered as ``name``.

    ``config`` is that backend's own config, a ``SegmenterConfig`` (its sub-config for ``name`` is
    used), or ``None`` for the backend's defaults.
    """
    if name not in SEGMENTERS:
        raise InputError(f"unknown segmenter {name!r}; choose one of: {', '.join(sorted(SEGMENTERS))}")
    config_class, factory = SEGMENTERS[name]
    if config is None:
        config = config_class()
    elif isinstance(config, SegmenterConfig):
        config = getattr(config, name)
    if not isinstance(config, config_class):
        raise TypeError(f"segmenter {name!r} takes a {config_class.__name__}, got {type(config).__name__}")
    return factory(config)


__all__ = [
    "ClassicalSegmenterConfig",
    "SamSegmenterConfig",
    "Segmenter",
    "SegmenterConfig",
    "SEGMENTERS",
    "make_segmenter",
]
