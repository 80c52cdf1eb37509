"""3D re-identification memory: which voxels of the scene each id has covered.

Every id keeps the set of voxels its 3D points fell into, over all frames seen so far. A new
region whose 3D points fall mostly into one id's voxels is that object seen again (after it
left the view or was occluded), so it takes that id instead of a new one. Voxel look-ups
accept the neighbouring voxels too (``neighborhood``), which absorbs depth noise and the
voxel grid's quantisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Optional

import numpy as np

from mastsam_splat.errors import check_fraction, check_option

_BITS = 21
_OFFSET = 1 << (_BITS - 1)
_LIMIT = _OFFSET - 2


def voxel_coords(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Integer voxel coordinates [N, 3] of points [N, 3]."""
    coords = np.floor(np.asarray(points, dtype=np.float64) / voxel_size)
    return np.clip(coords, -_LIMIT, _LIMIT).astype(np.int64)


def voxel_keys(coords: np.ndarray) -> np.ndarray:
    """One int64 key [N] per voxel coordinate [N, 3]."""
    c = coords + _OFFSET
    return (c[:, 0] << (2 * _BITS)) | (c[:, 1] << _BITS) | c[:, 2]


_NEIGHBOUR_CACHE: dict[int, np.ndarray] = {}
_SMALL_ID = np.iinfo(np.int32).max
_MIN_QUEUE = 1 << 16
_COUNT_TABLE = 1 << 22
"""Largest code counted with a table (``np.bincount``) rather than by sorting."""
_TABLE_PER_PAIR = 32
"""``unique_pairs`` marks the codes present in a table rather than sorting them while the table has at most this many
entries per pair (one byte each, cleared and scanned once)."""


