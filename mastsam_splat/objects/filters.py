"""Which of an object's Gaussians go into its per-object PLY.

A trained scene holds Gaussians that do not belong in a file a user opens on its own: nearly
transparent ones (they draw nothing, but viewers and point-based tools show their centres) and
a few far from the object's bulk (floaters that took the object's id). Two filters leave them
out of ``objects/object_<id>.ply``; ``scene.ply`` always keeps every Gaussian.

- transparent: opacity (after the sigmoid) below ``min_opacity``;
- outliers (statistical outlier removal on the remaining centres): a Gaussian whose mean distance
  to its ``outlier_neighbours`` nearest neighbours exceeds the object's mean of that distance by
  more than ``outlier_std_ratio`` standard deviations (isolated Gaussians), or whose distance to
  the object's median centre exceeds the median of that distance by more than
  ``outlier_std_ratio * 2`` robust standard deviations (1.4826 x MAD; far-away clusters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import Gaussians

MAD_TO_STD = 1.4826
"""Median absolute deviation -> standard deviation of a normal distribution."""


@dataclass
class ObjectFilter:
    """Filters of the per-object PLYs (the whole-scene PLY is never filtered)."""

    min_opacity: float = 0.05
    """Gaussians of an object whose opacity (0..1) is below this are left out of its PLY (effectively invisible)."""
    keep_transparent: bool = False
    """Keep Gaussians below --min-opacity in the per-object PLYs."""
    keep_outliers: bool = False
    """Keep 3D outliers (Gaussians far from their object's bulk) in the per-object PLYs."""
    outlier_neighbours: int = 16
    """Neighbours of the statistical outlier removal."""
    outlier_std_ratio: float = 2.0
    """Standard deviations above the object's mean neighbour distance at which a Gaussian is an outlier."""

    def check(self) -> None:
        if not 0.0 <= self.min_opacity < 1.0:
            raise InputError(f"--min-opacity must be in [0, 1), got {self.min_opacity}")
        if self.outlier_neighbours < 1:
            raise InputError(f"--outlier-neighbours must be >= 1, got {self.outlier_neighbours}")
        if self.outlier_std_ratio <= 0:
            raise InputError(f"--outlier-std-ratio must be > 0, got {self.outlier_std_ratio}")


def opaque_rows(gaussians: Gaussians, rows: np.ndarray, min_opacity: float) -> np.ndarray:
    """The ``rows`` whose opacity (sigmoid of the stored logit) is at least ``min_opacity``."""
    opacity = 1.0 / (1.0 + np.exp(-gaussians.opacities[rows].astype(np.float64)))
    return rows[opacity >= min_opacity]


def inlier_mask(xyz: np.ndarray, neighbours: int = 16, std_ratio: float = 2.0) -> np.ndarray:
    """[N] bool: centres that are neither isolated nor far from the bulk (see module docstring)."""
    from scipy.spatial import cKDTree

    n = len(xyz)
    keep = np.ones(n, dtype=bool)
    if n <= max(3, neighbours):
        return keep
    pts = xyz.astype(np.float64)
    dist, _ = cKDTree(pts).query(pts, k=neighbours + 1)
    mean_dist = dist[:, 1:].mean(axis=1)
    spread = mean_dist.std()
    if spread > 0:
        keep &= mean_dist <= mean_dist.mean() + std_ratio * spread
    centre = np.median(pts, axis=0)
    radius = np.linalg.norm(pts - centre, axis=1)
    mad = np.median(np.abs(radius - np.median(radius))) * MAD_TO_STD
    if mad > 0:
        keep &= radius <= np.median(radius) + 2.0 * std_ratio * mad
    return keep


def select_object_rows(gaussians: Gaussians, rows: np.ndarray, config: ObjectFilter) -> tuple[np.ndarray, dict[str, int]]:
    """The rows of one object that go into its PLY, and how many each filter left out."""
    kept = np.asarray(rows)
    dropped = {"transparent": 0, "outliers": 0}
    if not config.keep_transparent:
        opaque = opaque_rows(gaussians, kept, config.min_opacity)
        dropped["transparent"] = len(kept) - len(opaque)
        kept = opaque
    if not config.keep_outliers and len(kept):
        inliers = kept[inlier_mask(gaussians.means[kept], config.outlier_neighbours, config.outlier_std_ratio)]
        dropped["outliers"] = len(kept) - len(inliers)
        kept = inliers
    return kept, dropped
