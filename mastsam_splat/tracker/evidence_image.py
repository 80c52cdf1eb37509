"""The evidence label image: the owners of 3D evidence voxels projected into a frame.

Each voxel's owner is kept where it is visible (the frame's depth map where there is one,
otherwise a z-buffer of the evidence itself), the nearest visible point winning a pixel, and
without a depth map drawn over the pixels it covers at its depth (``footprint``), so sparse
points such as matches triangulated with known cameras label the surface they sample rather
than a few scattered pixels.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from mastsam_splat.tracker.anchor import AnchorConfig
from mastsam_splat.tracker.nearest_feature import feature_transform_near, near_boxes
from mastsam_splat.tracker.projection import project_points
from mastsam_splat.types import Camera


def project_evidence(
    points: np.ndarray,
    ids: np.ndarray,
    camera: Camera,
    shape: tuple[int, int],
    voxel_size: float,
    config: AnchorConfig,
    depth: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Evidence label image [H, W] int32 (0: no evidence; ids are 16-bit, and the steps reading the image make half
    the memory traffic of int64) of ``points`` [N, 3] with ``ids`` [N] seen by ``camera``.

    A point is visible where its depth matches the frame's ``depth`` map (within ``depth_tolerance``
    or one voxel), or, without a depth map, where it is not behind the nearest evidence point of its
    z-buffer cell. Where several visible points fall on one pixel the nearest wins.
    """
    h, w = shape
    out = np.zeros((h, w), dtype=np.int32)
    if len(points) == 0:
        return out
    x, y, z = project_points(camera, points)
    with np.errstate(invalid="ignore"):
        # floor(x) lies in [0, w) exactly when x does (NaN in neither)
        keep = (z > 0) & (x >= 0) & (x < w) & (y >= 0) & (y < h)
        keep &= np.isfinite(z)
    keep = np.flatnonzero(keep)  # indices: each array is gathered once, with ``take``
    # non-negative coordinates: truncation is the floor
    cols, rows, z = x.take(keep).astype(np.int64), y.take(keep).astype(np.int64), z.take(keep)
    if len(z) == 0:
        return out
    flat = rows * w  # flat pixel index
    flat += cols
    slack = np.sqrt(3.0) * voxel_size
    if depth is not None:
        surface = np.asarray(depth).reshape(-1).take(flat).astype(np.float64)
        known = np.isfinite(surface) & (surface > 0)
        visible = known & (np.abs(z - surface) <= np.maximum(config.depth_tolerance * surface, slack))
    else:
        cell = max(int(config.zbuffer_cell), 1)
        cw = (w + cell - 1) // cell
        cell_of = (rows // cell) * cw + cols // cell
        nearest = np.full(((h + cell - 1) // cell) * cw, np.inf)
        np.minimum.at(nearest, cell_of, z)
        front = nearest[cell_of]
        visible = z <= front + np.maximum(config.depth_tolerance * front, 2 * slack)
    visible = np.flatnonzero(visible)
    pixel, z, ids = flat.take(visible), z.take(visible), np.asarray(ids).take(keep.take(visible))
    nearest_point = _nearest_per_pixel(pixel, z, h * w)
    pixel = pixel[nearest_point]
    out.ravel()[pixel] = ids[nearest_point]
    if config.footprint and depth is None and len(pixel):
        z = z[nearest_point]
        focal = 0.5 * float(camera.K[0, 0] + camera.K[1, 1])
        widest = config.max_footprint_fraction * float(np.hypot(h, w))
        reach = np.minimum(0.5 * focal * voxel_size / z, 0.5 * widest)
        # (a pixel's points at one depth share its reach; the id drawn is the one written last, read back)
        out = _draw_footprints(out, pixel, out.ravel().take(pixel), reach)
    return out


SPARSE_FOOTPRINT_SHARE = 0.5
"""``_draw_footprints`` draws discs point by point when they cover at most this share of the image's pixels
(counted with overlaps), and takes the distance transform of the pixels near the points otherwise."""


def _draw_footprints(points: np.ndarray, pixel: np.ndarray, ids: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """``_footprints`` of ``points`` [H, W] whose points lie at flat ``pixel`` [N] with ``ids`` [N] (``points`` there)
    and ``reach`` [N]: a few points with short reaches (sparse SfM points on a large frame) as discs
    (``_footprints_of_points``), many as the transform near them."""
    h, w = points.shape
    drawn = ids != 0
    if not drawn.any():
        return np.zeros_like(points)
    offsets = (2 * int(math.floor(float(reach[drawn].max()))) + 1) ** 2
    if int(np.count_nonzero(drawn)) * offsets <= SPARSE_FOOTPRINT_SHARE * h * w:
        return _footprints_of_points(pixel[drawn], ids[drawn], reach[drawn], (h, w), points.dtype)
    reach_image = np.zeros((h, w))
    reach_image.ravel()[pixel] = reach
    return _footprints(points, reach_image)


def _footprints_of_points(
    pixel: np.ndarray, ids: np.ndarray, reach: np.ndarray, shape: tuple[int, int], dtype: np.dtype
) -> np.ndarray:
    """``_footprints`` of points (ids non-zero) at flat ``pixel`` [N] with ``ids`` [N] and ``reach`` [N], drawn as
    discs: every point writes its id (0 beyond its reach) over the pixels within the widest reach of it, the
    farthest offsets first and, at one distance, the points in the transform's tie order reversed (largest column,
    then row, first), so the last write a pixel gets is that of its nearest point, ties to the smallest column, then
    the smallest row, as in the exact transform. A point at the same pixel twice writes the same values twice."""
    h, w = shape
    out = np.zeros(h * w, dtype=dtype)
    rows, cols = np.divmod(pixel.astype(np.int64), w)
    order = np.lexsort((rows, cols))[::-1]
    rows, cols, ids, reach = rows[order], cols[order], ids[order], reach[order]
    widest = float(reach.max())
    span = int(math.floor(widest))
    dy, dx = np.mgrid[-span : span + 1, -span : span + 1]
    dy, dx = dy.ravel(), dx.ravel()
    squared = dy * dy + dx * dx
    distance = np.sqrt(squared, dtype=np.float64)  # (as ``_footprints`` takes it from integer offsets)
    within = distance <= widest
    dy, dx, squared, distance = dy[within], dx[within], squared[within], distance[within]
    by_distance = np.argsort(-squared, kind="stable")
    dy, dx, squared, distance = dy[by_distance], dx[by_distance], squared[by_distance], distance[by_distance]
    starts = np.flatnonzero(np.r_[True, squared[1:] != squared[:-1]])
    ends = np.r_[starts[1:], len(squared)]
    for start, end in zip(starts.tolist(), ends.tolist()):
        at_rows = rows[:, None] + dy[None, start:end]  # [N, offsets at this distance]: point by point
        at_cols = cols[:, None] + dx[None, start:end]
        inside = (at_rows >= 0) & (at_rows < h) & (at_cols >= 0) & (at_cols < w)
        value = np.where(distance[start] <= reach, ids, 0)
        target = at_rows * w + at_cols
        # (one assignment of a 1-D index array writes a repeated pixel in order: the last value stays)
        out[target[inside]] = np.broadcast_to(value[:, None], target.shape)[inside]
    return out.reshape(h, w)


NEAREST_PASSES = 8
"""Passes of lowering writes ``_nearest_per_pixel`` makes before it takes the minimum of the points left over
with ``np.minimum.at``."""


def _nearest_per_pixel(pixel: np.ndarray, z: np.ndarray, size: int) -> np.ndarray:
    """[N] whether each point (flat ``pixel`` [N] index below ``size``, depth ``z`` [N], finite) is the nearest of its
    pixel.

    Several points of one pixel at its nearest depth are all kept, the last of them written last (as writing the
    points far first, in a stable order, leaves it): one pass per pixel instead of a sort by depth. The nearest depth
    of every pixel is found by plain writes (each point writes its depth; the points deeper than what their pixel then
    holds are dropped, the others write again), which reach each pixel's minimum within a few passes, as
    ``np.minimum.at`` would at several times the cost; what is left after ``NEAREST_PASSES`` passes is finished
    with ``np.minimum.at``.
    """
    nearest = np.full(size, np.inf)
    at, depth = pixel, z
    for _ in range(NEAREST_PASSES):
        if len(at) == 0:
            break
        nearest[at] = depth  # one of each pixel's points, below what the pixel held
        lower = depth < nearest.take(at)
        at, depth = at[lower], depth[lower]
    if len(at):
        np.minimum.at(nearest, at, depth)
    return z == nearest.take(pixel)


def _footprints(points: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Every pixel takes the id of the nearest projected point of ``points`` [H, W] (0: none) when it lies within
    that point's ``reach`` [H, W] (pixels): each point covers its footprint, and where footprints overlap the
    pixel goes to the point it is nearer to (the distance transform's nearest point, whatever the number of points).
    The transform is computed near the points only (``near_boxes``, ``feature_transform_near``: the nearest point of
    every pixel within the largest reach is the whole image's)."""
    h, w = points.shape
    out = np.zeros((h, w), dtype=points.dtype)
    seeded = points != 0
    widest = float(reach.max()) if reach.size else 0.0
    flat_points, flat_reach = points.ravel(), reach.ravel()
    for box in near_boxes(seeded, widest):
        _, rows, cols = feature_transform_near(seeded, box, widest, return_distances=False)
        # The distance as ``distance_transform_edt`` returns it (the root of an exact integer sum of squares), from
        # integer offsets, and flat look-ups: its own float64 offset arrays and 2-D gathers cost more than the
        # transform itself on a large frame.
        dy = rows - np.arange(box[0].start, box[0].stop, dtype=rows.dtype)[:, None]
        dx = cols - np.arange(box[1].start, box[1].stop, dtype=cols.dtype)[None, :]
        dy *= dy
        dx *= dx
        dy += dx
        distance = np.sqrt(dy, dtype=np.float64)
        del dx, dy
        nearest = rows.astype(np.int64)
        nearest *= w
        nearest += cols
        del rows, cols
        out[box] = np.where(distance <= flat_reach.take(nearest), flat_points.take(nearest), 0)
    return out
