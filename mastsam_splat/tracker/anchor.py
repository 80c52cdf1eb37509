"""3D-anchored association: every id's 3D evidence votes on which automatic segment carries which id.

The propagation chain carries ids from one frame to the next, so its errors add up over a wide
baseline or a 360° orbit. The 3D evidence does not drift: every id keeps the voxels its 3D
points fell into, with how often it was seen there (``AnchorEvidence``). In a new frame with a
camera, each voxel's owner (the id seen there most often) is projected into the image and kept
where it is visible (the frame's depth map where there is one, otherwise a z-buffer of the
evidence itself) and drawn over the pixels it covers at its depth (``footprint``), which gives
an evidence label image (``project_evidence``): sparse 3D points, such as matches triangulated
with known cameras, then label the surface they sample rather than a few scattered pixels. Its
pixels vote on the frame's automatic segments (``anchor_labels``):

- an id the propagation chain carried whose pixels' votes name another id (``share`` of them)
  is renamed to that id, whatever the chain said: drift is repaired, not passed on;
- a segment held by one id whose votes name another id (``reassign``; the named id may hold
  other segments of the frame) goes to that id: the chain carried a wrong id onto that segment
  only, which renaming the whole id would not repair;
- a segment the chain left (mostly) unlabelled, seen before over most of its area, whose votes
  agree on an id absent from the frame takes that id near its evidence (an id that is present
  is left to the gap filling and the memory: the segment may be a finer cut of it);
- with ``split``, a segment held by one id whose votes are split between a few ids that each hold
  ``split_share`` of them (the segmenter merged what the evidence knows as several ids) is split
  between them, every pixel taking the id of the nearest evidence pixel inside the segment;
- otherwise the chain's labels stay.

Ids whose evidence is mostly voxels owned by an older id are that object seen under a second id
(``evidence_merges``); they are merged in every frame so far.

After the sequence the evidence is complete, and frames visited early are checked again
(``retroactive``, ``reassign_segments`` with the ids of one object pooled): a segment held by one
object whose evidence names another takes that object's id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.ndimage import distance_transform_edt, find_objects

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.consolidate import voxel_centres
from mastsam_splat.tracker.nearest_feature import feature_transform_near, near_boxes
from mastsam_splat.tracker.memory import labelled_voxels, occupied_keys, pair_positions, voxel_coords, voxel_keys
from mastsam_splat.tracker.segment_table import SegmentTable, id_segment_table, segment_count
from mastsam_splat.tracker.projection import project_points
from mastsam_splat.types import Camera


_ID_DTYPE = np.int32
_COUNT_DTYPE = np.int32
"""Evidence rows are stored compactly (16 bytes per (voxel, id) row); ``owners`` and ``pairs`` hand out int64."""
MAX_ROWS = 300_000
"""(voxel, id) rows the evidence holds (4.8 MB, and about as much again for what is derived from them) before its
weakest rows are thinned out (``AnchorEvidence.thin``)."""
THIN_TO = 0.75
"""Share of ``max_rows`` left after thinning (the next thinning waits for that many new rows)."""


@dataclass
class AnchorConfig:
    """The 3D-anchored association of ids with automatic segments."""

    enabled: bool = True
    """Let every id's 3D evidence, projected into frames with a camera, vote on which segment carries which id
    (part of the 3D memory: off when the memory is off)."""
    voxel_fraction: float = 0.01
    """Evidence voxel size as a fraction of the first frame's median viewing distance."""
    depth_tolerance: float = 0.02
    """A projected voxel is visible when its depth is within this fraction (or one voxel) of the surface in front."""
    zbuffer_cell: int = 4
    """Cell size (pixels) of the evidence z-buffer used when the frame has no depth map."""
    footprint: bool = True
    """In frames without a depth map, draw every visible voxel over the pixels it covers at its depth (a disc as
    wide as the voxel, at most ``max_footprint_fraction`` of the image diagonal across) rather than on one pixel:
    sparse 3D points (triangulated matches) then vote on the surface they sample, not on a few scattered pixels.
    Where discs overlap a pixel takes the voxel whose projection is nearest. (Points from a depth map already
    sample every few pixels.)"""
    max_footprint_fraction: float = 0.02
    """Widest footprint of one voxel, as a fraction of the image diagonal."""
    max_rows: int = MAX_ROWS
    """(voxel, id) rows the evidence holds (16 bytes each, and about as much again for what is derived from them)
    before the rows of ids seen less often than a voxel's owner are thinned out (every voxel keeps its owner):
    bounds its memory on long captures."""
    rename: bool = True
    """Rename an id of the propagation chain whose pixels' evidence names another id."""
    assign: bool = True
    """Give segments the chain leaves unlabelled to the id their evidence names."""
    reassign: bool = True
    """In frames without a depth map, give a segment held by one id to the other id its evidence names (present
    elsewhere in the frame or not): the chain carried a wrong id onto that segment only, so renaming the whole id
    would not repair it. With a depth map the chain's correspondences are dense and the segments' ids are left to
    it (there, reassigning coarsened the object level)."""
    reassign_purity: float = 0.9
    """Only voxels whose owner holds at least this share of their observations vote on reassigning a segment
    (voxels the chain has labelled both ways, as on the border of two objects or a thin object lying on another,
    do not decide)."""
    retroactive: bool = True
    """After the sequence, check every frame without a depth map again as ``reassign`` does, against the evidence
    of the whole sequence and with the votes of one object's ids pooled: a segment of a frame visited early,
    labelled before later views showed which object its surface belongs to, takes the id the completed evidence
    names. Its votes decide at ``min_coverage`` of what the frame's evidence density puts on the segment."""
    retroactive_sfm: bool = False
    """Also run the check after the sequence (``retroactive``) when the 3D points are the capture's SfM points. Off:
    every view of a point votes on it there, so the pooled votes spread a merge most views show (the segmenter
    joining two surfaces, or the chain carrying one id over both) onto the views that kept them apart; on kitchen
    and fox the largest object grew from 0.53 to 0.68 and from 0.54 to 0.58 of the view with it."""
    retroactive_share: float = 0.6
    """A segment goes to the object holding at least this fraction of its votes in the check after the sequence
    (its holder at most the rest): every view has voted by then, and only pure voxels vote."""
    split: bool = False
    """Split a segment held by one id between the several ids its evidence names (off: where the segmenter is
    coarser than the evidence, the evidence's own boundaries are rarely better than the chain's)."""
    reach_fraction: float = 0.02
    """Unlabelled pixels take an id only this close (fraction of the image diagonal) to its evidence: the rest
    of a segment is content seen for the first time."""
    assign_min_seen: float = 0.6
    """An unlabelled segment takes an id only when its evidence covers at least this fraction of it, relative to
    the evidence density on the frame's labelled pixels (a segment mostly seen for the first time is left to the
    new regions)."""
    min_votes: int = 6
    """Fewest evidence pixels in a segment for its votes to decide."""
    min_coverage: float = 0.05
    """Fewest evidence pixels, as a fraction of the segment's area, for its votes to decide. For giving a segment to
    an absent id the fraction is scaled by the frame's evidence density (the share of its labelled pixels carrying
    evidence), so a few triangulated points can bring an id back as a dense depth map does; renaming a carried id
    keeps the plain fraction (a handful of sparse votes overruling the chain's id repairs less than it breaks)."""
    share: float = 0.7
    """A segment goes to the id holding at least this fraction of its evidence votes."""
    split_share: float = 0.2
    """Ids holding at least this fraction of a segment's votes (together ``share``) split the segment."""
    merge_overlap: float = 0.9
    """An id whose evidence voxels are at least this fraction owned by one older id is merged into it."""
    merge_min_voxels: int = 8
    """Ids with fewer evidence voxels are not merged by their evidence."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_fraction(self.max_footprint_fraction, "tracker.anchor.max-footprint-fraction")
        check_option(self.max_rows >= 1, "tracker.anchor.max-rows", ">= 1", self.max_rows)
        check_fraction(self.reassign_purity, "tracker.anchor.reassign-purity")
        check_fraction(self.retroactive_share, "tracker.anchor.retroactive-share")


@dataclass
class AnchorResult:
    """Labels after the 3D vote and what it changed."""

    labels: np.ndarray
    """[H, W] int64."""
    assigned: int = 0
    """Unlabelled segments given to the (absent) id their 3D votes agree on."""
    overruled: int = 0
    """Ids of the propagation chain renamed to the id their 3D votes agree on."""
    split: int = 0
    """Segments split between the ids their 3D votes name."""
    ids: list[int] = field(default_factory=list)
    """Ids given to segments (by agreement or split)."""


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


def _evidence_ids(evidence: np.ndarray, voted: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of ``evidence`` [H, W] that vote, its ids [E] (0 first) and each voting pixel's index into them
    (``compact_ids`` of the evidence, counted over the voting pixels only); ``voted``: ``evidence > 0`` when the
    caller has it."""
    voted = evidence > 0 if voted is None else voted
    values = evidence[voted]
    counts = np.bincount(values)
    ids = np.flatnonzero(counts)
    if len(ids) == 0 or ids[0] != 0:
        ids = np.r_[0, ids]
    lut = np.zeros(max(len(counts), 1), dtype=np.int64)
    lut[ids] = np.arange(len(ids))
    return voted, ids, lut[values]


