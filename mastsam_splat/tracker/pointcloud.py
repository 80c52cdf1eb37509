"""The labelled point cloud: 3D points gathered over the sequence, labelled from the label images.

Each point takes the colour of its source pixel and the id of that pixel in the frame's label
image. The cloud is thinned with a voxel grid: one point per voxel at the mean position and
colour of its points, with the id most of them carry.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from mastsam_splat.tracker.memory import voxel_coords, voxel_keys
from mastsam_splat.tracker.points3d import FramePoints, colours_at, labels_at


class LabelledPointCloud:
    """Accumulates labelled, coloured 3D points frame by frame."""

    def __init__(self) -> None:
        self._xyz: list[np.ndarray] = []
        self._rgb: list[np.ndarray] = []
        self._ids: list[np.ndarray] = []

    def add(self, points: FramePoints, image: np.ndarray, labels: np.ndarray) -> None:
        """Add a frame's points with colours from ``image`` [H, W, 3] and ids from ``labels`` [H, W]."""
        if len(points) == 0:
            return
        self._xyz.append(points.xyz.astype(np.float32))
        self._rgb.append(colours_at(image, points.xy).astype(np.uint8))
        self._ids.append(labels_at(labels, points.xy).astype(np.int32))

    def __len__(self) -> int:
        return int(sum(len(x) for x in self._xyz))

    def relabel(self, lut: np.ndarray) -> None:
        """Map every point's id through ``lut`` (ids merged after the points were added)."""
        self._ids = [lut[ids].astype(np.int32) for ids in self._ids]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All points so far: xyz [N, 3] float32, rgb [N, 3] uint8, ids [N] int32."""
        if not self._xyz:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), np.zeros(0, np.int32)
        return np.concatenate(self._xyz), np.concatenate(self._rgb), np.concatenate(self._ids)

    def downsampled(self, voxel_fraction: float, voxel_size: Optional[float] = None):
        """Voxel-grid thinning; the voxel is ``voxel_size`` or ``voxel_fraction`` of the cloud's extent."""
        xyz, rgb, ids = self.arrays()
        size = voxel_size if voxel_size else extent_voxel_size(xyz, voxel_fraction)
        if size is None or len(xyz) == 0:
            return xyz, rgb, ids
        return voxel_downsample(xyz, rgb, ids, size)


def extent_voxel_size(points: np.ndarray, fraction: float) -> Optional[float]:
    """``fraction`` of the robust extent (2nd-98th percentile box diagonal) of ``points`` [N, 3]."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) < 10:
        return None
    lo, hi = np.percentile(points, [2, 98], axis=0)
    extent = float(np.linalg.norm(hi - lo))
    return extent * fraction if extent > 0 else None


def voxel_downsample(
    xyz: np.ndarray, rgb: np.ndarray, ids: np.ndarray, voxel_size: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One point per occupied voxel: mean xyz [V, 3], mean colour [V, 3], majority id [V]."""
    keys = voxel_keys(voxel_coords(xyz, voxel_size))
    uniq, inverse = np.unique(keys, return_inverse=True)
    v = len(uniq)
    count = np.bincount(inverse, minlength=v).astype(np.float64)
    out_xyz = np.stack([np.bincount(inverse, xyz[:, c].astype(np.float64), v) for c in range(3)], 1) / count[:, None]
    out_rgb = np.stack([np.bincount(inverse, rgb[:, c].astype(np.float64), v) for c in range(3)], 1) / count[:, None]
    # Majority id per voxel: count (voxel, id) pairs, keep the most frequent id of each voxel.
    id_values, id_index = np.unique(ids, return_inverse=True)
    pair = inverse.astype(np.int64) * len(id_values) + id_index
    pair_keys, pair_count = np.unique(pair, return_counts=True)
    pair_voxel = pair_keys // len(id_values)
    order = np.lexsort((-pair_count, pair_voxel))
    first = np.r_[True, pair_voxel[order][1:] != pair_voxel[order][:-1]]
    best = order[first]
    out_ids = np.zeros(v, dtype=np.int32)
    out_ids[pair_voxel[best]] = id_values[pair_keys[best] % len(id_values)]
    return out_xyz.astype(np.float32), np.clip(np.round(out_rgb), 0, 255).astype(np.uint8), out_ids

