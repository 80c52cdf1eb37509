"""How close Gaussians sit to the true surfaces of a scene with ground-truth depth.

The true surface is sampled densely by back-projecting every depth pixel of every frame
(synthetic scenes from ``mastsam synth`` have exact z-depth; sky pixels have depth 0 and are
skipped). Pixel centres alone sample a surface seen at a grazing angle or from far away
coarsely (on the far ground of a synthetic orbit they lie 10-40 cm apart), so a point exactly
on it could be counted as off it; with ``spacing`` each 2x2 block of pixels that shows one
surface (its four depths agree within :data:`MAX_DEPTH_RATIO`) is filled with samples at most
``spacing`` apart, interpolating inverse depth (exact for planes). A Gaussian is "on a surface" when its centre lies within ``radius`` (scene units;
metres for synthetic scenes) of a surface sample; the figure is the opacity-weighted share of
such Gaussians, so nearly transparent ones count little.

Gaussians that model the sky (or a background beyond everything the depth maps show) are by
design on no true surface; :func:`seen_against_sky` finds them (most views that see such a
centre see sky, depth 0, at its pixel), so figures can be given with and without them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mastsam_splat.types import Scene


MAX_DEPTH_RATIO = 1.1
"""A 2x2 pixel block is filled only when its largest depth is at most this times its smallest
(larger ratios are occlusion edges, where no surface joins the pixels)."""

MAX_FILL = 16
"""Most samples per side that a filled pixel block gets."""


def depth_surface_points(
    scene: Scene,
    stride: int = 1,
    max_points: Optional[int] = 2_000_000,
    seed: int = 0,
    spacing: Optional[float] = None,
) -> np.ndarray:
    """[M, 3] world points on the scene's surfaces, from every ``stride``-th pixel of its depth maps,
    plus, with ``spacing``, samples between them (see module docstring)."""
    parts = []
    for frame in scene.frames:
        if frame.depth is None:
            continue
        depth = frame.depth[::stride, ::stride]
        rows, cols = np.nonzero(depth > 0)
        xy = np.stack([cols * stride + 0.5, rows * stride + 0.5], axis=1)
        parts.append(frame.camera.unproject(xy, depth[rows, cols]))
        if spacing is not None:
            parts.append(_fill_blocks(frame.camera, depth, stride, spacing))
    if not parts:
        return np.zeros((0, 3))
    points = np.concatenate(parts)
    if max_points is not None and len(points) > max_points:
        points = points[np.random.default_rng(seed).choice(len(points), size=max_points, replace=False)]
    return points


def _fill_blocks(camera, depth: np.ndarray, stride: int, spacing: float) -> np.ndarray:
    """[K, 3] samples inside the 2x2 pixel blocks of one surface whose corners lie more than ``spacing`` apart."""
    d = depth.astype(np.float64)
    corners = np.stack([d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]], axis=-1)  # [H-1, W-1, 4]
    near, far = corners.min(axis=-1), corners.max(axis=-1)
    rows, cols = np.nonzero((near > 0) & (far <= MAX_DEPTH_RATIO * near))
    if len(rows) == 0:
        return np.zeros((0, 3))
    inv = 1.0 / corners[rows, cols]  # [B, 4] inverse depth: 00, 01, 10, 11
    offsets = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)
    xy = (np.stack([cols, rows], axis=1)[:, None, :] + offsets + 0.5) * stride
    points = camera.unproject(xy.reshape(-1, 2), 1.0 / inv.reshape(-1)).reshape(-1, 4, 3)
    extent = np.maximum(np.linalg.norm(points[:, 0] - points[:, 3], axis=1), np.linalg.norm(points[:, 1] - points[:, 2], axis=1))
    fill = np.clip(np.ceil(extent / spacing), 1, MAX_FILL).astype(int)
    out = []
    for n in np.unique(fill[fill > 1]):
        sel = np.flatnonzero(fill == n)
        t = (np.arange(n) + 0.5) / n
        u, v = (g.reshape(-1) for g in np.meshgrid(t, t))  # [n*n] in the block
        w = np.stack([(1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v], axis=1)  # bilinear weights
        z = 1.0 / (inv[sel] @ w.T)  # [S, n*n]
        sub = (np.stack([cols[sel], rows[sel]], axis=1)[:, None, :] + np.stack([u, v], axis=1) + 0.5) * stride
        out.append(camera.unproject(sub.reshape(-1, 2), z.reshape(-1)))
    return np.concatenate(out) if out else np.zeros((0, 3))


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


def seen_against_sky(means: np.ndarray, scene: Scene, min_share: float = 0.5) -> np.ndarray:
    """[N] bool: centres that more than ``min_share`` of the views seeing them (in front of the camera,
    inside the image) see against the sky (depth 0 at their pixel). Floaters in front of a surface
    project onto it and are not counted here."""
    means = np.asarray(means, dtype=np.float64)
    seen = np.zeros(len(means))
    sky = np.zeros(len(means))
    for frame in scene.frames:
        if frame.depth is None:
            continue
        xy, z = frame.camera.project(means)
        front = z > 1e-6
        xy = np.where(front[:, None], xy, -1.0)
        col, row = np.floor(xy[:, 0]).astype(np.int64), np.floor(xy[:, 1]).astype(np.int64)
        height, width = frame.depth.shape
        inside = front & (col >= 0) & (col < width) & (row >= 0) & (row < height)
        seen += inside
        idx = np.flatnonzero(inside)
        sky[idx] += frame.depth[row[idx], col[idx]] <= 0
    return (seen > 0) & (sky > min_share * np.maximum(seen, 1))
