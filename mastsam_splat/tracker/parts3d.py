"""3D parts: the surface regions the segmenter never cuts apart, and every id's segment named after the one it lies on.

A SAM-like segmenter cuts one object differently from view to view: its parts apart in some views, one mask in
others. The tracker's ids follow the masks from view to view, so where a merged mask comes apart again the id may
stay on the sibling part, and a part that reappears showing a new side may take a new id: id switches that no later
vote on the ids can undo, since each side of the part votes for the id it was labelled with.

The automatic segments themselves, lifted to 3D, tell which surfaces belong together, without any id: two
neighbouring voxels that one segment holds in (almost) every view seeing both lie on one part; across the border of
two parts that some views merge, one segment holds both in only some of them. During the sequence every frame with a
depth map adds, for each pair of neighbouring voxels it sees, whether its segments keep the two together
(``SegmentCooccurrence``). After it, neighbouring regions are merged greedily, the most-together border first, while
the segments keep them together in ``together_share`` of the observations along their whole border
(``part_regions``): pooled over the border, a few voxels that the masks' jitter puts on the wrong side do not join
two parts. Each region is named after the id holding most of it, regions seen side by side under different ids
never sharing one (``regions_apart``, ``region_names``); then an id whose segment lies on a region named after
another id, apart from its own region, takes that name in that frame (``segment_regions``, ``frame_names``): an id
that moved from a part to its sibling gets the part's name back, one part seen under two ids gets one.

Dense 3D points (depth maps) are needed: sparse points (an SfM model) rarely see two neighbouring voxels in one view.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.memory import neighbour_keys, sorted_contains, voxel_keys

_FORWARD = slice(14, 27)
"""``neighbour_keys(keys, 1)``'s 13 offsets after (0, 0, 0) (lexicographic order): each neighbouring pair once."""
_ORIGIN = voxel_keys(np.zeros((1, 3), dtype=np.int64))
_SHIFTS = neighbour_keys(_ORIGIN, 1)[0, _FORWARD] - _ORIGIN[0]
"""Key offsets of those 13 neighbours (a key plus one of them is the neighbour's key, as in ``neighbour_keys``)."""
_CONSOLIDATE_ROWS = 1 << 18
"""Pending pair rows (at least) before they are summed into the table."""