def occupied_keys(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Sorted distinct keys of the voxels the finite points of ``points`` [N, 3] fall in."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return np.unique(voxel_keys(voxel_coords(points[np.isfinite(points).all(axis=1)], voxel_size)))


def _id_dtype(max_id: int) -> type:
    """Storage type of ids up to ``max_id``: int32 (half the bytes of int64) unless they do not fit."""
    return np.int32 if 0 <= max_id <= _SMALL_ID else np.int64


def _offsets(radius: int) -> np.ndarray:
    if radius not in _NEIGHBOUR_CACHE:
        r = np.arange(-radius, radius + 1)
        _NEIGHBOUR_CACHE[radius] = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return _NEIGHBOUR_CACHE[radius]


def _column_shifts(radius: int) -> np.ndarray:
    """Key offsets [(2 * radius + 1) ** 2] of the neighbouring voxels at ``dz = 0`` (``radius <= 1``, as in
    ``neighbour_keys``), in ``neighbour_keys``' order."""
    offsets = _offsets(radius)[radius :: 2 * radius + 1]
    return (offsets[:, 0] << (2 * _BITS)) + (offsets[:, 1] << _BITS) + offsets[:, 2]


def neighbour_keys(keys: np.ndarray, radius: int) -> np.ndarray:
    """[N, (2 * radius + 1) ** 3] keys of the voxels within ``radius`` of each voxel key ``keys`` [N].

    Same keys as ``voxel_keys`` of the neighbouring coordinates. A clipped coordinate field lies in
    ``[2, 2 ** _BITS - 2]``, so for ``radius <= 1`` every neighbour's field stays within its bits and a key
    offset is one addition; larger radii decode the coordinates.
    """
    offsets = _offsets(radius)
    if radius <= 1:
        shift = (offsets[:, 0] << (2 * _BITS)) + (offsets[:, 1] << _BITS) + offsets[:, 2]
        return keys[:, None] + shift[None, :]
    mask = (1 << _BITS) - 1
    coords = np.stack([(keys >> (2 * _BITS)) & mask, (keys >> _BITS) & mask, keys & mask], axis=1) - _OFFSET
    return voxel_keys((coords[:, None, :] + offsets[None, :, :]).reshape(-1, 3)).reshape(len(keys), -1)


CheckSplit = Literal["sparse", "always", "never"]


@dataclass
class MemoryConfig:
    """The 3D re-identification memory: how it is built and when it recognises an earlier id."""

    enabled: bool = True
    """3D re-identification memory: a new region lying on an earlier id's 3D voxels takes that id."""
    voxel_fraction: float = 0.01
    """Memory voxel size as a fraction of the first frame's median viewing distance."""
    exclusive: bool = True
    """A voxel belongs to the first id that covers it; later labels of other ids do not claim it."""
    weighted: bool = False
    """A voxel belongs to the id seen there in most frames so far (ties: the id seen there first), updated as frames
    come, instead of the first id that covers it (``exclusive`` then has no effect): one frame's mislabelling of a
    surface earlier frames saw under another id does not take it over."""
    neighborhood: int = 1
    """Voxels around a point that also count as hits (1: the 3x3x3 block)."""
    reid_min_fraction: float = 0.5
    """A new region takes an earlier id when at least this fraction of its 3D points fall in that id's voxels."""
    reid_min_points: int = 8
    """Regions with fewer 3D points are not re-identified."""
    reid_min_coverage: float = 0.3
    """Regions where 3D points cover less than this fraction of the pixels (relative to the frame's sampling
    density) are not re-identified: their few points do not represent them (e.g. sky with a sliver of ground)."""
    reid_extend_present: bool = True
    """A new region recognised as an id already present in the frame is added to it (the object grew into view)."""
    check: bool = True
    """Check every automatic segment against the memory: one whose 3D points lie mostly in another id's voxels,
    far more than in its own id's, is given back to that other id (undoes absorption by a neighbour)."""
    check_ratio: float = 2.0
    """The other id's share of the segment's 3D points must be at least this many times its own id's share."""
    check_split: CheckSplit = "sparse"
    """Which pixels of a segment the check moves. ``always``: only those nearest to its 3D points that lie in the
    other id's voxels (their Voronoi cells in the segment), so a segment the segmenter merged across two ids'
    surfaces (a mat and the table it lies on) is split where its points say; ``never``: the whole segment;
    ``sparse``: split where the frame's 3D points are sparse (not depth maps, fewer than ``split_max_density`` per
    pixel: the SfM points of a real capture), there the points of a merged segment's more textured surface outvote
    the other's; whole elsewhere (denser points than that made the synthetic orbit's part-level consistency worse)."""
    split_max_density: float = 0.01
    """``check_split`` ``sparse`` splits in frames with fewer 3D points per pixel than this (one per 10 x 10 pixels)."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.voxel_fraction > 0, "tracker.memory.voxel-fraction", "> 0", self.voxel_fraction)
        check_option(self.neighborhood >= 0, "tracker.memory.neighborhood", ">= 0", self.neighborhood)
        check_fraction(self.reid_min_fraction, "tracker.memory.reid-min-fraction")
        check_option(self.reid_min_points >= 1, "tracker.memory.reid-min-points", ">= 1", self.reid_min_points)
        check_fraction(self.reid_min_coverage, "tracker.memory.reid-min-coverage")
        check_option(self.check_ratio > 0, "tracker.memory.check-ratio", "> 0", self.check_ratio)
        check_option(self.split_max_density > 0, "tracker.memory.split-max-density", "> 0", self.split_max_density)


@dataclass
class Identification:
    """Best memory match of a region's 3D points."""

    obj_id: int
    fraction: float
    """Fraction of the region's points that fall into the id's voxels."""


def labelled_voxels(ids: np.ndarray, points: np.ndarray, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel keys and ids of the labelled, finite points (``ids`` [N], 0 = unlabelled; ``points`` [N, 3])."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    keep = (ids > 0) & np.isfinite(points).all(axis=1)
    return voxel_keys(voxel_coords(points[keep], voxel_size)), ids[keep]


class VoxelMemory:
    """Per-id voxel sets of the 3D points the id has covered.

    With ``exclusive``, labelled points only claim voxels no id holds yet (``add_labelled``).
    """

    def __init__(self, voxel_size: float, neighborhood: int = 1, exclusive: bool = False) -> None:
        if not voxel_size > 0:
            raise ValueError(f"voxel size must be positive, got {voxel_size}")
        self.voxel_size = float(voxel_size)
        self.neighborhood = int(neighborhood)
        self.exclusive = bool(exclusive)
        self._pending_keys: list[np.ndarray] = []
        self._pending_ids: list[np.ndarray] = []
        self._pending_count = 0
        self._keys = np.zeros(0, dtype=np.int64)
        self._ids = np.zeros(0, dtype=np.int32)

    def add(self, obj_id: int, points: np.ndarray) -> None:
        """Record that ``obj_id`` covered ``points`` [N, 3]."""
        keys = occupied_keys(points, self.voxel_size)
        if len(keys) == 0:
            return
        self._queue(keys, np.full(len(keys), int(obj_id), dtype=np.int64))

    def add_labelled(self, ids: np.ndarray, points: np.ndarray) -> None:
        """Record labelled points at once: ``ids`` [N] (0 is skipped), ``points`` [N, 3]."""
        self.add_voxels(*unique_pairs(*labelled_voxels(ids, points, self.voxel_size)))

    def add_voxels(self, keys: np.ndarray, kept_ids: np.ndarray) -> None:
        """Record distinct ``(voxel key, id)`` pairs sorted by key then id, as ``unique_pairs`` of ``labelled_voxels``
        at this memory's voxel size returns them (``add_labelled`` without computing them; the arrays are kept)."""
        if len(keys) == 0:
            return
        if self.exclusive:
            # A voxel stays with the id that covered it first: a later mislabelling (an object absorbed by a
            # neighbour) does not teach the memory the error.
            self._flush()
            fresh = ~sorted_contains(self._keys, keys)
            keys, kept_ids = keys[fresh], kept_ids[fresh]
        self._queue(keys, kept_ids)

    def _queue(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Hold distinct, sorted pairs until the next read; merge them once they outnumber the stored pairs.

        Merging once the queue holds as many pairs as the store keeps the queue's memory at most the
        store's while each pair is still merged a bounded number of times on average.
        """
        self._pending_keys.append(keys)
        self._pending_ids.append(ids)
        self._pending_count += len(keys)
        if self._pending_count >= max(len(self._keys), _MIN_QUEUE):
            self._flush()

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every remembered ``(voxel key, id)`` pair, as two [K] int64 arrays sorted by key."""
        self._flush()
        return self._keys.copy(), self._ids.astype(np.int64)

    def merge(self, src: int, dst: int) -> None:
        """Give ``src``'s voxels to ``dst`` (``src`` was a duplicate of ``dst``)."""
        self._flush()
        renamed = self._ids == src
        if renamed.any():
            self._rename(renamed, dst)

    def transfer(self, points: np.ndarray, src: int, dst: int) -> None:
        """Give ``src``'s voxels that hold ``points`` [N, 3] to ``dst`` (``dst`` was split off ``src``)."""
        self._flush()
        keys = occupied_keys(points, self.voxel_size)
        if len(keys) == 0 or len(self._keys) == 0:
            return
        moved = (self._ids == src) & sorted_contains(keys, self._keys)
        if moved.any():
            self._rename(moved, dst)

    @property
    def ids(self) -> list[int]:
        """Ids with at least one voxel."""
        self._flush()
        return np.unique(self._ids).tolist()

    def num_voxels(self, obj_id: int) -> int:
        self._flush()
        return int(np.count_nonzero(self._ids == obj_id))

    def point_hits(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which remembered ids each point of ``points`` [N, 3] falls into (or next to).

        Returns distinct ``(point index, id)`` pairs as two [K] int64 arrays; non-finite points hit nothing.
        """
        self._flush()
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        finite = np.isfinite(points).all(axis=1)
        empty = np.zeros(0, dtype=np.int64)
        if len(self._keys) == 0 or not finite.any():
            return empty, empty
        if finite.all():
            finite = np.arange(len(points))
        else:
            finite = np.flatnonzero(finite)
            points = points[finite]
        # Points in one voxel hit the same ids: look up each occupied voxel's neighbourhood once.
        voxel, voxel_of_point = np.unique(voxel_keys(voxel_coords(points, self.voxel_size)), return_inverse=True)
        return self._voxel_hits(voxel, voxel_of_point, finite)

    def key_hits(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``point_hits`` of the centres of the voxels ``keys`` [N] (``voxel_keys``), without computing them: distinct
        ``(index into keys, id)`` pairs as two [K] int64 arrays."""
        self._flush()
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if len(self._keys) == 0 or len(keys) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        voxel, voxel_of_key = np.unique(keys, return_inverse=True)
        return self._voxel_hits(voxel, voxel_of_key, np.arange(len(keys)))

    def _voxel_hits(
        self, voxel: np.ndarray, voxel_of_point: np.ndarray, point_index: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct ``(point, id)`` pairs of points in the distinct, sorted voxel keys ``voxel`` [V]: point ``i`` lies
        in ``voxel[voxel_of_point[i]]`` and is reported as ``point_index[i]``."""
        starts, lengths, voxel_of_query = self._neighbour_rows(voxel)
        total = int(lengths.sum())
        if total == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        owners = np.repeat(voxel_of_query, lengths)
        ends = np.cumsum(lengths)
        index = np.repeat(starts - (ends - lengths), lengths)
        index += np.arange(total)
        hit_voxel, hit_ids = unique_pairs(owners, self._ids.take(index), runs=True)  # sorted by voxel, then id
        # Back to points, in point order: every point takes its voxel's ids.
        per_voxel = np.bincount(hit_voxel, minlength=len(voxel))
        voxel_start = np.cumsum(per_voxel) - per_voxel
        per_point = per_voxel[voxel_of_point]
        point_ends = np.cumsum(per_point)
        index = np.repeat(voxel_start[voxel_of_point] - (point_ends - per_point), per_point)
        index += np.arange(int(point_ends[-1]) if len(point_ends) else 0)
        return np.repeat(point_index, per_point), hit_ids[index]

    def _neighbour_rows(self, voxel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored rows in the neighbourhood of each of the voxel keys ``voxel`` [V], as runs: first row [R], row
        count [R] (0: none) and the voxel [R] of each run.

        With ``neighborhood <= 1`` a neighbourhood is ``(2r + 1) ** 2`` columns of ``2r + 1`` voxels consecutive in
        z, and the keys of such a column are consecutive integers (the z field is the lowest and does not wrap,
        see ``neighbour_keys``): one range search per column finds the rows of all its voxels, a third of the
        searches of looking up every neighbour."""
        r = self.neighborhood
        if r > 1:
            query = neighbour_keys(voxel, r)  # [V, O]
            voxel_of_query = np.repeat(np.arange(len(voxel)), query.shape[1])
            query = query.reshape(-1)
            lo = np.searchsorted(self._keys, query, side="left")
            return lo, np.searchsorted(self._keys, query, side="right") - lo, voxel_of_query
        columns = (voxel[:, None] + _column_shifts(r)[None, :]).reshape(-1)  # [V * (2r + 1) ** 2] centres (dz = 0)
        voxel_of_query = np.repeat(np.arange(len(voxel)), (2 * r + 1) ** 2)
        lo = np.searchsorted(self._keys, columns - r, side="left")
        return lo, np.searchsorted(self._keys, columns + r, side="right") - lo, voxel_of_query

    def fractions(self, points: np.ndarray) -> dict[int, float]:
        """For each remembered id, the fraction of ``points`` [N, 3] that fall into (or next to) its voxels."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        _, owner_ids = self.point_hits(points)
        if len(owner_ids) == 0:
            return {}
        ids, per_id = np.unique(owner_ids, return_counts=True)
        return {int(i): float(c) / len(points) for i, c in zip(ids, per_id)}

    def identify(
        self, points: np.ndarray, min_fraction: float, min_points: int, exclude: Iterable[int] = ()
    ) -> Optional[Identification]:
        """The id whose voxels hold the largest share (at least ``min_fraction``) of ``points``.

        ``None`` when there are fewer than ``min_points`` points or no id reaches the share.
        Ids in ``exclude`` are not candidates. Ties go to the older (smaller) id.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if len(points) < max(min_points, 1):
            return None
        return _best_identification(self.fractions(points), min_fraction, set(int(i) for i in exclude))

    def identify_groups(
        self,
        keys: np.ndarray,
        group: np.ndarray,
        sizes: list[int],
        min_fraction: float,
        min_points: int,
        exclude: Iterable[int] = (),
    ) -> list[Optional[Identification]]:
        """``identify`` of several groups of points with one memory look-up: ``keys`` [N] the voxel keys of the groups'
        finite points, ``group`` [N] the group (``0..G-1``) of each, ``sizes`` [G] each group's number of points,
        non-finite ones included (``identify`` counts them, and they hit nothing)."""
        point_index, hit_ids = self.key_hits(keys) if len(keys) else (np.zeros(0, dtype=np.int64),) * 2
        hit_group = np.asarray(group).take(point_index)
        excluded = set(int(i) for i in exclude)
        out: list[Optional[Identification]] = []
        for g, size in enumerate(sizes):
            if size < max(min_points, 1):
                out.append(None)
                continue
            ids, per_id = np.unique(hit_ids[hit_group == g], return_counts=True)
            fractions = {int(i): float(c) / size for i, c in zip(ids, per_id)}
            out.append(_best_identification(fractions, min_fraction, excluded))
        return out

    def _flush(self) -> None:
        """Merge the pending pairs into the sorted, distinct ``(key, id)`` pairs."""
        if not self._pending_keys:
            return
        if len(self._pending_keys) == 1:  # one batch is already distinct and sorted (``add``, ``add_labelled``)
            keys, ids = self._pending_keys[0], self._pending_ids[0]
        else:
            keys, ids = unique_pairs(np.concatenate(self._pending_keys), np.concatenate(self._pending_ids), runs=True)
        self._pending_keys.clear()
        self._pending_ids.clear()
        self._pending_count = 0
        if len(ids):
            dtype = np.promote_types(self._ids.dtype, _id_dtype(max(int(ids.max()), -int(ids.min()))))
            self._ids, ids = self._ids.astype(dtype, copy=False), ids.astype(dtype, copy=False)
        self._keys, self._ids = merge_pairs(self._keys, self._ids, keys, ids)

    def _rename(self, where: np.ndarray, obj_id: int) -> None:
        """Give the pairs in ``where`` (one id's: distinct keys) the id ``obj_id``: they leave the store and are merged
        back under the new id (``merge_pairs``, which drops the pairs the store already holds), a pass over the
        store rather than a sort of it."""
        dtype = np.promote_types(self._ids.dtype, _id_dtype(abs(int(obj_id))))
        keys = self._keys[where]
        rest = ~where
        self._keys, self._ids = self._keys[rest], self._ids[rest].astype(dtype, copy=False)
        self._keys, self._ids = merge_pairs(self._keys, self._ids, keys, np.full(len(keys), obj_id, dtype=dtype))


class WeightedVoxelMemory(VoxelMemory):
    """A ``VoxelMemory`` whose voxels belong to the id seen there most often.

    Every ``(voxel, id)`` pair keeps how many frames (``add_voxels`` calls) saw the id there and in which call it was
    first seen. The pairs the look-ups read (``pairs``, ``point_hits``, ``key_hits``, ``identify``) are each voxel's
    owner only: the id with the largest count, ties going to the id seen there first (then the smaller id), so an
    owner keeps its voxel until another id has been seen there more often.
    """

    def __init__(self, voxel_size: float, neighborhood: int = 1) -> None:
        super().__init__(voxel_size, neighborhood=neighborhood, exclusive=False)
        self._row_keys = np.zeros(0, dtype=np.int64)
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._row_counts = np.zeros(0, dtype=np.int64)
        self._row_first = np.zeros(0, dtype=np.int64)
        self._calls = 0
        self._stale = False

    def add(self, obj_id: int, points: np.ndarray) -> None:
        """Count one sighting of ``obj_id`` in the voxels of ``points`` [N, 3]."""
        keys = occupied_keys(points, self.voxel_size)
        self.add_voxels(keys, np.full(len(keys), int(obj_id), dtype=np.int64))

    def add_voxels(self, keys: np.ndarray, kept_ids: np.ndarray) -> None:
        """Count one sighting of each distinct ``(voxel key, id)`` pair (sorted by key then id, as ``unique_pairs``
        returns them)."""
        if len(keys) == 0:
            return
        keys = np.asarray(keys, dtype=np.int64)
        self._add_rows(
            keys, np.asarray(kept_ids, dtype=np.int64), np.ones(len(keys), dtype=np.int64),
            np.full(len(keys), self._calls, dtype=np.int64),
        )
        self._calls += 1

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ``(voxel key, id, frames seen)`` row, sorted by key then id."""
        return self._row_keys.copy(), self._row_ids.copy(), self._row_counts.copy()

    def merge(self, src: int, dst: int) -> None:
        """Give ``src``'s sightings to ``dst`` (``src`` was a duplicate of ``dst``)."""
        self._move(self._row_ids == src, dst)

    def transfer(self, points: np.ndarray, src: int, dst: int) -> None:
        """Give ``src``'s sightings in the voxels of ``points`` [N, 3] to ``dst`` (``dst`` was split off ``src``)."""
        keys = occupied_keys(points, self.voxel_size)
        if len(keys) == 0 or len(self._row_keys) == 0:
            return
        self._move((self._row_ids == src) & sorted_contains(keys, self._row_keys), dst)

    def _move(self, where: np.ndarray, obj_id: int) -> None:
        """Rename the rows ``where`` (one id's: distinct keys) to ``obj_id``, adding their counts to the rows
        ``obj_id`` already holds in the same voxels."""
        if not where.any():
            return
        keys, counts, first = self._row_keys[where], self._row_counts[where], self._row_first[where]
        rest = ~where
        self._row_keys, self._row_ids = self._row_keys[rest], self._row_ids[rest]
        self._row_counts, self._row_first = self._row_counts[rest], self._row_first[rest]
        self._add_rows(keys, np.full(len(keys), int(obj_id), dtype=np.int64), counts, first)

    def _add_rows(self, keys: np.ndarray, ids: np.ndarray, counts: np.ndarray, first: np.ndarray) -> None:
        """Add distinct ``(key, id)`` rows sorted by key then id: counts add up where the pair is held, the first
        sighting is the earlier one."""
        position, held = pair_positions(self._row_keys, self._row_ids, keys, ids)
        at = position[held]
        self._row_counts[at] += counts[held]
        self._row_first[at] = np.minimum(self._row_first[at], first[held])
        new = ~held
        self._row_keys = np.insert(self._row_keys, position[new], keys[new])
        self._row_ids = np.insert(self._row_ids, position[new], ids[new])
        self._row_counts = np.insert(self._row_counts, position[new], counts[new])
        self._row_first = np.insert(self._row_first, position[new], first[new])
        self._stale = True

    def _flush(self) -> None:
        """Bring the owner pairs the look-ups read up to date with the counted rows."""
        if not self._stale:
            return
        self._stale = False
        if len(self._row_keys) == 0:
            self._keys, self._ids = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
            return
        # Within each voxel (rows are sorted by key): largest count, then earliest sighting, then smallest id first.
        order = np.lexsort((self._row_ids, self._row_first, -self._row_counts, self._row_keys))
        keys = self._row_keys[order]
        best = order[np.r_[True, keys[1:] != keys[:-1]]]
        self._keys = self._row_keys[best]
        self._ids = self._row_ids[best].astype(_id_dtype(max(int(self._row_ids.max()), -int(self._row_ids.min()))))


def _best_identification(fractions: dict[int, float], min_fraction: float, excluded: set[int]) -> Optional[Identification]:
    """The id of ``fractions`` (id -> share) with the largest share of at least ``min_fraction``, not in ``excluded``
    (ties: the smaller id); ``None`` when none qualifies."""
    best: Optional[Identification] = None
    for obj_id, fraction in sorted(fractions.items()):
        if obj_id in excluded or fraction < min_fraction:
            continue
        if best is None or fraction > best.fraction:
            best = Identification(obj_id, fraction)
    return best


def sorted_contains(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[N] bool: which of ``values`` occur in ``sorted_values`` (ascending)."""
    if len(sorted_values) == 0:
        return np.zeros(len(values), dtype=bool)
    index = np.minimum(np.searchsorted(sorted_values, values), len(sorted_values) - 1)
    return sorted_values[index] == values


def merge_pairs(
    keys_a: np.ndarray, ids_a: np.ndarray, keys_b: np.ndarray, ids_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Union of two sets of distinct ``(key, id)`` pairs, each sorted by key then id; the result is sorted too.

    A pair of ``b`` goes before ``a``'s pairs of a greater key; within ``a``'s run of its key (a few ids per
    voxel) it goes after the smaller ids, and is dropped when ``a`` holds it. Only ``b``'s pairs are searched,
    so the union costs one pass over ``a`` (the insertion) instead of re-sorting every pair.
    """
    if len(keys_a) == 0 or len(keys_b) == 0:
        return (keys_b, ids_b) if len(keys_a) == 0 else (keys_a, ids_a)
    position, held = pair_positions(keys_a, ids_a, keys_b, ids_b)
    new = ~held
    return np.insert(keys_a, position[new], keys_b[new]), np.insert(ids_a, position[new], ids_b[new])


def pair_positions(
    keys_a: np.ndarray, ids_a: np.ndarray, keys_b: np.ndarray, ids_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``b``'s ``(key, id)`` pairs goes among ``a``'s distinct pairs sorted by key then id (the first
    row of ``a`` not before it, as ``np.searchsorted`` in (key, id) order), and whether ``a`` holds it (its row is
    then that position).

    Only ``b``'s pairs are searched, by key; within ``a``'s run of a key (a few ids per voxel) the ids are counted
    one step per row of the longest run, so ``a`` is never scanned or encoded as a whole.
    """
    lo = np.searchsorted(keys_a, keys_b, side="left")
    hi = np.searchsorted(keys_a, keys_b, side="right")
    position = lo.copy()
    held = np.zeros(len(keys_b), dtype=bool)
    shared = np.flatnonzero(hi > lo)  # b's pairs whose key a holds: place them among that key's ids
    for step in range(int((hi - lo).max(initial=0))):
        shared = shared[lo[shared] + step < hi[shared]]
        other = ids_a[lo[shared] + step]
        position[shared] += other < ids_b[shared]
        held[shared] |= other == ids_b[shared]
    return position, held


def unique_pairs(first: np.ndarray, second: np.ndarray, runs: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distinct ``(first[i], second[i])`` pairs, sorted by ``first`` then ``second`` (two [K] int64 arrays).

    ``runs``: the pairs come as a few runs sorted (or nearly) by ``first``; a stable sort, which merges
    runs, then orders them several times faster than a quicksort (same result).
    """
    if len(first) == 0:
        return first.astype(np.int64), second.astype(np.int64)
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    if first.min() >= 0 and second.min() >= 0:
        scale = int(second.max()) + 1
        top = int(first.max())
        if (top + 1) * scale <= _TABLE_PER_PAIR * len(first):
            # codes few next to the pairs: a table of the ones present (ascending) instead of a sort
            present = np.zeros((top + 1) * scale, dtype=bool)
            present[first * scale + second] = True
            codes = np.flatnonzero(present)
            return codes // scale, codes % scale
        if top < (1 << 62) // scale:  # both fit one int64 code: a single sort
            codes = np.sort(first * scale + second, kind="stable" if runs else None)
            distinct = np.empty(len(codes), dtype=bool)
            distinct[0] = True
            np.not_equal(codes[1:], codes[:-1], out=distinct[1:])
            codes = codes[distinct]
            return codes // scale, codes % scale
    order = np.lexsort((second, first))
    a, b = first[order], second[order]
    keep = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return np.ascontiguousarray(a[keep], dtype=np.int64), np.ascontiguousarray(b[keep], dtype=np.int64)


def check_targets(
    hit_segments: np.ndarray,
    hit_ids: np.ndarray,
    points_per_segment: np.ndarray,
    holder: np.ndarray,
    candidates: np.ndarray,
    min_fraction: float,
    ratio: float,
) -> np.ndarray:
    """[S + 1] the id each segment goes to in the memory check (0: it stays with its ``holder`` [S + 1]).

    ``(hit_segments, hit_ids)`` [K] are the distinct (segment, remembered id) hits of the sampled points, of which
    each segment has ``points_per_segment`` [S + 1]. A segment among ``candidates`` goes to the id, other than its
    holder, that holds at least ``min_fraction`` of its points and ``ratio`` times the holder's share: the largest
    share (ties: the larger id). One sort of the hits instead of a loop over the segments.
    """
    lut = np.zeros(len(holder), dtype=np.int64)
    if len(hit_ids) == 0:
        return lut
    base = int(hit_ids.max()) + 1
    codes = hit_segments * base + hit_ids
    if int(hit_ids.min()) >= 0 and int(hit_segments.min()) >= 0 and int(codes.max()) < _COUNT_TABLE:
        # few segments times few ids: a count table instead of sorting (same distinct codes, ascending)
        table = np.bincount(codes)
        keys = np.flatnonzero(table)
        counts = table.take(keys)
    else:
        keys, counts = np.unique(codes, return_counts=True)
    segments, ids = np.divmod(keys, base)
    share = counts / points_per_segment[segments]
    own = ids == holder[segments]
    own_share = np.zeros(len(holder))
    own_share[segments[own]] = share[own]
    candidate = np.zeros(len(holder), dtype=bool)
    candidate[candidates] = True
    other = ~own & candidate[segments] & (share >= min_fraction) & (share >= ratio * own_share[segments])
    segments, ids, share = segments[other], ids[other], share[other]
    if len(ids) == 0:
        return lut
    order = np.lexsort((ids, share, segments))  # each segment's best hit last
    last = order[np.r_[segments[order][1:] != segments[order][:-1], True]]
    lut[segments[last]] = ids[last]
    return lut


def auto_voxel_size(points: np.ndarray, fraction: float, viewpoint: Optional[np.ndarray] = None) -> Optional[float]:
    """A voxel size of ``fraction`` of the median distance from ``viewpoint`` (default: the origin) to ``points`` [N, 3].

    The viewing distance sets the scale of what a frame resolves, unlike the scene's extent,
    which a distant background inflates.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 10:
        return None
    origin = np.zeros(3) if viewpoint is None else np.asarray(viewpoint, dtype=np.float64).reshape(3)
    distance = float(np.median(np.linalg.norm(points - origin, axis=1)))
    return distance * fraction if distance > 0 else None


def nearest_point_cells(
    segments: np.ndarray, chosen: np.ndarray, xy: np.ndarray, point_segment: np.ndarray, vote: np.ndarray
) -> np.ndarray:
    """[H, W] bool: the pixels of the segments ``chosen`` ([S + 1] bool over ``segments`` [H, W]) whose nearest point
    of the same segment (points at pixel positions ``xy`` [N, 2], in segments ``point_segment`` [N]) has ``vote``
    [N]: the segment's part its voting points stand for (its points' Voronoi cells).

    Each segment's cells come from one distance transform of its bounding box seeded at its points' pixels
    (OpenCV's 5x5 mask: distances within 2 % of Euclidean, so pixels nearly halfway between two points may go
    either way), linear in the box's pixels; points sharing a pixel vote there if any of them votes.
    """
    import cv2
    from scipy.ndimage import find_objects

    out = np.zeros(segments.shape, dtype=bool)
    wanted = np.flatnonzero(chosen)
    wanted = wanted[wanted > 0]
    if len(wanted) == 0:
        return out
    height, width = segments.shape
    cols = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, height - 1)
    boxes = find_objects(segments, max_label=int(wanted.max()))
    for seg in wanted.tolist():
        box = boxes[seg - 1]
        mine = np.flatnonzero(point_segment == seg)
        if box is None or not vote[mine].any():
            continue
        inside = segments[box] == seg
        if vote[mine].all():
            out[box] |= inside
            continue
        r, c = rows[mine] - box[0].start, cols[mine] - box[1].start
        ok = (r >= 0) & (r < inside.shape[0]) & (c >= 0) & (c < inside.shape[1])
        r, c, votes = r[ok], c[ok], vote[mine][ok]
        if not votes.any():
            continue
        seeds = np.ones(inside.shape, dtype=np.uint8)
        seeds[r, c] = 0
        _, nearest = cv2.distanceTransformWithLabels(
            seeds, cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
        )
        label_votes = np.zeros(int(nearest.max()) + 1, dtype=bool)
        np.logical_or.at(label_votes, nearest[r, c], votes)
        out[box] |= inside & label_votes[nearest]
    return out
