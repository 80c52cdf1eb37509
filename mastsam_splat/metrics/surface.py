"""How close Gaussians sit to the true surfaces of a scene with ground-truth depth.

The true surface is sampled densely by back-projecting every depth pixel of every frame
(synthetic scenes from ``mastsam synth`` have exact z-depth; sky pixels have depth 0 and are
skipped). A Gaussian is "on a surface" when its centre lies within ``radius`` (scene units;
metres for synthetic scenes) of a surface sample; the figure is the opacity-weighted share of
such Gaussians, so nearly transparent ones count little.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mastsam_splat.types import Scene


def depth_surface_points(scene: Scene, stride: int = 1, max_points: Optional[int] = 2_000_000, seed: int = 0) -> np.ndarray:
    """[M, 3] world points on the scene's surfaces, from every ``stride``-th pixel of its depth maps."""
    parts = []
    for frame in scene.frames:
        if frame.depth is None:
            continue
        depth = frame.depth[::stride, ::stride]
        rows, cols = np.nonzero(depth > 0)
        xy = np.stack([cols * stride + 0.5, rows * stride + 0.5], axis=1)
        parts.append(frame.camera.unproject(xy, depth[rows, cols]))
    if not parts:
        return np.zeros((0, 3))
    points = np.concatenate(parts)
    if max_points is not None and len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), size=max_points, replace=False)]
    return points


def near_surface_fraction(
    means: np.ndarray, surface: np.ndarray, radius: float = 0.05, weights: Optional[np.ndarray] = None
) -> float:
    """Weighted share of the centres ``means`` [N, 3] within ``radius`` of a point of ``surface`` [M, 3]."""
    from scipy.spatial import cKDTree

    if len(means) == 0 or len(surface) == 0:
        return float("nan")
    dist, _ = cKDTree(surface).query(np.asarray(means, dtype=np.float64), k=1, distance_upper_bound=radius * 1.0001)
    near = np.isfinite(dist) & (dist <= radius)
    w = np.ones(len(means)) if weights is None else np.asarray(weights, dtype=np.float64)
    return float((w * near).sum() / max(w.sum(), 1e-12))
