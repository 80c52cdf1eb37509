"""Exact correspondences from depth maps and camera poses (synthetic and RGB-D data).

Pixels of frame a on a regular grid are lifted with a's depth, projected into b, and kept
where b sees the same surface (depth test against b's depth map, so occluded points are
dropped). Confidence is 1 and the 3D points are the world points.
Frames of different sizes are fine: each camera must describe its own image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mastsam_splat.geometry.reprojection import dense_correspondences
from mastsam_splat.matchers.base import check_image
from mastsam_splat.types import Frame, Matches


@dataclass
class GeometricMatcherConfig:
    """Options of the depth + camera matcher."""

    step: int = 2
    """Grid spacing in pixels of frame a at which correspondences are taken."""
    depth_tolerance: float = 0.02
    """Relative depth disagreement above which a point counts as occluded in frame b."""

    def setup(self) -> "GeometricMatcher":
        """Build the matcher with these settings."""
        return GeometricMatcher(self)


@dataclass
class GeometricMatcher:
    """Matches two posed frames with depth exactly; see the module docstring."""

    config: GeometricMatcherConfig = field(default_factory=GeometricMatcherConfig)

    def __post_init__(self) -> None:
        if self.config.step < 1:
            raise ValueError(f"step must be >= 1, got {self.config.step}")
        if self.config.depth_tolerance <= 0:
            raise ValueError(f"depth_tolerance must be > 0, got {self.config.depth_tolerance}")

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """Correspondences of a's grid pixels visible in b, with their world points.

        Raises:
            InputError: a frame has no camera or no depth map, or they do not fit its image.
        """
        check_image(frame_a)
        check_image(frame_b)
        xy_a, xy_b, points = dense_correspondences(
            frame_a, frame_b, step=self.config.step, depth_tolerance=self.config.depth_tolerance, return_points=True
        )
        pts = points.astype(np.float32)
        return Matches(xy_a, xy_b, np.ones(len(xy_a), dtype=np.float32), pts3d_a=pts, pts3d_b=pts.copy())
