"""3D evidence of the tracker's ids: how often each id was seen in each voxel of the scene.

Rows of (voxel, id, count) are kept sorted by voxel key, then id, so a voxel's owner (the id seen
there most often; ties: the older id), its purity (the owner's share of the voxel's observations)
and the renames of a merge or split are runs over sorted arrays, not a dictionary per voxel. The
rows are capped (``max_rows``): past the cap the weakest rows are thinned (``AnchorEvidence.thin``).
The anchor step (``anchor``) votes with this evidence, in each frame and again after the sequence;
the fragment merging, the refinement and the jump checks read it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from mastsam_splat.tracker.consolidate import voxel_centres
from mastsam_splat.tracker.memory import labelled_voxels, occupied_keys, pair_positions, voxel_coords, voxel_keys


_ID_DTYPE = np.int32
_COUNT_DTYPE = np.int32
"""Evidence rows are stored compactly (16 bytes per (voxel, id) row); ``owners`` and ``pairs`` hand out int64."""
MAX_ROWS = 300_000
"""(voxel, id) rows the evidence holds (4.8 MB, and about as much again for what is derived from them) before its
weakest rows are thinned out (``AnchorEvidence.thin``)."""
THIN_TO = 0.75
"""Share of ``max_rows`` left after thinning (the next thinning waits for that many new rows)."""


@dataclass(frozen=True)
class _Runs:
    """The rows of the evidence's voxels (``AnchorEvidence._voxel_runs``)."""

    starts: np.ndarray
    """[V] first row of each voxel."""
    shared: np.ndarray
    """[M] the voxels holding several rows (indices into ``starts``)."""
    rows: np.ndarray
    """[N] the rows of those voxels, ascending."""
    row_starts: np.ndarray
    """[M] where each shared voxel's rows begin in ``rows``."""
    row_lengths: np.ndarray
    """[M] how many rows each shared voxel holds."""


