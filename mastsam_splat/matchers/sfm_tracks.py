"""Correspondences read from the capture's sparse reconstruction instead of matched again.

A COLMAP model already names, for every 3D point, the views that observed it and where
(``Frame.observed``, attached from the dataset's ``sparse/0``): the pixels of two frames that
observe the same point correspond, and SfM verified each one geometrically when it built the
model. Reading them costs nothing next to extracting and matching features again, and they link
views as far apart as the reconstruction does. They are as sparse as the model (a few hundred to a
few thousand per view), so the tracker treats them like SIFT matches (its sparse path). The 3D
points are the model's, carried into the frames' world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.reprojection import frame_label
from mastsam_splat.types import Frame, Matches


@dataclass
class SfmTrackMatcherConfig:
    """Options of the matcher that reads correspondences from the SfM tracks of the frames."""

    min_matches: int = 0
    """Pairs sharing fewer points than this get no correspondences (0: keep every shared point)."""

    def setup(self) -> "SfmTrackMatcher":
        """Build the matcher with these settings."""
        return SfmTrackMatcher(self)


def check_observed(frame: Frame) -> None:
    """Raise :class:`InputError` when the frame carries no points of a sparse reconstruction."""
    if frame.observed is None:
        raise InputError(
            f"{frame_label(frame)}: the sfm matcher needs the points of a COLMAP model (sparse/0 or "
            "colmap/sparse/0) attached to every frame with cameras, and this frame has none; use --matcher sift",
            frame.file,
        )


@dataclass
class SfmTrackMatcher:
    """Pairs the pixels at which two frames observe the same SfM point; see the module docstring."""

    config: SfmTrackMatcherConfig = field(default_factory=SfmTrackMatcherConfig)

    def __post_init__(self) -> None:
        if self.config.min_matches < 0:
            raise ValueError(f"min_matches must be >= 0, got {self.config.min_matches}")

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """The points both frames observed, at each frame's pixel, with their 3D positions.

        Raises:
            InputError: a frame carries no SfM points (``Frame.observed`` is None).
        """
        check_observed(frame_a)
        check_observed(frame_b)
        a, b = frame_a.observed, frame_b.observed
        _, in_a, in_b = np.intersect1d(a.point, b.point, assume_unique=False, return_indices=True)
        if len(in_a) < max(self.config.min_matches, 1):
            return Matches.empty()
        points = a.xyz[in_a].astype(np.float32)
        return Matches(
            a.xy[in_a], b.xy[in_b], np.ones(len(in_a), dtype=np.float32), pts3d_a=points, pts3d_b=points.copy()
        )
