"""The labelled point cloud: 3D points gathered over the sequence, labelled from the label images.

Each point takes the colour of its source pixel and the id of that pixel in the frame's label
image. The cloud is thinned with a voxel grid: one point per voxel at the mean position and
colour of its points, with the id most of them carry.

Memory stays bounded over long sequences: once more than ``compact_points`` raw points are held,
they are summarised (in batches of ``batch_points``, and from then on every ``batch_points`` new points) per fine voxel (``fine_fraction`` of the robust extent of the points so far,
half the default output voxel): summed position and colour, point count, and point count per id
(about 80 bytes per fine voxel against 19 per raw point). The summary grows with the surface the
scene covers, not with the number of frames that see it. The output voxels are then formed from
the fine voxels' centroids, weighted by their point counts. A summary of more than ``max_voxels``
fine voxels (a very long sequence, whose noisy depth keeps reaching new fine voxels) doubles its
voxel: each new voxel is exactly the union of the 8 it covers (points added later fall in the
voxel their fine voxel went to), which bounds its memory; below the cap the cloud is unchanged.

Ids merged while points are held are not written into every raw point: each merge is composed into
the id lookup table of the batches of points added since the previous merge (``MergeTables``), and
the points' ids are mapped when they are read or summarised.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mastsam_splat.tracker.label_store import MergeTables
from mastsam_splat.tracker.memory import _BITS, _OFFSET, voxel_coords, voxel_keys
from mastsam_splat.tracker.points3d import FramePoints, colours_at, point_labels

COMPACT_POINTS = 2_000_000
"""Raw points held before they are summarised into fine voxels (below it the cloud is exact)."""
BATCH_POINTS = 500_000
"""Raw points folded into the summary at once (bounds the memory the folding itself takes)."""
KEY_CHUNK = 262_144
"""Points turned into voxel keys at once (the float64 temporaries of a whole cloud would dwarf the cloud)."""
FINE_FRACTION = 0.001
"""Fine voxel of the summary, as a fraction of the robust extent of the points when it is first built."""
MAX_VOXELS = 200_000
"""Fine voxels the summary holds at most (about 48 bytes each, plus their (voxel, id) pairs: some 12 MB, and a few
times that while a batch is folded in) before its voxel doubles."""


class _Summary:
    """Points summarised per fine voxel: sorted keys [V], counts [V], xyz and rgb sums [V, 3], and the point count
    of every (voxel, id) pair (``pair_voxel`` [P] index into the voxels, ``pair_ids`` [P], ``pair_counts`` [P]).

    Counts and colour sums are integers and are stored as such (uint32: exact up to 2**32 points, and 2**24 points
    of one fine voxel for the colours), 48 bytes per voxel; they are read as float64, which holds them exactly, so
    every mean is the one float64 sums would give."""

    def __init__(self, size: float) -> None:
        self.size = size
        self.keys = np.zeros(0, dtype=np.int64)
        self.counts = np.zeros(0, dtype=np.uint32)
        self.xyz_sum = np.zeros((0, 3), dtype=np.float64)
        self.rgb_sum = np.zeros((0, 3), dtype=np.uint32)
        self.pair_voxel = np.zeros(0, dtype=np.int32)
        self.pair_ids = np.zeros(0, dtype=np.int32)
        self.pair_counts = np.zeros(0, dtype=np.int32)

    def add(self, xyz: np.ndarray, rgb: np.ndarray, ids: np.ndarray) -> None:
        """Fold raw points into the summary: the batch is summed per voxel first, then merged in place (no
        re-sort of the summary's voxels)."""
        batch_keys, voxel = np.unique(point_keys(xyz, self.size), return_inverse=True)
        b = len(batch_keys)
        counts = np.bincount(voxel, minlength=b).astype(np.uint32)
        xyz_sum = np.stack([np.bincount(voxel, xyz[:, c].astype(np.float64), b) for c in range(3)], 1)
        rgb_sum = np.stack([np.bincount(voxel, rgb[:, c].astype(np.float64), b) for c in range(3)], 1).astype(np.uint32)
        slot = np.searchsorted(self.keys, batch_keys)
        held = np.zeros(b, dtype=bool)
        if len(self.keys):
            held = self.keys[np.minimum(slot, len(self.keys) - 1)] == batch_keys
        self.counts[slot[held]] += counts[held]
        self.xyz_sum[slot[held]] += xyz_sum[held]
        self.rgb_sum[slot[held]] += rgb_sum[held]
        inserted = slot[~held]  # ascending: the batch keys are sorted
        self.keys = np.insert(self.keys, inserted, batch_keys[~held])
        self.counts = np.insert(self.counts, inserted, counts[~held])
        self.xyz_sum = np.insert(self.xyz_sum, inserted, xyz_sum[~held], axis=0)
        self.rgb_sum = np.insert(self.rgb_sum, inserted, rgb_sum[~held], axis=0)
        # Earlier voxels moved up by the number of voxels inserted at or before them.
        moved = self.pair_voxel + np.searchsorted(inserted, self.pair_voxel, side="right")
        where = np.searchsorted(self.keys, batch_keys)  # each batch voxel's index now
        self.pair_voxel, self.pair_ids, self.pair_counts = union_pairs(
            moved, self.pair_ids, self.pair_counts, where[voxel], ids, np.ones(len(voxel), dtype=np.int64)
        )

    def coarsen(self) -> None:
        """Double the voxel size: every voxel of the new grid is the union of the (up to 8) voxels it covers, their
        counts, sums and (voxel, id) pair counts added, as if the points had been summarised at that size."""
        mask = (1 << _BITS) - 1
        half = _OFFSET >> 1  # a coordinate c stored as c + _OFFSET becomes floor(c / 2) + _OFFSET
        keys = np.zeros(len(self.keys), dtype=np.int64)
        for shift in (2 * _BITS, _BITS, 0):
            keys |= ((((self.keys >> shift) & mask) >> 1) + half) << shift
        inverse = _group_index(keys)
        v = int(inverse.max()) + 1 if len(inverse) else 0
        self.keys = np.zeros(v, dtype=np.int64)
        self.keys[inverse] = keys
        del keys
        self.counts = np.bincount(inverse, self.counts, v).astype(np.uint32)
        self.xyz_sum = np.stack([np.bincount(inverse, self.xyz_sum[:, c], v) for c in range(3)], 1)
        self.rgb_sum = np.stack([np.bincount(inverse, self.rgb_sum[:, c], v) for c in range(3)], 1).astype(np.uint32)
        if len(self.pair_ids):
            scale = int(self.pair_ids.max()) + 1
            codes, counts = summed_codes(inverse[self.pair_voxel] * scale + self.pair_ids, self.pair_counts)
            self.pair_voxel, self.pair_ids = (codes // scale).astype(np.int32), (codes % scale).astype(np.int32)
            self.pair_counts = counts.astype(np.int32)
        self.size *= 2

    def relabel(self, lut: np.ndarray) -> None:
        """Map the pairs' ids; pairs that now name the same (voxel, id) are summed."""
        ids = lut[self.pair_ids].astype(np.int32)
        changed = ids != self.pair_ids
        if not changed.any():
            self.pair_ids = ids
            return
        keep = ~changed
        self.pair_voxel, self.pair_ids, self.pair_counts = union_pairs(
            self.pair_voxel[keep], self.pair_ids[keep], self.pair_counts[keep],
            self.pair_voxel[changed], ids[changed], self.pair_counts[changed],
        )

    def centroids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean xyz [V, 3] float32, mean colour [V, 3] uint8, majority id [V] int32 of every fine voxel."""
        xyz = self.xyz_sum / self.counts[:, None]
        rgb = self.rgb_sum / self.counts[:, None]
        return xyz.astype(np.float32), np.clip(np.round(rgb), 0, 255).astype(np.uint8), self.majority(self.pair_voxel)

    def majority(self, pair_group: np.ndarray, groups: Optional[int] = None) -> np.ndarray:
        """The id with the most points in each group of pairs (ties: the smaller id) [groups] int32."""
        groups = len(self.keys) if groups is None else groups
        out = np.zeros(groups, dtype=np.int32)
        if len(pair_group) == 0:
            return out
        scale = int(self.pair_ids.max()) + 1
        codes, counts = summed_codes(pair_group.astype(np.int64) * scale + self.pair_ids, self.pair_counts)
        group, ids = codes // scale, codes % scale
        order = np.lexsort((ids, -counts, group))
        first = order[np.r_[True, group[order][1:] != group[order][:-1]]]
        out[group[first]] = ids[first]
        return out

    def downsampled(self, voxel_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One point per output voxel of ``voxel_size``, from the fine voxels' centroids weighted by their counts."""
        inverse = _group_index(point_keys(self.xyz_sum / self.counts[:, None], voxel_size))
        v = int(inverse.max()) + 1
        count = np.bincount(inverse, self.counts, v)
        out_xyz = np.stack([np.bincount(inverse, self.xyz_sum[:, c], v) for c in range(3)], 1) / count[:, None]
        out_rgb = np.stack([np.bincount(inverse, self.rgb_sum[:, c], v) for c in range(3)], 1) / count[:, None]
        out_ids = self.majority(inverse[self.pair_voxel], v)
        return out_xyz.astype(np.float32), np.clip(np.round(out_rgb), 0, 255).astype(np.uint8), out_ids

    def weighted_extent_voxel_size(self, fraction: float) -> Optional[float]:
        """``fraction`` of the robust extent (2nd-98th percentile box diagonal) of the summarised points."""
        centres = self.xyz_sum / self.counts[:, None]
        if self.counts.sum() < 10:
            return None
        lo, hi = np.zeros(3), np.zeros(3)
        for c in range(3):
            order = np.argsort(centres[:, c], kind="stable")
            cdf = np.cumsum(self.counts[order]) / self.counts.sum()
            lo[c] = centres[order[min(np.searchsorted(cdf, 0.02), len(order) - 1)], c]
            hi[c] = centres[order[min(np.searchsorted(cdf, 0.98), len(order) - 1)], c]
        extent = float(np.linalg.norm(hi - lo))
        return extent * fraction if extent > 0 else None


class LabelledPointCloud:
    """Accumulates labelled, coloured 3D points frame by frame (bounded memory, see the module docstring)."""

    def __init__(
        self,
        compact_points: int = COMPACT_POINTS,
        fine_fraction: float = FINE_FRACTION,
        batch_points: int = BATCH_POINTS,
        max_voxels: int = MAX_VOXELS,
    ) -> None:
        if max_voxels < 1:
            raise ValueError(f"max_voxels must be at least 1, got {max_voxels}")
        self.compact_points = int(compact_points)
        self.max_voxels = int(max_voxels)
        self.batch_points = int(batch_points)
        self.fine_fraction = float(fine_fraction)
        self._xyz: list[np.ndarray] = []
        self._rgb: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []
        self._groups: list[int] = []
        """The merge group of every batch of ids (see ``MergeTables``)."""
        self._tables = MergeTables(np.int32)
        self._raw = 0
        self._summary: Optional[_Summary] = None

    def add(self, points: FramePoints, image: np.ndarray, labels: np.ndarray) -> None:
        """Add a frame's points with colours from ``image`` [H, W, 3] and ids from ``labels`` [H, W]."""
        if len(points) == 0:
            return
        self._xyz.append(points.xyz.astype(np.float32))
        self._rgb.append(colours_at(image, points.xy).astype(np.uint8))
        self._ids.append(point_labels(labels, points).astype(np.int32))
        self._groups.append(self._tables.join())
        self._raw += len(points)
        if self._raw > (self.batch_points if self._summary is not None else self.compact_points):
            self._compact()

    def __len__(self) -> int:
        """Points added so far (raw and summarised)."""
        summarised = int(round(self._summary.counts.sum())) if self._summary is not None else 0
        return self._raw + summarised

    @property
    def summarised(self) -> bool:
        """Whether points have been summarised into fine voxels."""
        return self._summary is not None

    def relabel(self, lut: np.ndarray) -> None:
        """Map every point's id through ``lut`` (ids merged after the points were added)."""
        self._tables.relabel(lut)
        if self._summary is not None:
            self._summary.relabel(lut)

    def _current_ids(self, count: int) -> list[np.ndarray]:
        """The ids of the first ``count`` batches, mapped through the merges since they were added."""
        return [self._tables.apply(g, ids) for g, ids in zip(self._groups[:count], self._ids[:count])]

    def _raw_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._xyz:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.int32)
        return np.concatenate(self._xyz), np.concatenate(self._rgb), np.concatenate(self._current_ids(len(self._ids)))

    def _compact(self) -> None:
        """Fold the raw points into the fine-voxel summary."""
        if self._summary is None:
            step = -(-self._raw // self.batch_points)  # the extent from an even sample of at most a batch of points
            size = extent_voxel_size(np.concatenate([xyz[::step] for xyz in self._xyz]), self.fine_fraction)
            if size is None:
                return
            self._summary = _Summary(size)
        while self._xyz:
            count, taken = 0, 0
            while taken < len(self._xyz) and (taken == 0 or count + len(self._xyz[taken]) <= self.batch_points):
                count += len(self._xyz[taken])
                taken += 1
            xyz, rgb, ids = (np.concatenate(part) for part in (self._xyz[:taken], self._rgb[:taken], self._current_ids(taken)))
            for group in self._groups[:taken]:
                self._tables.leave(group)
            del self._xyz[:taken], self._rgb[:taken], self._ids[:taken], self._groups[:taken]
            finite = np.isfinite(xyz).all(axis=1)
            if finite.any():
                self._summary.add(xyz[finite], rgb[finite], ids[finite])
            while len(self._summary.keys) > self.max_voxels:
                self._summary.coarsen()
        self._raw = 0

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points so far: xyz [N, 3] float32, rgb [N, 3] uint8, ids [N] int32 (once summarised: one point per
        fine voxel, then the raw points added since)."""
        raw = self._raw_arrays()
        if self._summary is None:
            return raw
        fine = self._summary.centroids()
        return tuple(np.concatenate([f, r]) for f, r in zip(fine, raw))  # type: ignore[return-value]

    def downsampled(self, voxel_fraction: float, voxel_size: Optional[float] = None):
        """Voxel-grid thinning; the voxel is ``voxel_size`` or ``voxel_fraction`` of the cloud's extent."""
        if self._summary is None:
            xyz, rgb, ids = self.arrays()
            size = voxel_size if voxel_size else extent_voxel_size(xyz, voxel_fraction)
            if size is None or len(xyz) == 0:
                return xyz, rgb, ids
            return voxel_downsample(xyz, rgb, ids, size)
        self._compact()
        summary = self._summary
        size = voxel_size if voxel_size else summary.weighted_extent_voxel_size(voxel_fraction)
        if size is None:
            return summary.centroids()
        return summary.downsampled(size)


def point_keys(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """``voxel_keys(voxel_coords(xyz, voxel_size))`` [N], computed ``KEY_CHUNK`` points at a time."""
    if len(xyz) <= KEY_CHUNK:
        return voxel_keys(voxel_coords(xyz, voxel_size))
    return np.concatenate([voxel_keys(voxel_coords(xyz[i : i + KEY_CHUNK], voxel_size)) for i in range(0, len(xyz), KEY_CHUNK)])


def _group_index(keys: np.ndarray) -> np.ndarray:
    """The index of each key [N] among the sorted unique keys (``np.unique``'s inverse, with fewer temporaries)."""
    order = np.argsort(keys)
    keys = keys[order]
    first = np.empty(len(keys), dtype=bool)
    first[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    del keys
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return inverse


def summed_codes(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``codes`` [N] int64 and the sum of ``counts`` [N] over each (int64); ``np.unique`` with an
    inverse and ``np.bincount`` give the same, with about twice the temporary memory."""
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]]) if len(codes) else np.zeros(0, dtype=np.int64)
    summed = np.add.reduceat(counts[order].astype(np.int64), starts) if len(codes) else np.zeros(0, dtype=np.int64)
    return codes[starts], summed


def union_pairs(
    voxel: np.ndarray,
    ids: np.ndarray,
    counts: np.ndarray,
    extra_voxel: np.ndarray,
    extra_ids: np.ndarray,
    extra_counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique (voxel, id) pairs with summed counts (each [P] int32) of the sorted unique pairs
    ``voxel, ids, counts`` and the ``extra`` pairs (any order, repeated).

    The extra pairs are summed and sorted on their own, then merged in place by binary search, so the held pairs
    are not sorted again (their temporary memory is a few copies of the held pairs, not of a sort over all).
    """
    top = max(int(ids.max()) if len(ids) else 0, int(extra_ids.max()) if len(extra_ids) else 0)
    scale = top + 1
    extra, extra_sum = summed_codes(extra_voxel.astype(np.int64) * scale + extra_ids, extra_counts)
    codes = voxel.astype(np.int64) * scale + ids
    slot = np.searchsorted(codes, extra)
    found = slot < len(codes)
    found[found] = codes[slot[found]] == extra[found]
    summed = counts.astype(np.int64)
    summed[slot[found]] += extra_sum[found]
    codes = np.insert(codes, slot[~found], extra[~found])
    summed = np.insert(summed, slot[~found], extra_sum[~found])
    return (codes // scale).astype(np.int32), (codes % scale).astype(np.int32), summed.astype(np.int32)


def extent_voxel_size(points: np.ndarray, fraction: float) -> Optional[float]:
    """``fraction`` of the robust extent (2nd-98th percentile box diagonal) of ``points`` [N, 3]."""
    points = np.asarray(points).reshape(-1, 3)
    finite = np.isfinite(points).all(axis=1)
    if np.count_nonzero(finite) < 10:
        return None
    every = bool(finite.all())
    lo, hi = np.zeros(3), np.zeros(3)
    for c in range(3):  # one float64 column at a time
        column = points[:, c].astype(np.float64) if every else points[finite, c].astype(np.float64)
        lo[c], hi[c] = np.percentile(column, [2, 98])
    extent = float(np.linalg.norm(hi - lo))
    return extent * fraction if extent > 0 else None


def voxel_downsample(
    xyz: np.ndarray, rgb: np.ndarray, ids: np.ndarray, voxel_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One point per occupied voxel: mean xyz [V, 3], mean colour [V, 3], majority id [V]."""
    inverse = _group_index(point_keys(xyz, voxel_size))
    v = int(inverse.max()) + 1 if len(inverse) else 0
    count = np.bincount(inverse, minlength=v).astype(np.float64)
    out_xyz = np.stack([np.bincount(inverse, xyz[:, c].astype(np.float64), v) for c in range(3)], 1) / count[:, None]
    out_rgb = np.stack([np.bincount(inverse, rgb[:, c].astype(np.float64), v) for c in range(3)], 1) / count[:, None]
    # Majority id per voxel: count (voxel, id) pairs, keep the most frequent id of each voxel.
    id_values = np.unique(ids)
    pair = inverse * len(id_values) + np.searchsorted(id_values, ids)
    del inverse
    pair_keys, pair_count = np.unique(pair, return_counts=True)
    pair_voxel = pair_keys // len(id_values)
    order = np.lexsort((-pair_count, pair_voxel))
    first = np.r_[True, pair_voxel[order][1:] != pair_voxel[order][:-1]]
    best = order[first]
    out_ids = np.zeros(v, dtype=np.int32)
    out_ids[pair_voxel[best]] = id_values[pair_keys[best] % len(id_values)]
    return out_xyz.astype(np.float32), np.clip(np.round(out_rgb), 0, 255).astype(np.uint8), out_ids

