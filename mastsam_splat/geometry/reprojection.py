"""Exact pixel correspondences between two views from depth maps and cameras.

A pixel of view a is lifted to 3D with its depth, projected into view b, and kept only when
view b sees that same surface point there: the projection lies inside b, in front of the
camera, and b's depth at that spot agrees with the projected depth (otherwise the point is
occluded in b, or b sees past it). Used by the ``geometric`` matcher and by the consistency
metrics.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.types import Frame


def frame_label(frame: Frame) -> str:
    """How to name a frame in an error message: its file when it has one, else its name."""
    return str(frame.file) if frame.file is not None else f"frame {frame.name!r}"


def require_geometry(frame: Frame) -> None:
    """Raise :class:`InputError` unless the frame has a camera and a depth map matching its image."""
    where = frame.file
    label = frame_label(frame)
    if frame.camera is None:
        raise InputError(f"{label} has no camera; depth + camera correspondences need posed frames", where)
    if frame.depth is None:
        raise InputError(f"{label} has no depth map; depth + camera correspondences need depth", where)
    h, w = frame.height, frame.width
    if frame.depth.shape != (h, w):
        raise InputError(f"{label}: depth map of shape {frame.depth.shape} does not match image of size {w}x{h}", where)
    if (frame.camera.width, frame.camera.height) != (w, h):
        raise InputError(
            f"{label}: camera is {frame.camera.width}x{frame.camera.height} but the image is {w}x{h}", where
        )


@lru_cache(maxsize=8)
def pixel_grid(width: int, height: int, step: int = 1) -> np.ndarray:
    """Pixel-centre coordinates ``(c + 0.5, r + 0.5)`` of every ``step``-th pixel, row-major, [N, 2] float64; made
    once per size and step, read-only (every frame of a capture samples the same grid)."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    cols = np.arange(0, width, step, dtype=np.float64) + 0.5
    rows = np.arange(0, height, step, dtype=np.float64) + 0.5
    xx, yy = np.meshgrid(cols, rows)
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1)
    grid.flags.writeable = False
    return grid


