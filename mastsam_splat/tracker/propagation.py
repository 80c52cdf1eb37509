"""Propagation of representative points to the next frame through the correspondences.

Each point follows the confident correspondences of its own mask that lie nearest to it
(within a radius): it moves by their median displacement. A point with no such neighbour is
dropped, and so is one that lands outside the next image (the object left the view there).

The whole label image is carried too: every pixel of the next frame looks up, through the
displacement of the correspondences landing nearest to it, the id its source pixel had. The
carried partition is what the previous frame says the new one should look like; where an
automatic segment of the new frame spans several carried ids (the segmenter merged tracked
regions in this frame), each of them keeps its carried pixels, so the ids' extents stay stable
from frame to frame instead of following every change of the automatic segmentation. An id
without correspondences of its own moves by its neighbours' motion: it is carried only when the
pair's correspondences agree with each other (no parallax to misplace it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, Optional

import numpy as np
from scipy.spatial import cKDTree

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.segment_table import SegmentCodes, segment_codes, segment_count
from mastsam_splat.tracker.representatives import Representatives, match_labels
from mastsam_splat.types import Camera, Matches


@dataclass
class PropagationConfig:
    """How representative points follow the correspondences into the next frame."""

    radius: float = 0.04
    """Largest distance (fraction of the image diagonal) from a representative to the correspondences carrying it."""
    neighbors: int = 4
    """Correspondences voting on a representative's displacement (median)."""
    carry_share: float = 0.2
    """An id carried onto at least this fraction of an automatic segment keeps its carried pixels there when
    the segment holds another such id: the previous frame's partition survives a segmenter that merges two
    tracked regions in one frame (> 1 turns the carried partition off)."""
    carry_extent: float = 0.5
    """An id with at least this fraction of its carried pixels inside one automatic segment counts there like
    an id carried onto ``carry_share`` of it (small ids inside a large segment keep their pixels)."""
    carry_radius: float = 0.3
    """Largest distance (fraction of the image diagonal) from a pixel of the new frame to the correspondences
    that carry it back to the previous frame; farther pixels carry no id."""
    carry_min_matches: int = 0
    """A carried id with fewer correspondences of its own (starting on it) moves only by the motion of
    neighbouring surfaces, which under parallax (wide-baseline pairs) differs from its own: it keeps its carried
    pixels only where the pair's carry is coherent (``carry_min_agreement``; 0, the default, keeps every id)."""
    carry_min_agreement: float = 0.9
    """The pair's carry is coherent when this fraction of its correspondences, each moved back by its
    neighbours' median motion (itself left out, as the label image is carried), lands on its own source id."""
    carry_geometry: Literal["sfm", "always", "never"] = "sfm"
    """With both frames' cameras, carry each pixel through the depth of the new frame's 3D points nearest to it
    (their median) and the two cameras instead of through the correspondences' interpolated motion: on a wide step
    the motion varies across the image with depth and rotation, a surface's depth much less. ``sfm``: when the 3D
    points are the capture's SfM points (all the frame sees, bundle-adjusted, where the pair shares only some);
    ``always``: also depth maps' and triangulated matches' points (the latter are the correspondences themselves,
    with their noise; with depth maps and sparse correspondences it helps segments that change shape from view to
    view, as the classical segmenter's, and holds SAM-like merges a view longer); ``never``."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.radius > 0, "tracker.propagation.radius", "> 0", self.radius)
        check_option(self.neighbors >= 1, "tracker.propagation.neighbors", ">= 1", self.neighbors)
        check_option(self.carry_share > 0, "tracker.propagation.carry-share", "> 0", self.carry_share)
        check_fraction(self.carry_extent, "tracker.propagation.carry-extent")
        check_option(self.carry_radius > 0, "tracker.propagation.carry-radius", "> 0", self.carry_radius)
        check_option(
            self.carry_min_matches >= 0, "tracker.propagation.carry-min-matches", ">= 0", self.carry_min_matches
        )
        check_fraction(self.carry_min_agreement, "tracker.propagation.carry-min-agreement")


@dataclass
class TrackedPoints:
    """Where one id's representatives land in frame ``t+1``."""

    points: np.ndarray
    """[K', 2] float pixel positions in frame t+1 of the points that survived."""
    num_representatives: int
    """K: how many representatives the id had in frame t."""

    @property
    def survival(self) -> float:
        """Fraction of the representatives that reached frame t+1."""
        return len(self.points) / self.num_representatives if self.num_representatives else 0.0


