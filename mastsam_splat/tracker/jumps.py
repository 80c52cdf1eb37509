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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from mastsam_splat.errors import check_fraction
from mastsam_splat.tracker.anchor import AnchorEvidence
from mastsam_splat.tracker.memory import voxel_coords, voxel_keys
from mastsam_splat.tracker.points3d import FramePoints, labels_at


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

    def __post_init__(self) -> None:
        check_fraction(self.min_strength, "tracker.jumps.min-strength")


def evidence_strength(evidence: AnchorEvidence, obj_id: int, points: np.ndarray) -> float:
    """Mean count of ``obj_id`` in the voxels of ``points`` [N, 3] (0 where it has none), over its median count."""
    return _strength(evidence.pairs(), obj_id, voxel_keys(voxel_coords(points, evidence.voxel_size)))


def _strength(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], obj_id: int, point_keys: np.ndarray) -> float:
    """:func:`evidence_strength` from the evidence's ``(keys, ids, counts)`` rows and the points' voxel keys."""
    keys, ids, counts = pairs
    own = ids == obj_id
    if not own.any() or len(point_keys) == 0:
        return 0.0
    own_keys, own_counts = keys[own], counts[own]
    slot = np.minimum(np.searchsorted(own_keys, point_keys), len(own_keys) - 1)
    hit = np.where(own_keys[slot] == point_keys, own_counts[slot], 0)
    return float(hit.mean()) / max(float(np.median(own_counts)), 1.0)


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
    at = labels_at(labels, points.xy)
    on_count = np.bincount(at, minlength=max(candidates) + 1)
    candidates = [i for i in candidates if on_count[i] >= config.min_points]
    if not candidates:
        return labels, []
    pairs = evidence.pairs()
    point_keys = voxel_keys(voxel_coords(points.xyz, evidence.voxel_size))
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