@dataclass
class PartsConfig:
    """The 3D parts found after the sequence, and the naming of every id's segments after them."""

    enabled: bool = True
    """With depth maps, find the 3D parts and name every id's segment in each frame after the part it lies on (ids
    that switched between sibling parts, or a part seen under two ids, are named again consistently). Part of the
    3D memory: off when the memory is off."""
    voxel_fraction: float = 0.025
    """Voxel size as a fraction of the first frame's median viewing distance (2.5 times the 3D evidence's: two
    neighbouring voxels are then both seen in one frame on most surfaces a depth map samples, and the graph of a
    whole capture stays small enough to merge in a fraction of a second per 40 frames)."""
    max_points: int = 20000
    """Depth-map pixels sampled per frame (a grid) for the parts: the voxels are larger than the 3D evidence's, so a
    sparser grid than the tracker's may still reach every voxel."""
    together_share: float = 0.75
    """Two neighbouring regions are one part while one segment holds both in at least this share of the observations
    (a frame seeing a pair of neighbouring voxels) along their border, counting one observation of each kind more (a
    border seen once or twice decides nothing)."""
    min_voxels: int = 30
    """Regions of fewer voxels name no segment: surface seen in too few frames to be linked to its part."""
    min_points: int = 3
    """Fewest points a segment has on named regions for it to take a region's name."""
    min_region_share: float = 0.5
    """A segment takes its region's name only when that region holds at least this share of its points: a segment
    cut across regions (a segmenter that cuts surfaces anywhere, not along parts) keeps its id."""
    apart_frames: int = 5
    """Regions that different ids held in this many frames are never given one name (two parts seen side by side);
    other regions that one id holds most share its name (the pieces of one part a segmenter cuts differently from
    view to view)."""
    interior_seen: int = 2
    """Pairs of voxels seen together this often are joined before the greedy merging when no segment ever cut either
    voxel from a neighbour (every pair either voxel is in was held together in every frame seeing it; 0: never):
    surfaces no mask boundary crossed (a floor, the inside of a part) are joined at once rather than voxel by voxel,
    and the greedy runs on the pieces they form."""
    min_held_share: float = 0.5
    """Voxels that segments held in fewer than this share of the frames seeing them join no region: the background
    a mask's boundary spills onto in some views (around an object's base, say) would link objects."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.voxel_fraction > 0, "tracker.parts.voxel-fraction", "> 0", self.voxel_fraction)
        check_option(self.max_points >= 1, "tracker.parts.max-points", ">= 1", self.max_points)
        check_fraction(self.together_share, "tracker.parts.together-share")
        check_option(self.min_voxels >= 1, "tracker.parts.min-voxels", ">= 1", self.min_voxels)
        check_option(self.min_points >= 1, "tracker.parts.min-points", ">= 1", self.min_points)
        check_fraction(self.min_region_share, "tracker.parts.min-region-share")
        check_fraction(self.min_held_share, "tracker.parts.min-held-share")
        check_option(self.apart_frames >= 1, "tracker.parts.apart-frames", ">= 1", self.apart_frames)
        check_option(self.interior_seen >= 0, "tracker.parts.interior-seen", ">= 0", self.interior_seen)


def majority_segment(keys: np.ndarray, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct voxel keys [V] of one frame's points and the segment most of each voxel's points lie in [V]
    (0: none; ties: the smaller segment); points without a voxel (key 0) are left out."""
    keys = np.asarray(keys, dtype=np.int64).ravel()
    segments = np.asarray(segments, dtype=np.int64).ravel()
    keep = keys != 0
    keys, segments = keys[keep], segments[keep]
    if len(keys) == 0:
        return keys, segments
    order = np.lexsort((segments, keys))
    keys, segments = keys[order], segments[order]
    start = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (segments[1:] != segments[:-1])])
    counts = np.diff(np.r_[start, len(keys)])
    keys, segments = keys[start], segments[start]
    order = np.lexsort((segments, -counts, keys))  # (each voxel's most frequent segment first)
    keys, segments = keys[order], segments[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    return keys[first], segments[first]


class SegmentCooccurrence:
    """For every pair of neighbouring voxels: how many frames saw both, and in how many one automatic segment held
    both. Added to frame by frame; its size grows with the surface seen, not with the frames."""

    def __init__(self, voxel_size: float) -> None:
        self.voxel_size = float(voxel_size)
        self.frames = 0
        self._keys = np.zeros(0, dtype=np.int64)
        """[P] voxel key of each pair's first voxel (sorted with ``_dirs``)."""
        self._dirs = np.zeros(0, dtype=np.int8)
        """[P] which of the 13 forward neighbours the second voxel is."""
        self._seen = np.zeros(0, dtype=np.int32)
        self._together = np.zeros(0, dtype=np.int32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._voxels = np.zeros(0, dtype=np.int64)
        """[K] every voxel seen (sorted), with the frames that saw it and those where a segment held it."""
        self._voxel_seen = np.zeros(0, dtype=np.int32)
        self._voxel_labelled = np.zeros(0, dtype=np.int32)
        self._voxel_rows: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        self._consolidate()
        return len(self._keys)

    def add(self, keys: np.ndarray, segments: np.ndarray) -> None:
        """One frame: its points' voxel keys [N] (0: none) and the automatic segment under each point [N] (0: none)."""
        voxels, segment = majority_segment(keys, segments)
        self.frames += 1
        self._voxel_rows.append((voxels, segment > 0))
        labelled = segment > 0
        voxels, segment = voxels[labelled], segment[labelled]
        if len(voxels) >= 2:
            neighbours = voxels[:, None] + _SHIFTS[None, :]
            index = np.minimum(np.searchsorted(voxels, neighbours), len(voxels) - 1)
            rows, dirs = np.nonzero(voxels[index] == neighbours)
            together = segment[rows] == segment[index[rows, dirs]]
            self._pending.append((voxels[rows], dirs.astype(np.int8), together))
            self._pending_rows += len(rows)
        if self._pending_rows + sum(len(v) for v, _ in self._voxel_rows) >= max(len(self._keys), _CONSOLIDATE_ROWS):
            self._consolidate()

    def _consolidate(self) -> None:
        """Sum the pending frames' pairs and voxels into the tables."""
        if self._voxel_rows:
            keys = np.concatenate([self._voxels] + [v for v, _ in self._voxel_rows])
            seen = np.concatenate([self._voxel_seen] + [np.ones(len(v), dtype=np.int32) for v, _ in self._voxel_rows])
            labelled = np.concatenate([self._voxel_labelled] + [held.astype(np.int32) for _, held in self._voxel_rows])
            self._voxel_rows = []
            self._voxels, inverse = np.unique(keys, return_inverse=True)
            self._voxel_seen = np.bincount(inverse, weights=seen, minlength=len(self._voxels)).astype(np.int32)
            self._voxel_labelled = np.bincount(inverse, weights=labelled, minlength=len(self._voxels)).astype(np.int32)
        if not self._pending:
            return
        keys = np.concatenate([self._keys] + [p[0] for p in self._pending])
        dirs = np.concatenate([self._dirs] + [p[1] for p in self._pending])
        seen = np.concatenate([self._seen] + [np.ones(len(p[0]), dtype=np.int32) for p in self._pending])
        together = np.concatenate([self._together] + [p[2].astype(np.int32) for p in self._pending])
        self._pending, self._pending_rows = [], 0
        order = np.lexsort((dirs, keys))
        keys, dirs, seen, together = keys[order], dirs[order], seen[order], together[order]
        start = np.flatnonzero(np.r_[True, (keys[1:] != keys[:-1]) | (dirs[1:] != dirs[:-1])])
        self._keys, self._dirs = keys[start], dirs[start]
        self._seen = np.add.reduceat(seen, start).astype(np.int32)
        self._together = np.add.reduceat(together, start).astype(np.int32)

    def graph(self, min_held_share: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(voxels, a, b, together, seen)``: the sorted voxel keys [K] of every pair and each pair [P] as indices
        into them, with its counts; pairs with a voxel that segments held in fewer than ``min_held_share`` of the
        frames seeing it are left out (the fringe a mask's boundary spills onto now and then)."""
        self._consolidate()
        keys, dirs = self._keys, self._dirs.astype(np.int64)
        second = keys + _SHIFTS[dirs]
        held = self._voxel_labelled >= min_held_share * self._voxel_seen
        core = self._voxels[held]
        keep = sorted_contains(core, keys) & sorted_contains(core, second)
        keys, second = keys[keep], second[keep]
        voxels = np.unique(np.concatenate([keys, second]))
        return (
            voxels,
            np.searchsorted(voxels, keys),
            np.searchsorted(voxels, second),
            self._together[keep],
            self._seen[keep],
        )


def part_regions(
    num_voxels: int,
    a: np.ndarray,
    b: np.ndarray,
    together: np.ndarray,
    seen: np.ndarray,
    share: float,
    interior_seen: int = 0,
) -> np.ndarray:
    """Region [K] of each voxel (a number the voxels of one region share): neighbouring regions merged greedily, the
    border with the highest ``(together + 1) / (seen + 2)`` first (counts pooled over the whole border), while that
    reaches ``share``. With ``interior_seen``, pairs seen that often whose voxels were never cut from a neighbour
    (each pair either voxel is in held together in all its frames) are joined first, at once, and the greedy runs on
    the pieces they form: a surface no segment boundary crosses is one piece however many voxels it has."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    together, seen = np.asarray(together), np.asarray(seen)
    if interior_seen > 0 and len(a):
        cut = np.zeros(num_voxels, dtype=bool)  # (voxels a segment boundary ran along in some frame)
        apart = together < seen
        cut[a[apart]] = True
        cut[b[apart]] = True
        joined = ~cut[a] & ~cut[b] & (seen >= interior_seen)
        graph = coo_matrix((np.ones(int(joined.sum())), (a[joined], b[joined])), shape=(num_voxels, num_voxels))
        piece = connected_components(graph, directed=False)[1].astype(np.int64)  # (int32: codes below overflow it)
        regions = _greedy_regions(int(piece.max()) + 1, piece[a], piece[b], together, seen, share)
        return regions[piece]
    return _greedy_regions(num_voxels, a, b, together, seen, share)


def _greedy_regions(
    num_voxels: int, a: np.ndarray, b: np.ndarray, together: np.ndarray, seen: np.ndarray, share: float
) -> np.ndarray:
    """``part_regions``' greedy merging of neighbouring regions on their pooled borders.

    Each border is one slot of the count lists, shared by the adjacency of both its regions; when a region is
    merged into another, a border of the two with a third region is pooled into the one the larger region keeps,
    other borders only change hands (their score, and so their heap entry, stays valid)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    inner = a != b
    lo, hi = np.minimum(a[inner], b[inner]), np.maximum(a[inner], b[inner])
    codes, inverse = np.unique(lo * num_voxels + hi, return_inverse=True)
    pooled_together = np.bincount(inverse, weights=np.asarray(together, dtype=np.float64)[inner], minlength=len(codes))
    pooled_seen = np.bincount(inverse, weights=np.asarray(seen, dtype=np.float64)[inner], minlength=len(codes))
    score = (pooled_together + 1.0) / (pooled_seen + 2.0)
    eligible = np.flatnonzero(score >= share)
    heap = list(zip((-score[eligible]).tolist(), eligible.tolist()))  # (a border below it is pushed when it grows)
    heapq.heapify(heap)
    first, second = (codes // num_voxels).tolist(), (codes % num_voxels).tolist()  # (each border's two regions)
    held, counted = pooled_together.tolist(), pooled_seen.tolist()
    alive = [True] * len(codes)
    borders: list[dict[int, int]] = [{} for _ in range(num_voxels)]  # region -> {neighbouring region: border}
    for e, (i, j) in enumerate(zip(first, second)):
        borders[i][j] = e
        borders[j][i] = e
    parent = np.arange(num_voxels)
    size = [1] * num_voxels
    while heap:
        negative, e = heapq.heappop(heap)
        if not alive[e] or (held[e] + 1.0) / (counted[e] + 2.0) != -negative:
            continue  # (pooled away, or pooled since: a fresher entry exists)
        i, j = first[e], second[e]
        if size[i] < size[j]:
            i, j = j, i
        alive[e] = False
        mine, theirs = borders[i], borders[j]
        del mine[j], theirs[i]
        for k, f in theirs.items():  # (j's borders become i's)
            across = borders[k]
            del across[j]
            kept = mine.get(k)
            if kept is None:
                mine[k] = across[i] = f
                if first[f] == j:
                    first[f] = i
                else:
                    second[f] = i
                continue
            alive[f] = False
            held[kept] += held[f]
            counted[kept] += counted[f]
            pooled = (held[kept] + 1.0) / (counted[kept] + 2.0)
            if pooled >= share:
                heapq.heappush(heap, (-pooled, kept))
        borders[j] = {}
        parent[j] = i
        size[i] += size[j]
    while True:  # (every voxel to its region's representative)
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def segment_regions(
    ids: np.ndarray, regions: np.ndarray, min_points: int, min_share: float = 0.0
) -> dict[int, tuple[int, int]]:
    """Id -> (region most of its points [N] lie on, those points) in one frame; points with id 0 or region -1 do not
    count, nor ids with fewer than ``min_points`` points on regions or whose region holds less than ``min_share`` of
    all their points (ties: the smaller region)."""
    ids = np.asarray(ids, dtype=np.int64)
    regions = np.asarray(regions, dtype=np.int64)
    keep = (ids > 0) & (regions >= 0)
    if not keep.any():
        return {}
    all_points = np.bincount(ids[ids > 0])
    span = int(regions.max()) + 1
    codes = ids[keep] * span + regions[keep]
    bins = int(codes.max()) + 1
    if bins <= 4 * len(codes) + 4096:  # (few ids and regions: a histogram is cheaper than sorting the points)
        counts = np.bincount(codes, minlength=bins)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(codes, return_counts=True)
    # (codes sorted by id, then region)
    held, region = codes // span, codes % span
    order = np.lexsort((region, -counts, held))  # (each id's largest region first)
    held, region, counts = held[order], region[order], counts[order]
    first = np.r_[True, held[1:] != held[:-1]]
    on_regions = np.add.reduceat(counts, np.flatnonzero(first))
    rows = zip(held[first].tolist(), region[first].tolist(), counts[first].tolist(), on_regions.tolist())
    return {
        int(i): (int(r), int(n)) for i, r, n, total in rows if total >= min_points and n >= min_share * all_points[i]
    }


def regions_apart(found: Iterable[dict[int, tuple[int, int]]], min_frames: int) -> set[tuple[int, int]]:
    """Pairs of regions (smaller first) that different ids held in at least ``min_frames`` frames, from each frame's
    ``segment_regions``: two parts the tracker saw side by side, which one name would merge."""
    frames: dict[tuple[int, int], int] = {}
    for regions in found:
        held = sorted({region for region, _ in regions.values()})  # (each id holds one region: two are two ids)
        for i, first in enumerate(held):
            for second in held[i + 1 :]:
                frames[(first, second)] = frames.get((first, second), 0) + 1
    return {pair for pair, count in frames.items() if count >= min_frames}


def region_names(votes: Iterable[tuple[int, int, int]], apart: set[tuple[int, int]]) -> dict[int, int]:
    """Region -> the id it is named after, from ``(region, id, points)`` votes: the largest votes first, each region
    takes the id it was given most unless that id already names a region seen ``apart`` from it (regions never seen
    apart, the pieces of one part that a segmenter cuts differently from view to view, share their id; regions left
    without one get none here)."""
    pooled: dict[tuple[int, int], int] = {}
    for region, ident, points in votes:
        pooled[(region, ident)] = pooled.get((region, ident), 0) + points
    names: dict[int, int] = {}
    named: dict[int, list[int]] = {}  # id -> the regions named after it
    for (region, ident), _ in sorted(pooled.items(), key=lambda kv: (-kv[1], kv[0])):
        if region in names:
            continue
        if any((min(region, other), max(region, other)) in apart for other in named.get(ident, [])):
            continue
        names[region] = ident
        named.setdefault(ident, []).append(region)
    return names


def frame_names(
    found: dict[int, tuple[int, int]], names: dict[int, int], present: Iterable[int], apart: set[tuple[int, int]]
) -> dict[int, int]:
    """The new name of each id of one frame whose region is named after another id (``found``: the frame's
    ``segment_regions``). Ids on one region, or on regions never seen ``apart``, may end with one name (the pieces of
    one part); ids on regions seen apart may not: ids keeping their own name come first, then the others by their
    points on their region, and an id whose name is held by an id on a region seen apart from its own keeps its own
    name if it can, else it is mapped to 0 (the caller gives it a fresh id)."""
    own: dict[int, list[int]] = {}  # id -> the regions named after it
    for region, ident in names.items():
        own.setdefault(ident, []).append(region)

    def wants(i: int, region: int) -> bool:
        """An id named after no region, or lying on a region seen apart from its own: it strayed onto another part."""
        if region not in names or names[region] == i:
            return False
        return i not in own or any((min(r, region), max(r, region)) in apart for r in own[i])

    wanted = {i: names[r] for i, (r, _) in found.items() if wants(i, r)}
    present = sorted(int(i) for i in present)
    holders: dict[int, list[int]] = {}  # name -> the regions of the ids holding it (-1: none known)

    def free(name: int, region: int) -> bool:
        return region < 0 or all(
            other < 0 or other == region or (min(other, region), max(other, region)) not in apart
            for other in holders.get(name, [])
        )

    out: dict[int, int] = {}
    keeping = [i for i in present if wanted.get(i, i) == i]
    moving = sorted((i for i in present if wanted.get(i, i) != i), key=lambda i: (-found[i][1], i))
    for i in keeping + moving:
        region = found[i][0] if i in found else -1
        name = wanted.get(i, i)
        if not free(name, region):
            name = i if free(i, region) else 0
        if name != i:
            out[i] = name
        if name:
            holders.setdefault(name, []).append(region)
    return out


def renamed_objects(moved: dict[tuple[int, int], int], object_of: dict[int, int]) -> dict[int, int]:
    """The object map after renaming: ``moved`` gives the pixels of each (id, new name) pair, ``object_of`` each id's
    object (absent: its own). Each name takes the object most of its pixels belonged to; an object is named after the
    smallest name taking it, and the map lists the names grouped under another one."""
    votes: dict[int, dict[int, int]] = {}
    for (ident, name), pixels in moved.items():
        owner = object_of.get(ident, ident)
        votes.setdefault(name, {})
        votes[name][owner] = votes[name].get(owner, 0) + pixels
    object_of_name = {name: max(v.items(), key=lambda kv: (kv[1], -kv[0]))[0] for name, v in votes.items()}
    first: dict[int, int] = {}
    for name in sorted(object_of_name):
        first.setdefault(object_of_name[name], name)
    return {name: first[owner] for name, owner in object_of_name.items() if first[owner] != name}