def sample_nearest(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Values of ``image`` [H, W] at the pixels holding ``xy`` [N, 2] (which must lie inside)."""
    # (coordinates inside the image are not negative: the integer cast is their floor)
    cols = xy[:, 0].astype(np.int64)
    rows = xy[:, 1].astype(np.int64)
    rows *= image.shape[1]
    rows += cols
    return np.ravel(image).take(rows)


def sample_inverse_depth_bilinear(depth: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Depth at ``xy`` [N, 2] from bilinear interpolation of inverse depth between pixel centres.

    Inverse depth is affine in pixel coordinates on a plane, so this is exact on planar
    patches. Where any of the four neighbours has no depth the result is 0 (unknown).
    """
    h, w = depth.shape
    x = np.clip(xy[:, 0] - 0.5, 0.0, w - 1.0)
    y = np.clip(xy[:, 1] - 0.5, 0.0, h - 1.0)
    c0 = np.minimum(np.floor(x).astype(np.int64), max(w - 2, 0))
    r0 = np.minimum(np.floor(y).astype(np.int64), max(h - 2, 0))
    c1 = np.minimum(c0 + 1, w - 1)
    r1 = np.minimum(r0 + 1, h - 1)
    fx = x - c0
    fy = y - r0
    # (read from the map as it is and converted after: the same values as reading a float64 copy of it)
    flat = np.ravel(depth)
    top, bottom = r0 * w, r1 * w
    d00, d01, d10, d11 = (flat.take(i).astype(np.float64, copy=False) for i in (top + c0, top + c1, bottom + c0, bottom + c1))
    valid = (d00 > 0) & (d01 > 0) & (d10 > 0) & (d11 > 0)
    with np.errstate(divide="ignore"):
        inv = [np.where(valid, 1.0 / np.where(d > 0, d, 1.0), 0.0) for d in (d00, d01, d10, d11)]
    inv_interp = (1 - fy) * ((1 - fx) * inv[0] + fx * inv[1]) + fy * ((1 - fx) * inv[2] + fx * inv[3])
    out = np.zeros(len(xy), dtype=np.float64)
    out[valid] = 1.0 / inv_interp[valid]
    return out


def visible_in(frame: Frame, xy: np.ndarray, z: np.ndarray, depth_tolerance: float) -> np.ndarray:
    """Which projections ``xy`` [N, 2] with depths ``z`` [N] are surfaces that ``frame`` actually sees.

    A projection is visible when it lies inside the image, in front of the camera, and the
    frame's depth there agrees with ``z`` within ``depth_tolerance * z`` — either the depth of
    the pixel holding it or the inverse-depth interpolation between neighbouring pixel
    centres (which follows slanted surfaces). Returns a bool mask [N].
    """
    assert frame.depth is not None
    h, w = frame.depth.shape
    # (NaN and infinite coordinates fail the comparisons with the image's sides; an infinite depth does not)
    inside = (z > 0) & (z < np.inf) & (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    keep = np.zeros(len(xy), dtype=bool)
    if not inside.any():
        return keep
    xy_in, z_in = np.compress(inside, xy, axis=0), z[inside]
    tol = depth_tolerance * z_in
    d_near = sample_nearest(frame.depth, xy_in).astype(np.float64)
    ok = (d_near > 0) & (np.abs(d_near - z_in) <= tol)
    # the interpolated depth decides only where the pixel's own depth does not agree (each point on its own)
    rest = np.flatnonzero(~ok)
    if len(rest):
        d_lin = sample_inverse_depth_bilinear(frame.depth, xy_in.take(rest, axis=0))
        ok[rest] = (d_lin > 0) & (np.abs(d_lin - z_in[rest]) <= tol[rest])
    keep[inside] = ok
    return keep


def dense_correspondences(
    frame_a: Frame,
    frame_b: Frame,
    step: int = 1,
    depth_tolerance: float = 0.02,
    return_points: bool = False,
) -> tuple[np.ndarray, ...]:
    """Pixels of ``frame_a`` and where the same surface points appear in ``frame_b``.

    Every ``step``-th pixel centre of a (row-major grid) with known depth is unprojected with
    a's camera, projected into b, and kept when b sees it (see :func:`visible_in`).

    Args:
        frame_a, frame_b: frames with ``camera`` and ``depth`` (z-depth, 0 = unknown); they may
            differ in size.
        step: grid spacing in pixels of a.
        depth_tolerance: relative depth disagreement above which a point counts as occluded in b.
        return_points: also return the world points [M, 3] float64.

    Returns:
        ``(xy_a, xy_b)``: float32 [M, 2] pixel coordinates (pixel centres in a, exact
        projections in b), or ``(xy_a, xy_b, points_world)`` with ``return_points``.

    Raises:
        InputError: a frame lacks a camera or depth, or they do not match its image size.
    """
    require_geometry(frame_a)
    require_geometry(frame_b)
    assert frame_a.camera is not None and frame_a.depth is not None and frame_b.camera is not None
    # the grid's pixel centres lie in the pixels of every ``step``-th row and column: their depths, row-major
    depth_a = np.asarray(frame_a.depth)[::step, ::step].reshape(-1).astype(np.float64)
    known = np.isfinite(depth_a) & (depth_a > 0)
    # (``np.compress`` picks rows of a 2-D array several times faster than a boolean index, same rows)
    xy_a, depth_a = np.compress(known, pixel_grid(frame_a.width, frame_a.height, step), axis=0), depth_a[known]
    points = frame_a.camera.unproject(xy_a, depth_a)
    xy_b, z_b = frame_b.camera.project(points)
    keep = visible_in(frame_b, xy_b, z_b, depth_tolerance)
    out_a = np.compress(keep, xy_a, axis=0).astype(np.float32)
    out_b = np.compress(keep, xy_b, axis=0).astype(np.float32)
    if return_points:
        return out_a, out_b, np.compress(keep, points, axis=0)
    return out_a, out_b
