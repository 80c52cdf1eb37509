"""Sequence-level id consolidation with the 3D observations of every id.

When tracking loses an object for a frame and the memory cannot recognise it on the spot (it
came back showing a side never seen before), the object continues under a new id. After the
whole sequence the evidence is complete: two ids that never appear in the same frame and
whose observed 3D voxels overlap (the new id starts on the surface the old one covered) are
one object seen before and after the switch, and the younger id is merged into the older one
in every frame. With dense 3D points (depth maps) the overlap is tested both ways: a small id seen early on part
of a surface that a larger id covers whole later lies inside the larger one's voxels, though most
of those are new; and a frame counts as showing an id only where the id keeps a fair share of its
usual area: a sliver an id leaves on a neighbouring surface after it moved on does not make two
fragments co-occur. With the points of SfM tracks (one point seen from every view that observed it) the overlap is
tested both ways too, and the groups an id may join are ranked by the share of the id's own voxels they hold.
An id that qualifies for several groups joins them all when they pass the co-occurrence test with each other (a
fragment of one frame, made where an id was lost, overlaps the old id too little, and the id that continued after
it overlaps the fragment most: without the bridge the old id stays apart).
Pairs the caller keeps ``apart`` (a whole and a part split from it) are never merged; the
tracker runs this once within each split family, then over all ids.
An id with fewer than ``min_voxels`` voxels (a sky segment: a large region with almost no 3D points)
has no surface to compare and is merged with nothing: two or three stray voxels next to a part must not
give the part a frame of sky.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Literal, Optional, Sequence

import numpy as np

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.memory import _BITS, _OFFSET, VoxelMemory

MAX_VOXELS = 256
"""Voxels per id compared during consolidation."""


@dataclass
class ConsolidationConfig:
    """Sequence-level merging of ids seen before and after an id switch."""

    enabled: bool = True
    """After the sequence, merge ids that never share a frame but share 3D voxels (one object before and after
    an id switch), in every frame (needs 3D points)."""
    min_overlap: float = 0.3
    """Fraction of the younger id's 3D voxels that must lie in the older id's voxels."""
    max_cooccurrence: float = 0.1
    """Largest fraction of frames (of the shorter-lived id) in which the two ids may appear together."""
    min_presence: float = 0.25
    """A frame counts as showing an id (for ``max_cooccurrence``) when the id covers at least this fraction of its
    median area over the frames showing it: a sliver left on a neighbour after the id moved on is no co-occurrence.
    With 3D points from depth maps only (see ``for_points``)."""
    symmetric: bool = True
    """Also merge when ``min_overlap`` of the older group's voxels lie in the younger id's: a small id seen early
    on part of a surface that a larger id, seen later, covers whole. With 3D points from depth maps and SfM tracks only: the few
    sparse voxels of a small id from one pair lie next to a large id's by chance."""
    min_voxels: int = 16
    """Ids with fewer 3D voxels (a sky segment holds almost no 3D points) are merged with nothing."""
    rank_forward: bool = False
    """Among the groups an id qualifies for, join the one holding the largest share of the id's own voxels (not the
    largest overlap either way). Set with SfM points (see ``for_points``): a small group's few points lie nearly all
    among a large id's, so the overlap the other way ranks the smallest group first."""
    bridge: bool = True
    """An id that qualifies for several groups joins them all into one (under the oldest id) when the groups pass the
    co-occurrence test with each other too: a fragment of one frame, left where an id was lost, must not keep the id
    that continued after it from the id seen before the loss."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_fraction(self.min_overlap, "tracker.consolidation.min-overlap")
        check_option(self.min_voxels >= 0, "tracker.consolidation.min-voxels", ">= 0", self.min_voxels)
        check_fraction(self.max_cooccurrence, "tracker.consolidation.max-cooccurrence")
        check_fraction(self.min_presence, "tracker.consolidation.min-presence")

    def for_points(self, points: Literal["dense", "tracks", "sparse"]) -> "ConsolidationConfig":
        """The settings used with dense 3D points (depth maps: as set), with the points of SfM tracks (the same
        points seen from every view that observed them: the overlap is tested both ways, groups ranked by the share
        of the id's own voxels, ``rank_forward``, and every frame an id covers ``min_area`` in shows it) or with
        sparse points of single pairs (matches, triangulation: the overlap is tested one way, and every frame
        shows)."""
        if points == "dense":
            return self
        if points == "tracks":
            return replace(self, min_presence=0.0, rank_forward=True)
        return replace(self, symmetric=False, min_presence=0.0)


def presence(label_maps: Sequence[np.ndarray], min_area: int, min_fraction: float = 0.0) -> dict[int, set[int]]:
    """Frames (indices) in which each id covers at least ``min_area`` pixels and at least ``min_fraction`` of its
    median area over those frames."""
    return presence_from_counts((np.bincount(np.asarray(x).ravel()) for x in label_maps), min_area, min_fraction)


def presence_from_counts(
    counts_per_frame: Iterable[np.ndarray], min_area: int, min_fraction: float = 0.0
) -> dict[int, set[int]]:
    """``presence`` from each frame's pixel count per id (``np.bincount`` of its label image)."""
    areas: dict[int, dict[int, int]] = {}
    for t, counts in enumerate(counts_per_frame):
        shown = np.flatnonzero(counts >= max(min_area, 1))
        for obj_id, count in zip(shown.tolist(), counts[shown].tolist()):
            if obj_id > 0:
                areas.setdefault(obj_id, {})[t] = count
    out: dict[int, set[int]] = {}
    for obj_id, per_frame in areas.items():
        floor = min_fraction * float(np.median(list(per_frame.values())))
        out[obj_id] = {t for t, count in per_frame.items() if count >= floor}
    return out


def voxel_centres(keys: np.ndarray, voxel_size: float, by_coordinate: bool = False) -> np.ndarray:
    """World centres [K, 3] of voxel keys (inverse of ``memory.voxel_keys``): ``(coords + 0.5) * voxel_size``.

    Each coordinate is written straight into the float64 result and shifted there (integers and half-integers this
    small are exact in float64, so the centres are those of the integer coordinates converted afterwards).
    ``by_coordinate``: the same values stored coordinate by coordinate (the transpose of a [3, K] array, so that a
    product with a 3x3 matrix reads three contiguous rows)."""
    mask = (1 << _BITS) - 1
    keys = np.asarray(keys)
    out = np.empty((3, len(keys)) if by_coordinate else (len(keys), 3), dtype=np.float64)
    rows = out if by_coordinate else out.T
    rows[0] = (keys >> (2 * _BITS)) & mask
    rows[1] = (keys >> _BITS) & mask
    rows[2] = keys & mask
    out -= _OFFSET - 0.5
    out *= voxel_size
    return rows.T if by_coordinate else out


def consolidation_merges(
    observed: VoxelMemory,
    frames_of: dict[int, set[int]],
    config: ConsolidationConfig,
    apart: Optional[Callable[[int, int], bool]] = None,
) -> dict[int, int]:
    """Younger id -> older id merges between ids that share 3D voxels but (almost) never share a frame.

    ``observed`` holds every voxel each id was seen on (not exclusive). An id ``b`` joins the
    older id ``a`` (or the group ``a`` already leads) when at least ``config.min_overlap`` of
    ``b``'s voxels lie in or next to the group's voxels (or, with ``config.symmetric``, that fraction of the group's
    voxels in or next to ``b``'s) and they appear together in at most
    ``config.max_cooccurrence`` of the frames of the shorter-lived of the two, and ``apart`` (if given) holds for
    none of the group's members and ``b``. Ids with fewer than ``config.min_voxels`` voxels stay as they are.
    """
    keys, ids = observed.pairs()
    if len(keys) == 0:
        return {}
    by_id = np.argsort(ids, kind="stable")  # each id's keys, in their stored order
    sorted_ids = ids[by_id]
    order = sorted(frames_of)  # ids are numbered in visiting order, which does not depend on the input order
    rng = np.random.default_rng(0)
    sampled: dict[int, np.ndarray] = {}
    leader: dict[int, int] = {}
    group_frames: dict[int, set[int]] = {}
    members: dict[int, list[int]] = {}
    merges: dict[int, int] = {}
    # Per group: the ids its sampled voxels fall into (or next to), kept until the group's sample changes.
    reverse_hits: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    small: set[int] = set()  # groups of too few voxels: nothing joins them
    for b in order:
        own = keys[by_id[np.searchsorted(sorted_ids, b, "left") : np.searchsorted(sorted_ids, b, "right")]]
        enough = len(own) >= max(config.min_voxels, 1)
        if len(own) > MAX_VOXELS:  # a random sample estimates the overlap well enough
            own = own[rng.choice(len(own), MAX_VOXELS, replace=False)]
        sampled[b] = own
        best, best_rank = None, 0.0
        qualified: list[tuple[float, int]] = []  # (rank, group) of every group ``b`` may join
        if enough:
            point_index, hit_ids = observed.key_hits(own)
            for root, num_points in _hits_per_group(point_index, hit_ids, leader, group_frames, small, b):
                overlap = forward = num_points / len(own)
                if config.symmetric:
                    if root not in reverse_hits:
                        reverse_hits[root] = _group_hits(observed, sampled[root])
                    overlap = max(overlap, _reverse_overlap(reverse_hits[root], len(sampled[root]), b))
                rank = forward if config.rank_forward else overlap
                shared = len(group_frames[root] & frames_of[b])
                allowed = config.max_cooccurrence * min(len(group_frames[root]), len(frames_of[b]))
                if apart is not None and any(apart(b, m) for m in members[root]):
                    continue
                if overlap >= config.min_overlap and shared <= allowed:
                    qualified.append((rank, root))
                    if rank > best_rank or (best is None and overlap > 0):
                        best, best_rank = root, rank
        if best is not None and config.bridge and len(qualified) > 1:
            best = _bridge(best, qualified, config, apart, leader, group_frames, members, merges, sampled, rng)
            for root in list(reverse_hits):
                if root not in members:
                    reverse_hits.pop(root)
        if best is None:
            leader[b] = b
            group_frames[b] = set(frames_of[b])
            members[b] = [b]
            if not enough:
                small.add(b)
            elif config.symmetric:
                reverse_hits[b] = (point_index, hit_ids)  # the new group's sample is ``own``: its hits are these
        else:
            leader[b] = best
            group_frames[best] |= frames_of[b]
            members[best].append(b)
            merges[b] = best
            if config.symmetric:
                joined = np.concatenate([sampled[best], own])
                if len(joined) > MAX_VOXELS:
                    joined = joined[rng.choice(len(joined), MAX_VOXELS, replace=False)]
                sampled[best] = joined
                reverse_hits.pop(best, None)
    return merges


def _bridge(
    best: int,
    qualified: list[tuple[float, int]],
    config: ConsolidationConfig,
    apart: Optional[Callable[[int, int], bool]],
    leader: dict[int, int],
    group_frames: dict[int, set[int]],
    members: dict[int, list[int]],
    merges: dict[int, int],
    sampled: dict[int, np.ndarray],
    rng: np.random.Generator,
) -> int:
    """Join the groups an id qualifies for (``qualified``: (rank, group); ``best``: the one ranked first) into
    one, highest rank first, skipping a group that shares too many frames with the joined ones (or one ``apart`` from
    them); returns the joined group's leader, the oldest id among them, which the id then joins."""
    joined = best
    for _, root in sorted(qualified, key=lambda q: (-q[0], q[1])):
        if root == joined or root not in members:
            continue
        shared = len(group_frames[joined] & group_frames[root])
        allowed = config.max_cooccurrence * min(len(group_frames[joined]), len(group_frames[root]))
        if shared > allowed:
            continue
        if apart is not None and any(apart(x, y) for x in members[joined] for y in members[root]):
            continue
        keep, gone = min(joined, root), max(joined, root)
        for m in members[gone]:
            leader[m] = keep
            merges[m] = keep
        for m in members[keep]:
            if m != keep:
                merges[m] = keep
        members[keep].extend(members.pop(gone))
        group_frames[keep] |= group_frames.pop(gone)
        both = np.concatenate([sampled[keep], sampled[gone]])
        if len(both) > MAX_VOXELS:
            both = both[rng.choice(len(both), MAX_VOXELS, replace=False)]
        sampled[keep] = both
        joined = keep
    return joined


def _hits_per_group(
    point_index: np.ndarray,
    hit_ids: np.ndarray,
    leader: dict[int, int],
    groups: dict[int, set[int]],
    small: set[int],
    b: int,
) -> list[tuple[int, int]]:
    """(group, voxels of ``b`` it holds) for every group other than ``b``'s own and the ``small`` ones whose ids the
    voxels ``point_index`` [H] fall into (or next to) (``hit_ids`` [H]), in the order the groups first appear."""
    if len(hit_ids) == 0:
        return []
    unique_ids, inverse = np.unique(hit_ids, return_inverse=True)
    roots = np.array([leader.get(i, i) for i in unique_ids.tolist()], dtype=np.int64)
    valid = np.array([r != b and r in groups and r not in small for r in roots.tolist()], dtype=bool)
    keep = valid[inverse]
    if not keep.any():
        return []
    root, point = roots[inverse[keep]], point_index[keep].astype(np.int64)
    span = int(point.max()) + 1
    pair_root = np.unique(root * span + point) // span
    counted, counts = np.unique(pair_root, return_counts=True)
    per_root = dict(zip(counted.tolist(), counts.tolist()))
    found, first = np.unique(root, return_index=True)
    return [(r, per_root[r]) for r in found[np.argsort(first, kind="stable")].tolist()]


def _group_hits(observed: VoxelMemory, group_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``observed.point_hits`` of a group's (sampled) voxels: (voxel index, id) pairs."""
    if len(group_keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    return observed.key_hits(group_keys)


def _reverse_overlap(group_hits: tuple[np.ndarray, np.ndarray], group_size: int, b: int) -> float:
    """Fraction of a group's ``group_size`` (sampled) voxels that lie in or next to id ``b``'s voxels."""
    if group_size == 0:
        return 0.0
    _, hit_ids = group_hits  # distinct (voxel, id) pairs: each voxel names ``b`` at most once
    return int(np.count_nonzero(hit_ids == b)) / group_size