def propagate_points(
    points: np.ndarray,
    xy_a: np.ndarray,
    xy_b: np.ndarray,
    radius: float,
    neighbors: int,
    size_b: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``points`` [K, 2] of frame a to frame b through correspondences ``xy_a -> xy_b`` [N, 2].

    Args:
        radius: largest distance (pixels) from a point to a correspondence that may carry it.
        neighbors: how many nearest correspondences vote (median displacement).
        size_b: (width, height) of frame b.

    Returns:
        ``(moved, keep)``: moved positions [K', 2] of the kept points, and the kept mask [K].
    """
    if len(points) == 0 or len(xy_a) == 0:
        return np.zeros((0, 2)), np.zeros(len(points), dtype=bool)
    step, keep = median_displacement(points, xy_a, np.asarray(xy_b - xy_a, dtype=np.float64), radius, neighbors)
    moved = np.zeros((len(points), 2))
    moved[keep] = points[keep] + step[keep]
    width, height = size_b
    inside = (moved[:, 0] >= 0) & (moved[:, 0] < width) & (moved[:, 1] >= 0) & (moved[:, 1] < height)
    keep &= inside
    return moved[keep], keep


def median_displacement(
    points: np.ndarray, origins: np.ndarray, displacement: np.ndarray, radius: float, neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Median ``displacement`` [K, 2] (float64) of the ``neighbors`` correspondences whose ``origins`` [N, 2] lie
    nearest to each of ``points`` [K, 2] (within ``radius`` pixels), and whether any was within reach [K] (0 where
    not)."""
    k = int(min(max(neighbors, 1), len(origins)))
    dist, idx = cKDTree(origins).query(points, k=k, distance_upper_bound=radius)
    dist = dist.reshape(len(points), k)
    idx = idx.reshape(len(points), k)
    valid = np.isfinite(dist)
    keep = valid.any(axis=1)
    votes = displacement[np.minimum(idx, len(origins) - 1)]  # [K, k, 2]
    votes[~valid] = np.nan
    out = np.zeros((len(points), 2))
    if keep.any():
        out[keep] = _nanmedian_rows(votes[keep])
    return out, keep


def _nanmedian_rows(votes: np.ndarray) -> np.ndarray:
    """Median over axis 1 of ``votes`` [K, k, 2] ignoring NaNs (every row holds at least one number)."""
    ordered = np.sort(votes, axis=1)  # NaNs last
    count = np.sum(~np.isnan(ordered[:, :, 0]), axis=1)
    rows = np.arange(len(votes))
    low = ordered[rows, (count - 1) // 2]
    high = ordered[rows, count // 2]
    return (low + high) / 2.0


def propagate_representatives(
    representatives: dict[int, Representatives],
    matches: Matches,
    config: PropagationConfig,
    size_b: tuple[int, int],
) -> dict[int, TrackedPoints]:
    """Propagate every id's representatives, each through its own id's correspondences only.

    ``size_b`` is (width, height) of frame b, whose diagonal ``config.radius`` is a fraction of.
    All ids go through one k-d tree: each id's positions are shifted far apart along x
    (farther than the radius plus the image), so a neighbour search never reaches another id. The shifts are
    applied to all ids' rows at once (one gather of the correspondences, no per-id arrays).
    """
    ids = sorted(representatives)
    if not ids:
        return {}
    width, height = size_b
    radius = config.radius * float(np.hypot(width, height))
    neighbors = config.neighbors
    spacing = 4.0 * (max(width, 1) + radius + 1.0)
    reps = [representatives[i] for i in ids]
    counts = np.array([len(r.points) for r in reps], dtype=np.int64)
    match_counts = np.array([len(r.match_index) for r in reps], dtype=np.int64)
    shift = np.arange(len(ids)) * spacing  # [ids] each id's offset along x
    all_points = np.concatenate([r.points for r in reps]).astype(np.float64, copy=False)  # (a new array)
    all_points[:, 0] += np.repeat(shift, counts)
    index = np.concatenate([r.match_index for r in reps])
    xy_a = matches.xy_a.take(index, axis=0).astype(np.float64)
    xy_b = matches.xy_b.take(index, axis=0).astype(np.float64)
    match_shift = np.repeat(shift, match_counts)
    xy_a[:, 0] += match_shift
    xy_b[:, 0] += match_shift
    moved, keep = propagate_points(all_points, xy_a, xy_b, radius, neighbors, (10**12, 10**12))
    # The kept points stay in id order: each id's run of them, shifted back; those inside frame b stay.
    owner = np.repeat(np.arange(len(ids)), counts)[keep]
    moved[:, 0] -= shift[owner]
    inside = (moved[:, 0] >= 0) & (moved[:, 0] < width) & (moved[:, 1] >= 0) & (moved[:, 1] < height)
    moved = moved[inside]
    kept = np.bincount(owner[inside], minlength=len(ids)).tolist()
    ends = np.cumsum(kept).tolist()
    return {
        obj_id: TrackedPoints(points=moved[end - n : end], num_representatives=count)
        for obj_id, n, end, count in zip(ids, kept, ends, counts.tolist())
    }


CARRY_GRID_CELLS = 200
"""The carried label image's displacement field is evaluated on a grid of about this many cells along the image
diagonal (nearest-cell look-up in between)."""


def cell_displacements(
    xy_a: np.ndarray, xy_b: np.ndarray, shape: tuple[int, int], radius: float, neighbors: int, step: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The displacement field of :func:`displacement_field` on its cells: displacements [GY, GX, 2] (frame b to
    frame a) at the centres of ``step``-pixel cells, whether a correspondence was within reach of each [GY, GX], and
    the cell row of every pixel row [H] and the cell column of every pixel column [W]."""
    cells, rows, cols = _cells(shape, step)
    xy_a = np.asarray(xy_a, dtype=np.float64)
    xy_b = np.asarray(xy_b, dtype=np.float64)
    field, has = median_displacement(cells.reshape(-1, 2), xy_b, xy_a - xy_b, radius, neighbors)
    return field.reshape(cells.shape), has.reshape(cells.shape[:2]), rows, cols


def _cells(shape: tuple[int, int], step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The centres [GY, GX, 2] (x, y) of the ``step``-pixel cells of an image of ``shape`` (H, W), and the cell row
    of every pixel row [H] and the cell column of every pixel column [W]."""
    h, w = shape
    step = max(int(step), 1)
    gx = np.arange(step / 2.0, w, step)
    gy = np.arange(step / 2.0, h, step)
    grid = np.stack(np.meshgrid(gx, gy), axis=-1)
    return grid, np.minimum(np.arange(h) // step, len(gy) - 1), np.minimum(np.arange(w) // step, len(gx) - 1)


def displacement_field(
    xy_a: np.ndarray, xy_b: np.ndarray, shape: tuple[int, int], radius: float, neighbors: int, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where every pixel of frame b came from in frame a, interpolated from correspondences ``xy_a -> xy_b``.

    The displacement at a pixel is the median displacement of the ``neighbors`` correspondences landing
    nearest to it in frame b (within ``radius`` pixels), evaluated at the centres of ``step``-pixel cells.
    Returns source positions [H, W, 2] (x, y, pixel centres at +0.5) in frame a and whether a correspondence
    was within reach [H, W].
    """
    h, w = shape
    source = np.zeros((h, w, 2), dtype=np.float64)
    if len(xy_a) == 0 or h == 0 or w == 0:
        return source, np.zeros((h, w), dtype=bool)
    field, has, rows, cols = cell_displacements(xy_a, xy_b, shape, radius, neighbors, step)
    rows, cols = rows[:, None], cols[None, :]
    field = field[rows, cols]
    known = has[rows, cols]
    source[..., 0] = np.arange(w)[None, :] + 0.5 + field[..., 0]
    source[..., 1] = np.arange(h)[:, None] + 0.5 + field[..., 1]
    return source, known


def geometric_cell_displacements(
    camera_a: Camera,
    camera_b: Camera,
    xy_b: np.ndarray,
    xyz: np.ndarray,
    shape: tuple[int, int],
    radius: float,
    neighbors: int,
    step: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``cell_displacements`` from geometry: each cell centre of frame b takes the median depth of the ``neighbors``
    3D points ``xyz`` [N, 3] seen at ``xy_b`` [N, 2] nearest to it (within ``radius`` pixels), is lifted with
    ``camera_b`` and projected with ``camera_a``; its displacement is where it lands minus where it is (a cell
    without points in reach, or landing behind camera a, has none)."""
    cells, rows, cols = _cells(shape, step)
    grid = cells.reshape(-1, 2)
    depth = camera_b.world_to_camera_points(xyz)[:, 2]
    front = np.isfinite(depth) & (depth > 0)
    field = np.zeros((len(grid), 2))
    has = np.zeros(len(grid), dtype=bool)
    if front.any():
        votes = np.repeat(depth[front][:, None], 2, axis=1)
        median, has = median_displacement(grid, np.asarray(xy_b, dtype=np.float64)[front], votes, radius, neighbors)
    if has.any():
        landed, z = camera_a.project(camera_b.unproject(grid[has], median[has, 0]))
        ok = np.isfinite(landed).all(axis=1) & (z > 0)
        field[np.flatnonzero(has)[ok]] = landed[ok] - grid[has][ok]
        has[np.flatnonzero(has)[~ok]] = False
    return field.reshape(cells.shape), has.reshape(cells.shape[:2]), rows, cols


def carry_labels(
    prev_labels: np.ndarray,
    matches: Matches,
    shape: tuple[int, int],
    config: PropagationConfig,
    geometry: Optional[tuple[Camera, Camera, np.ndarray, np.ndarray]] = None,
) -> np.ndarray:
    """Frame a's label image carried into frame b (``shape`` (H, W)) through ``matches`` (a -> b): each pixel of b
    takes the id at its interpolated source in a; 0 where no correspondence is within ``config.carry_radius``
    (of the diagonal of b) or the source falls outside frame a. Of ``prev_labels``' own type (a stored uint16 image
    carries as uint16: a quarter of an int64 image's memory for every step that reads it).

    The source of a pixel is its position plus its cell's displacement (``displacement_field``), so its column
    depends on the pixel's column and cell row only, and its row on the pixel's row and cell column: both are
    computed on those small tables (the same sums, so the same source pixels) and only their sum (a flat index
    into frame a) and the final look-up are made per pixel. ``geometry``: (camera a, camera b, the 3D points' pixels
    in b [N, 2], their world positions [N, 3]) to carry through depth and cameras (``carry_geometry``)."""
    h, w = shape
    if (len(matches) == 0 and geometry is None) or h == 0 or w == 0:
        return np.zeros(shape, dtype=prev_labels.dtype)
    diagonal = float(np.hypot(w, h))
    step = max(1, int(round(diagonal / CARRY_GRID_CELLS)))
    if geometry is not None:
        field, has, cell_row, cell_col = geometric_cell_displacements(
            *geometry, shape, config.carry_radius * diagonal, config.neighbors, step
        )
    else:
        field, has, cell_row, cell_col = cell_displacements(
            matches.xy_a, matches.xy_b, shape, config.carry_radius * diagonal, config.neighbors, step
        )
    ha, wa = prev_labels.shape
    outside = ha * wa  # the flat index standing for "no source": one past frame a's pixels, where a 0 is appended
    index = np.int32 if 2 * outside < np.iinfo(np.int32).max else np.int64
    # [GY, W] source column of every pixel column in each cell row, [H, GX] flat offset of the source row of every
    # pixel row in each cell column; ``outside`` where the source falls outside frame a or the cell is out of reach
    source_col = np.floor(np.arange(w)[None, :] + 0.5 + field[:, cell_col, 0]).astype(np.int64)
    source_row = np.floor(np.arange(h)[:, None] + 0.5 + field[cell_row, :, 1]).astype(np.int64)
    source_col = np.where((source_col < 0) | (source_col >= wa) | ~has[:, cell_col], outside, source_col)
    source_row = np.where((source_row < 0) | (source_row >= ha), outside, source_row * wa)
    flat = source_row.astype(index).take(cell_col, axis=1)  # [H, W]
    flat += source_col.astype(index).take(cell_row, axis=0)
    np.minimum(flat, outside, out=flat)
    # looked up in frame a's own dtype (a stored uint16 image: a quarter of the memory the gather reads)
    labels = np.zeros(outside + 1, dtype=prev_labels.dtype)
    labels[:outside] = prev_labels.reshape(-1)
    return labels.take(flat)


def carry_agreement(prev_labels: np.ndarray, matches: Matches, radius: float, neighbors: int) -> float:
    """Leave-one-out check of the carried label image at the correspondences ``matches`` (a -> b): the fraction
    of them that, moved back to frame a by the median motion of the ``neighbors`` others landing nearest to them
    in frame b (within ``radius`` pixels), land on the id of their own source pixel (1 with none to check)."""
    if len(matches) < 2:
        return 1.0
    xy_a = matches.xy_a.astype(np.float64)
    xy_b = matches.xy_b.astype(np.float64)
    k = int(min(neighbors + 1, len(xy_b)))
    dist, idx = cKDTree(xy_b).query(xy_b, k=k, distance_upper_bound=radius)
    dist = dist.reshape(len(xy_b), k)
    idx = idx.reshape(len(xy_b), k)
    valid = np.isfinite(dist) & (idx != np.arange(len(xy_b))[:, None])
    valid &= np.cumsum(valid, axis=1) <= neighbors
    has = valid.any(axis=1)
    if not has.any():
        return 1.0
    votes = (xy_a - xy_b)[np.minimum(idx, len(xy_b) - 1)]
    votes[~valid] = np.nan
    source = xy_b[has] + _nanmedian_rows(votes[has])
    h, w = prev_labels.shape
    inside = (source[:, 0] >= 0) & (source[:, 0] < w) & (source[:, 1] >= 0) & (source[:, 1] < h)
    agree = inside & (match_labels(prev_labels, source) == match_labels(prev_labels, xy_a[has]))
    return float(np.mean(agree))


def supported_carry(
    carried: np.ndarray, prev_labels: np.ndarray, matches: Matches, config: PropagationConfig
) -> tuple[np.ndarray, int, float]:
    """``carried`` without the ids the correspondences ``matches`` (a -> b) do not back: fewer than
    ``config.carry_min_matches`` start on the id in ``prev_labels`` and the pair's :func:`carry_agreement` is
    below ``config.carry_min_agreement``. Also returns how many carried ids were dropped and the agreement."""
    if config.carry_min_matches <= 0 or not carried.size:
        return carried, 0, 1.0
    h, w = carried.shape
    agreement = carry_agreement(prev_labels, matches, config.carry_radius * float(np.hypot(w, h)), config.neighbors)
    if agreement >= config.carry_min_agreement:
        return carried, 0, agreement
    size = max(int(prev_labels.max()), int(carried.max())) + 1
    own = np.bincount(match_labels(prev_labels, matches.xy_a), minlength=size)
    backed = own >= config.carry_min_matches
    backed[0] = True
    dropped = (np.bincount(carried.ravel(), minlength=size) > 0) & ~backed
    if not dropped.any():
        return carried, 0, agreement
    return np.where(backed[carried], carried, 0), int(np.count_nonzero(dropped)), agreement


class TakenBack(NamedTuple):
    """The pixels the carried partition gave another id (``keep_carried``)."""

    pixels: np.ndarray
    """[K] flat indices."""
    old: np.ndarray
    """[K] their ids before."""
    new: np.ndarray
    """[K] their ids after (the carried ones)."""

    @property
    def changed(self) -> int:
        """How many pixels changed id."""
        return len(self.pixels)


NOTHING_TAKEN = TakenBack(np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))


def keep_carried(
    labels: np.ndarray,
    auto_labels: np.ndarray,
    carried: np.ndarray,
    config: PropagationConfig,
    min_area: int,
    counted: Optional[SegmentCodes] = None,
    labelled: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, TakenBack]:
    """``labels`` [H, W] where every automatic segment that the carried partition splits keeps that split
    (``counted``: ``segment_codes(carried, auto_labels)`` when the caller has it; ``labelled``: [S + 1] the pixels of
    each segment ``labels`` gives an id, when the caller has them).

    An id is strong in automatic segment ``S`` when at least ``min_area`` of its carried pixels lie in ``S`` and
    they make ``config.carry_share`` of ``S`` or ``config.carry_extent`` of the id's carried pixels. Inside a
    segment holding two strong ids or more, every strong id takes back its carried pixels, from whichever
    tracked id ``labels`` gave them and, in a segment tracking reached (``min_area`` labelled pixels), where the
    prompted masks left them unlabelled (gap filling would hand those to the id dominating the merged segment, a
    frame-to-frame flip of the surface they lie on); the other pixels, among them the new content (no id carried
    onto it), keep ``labels``, and a segment tracking did not reach is left to the new regions, whose own test of
    the carried ids keeps the granularity. Returns the labels (``labels`` itself when nothing is taken back, a new array
    otherwise) and the pixels taken back.
    """
    num_segments = segment_count(auto_labels)
    if num_segments == 0 or (counted is None and not np.any(carried)):
        return labels, NOTHING_TAKEN
    # one (segment, carried id) code per pixel: counted into the table and looked up in ``strong`` below
    ids, code, counts = segment_codes(carried, auto_labels, num_segments) if counted is None else counted
    if not ids[-1]:  # (nothing carried)
        return labels, NOTHING_TAKEN
    table = counts.copy()  # (its margins are cleared below)
    area = table.sum(axis=1)  # (each segment's pixels: ``np.bincount(auto_labels)``)
    table[0] = 0
    table[:, 0] = 0
    carried_area = np.maximum(table.sum(axis=0), 1)
    large = (table >= config.carry_share * np.maximum(area, 1)[:, None]) | (
        table >= config.carry_extent * carried_area[None, :]
    )
    strong = large & (table >= min_area)
    strong &= (np.count_nonzero(strong, axis=1) >= 2)[:, None]
    if not strong.any():  # no segment holds two strong ids: nothing is taken back
        return labels, NOTHING_TAKEN
    # each segment's labelled pixels, counted over those pixels only
    if labelled is None:
        labelled = np.bincount(auto_labels.ravel()[labels.ravel() > 0], minlength=num_segments + 1)
    tracked = labelled >= min_area
    # (the pixels of strong pairs, a part of the frame, found once; the conditions read at those pixels only)
    pixels = np.flatnonzero(strong.reshape(-1).take(code))
    old = labels.reshape(-1).take(pixels)
    untracked = ~tracked & strong.any(axis=1)  # (segments tracking did not reach: their unlabelled pixels stay so)
    if untracked.any():
        keep = (old > 0) | ~untracked.take(auto_labels.reshape(-1).take(pixels))
        pixels, old = pixels[keep], old[keep]
    values = carried.reshape(-1).take(pixels)
    out = labels.astype(np.int64, order="C", copy=True)
    out.reshape(-1)[pixels] = values
    differ = np.flatnonzero(values != old)
    return out, TakenBack(pixels.take(differ), old.take(differ), values.take(differ))