class AnchorEvidence:
    """How often each id was seen in each voxel of the scene."""

    def __init__(self, voxel_size: float, max_rows: int = MAX_ROWS) -> None:
        if not voxel_size > 0:
            raise ValueError(f"voxel size must be positive, got {voxel_size}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.voxel_size = float(voxel_size)
        self.max_rows = int(max_rows)
        self._keys = np.zeros(0, dtype=np.int64)
        self._ids = np.zeros(0, dtype=_ID_DTYPE)
        self._counts = np.zeros(0, dtype=_COUNT_DTYPE)
        self._owners: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
        self._runs: Optional[_Runs] = None
        self._per_id: Optional[np.ndarray] = None
        """``voxels_per_id`` while known (grown with the rows ``add_voxels`` adds)."""

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, ids: np.ndarray, points: np.ndarray) -> None:
        """Record labelled points: ``ids`` [N] (0 skipped), ``points`` [N, 3] world coordinates."""
        self.add_voxels(*labelled_voxels(ids, points, self.voxel_size))

    def add_voxels(self, keys: np.ndarray, ids: np.ndarray) -> None:
        """Record one observation per ``(keys[i], ids[i])`` (``labelled_voxels`` at this voxel size: ``add`` without
        computing them)."""
        if len(keys):
            self.add_pairs(*pair_counts(keys, ids))

    def add_pairs(self, keys: np.ndarray, ids: np.ndarray, counts: np.ndarray) -> None:
        """Record ``counts[i]`` observations of each ``(keys[i], ids[i])`` pair: distinct pairs sorted by key then
        id, as ``pair_counts`` gives them (``add_voxels`` with the pairs already counted)."""
        if len(keys):
            self._merge_rows(self._keys, self._ids, self._counts, keys, ids, counts, added=True, summed=True)
            if len(self._keys) > self.max_rows:
                self.thin(int(THIN_TO * self.max_rows))

    def thin(self, rows: int) -> int:
        """Drop the weakest observations until at most ``rows`` rows are left (as far as that goes): rows of ids seen
        in a voxel less often than its owner, fewest observations first (in key order among equal counts). A voxel's owner and
        its count are kept, so ``owners`` is unchanged; the purities, ``shared_rows`` and ``voxels_per_id`` lose the
        dropped rows. This bounds the evidence of a long run, where ids keep appearing on voxels seen before (each
        adds a row to every voxel it is seen on); returns how many rows were dropped."""
        excess = len(self._keys) - max(int(rows), 0)
        if excess <= 0:
            return 0
        _, _, owner_count = self.owners()
        starts = self._voxel_runs().starts
        below = self._counts < np.repeat(owner_count, np.diff(np.r_[starts, len(self._keys)]))
        candidates = np.flatnonzero(below)
        if len(candidates) == 0:
            return 0
        drop = candidates[np.argsort(self._counts[candidates], kind="stable")[:excess]]
        keep = np.ones(len(self._keys), dtype=bool)
        keep[drop] = False
        self._keys, self._ids, self._counts = self._keys[keep], self._ids[keep], self._counts[keep]
        self._owners = None
        self._runs = None
        self._per_id = None
        return len(drop)

    def relabel(self, lut: np.ndarray) -> None:
        """Apply an id mapping ``lut`` (old id -> new id) to the evidence."""
        if len(self._ids):
            ids = lut[self._ids]
            self._move_rows(ids != self._ids, ids)

    def transfer(self, points: np.ndarray, src: int, dst: int) -> None:
        """Give ``src``'s observations in the voxels of ``points`` [N, 3] to ``dst`` (``dst`` was split off ``src``)."""
        keys = occupied_keys(points, self.voxel_size)
        if len(keys) == 0 or len(self._keys) == 0:
            return
        slot = np.minimum(np.searchsorted(keys, self._keys), len(keys) - 1)
        moved = (self._ids == src) & (keys[slot] == self._keys)
        if moved.any():
            self._move_rows(moved, np.full(len(self._ids), dst))

    def owners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Voxel keys [V], the id seen most often in each (ties: the older id) [V], and that id's count [V]."""
        if self._owners is None:
            if len(self._keys) == 0:
                empty = np.zeros(0, dtype=np.int64)
                self._owners = (empty, empty, empty)
            else:
                runs = self._voxel_runs()
                # a voxel seen by one id: its only row (as intp: the three gathers below need no conversion each)
                first = runs.starts.astype(np.intp)
                if len(runs.rows):
                    # Rows are sorted by key, then id: each shared voxel's owner is its first row holding the voxel's
                    # largest count.
                    counts = self._counts[runs.rows]
                    best = np.repeat(np.maximum.reduceat(counts, runs.row_starts), runs.row_lengths)
                    candidates = np.where(counts == best, np.arange(len(counts)), len(counts))
                    first[runs.shared] = runs.rows[np.minimum.reduceat(candidates, runs.row_starts)]
                self._owners = (self._keys[first], self._ids[first].astype(np.int64), self._counts[first].astype(np.int64))
        return self._owners

    def _voxel_runs(self) -> "_Runs":
        """The rows of every voxel (rows are sorted by key), and those of the voxels several ids were seen in."""
        if self._runs is None:
            num_rows = len(self._keys)
            boundary = np.empty(num_rows, dtype=bool)
            boundary[:1] = True
            np.not_equal(self._keys[1:], self._keys[:-1], out=boundary[1:])
            starts = np.flatnonzero(boundary)
            lengths = np.diff(starts, append=num_rows)
            shared = np.flatnonzero(lengths > 1)
            row_lengths = lengths[shared]
            rows, row_starts = _run_rows(starts[shared], row_lengths)  # the rows of the shared voxels
            # Row and voxel indices as int32 (half the memory of the run arrays, held between frames).
            index = np.int32 if num_rows < np.iinfo(np.int32).max else np.int64
            self._runs = _Runs(*(a.astype(index) for a in (starts, shared, rows, row_starts, row_lengths)))
        return self._runs

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """Voxel centres [V, 3] (``voxel_centres``' values, stored coordinate by coordinate: ``project_points``' product
        then reads three contiguous rows) and their owner ids [V]."""
        keys, owner, _ = self.owners()
        return voxel_centres(keys, self.voxel_size, by_coordinate=True), owner

    def owner_at(self, points: np.ndarray) -> np.ndarray:
        """[N] owner id of the voxel each of ``points`` [N, 3] falls in (0: a voxel without evidence)."""
        _, owners, _ = self.owners()
        return self.value_at(points, owners)

    def value_at(self, points: np.ndarray, values: np.ndarray) -> np.ndarray:
        """[N] the value of ``values`` [V] (one per voxel, in the order of ``points()``) at the voxel each of
        ``points`` [N, 3] falls in (0: a voxel without evidence)."""
        keys, _, _ = self.owners()
        if len(keys) == 0 or len(points) == 0:
            return np.zeros(len(points), dtype=np.asarray(values).dtype)
        point_keys = voxel_keys(voxel_coords(points, self.voxel_size))
        slot = np.minimum(np.searchsorted(keys, point_keys), len(keys) - 1)
        return np.where(keys[slot] == point_keys, values[slot], 0)

    def purity(self) -> np.ndarray:
        """[V] share of each voxel's observations its owner holds (in the order of ``points``)."""
        _, _, count = self.owners()
        if len(count) == 0:
            return np.zeros(0)
        runs = self._voxel_runs()
        total = count.copy()  # a voxel seen by one id: its owner holds every observation
        if len(runs.rows):
            total[runs.shared] = np.add.reduceat(self._counts[runs.rows], runs.row_starts)
        return count / total

    def row_owners(self) -> np.ndarray:
        """[R] the owner of each observation's voxel, in the order of ``pairs`` (``owner_at`` of every row's voxel)."""
        _, owners, _ = self.owners()
        if len(self._keys) == 0:
            return np.zeros(0, dtype=np.int64)
        starts = self._voxel_runs().starts
        return np.repeat(owners, np.diff(np.r_[starts, len(self._keys)]))

    def shared_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Ids [S] and voxel owners [S] of the observations in voxels several ids were seen in (elsewhere the
        owner is the row's own id), in the order of ``pairs``."""
        _, owners, _ = self.owners()
        runs = self._voxel_runs()
        return self._ids[runs.rows].astype(np.int64), np.repeat(owners[runs.shared], runs.row_lengths)

    def voxels_per_id(self) -> np.ndarray:
        """[I] how many voxels each id was seen in (``np.bincount`` of the rows' ids; read-only)."""
        if self._per_id is None:
            self._per_id = np.bincount(self._ids)
            self._per_id.flags.writeable = False
        return self._per_id

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every ``(voxel key, id, count)`` observation, sorted by key then id."""
        return self._keys, self._ids.astype(np.int64), self._counts.astype(np.int64)

    def _move_rows(self, moved: np.ndarray, ids: np.ndarray) -> None:
        """Give the ``moved`` [R] rows the ids ``ids`` [R] (rows that now name one (voxel, id) pair are summed). The
        owners, when known, are counted again at the voxels of the moved rows only (the others kept their rows)."""
        if moved.any():
            owners = self._owners
            kept = ~moved
            touched = self._keys[moved]
            self._merge_rows(self._keys[kept], self._ids[kept], self._counts[kept], touched, ids[moved], self._counts[moved])
            if owners is not None:
                self._owners = _owners_at(owners, touched, self._keys, self._ids, self._counts)

    def _merge_rows(
        self,
        held_keys: np.ndarray,
        held_ids: np.ndarray,
        held_counts: np.ndarray,
        keys: np.ndarray,
        ids: np.ndarray,
        counts: np.ndarray,
        added: bool = False,
        summed: bool = False,
    ) -> None:
        """Store the held rows (sorted by key then id, unique) with the rows ``keys, ids, counts`` (any order,
        repeated; ``summed``: distinct and sorted already) added: the new rows are summed and sorted on their own,
        then merged in by binary search of their keys (``pair_positions``), so the held rows are never sorted again.
        ``added``: the held rows are the evidence's own and only gain observations, so the voxels per id, when known,
        are grown by the new rows rather than counted again. The owners are counted again when next asked for (from
        the voxel runs the evidence merges read every frame anyway)."""
        per_id = self._per_id if added else None
        if not summed:
            order = np.lexsort((ids, keys))
            keys, ids, counts = keys[order], ids[order], counts[order]
            start = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (ids[1:] != ids[:-1])])
            counts = np.add.reduceat(counts.astype(np.int64), start)
            keys, ids = keys[start], ids[start]
        at, found = pair_positions(held_keys, held_ids, keys, ids)
        summed_counts = held_counts.copy()
        summed_counts[at[found]] += counts[found].astype(_COUNT_DTYPE)
        new = ~found
        new_ids = ids[new].astype(_ID_DTYPE)
        self._keys, self._ids, self._counts = _insert_sorted(
            (held_keys, held_ids, summed_counts), at[new], (keys[new], new_ids, counts[new])
        )
        self._owners = None
        self._runs = None
        self._per_id = None
        if per_id is not None:
            grown = np.bincount(new_ids, minlength=len(per_id))
            grown[: len(per_id)] += per_id
            grown.flags.writeable = False
            self._per_id = grown


def _owners_at(
    owners: tuple[np.ndarray, np.ndarray, np.ndarray],
    touched: np.ndarray,
    keys: np.ndarray,
    ids: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``owners`` (as ``AnchorEvidence.owners``, of the same voxels) with the owner of each voxel of ``touched`` [T]
    (sorted keys, repeats allowed) counted again from the rows ``keys, ids, counts`` (sorted by key then id): its first
    row of the largest count."""
    touched = touched[np.r_[True, touched[1:] != touched[:-1]]]
    first_row = np.searchsorted(keys, touched, side="left")
    lengths = np.searchsorted(keys, touched, side="right") - first_row
    rows, starts = _run_rows(first_row, lengths)
    held = counts[rows]
    best = np.repeat(np.maximum.reduceat(held, starts), lengths)
    owner_rows = rows[np.minimum.reduceat(np.where(held == best, np.arange(len(rows)), len(rows)), starts)]
    owner_keys, owner_ids, owner_counts = owners
    at = np.searchsorted(owner_keys, touched)
    owner_ids, owner_counts = owner_ids.copy(), owner_counts.copy()
    owner_ids[at] = ids[owner_rows]
    owner_counts[at] = counts[owner_rows]
    return owner_keys, owner_ids, owner_counts


def _run_rows(firsts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of runs starting at ``firsts`` [R] with ``lengths`` [R], one after another [sum(lengths)], and where
    each run starts among them [R]."""
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(firsts - starts, lengths)
    rows += np.arange(len(rows))
    return rows, starts


def _insert_sorted(
    arrays: tuple[np.ndarray, ...], positions: np.ndarray, values: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """``np.insert(array, positions, value)`` for each of ``arrays`` (one length) and its ``values`` (cast to its
    type), with ``positions`` non-decreasing: where the new and the old elements go is worked out once for all."""
    size = len(arrays[0]) + len(positions)
    placed = positions + np.arange(len(positions))
    old = np.ones(size, dtype=bool)
    old[placed] = False
    out = []
    for array, value in zip(arrays, values):
        merged = np.empty(size, dtype=array.dtype)
        merged[placed] = value
        merged[old] = array
        out.append(merged)
    return tuple(out)


def pair_counts(keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``(keys[i], ids[i])`` pairs [P], sorted by key then id, and how often each occurs [P] (int64;
    ``keys`` [N] int64 voxel keys, ``ids`` [N] non-negative). When the keys' span times the ids' fits int64, the pairs
    are coded in one integer and sorted once; otherwise sorted by key, then id."""
    keys, ids = np.asarray(keys, dtype=np.int64), np.asarray(ids, dtype=np.int64)
    if len(keys) == 0:
        return keys, ids, np.zeros(0, dtype=np.int64)
    low, scale = int(keys.min()), max(int(ids.max()), 0) + 1
    if int(ids.min()) >= 0 and int(keys.max()) - low < (1 << 62) // scale:
        codes = keys - low
        codes *= scale
        codes += ids
        codes.sort()
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        codes = codes[starts]
        pair_keys, pair_ids = np.divmod(codes, scale)
        pair_keys += low
    else:
        order = np.lexsort((ids, keys))
        keys, ids = keys[order], ids[order]
        starts = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (ids[1:] != ids[:-1])])
        pair_keys, pair_ids = keys[starts], ids[starts]
    return pair_keys, pair_ids, np.diff(starts, append=len(keys))