def _vote_table(
    groups: np.ndarray,
    evidence: np.ndarray,
    num_groups: int,
    indexed: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Votes [G, E] of the evidence pixels of each group (pixels labelled ``groups``) and the evidence ids [E];
    ``indexed``: ``_evidence_ids(evidence)`` when already computed."""
    voted, ids, voted_index = _evidence_ids(evidence) if indexed is None else indexed
    return _votes(groups[voted], voted_index, num_groups, len(ids)), ids


def _votes(group_of_vote: np.ndarray, voted_index: np.ndarray, num_groups: int, num_ids: int) -> np.ndarray:
    """``_vote_table``'s votes [G, E] from each voting pixel's group and evidence index (column 0 cleared)."""
    table = np.bincount(group_of_vote * num_ids + voted_index, minlength=num_groups * num_ids)
    table = table.reshape(num_groups, num_ids)
    table[:, 0] = 0
    return table


def _evidence_density(seen: np.ndarray, evidence: np.ndarray, voted: Optional[np.ndarray] = None) -> float:
    """Share of the ``seen`` (labelled) pixels that carry ``evidence``: how dense the frame's 3D evidence is
    (``voted``: ``evidence > 0`` when the caller has it)."""
    voted = evidence > 0 if voted is None else voted
    return float(np.count_nonzero(seen & voted)) / max(int(np.count_nonzero(seen)), 1)


def anchor_labels(
    labels: np.ndarray,
    auto: np.ndarray,
    evidence: np.ndarray,
    config: AnchorConfig,
    pure: Optional[np.ndarray] = None,
    counted: Optional[SegmentTable] = None,
) -> AnchorResult:
    """``labels`` [H, W] after the 3D votes of ``evidence`` [H, W] (0: none) on its ids and on ``auto``'s segments;
    ``pure`` [H, W] is the evidence of the voxels pure enough to reassign segments (``None``: no reassignment);
    ``counted``: ``id_segment_table(labels, auto)`` when the caller has it.

    1. ids: an id of ``labels`` whose pixels' evidence names another id (``share`` of the votes, its own
       id at most ``1 - share``) is renamed to that id: the propagation chain carried the wrong id;
    2. segments the labels leave (mostly) unlabelled, seen before, take the absent id their votes agree on,
       near its evidence (``assign``);
    3. segments held by one id whose votes name several ids each holding ``split_share`` are split (``split``).

    The labels given back are a new array, or ``labels`` itself (as int64) when nothing changed.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = labels
    result = AnchorResult(out)
    voted = evidence > 0
    if not voted.any():
        return result
    num_segments = segment_count(auto)
    # the chain's ids over the segments: the ids and their areas, each segment's area and labelled pixels, and the
    # reassignment's holders
    counted = id_segment_table(labels, auto, num_segments) if counted is None else counted
    chain_ids, area = counted.ids, counted.table.sum(axis=1)
    seen_pixels = labels.size - int(area[0])  # (the ids start with 0)
    # each voting pixel's index into the chain's ids: its votes are all the steps below read of the labels
    chain_lut = np.zeros(int(chain_ids[-1]) + 1, dtype=np.int64)
    chain_lut[chain_ids] = np.arange(len(chain_ids))
    chain_of_vote = chain_lut.take(labels[voted])
    # (``_evidence_density``: the share of the labelled pixels carrying evidence)
    density = float(np.count_nonzero(chain_of_vote)) / max(seen_pixels, 1)
    coverage = config.min_coverage * (min(density, 1.0) if seen_pixels else 1.0)
    indexed = _evidence_ids(evidence, voted)
    ids = indexed[1]
    table = _votes(chain_of_vote, indexed[2], len(chain_ids), len(ids))
    if config.rename and len(chain_ids) > 1:
        # Every id's votes at once: its most voted evidence id (the first of the largest count: the largest share)
        # and the shares of that id and of its own id.
        votes = table.sum(axis=1)
        best = np.argmax(table, axis=1)
        rows = np.arange(len(chain_ids))
        own = np.minimum(np.searchsorted(ids, chain_ids), len(ids) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            best_share = table[rows, best] / votes
            own_share = np.where(ids[own] == chain_ids, table[rows, own] / votes, 0.0)
        rename = (
            (votes >= config.min_votes)
            & (votes >= config.min_coverage * area)
            & (ids[best] != chain_ids)
            & (best_share >= config.share)
            & (own_share <= 1.0 - config.share)
        )
        rename[0] = False
        renamed_rows = np.flatnonzero(rename)
        if len(renamed_rows):
            renamed = chain_ids.copy()
            renamed[renamed_rows] = ids[best[renamed_rows]]
            result.overruled = len(renamed_rows)
            result.ids.extend(int(i) for i in ids[best[renamed_rows]])
            chain_lut[chain_ids] = renamed  # (each id's new id, looked up per pixel)
            out = chain_lut.take(labels)
    if num_segments == 0:
        result.labels = out
        return result
    table, ids = _vote_table(auto, evidence, num_segments + 1, indexed)
    votes = table.sum(axis=1)
    seg_area = counted.table.sum(axis=0)
    labelled = seg_area - counted.table[0]  # (row 0: id 0)
    if config.reassign and pure is not None:
        out, moved = reassign_segments(out, auto, pure, config, counted=counted if out is labels else None)
        result.overruled += len(moved)
        result.ids.extend(moved)
    decided = (votes >= config.min_votes) & (votes >= coverage * seg_area)
    decided[0] = False
    best = np.argmax(table, axis=1)
    best_share = table[np.arange(len(table)), best] / np.maximum(votes, 1)
    uncovered = labelled < 0.5 * seg_area
    if config.assign:
        enough = votes >= config.assign_min_seen * density * seg_area
        assign = np.flatnonzero(decided & uncovered & enough & (best_share >= config.share))
        if len(assign):  # of those, the segments whose id is absent from the labels
            if out is labels:  # (the ids present: those counted already)
                present = set(chain_ids[area > 0].tolist())
            else:
                present = set(np.flatnonzero(np.bincount(out.ravel())).tolist())
            assign = assign[np.array([int(ids[best[s]]) not in present for s in assign.tolist()], dtype=bool)]
        if len(assign):
            reach = max(config.reach_fraction * float(np.hypot(*auto.shape)), 2.0)
            target = np.zeros(num_segments + 1, dtype=np.int64)
            target[assign] = ids[best[assign]]
            wanted = target[auto]
            out = _assign_near_evidence(out, wanted, labels > 0, evidence, voted, reach)
            result.assigned = len(assign)
            result.ids.extend(int(i) for i in target[assign])
    if config.split:
        for seg in np.flatnonzero(decided & ~uncovered).tolist():
            shares = table[seg] / votes[seg]
            named = np.flatnonzero(shares >= config.split_share)
            if len(named) < 2 or shares[named].sum() < config.share:
                continue
            inside = auto == seg
            held = out[inside]
            if np.bincount(held).max() < config.share * len(held):
                continue  # the chain already splits the segment
            seeds = np.where(inside & np.isin(evidence, ids[named]), evidence, 0)
            _, (rows, cols) = distance_transform_edt(seeds == 0, return_indices=True)
            if out is labels:
                out = labels.copy()
            out[inside] = seeds[rows[inside], cols[inside]]
            result.split += 1
            result.ids.extend(int(i) for i in ids[named])
    result.labels = out
    return result


def _assign_near_evidence(
    labels: np.ndarray, wanted: np.ndarray, seen: np.ndarray, evidence: np.ndarray, voted: np.ndarray, reach: float
) -> np.ndarray:
    """``labels`` [H, W] with every unlabelled (not ``seen``) pixel of a ``wanted`` id (0: none) [H, W] given that id
    where the nearest ``evidence`` pixel (``voted``: ``evidence > 0``) is that id's and within ``reach`` pixels.
    The distance transform covers the wanted pixels' box grown by the reach only (``feature_transform_near``: the
    nearest evidence of every pixel within the reach is the whole image's)."""
    candidates = (wanted > 0) & ~seen
    box = find_objects(candidates.view(np.uint8), max_label=1)[0]
    if box is None:
        return labels
    distance, rows, cols = feature_transform_near(voted, box, reach)
    if not (rows >= 0).any():
        return labels  # no evidence within the reach of the box
    inner = wanted[box]
    nearest = evidence[rows, cols]
    give = candidates[box] & (nearest == inner) & (distance <= reach)
    out = labels.copy()
    out[box] = np.where(give, inner, labels[box])
    return out


def reassign_segments(
    labels: np.ndarray,
    auto: np.ndarray,
    pure: np.ndarray,
    config: AnchorConfig,
    group: Optional[np.ndarray] = None,
    relative: bool = False,
    counted: Optional[SegmentTable] = None,
) -> tuple[np.ndarray, list[int]]:
    """``labels`` [H, W] with every segment of ``auto`` held by one id given to the other id the ``pure`` evidence
    [H, W] (0: none) on it names, where that evidence is firm (``min_votes`` and ``min_coverage`` of the segment);
    and the ids given (see ``_reassign``).

    ``group`` [I] (id -> the object it belongs to, for every id of ``labels`` and ``pure``) pools the ids of one
    object: a segment held by one object whose evidence names another object (its ids' votes together) takes
    that object's id with the most votes on the segment; a segment whose evidence names another id of its own
    object keeps its id. ``relative`` scales ``min_coverage`` by the frame's evidence density (the share of its
    labelled pixels carrying evidence), as for giving a segment to an absent id: with sparse triangulated points
    a few votes on a segment are all the evidence there is. ``counted``: ``id_segment_table(labels, auto)`` when the
    caller has it."""
    labels = np.asarray(labels, dtype=np.int64)
    num_segments = segment_count(auto)
    if num_segments == 0 or not (pure > 0).any():
        return labels, []
    pooled = pure if group is None else group[pure]
    table, ids = _vote_table(auto, pooled, num_segments + 1)
    votes = table.sum(axis=1)
    if group is None:
        counted = id_segment_table(labels, auto, num_segments) if counted is None else counted
        seg_area = counted.table.sum(axis=0)
    else:
        seg_area = np.bincount(auto.ravel(), minlength=num_segments + 1)
    coverage = config.min_coverage * (min(_evidence_density(labels > 0, pure), 1.0) if relative else 1.0)
    firm = (votes >= config.min_votes) & (votes >= coverage * seg_area)
    if group is None:
        return _reassign(labels, auto, table, ids, firm, config, counted)
    held = group[labels]
    out, moved = _reassign(held, auto, table, ids, firm, config)
    if not moved:
        return labels, []
    changed = out != held
    named = np.zeros(num_segments + 1, dtype=np.int64)
    named[auto[changed]] = out[changed]  # the object each changed segment goes to
    segments = np.flatnonzero(named)
    raw_table, raw_ids = _vote_table(auto, pure, num_segments + 1)
    target = np.zeros(num_segments + 1, dtype=np.int64)
    for seg in segments.tolist():
        members = group[raw_ids] == named[seg]
        members[0] = False
        target[seg] = raw_ids[np.flatnonzero(members)[np.argmax(raw_table[seg, members])]]
    return np.where(changed, target[auto], labels), [int(target[s]) for s in segments.tolist()]


def segment_changes(
    before: np.ndarray, after: np.ndarray, auto: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The segment reassignments between ``before`` and ``after`` [H, W] (ids, with their objects ``group``) over
    ``auto``'s segments: per segment [S + 1] the object that gave it up (0: unchanged) and the id it went to."""
    num_segments = segment_count(auto)
    source = np.zeros(num_segments + 1, dtype=np.int64)
    target = np.zeros(num_segments + 1, dtype=np.int64)
    changed = before != after
    source[auto[changed]] = group[before[changed]]
    target[auto[changed]] = after[changed]
    return source, target


def apply_segment_changes(
    labels: np.ndarray, auto: np.ndarray, group: np.ndarray, source: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """``labels`` [H, W] with the pixels of each segment of ``auto`` held by its ``source`` object given its
    ``target`` id (see ``segment_changes``)."""
    segment_source = source[auto]
    change = (segment_source > 0) & (group[labels] == segment_source)
    return np.where(change, target[auto], labels)


def _reassign(
    labels: np.ndarray,
    auto: np.ndarray,
    table: np.ndarray,
    ids: np.ndarray,
    firm: np.ndarray,
    config: AnchorConfig,
    counted: Optional[SegmentTable] = None,
) -> tuple[np.ndarray, list[int]]:
    """``labels`` with every segment held by one id (``share`` of its labelled pixels, itself most of the segment)
    given to the other id its evidence votes name (``share`` of the ``table`` [S + 1, E] votes over the evidence
    ``ids`` [E], its holder at most ``1 - share``), where the votes are ``firm`` [S + 1]; and the ids given
    (``counted``: ``id_segment_table(labels, auto)`` when the caller has it)."""
    num_segments = len(table) - 1
    held_ids, by_id = id_segment_table(labels, auto, num_segments) if counted is None else counted
    holding = by_id.T.copy()  # [S + 1, I] each segment's pixels of each id
    seg_area = holding.sum(axis=1)
    holding[:, 0] = 0
    holder = np.argmax(holding, axis=1)
    held = holding[np.arange(len(holding)), holder]
    labelled = holding.sum(axis=1)
    votes = np.maximum(table.sum(axis=1), 1)
    best = np.argmax(table, axis=1)
    best_share = table[np.arange(len(table)), best] / votes
    position = {int(i): k for k, i in enumerate(ids.tolist())}
    holders = held_ids[holder].tolist()
    own_votes = np.array([table[s, position[i]] if i in position else 0 for s, i in enumerate(holders)])
    wanted = (
        firm
        & (held >= config.share * labelled)
        & (labelled >= 0.5 * seg_area)
        & (ids[best] != held_ids[holder])
        & (best_share >= config.share)
        & (own_votes <= (1.0 - config.share) * votes)
    )
    wanted[0] = False
    segments = np.flatnonzero(wanted)
    if len(segments) == 0:
        return labels, []
    target = np.zeros(num_segments + 1, dtype=np.int64)
    target[segments] = ids[best[segments]]
    source = np.full(num_segments + 1, -1, dtype=np.int64)
    source[segments] = held_ids[holder[segments]]
    change = labels == source[auto]
    return np.where(change, target[auto], labels), [int(i) for i in target[segments]]


def evidence_merges(evidence: AnchorEvidence, config: AnchorConfig) -> dict[int, int]:
    """Younger id -> older id merges for ids whose evidence voxels mostly belong to one older id.

    An id observed on ``n`` voxels of which at least ``merge_overlap * n`` are owned by one older id
    (seen there more often) is that object seen again under a new id.
    """
    _, owner_ids, _ = evidence.owners()
    if len(owner_ids) == 0:
        return {}
    ids, owner = evidence.shared_rows()  # (a voxel seen by one id is owned by it)
    older = owner < ids
    if not older.any():
        return {}
    per_id = evidence.voxels_per_id()
    pair_ids, pair_owner = ids[older], owner[older]
    # Only an id with enough voxels whose rows under older owners, all together, reach ``merge_overlap`` of its voxels
    # can have one older owner that does: the rows of the others are left out before the pairs are counted.
    under_older = np.bincount(pair_ids, minlength=len(per_id))
    candidate = (per_id >= config.merge_min_voxels) & (under_older >= config.merge_overlap * per_id)
    kept_rows = candidate[pair_ids]
    if not kept_rows.any():
        return {}
    pair_ids, pair_owner = pair_ids[kept_rows], pair_owner[kept_rows]
    base = int(owner_ids.max()) + 1
    pair_keys, counts = np.unique(pair_ids * base + pair_owner, return_counts=True)
    young, old = np.divmod(pair_keys, base)
    voxels = per_id[young]
    kept = (voxels >= config.merge_min_voxels) & (counts >= config.merge_overlap * voxels)
    merges: dict[int, int] = dict(zip(young[kept].tolist(), old[kept].tolist()))
    # Resolve chains (c -> b -> a) to their oldest id.
    for young in list(merges):
        target = merges[young]
        while target in merges:
            target = merges[target]
        merges[young] = target
    return merges
