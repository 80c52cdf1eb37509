"""Ids that jumped to another surface: an id brought back on pixels its 3D evidence barely knows.

The 3D memory re-identifies a new region as an earlier id when the region's 3D points fall in that
id's voxels. A voxel the id holds once or twice (the chain let the id spill onto a neighbouring part
for a frame) is enough for that, and the id then lives on the neighbour for the rest of the sequence,
while its own surface takes other ids whenever it shows. In a frame with a depth map, every id that
is in the frame without having been carried into it is checked here: its pixels' 3D points should
fall in voxels the id has seen about as often as it typically sees its voxels. Where they fall in
voxels it has seen far less often (``min_strength`` of its median count, on average), the id has
jumped, and its pixels take a new id; the consolidation after the sequence can still merge that id
with the right one.

A carried id can also take a surface it has never seen: the segmenter merged a newly visible part with
the id's segment for a frame or two, the segment consensus gave the whole segment to the id, and the chain
carries the id onto the new part, which grows as it turns into view while the id's own surface shrinks.
When such an id lies on several automatic segments of a frame, one of them on its own surface and
another on voxels it has seen far less often (``piece_strength`` of its median count), that other
segment is new surface and its pixels leave the id (``split_new_surface``). New to the id is not new to
the scene: on an orbit a part seen in the first frames turns out of view and back in, merged for a frame with
a neighbour's segment; where the segment's 3D points lie on the surface of an id absent from the frame (that
id has seen them about as often as its own voxels, ``min_strength``), the segment takes that id back, and only
otherwise a new one. A new id there would be carried on over the part for the rest of the sequence,
gathering evidence of its own, and the part's old id would never come back (an id switch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from mastsam_splat.errors import check_fraction
from mastsam_splat.tracker.evidence import AnchorEvidence
from mastsam_splat.tracker.memory import pair_positions, voxel_coords, voxel_keys
from mastsam_splat.tracker.points3d import FramePoints, point_labels
from mastsam_splat.tracker.segment_table import id_member


@dataclass
class JumpConfig:
    """The check of ids brought back onto another surface."""

    enabled: bool = True
    """In frames with a depth map, give a new id to the pixels of an id brought back (not carried) onto 3D
    points it has seen far less often than its own surface."""
    min_strength: float = 0.3
    """An id's pixels must fall in voxels it has seen, on average, at least this fraction of its median count."""
    min_points: int = 10
    """Fewest 3D points on an id's pixels for the check to decide."""
    piece_strength: float = 0.1
    """A carried id lying on several automatic segments gives up each segment whose 3D points fall in voxels it
    has seen, on average, less than this fraction of its median count, when another of its segments lies on its
    own surface (``min_strength``): to the absent id whose surface the segment lies on, else to a new id; 0 turns
    this off."""

    def __post_init__(self) -> None:
        check_fraction(self.min_strength, "tracker.jumps.min-strength")
        check_fraction(self.piece_strength, "tracker.jumps.piece-strength")


def evidence_strength(evidence: AnchorEvidence, obj_id: int, points: np.ndarray) -> float:
    """Mean count of ``obj_id`` in the voxels of ``points`` [N, 3] (0 where it has none), over its median count."""
    return _strength(evidence.pairs(), obj_id, voxel_keys(voxel_coords(points, evidence.voxel_size)))


def _strength(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], obj_id: int, point_keys: np.ndarray) -> float:
    """:func:`evidence_strength` from the evidence's ``(keys, ids, counts)`` rows and the points' voxel keys."""
    return _strength_on(_own_rows(pairs, obj_id), point_keys)


def _own_rows(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], obj_id: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The evidence rows of ``obj_id``: its voxel keys (ascending) and their counts; also the scale its strengths are
    relative to (the counts' median, at least 1), found once for all the id's pieces."""
    keys, ids, counts = pairs
    own = np.flatnonzero(ids == obj_id)  # (indices: the mask over every row is read once, not once per array)
    own_counts = counts.take(own)
    return keys.take(own), own_counts, max(float(np.median(own_counts)), 1.0) if len(own_counts) else 1.0


def _strength_on(own: tuple[np.ndarray, np.ndarray, float], point_keys: np.ndarray) -> float:
    """:func:`evidence_strength` from an id's rows (``_own_rows``) and the points' voxel keys."""
    own_keys, own_counts, scale = own
    if len(own_keys) == 0 or len(point_keys) == 0:
        return 0.0
    slot = np.minimum(np.searchsorted(own_keys, point_keys), len(own_keys) - 1)
    hit = np.where(own_keys[slot] == point_keys, own_counts[slot], 0)
    return float(hit.mean()) / scale


def piece_strengths(
    evidence: AnchorEvidence, obj_id: int, point_keys: np.ndarray, piece_of_point: np.ndarray, pieces: list[int]
) -> dict[int, float]:
    """Piece -> :func:`evidence_strength` of ``obj_id`` on the points of that piece (``piece_of_point`` [N], the
    points' voxel keys ``point_keys`` [N]); -1 for a piece without points."""
    own = _own_rows(evidence.pairs(), obj_id)
    return {
        p: _strength_on(own, point_keys[piece_of_point == p]) if np.any(piece_of_point == p) else -1.0 for p in pieces
    }


def _absent_owner(
    evidence: AnchorEvidence,
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray],
    piece: np.ndarray,
    point_keys: np.ndarray,
    present: np.ndarray,
    min_strength: float,
) -> int:
    """The id (0: none) absent from the frame that owns most voxels of ``piece`` [N, 3], when its evidence holds
    those points as firmly as its own surface (``min_strength``); ``point_keys``: the points' voxel keys."""
    owners = evidence.owner_at(piece)
    owners = owners[(owners > 0) & ~np.isin(owners, present)]
    if len(owners) == 0:
        return 0
    candidate = int(np.bincount(owners).argmax())
    return candidate if _strength(pairs, candidate, point_keys) >= min_strength else 0


def _scales(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], obj_ids: list[int]) -> dict[int, float]:
    """Id -> the scale of its strengths (``_own_rows``: the median of its counts, at least 1) of each of ``obj_ids``,
    from one table of counts per id and count value: one pass over the evidence for all the ids."""
    _, ids, counts = pairs
    wanted = np.asarray(obj_ids, dtype=np.int64)
    if len(ids) == 0 or len(wanted) == 0:
        return {i: 1.0 for i in obj_ids}
    top = int(counts.max()) + 1
    if int(ids.min()) < 0 or int(wanted.min()) < 0 or int(counts.min()) < 0 or (len(wanted) + 1) * top > PIECE_TABLE:
        return {i: _own_rows(pairs, i)[2] for i in obj_ids}
    slot_of = np.zeros(max(int(ids.max()), int(wanted.max())) + 1, dtype=np.int64)
    slot_of[wanted] = np.arange(1, len(wanted) + 1)
    # (the other ids' rows are counted in row 0 of the table, which is not read)
    table = np.bincount(slot_of[ids] * top + counts, minlength=(len(wanted) + 1) * top)
    below = np.cumsum(table.reshape(len(wanted) + 1, top), axis=1)  # per id: how many counts are at most each value
    scales = {}
    for j, obj_id in enumerate(wanted.tolist(), start=1):
        n = int(below[j, -1])
        if n == 0:
            scales[obj_id] = 1.0
            continue
        # np.median: the middle value, or the mean of the two middle values
        upper = int(np.searchsorted(below[j], n // 2, side="right"))
        lower = upper if n % 2 else int(np.searchsorted(below[j], n // 2 - 1, side="right"))
        scales[obj_id] = max((lower + upper) / 2, 1.0)
    return scales


def _counts_at(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """[N] the evidence count of each ``(keys[i], ids[i])`` (0 where it has none): the pairs' rows among the
    evidence's (distinct, sorted by key, then id) found by ``pair_positions``."""
    row_keys, row_ids, row_counts = pairs
    out = np.zeros(len(keys), dtype=row_counts.dtype)
    if len(row_keys) == 0:
        return out
    at, held = pair_positions(row_keys, row_ids, keys, ids)
    out[held] = row_counts.take(at[held])
    return out


PIECE_TABLE = 1 << 22
"""Largest (id, segment) code counted with a table (``np.bincount``) rather than by sorting."""


def _pieces(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True, return_counts=True)`` of non-negative integer ``codes``: by a count
    table and a look-up when the codes are small (a frame's ids times its segments), else by sorting."""
    if len(codes) == 0 or int(codes.max()) >= PIECE_TABLE:
        return np.unique(codes, return_inverse=True, return_counts=True)
    table = np.bincount(codes)
    present = np.flatnonzero(table)
    slot = np.zeros(len(table), dtype=np.int64)
    slot[present] = np.arange(len(present))
    return present, slot[codes], table[present]


def split_jumps(
    labels: np.ndarray,
    carried: Iterable[int],
    first_new: int,
    points: FramePoints,
    evidence: AnchorEvidence,
    config: JumpConfig,
    new_id: Callable[[], int],
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``labels`` with every id older than ``first_new`` and not in ``carried`` that jumped renamed to a new id;
    also the (id, new id) pairs. ``points``: the frame's 3D points (a depth map's), not yet in ``evidence``."""
    if len(points) == 0 or len(evidence) == 0:
        return labels, []
    keep = set(int(i) for i in carried)
    present = np.flatnonzero(np.bincount(labels.ravel())).tolist()
    candidates = [i for i in present if i != 0 and i not in keep and i < first_new]
    if not candidates:
        return labels, []
    at = point_labels(labels, points)
    on_count = np.bincount(at, minlength=max(candidates) + 1)
    candidates = [i for i in candidates if on_count[i] >= config.min_points]
    if not candidates:
        return labels, []
    pairs = evidence.pairs()
    point_keys = points.voxel_keys(evidence.voxel_size)
    out = labels
    jumped = []
    for obj_id in candidates:
        if _strength(pairs, obj_id, point_keys[at == obj_id]) < config.min_strength:
            if out is labels:
                out = labels.copy()
            fresh = new_id()
            out[labels == obj_id] = fresh
            jumped.append((int(obj_id), fresh))
    return out, jumped


def split_new_surface(
    labels: np.ndarray,
    auto: np.ndarray,
    carried: Iterable[int],
    points: FramePoints,
    evidence: AnchorEvidence,
    config: JumpConfig,
    new_id: Callable[[], int],
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``labels`` where each ``carried`` id lying on several segments of ``auto`` (0: no segment) keeps those on its
    own surface and gives every segment on voxels it has barely seen to the absent id whose surface it lies on,
    else a new id; also the (id, id given) pairs.
    ``points``: the frame's 3D points (a depth map's), not yet in ``evidence``."""
    if config.piece_strength <= 0 or len(points) == 0 or len(evidence) == 0:
        return labels, []
    at = point_labels(labels, points)
    segment_at = point_labels(auto, points)
    keep = (at > 0) & (segment_at > 0) & id_member(at, np.asarray(list(carried), dtype=np.int64))
    if not keep.any():
        return labels, []
    # (id, segment) pieces with enough points, each id's pieces together: one code per pair, sorted by id then
    # segment
    span = int(segment_at.max()) + 1
    codes, inverse, counts = _pieces(at[keep] * span + segment_at[keep])
    piece_ids, piece_segments = codes // span, codes % span
    enough = counts >= config.min_points
    ids_with_pieces, per_id = np.unique(piece_ids[enough], return_counts=True)
    several = set(ids_with_pieces[per_id >= 2].tolist())
    if not several:
        return labels, []
    pairs = evidence.pairs()
    kept = np.flatnonzero(keep)
    point_keys = points.voxel_keys(evidence.voxel_size).take(kept)
    # every piece's strength at once (``_strength_on`` of each): the count of the piece's id at each of its points,
    # summed per piece (counts are integers: the sums, and so the means, are exact in any order)
    measured = enough & id_member(piece_ids, np.asarray(sorted(several), dtype=np.int64))
    on = np.flatnonzero(measured[inverse])
    hits = _counts_at(pairs, point_keys.take(on), piece_ids.take(inverse.take(on)))
    sums = np.bincount(inverse.take(on), weights=hits, minlength=len(codes))
    scale = _scales(pairs, sorted(several))
    strength: dict[int, list[tuple[int, int, float]]] = {}
    for k in np.flatnonzero(measured).tolist():
        obj_id, segment = int(piece_ids[k]), int(piece_segments[k])
        strength.setdefault(obj_id, []).append((k, segment, float(sums[k] / counts[k]) / scale[obj_id]))
    present = None  # the frame's ids, counted once a piece is given away
    out = labels
    split = []
    for obj_id, per_segment in strength.items():
        if max(s for _, _, s in per_segment) < config.min_strength:
            continue  # none of its segments lies on its own surface: nothing to tell new surface from
        for k, segment, s in per_segment:
            if s < config.piece_strength:
                if out is labels:
                    out = labels.copy()
                on = np.flatnonzero(inverse == k)  # the piece's points, in point order
                xyz = points.xyz[kept.take(on)]  # (read for the pieces given away only)
                if present is None:
                    present = np.flatnonzero(np.bincount(labels.ravel()))
                given = _absent_owner(evidence, pairs, xyz, point_keys[on], present, config.min_strength)
                given = given or new_id()
                out[(labels == obj_id) & (auto == segment)] = given
                present = np.union1d(present, [given])
                split.append((obj_id, given))
    return out, split
