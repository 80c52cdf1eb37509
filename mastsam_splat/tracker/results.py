"""What a tracker run gives back: per-frame reports and the result of the whole sequence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from mastsam_splat.io.labels import map_ids


@dataclass
class FrameReport:
    """What happened in one frame."""

    index: int
    name: str
    parent: Optional[int] = None
    """The already-visited frame this one was matched with (``None`` for the first visited frame)."""
    num_ids: int = 0
    tracked: int = 0
    """Ids carried over from the previous frame."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Ids dropped in this frame, by reason."""
    merged: int = 0
    new: int = 0
    reidentified: int = 0
    """New regions given an earlier id by the 3D memory."""
    jumped: int = 0
    """Ids brought back onto 3D points they had barely seen, given a new id."""
    extended: int = 0
    """New regions added to an id already present (recognised by the memory)."""
    filled_pixels: int = 0
    corrected: int = 0
    """Automatic segments given back to the id whose 3D voxels they lie in."""
    assigned_segments: int = 0
    """Automatic segments given to the id their correspondence votes agree on."""
    released_segments: int = 0
    """Automatic segments released as new content."""
    carry_agreement: float = 1.0
    """Fraction of the correspondences the carried label image, checked leave-one-out, gives their own id."""
    unsupported_carried: int = 0
    """Ids left out of the carried label image: too few correspondences of their own in an incoherent pair."""
    carried_pixels: int = 0
    """Pixels given back to the id the previous frame's partition carries onto them (a segment merging tracked
    regions)."""
    anchored_segments: int = 0
    """Automatic segments given to the id their 3D evidence votes agree on."""
    overruled_segments: int = 0
    """Of those, segments the propagation chain had given another id."""
    split_segments: int = 0
    """Automatic segments split between the ids their 3D evidence names."""
    refined: int = 0
    """Ids split into the pieces the automatic segments keep cutting them into."""
    num_matches: int = 0
    num_points3d: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time per stage (``prepare``: the wait for the frame's automatic segmentation, most of which may have run
    ahead meanwhile)."""
    segment_seconds: float = 0.0
    """Time the frame's automatic segmentation took, in the worker when it ran ahead."""

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


@dataclass
class TrackResult:
    """Label images of every frame, with per-frame reports and the labelled point cloud."""

    labels: Sequence[np.ndarray]
    """[H, W] uint16 label image per frame (a tracker run gives a read-only sequence that decompresses each image
    when it is accessed)."""
    reports: list[FrameReport]
    points_source: str
    cloud_xyz: np.ndarray
    """[N, 3] float32."""
    cloud_rgb: np.ndarray
    """[N, 3] uint8."""
    cloud_ids: np.ndarray
    """[N] int32."""
    notes: list[str] = field(default_factory=list)
    object_of: dict[int, int] = field(default_factory=dict)
    """Object level above the ids: id -> the object id it belongs to (its object's oldest id), for every id grouped
    under an older one (``hierarchy``); an id absent from the map is its own object."""
    finish_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds of each step after the sequence (consolidation, the object map, the naming after 3D parts...)."""

    def object_labels(self) -> list[np.ndarray]:
        """Label images at object level: every id replaced by its object id."""
        return map_ids(self.labels, self.object_of)

    def timing(self) -> dict[str, float]:
        """Total and per-stage seconds of the frames, the median per frame, the steps after the sequence
        (``finish_*``), and the automatic segmentation's own time (``segmentation_s``, also when it ran ahead)."""
        stages: dict[str, float] = {}
        for r in self.reports:
            for k, v in r.seconds.items():
                stages[k] = stages.get(k, 0.0) + v
        per_frame = [r.total_seconds for r in self.reports]
        return {
            "total_s": float(sum(per_frame)),
            "median_frame_s": float(np.median(per_frame)) if per_frame else 0.0,
            **{f"{k}_s": v for k, v in sorted(stages.items())},
            **{f"finish_{k}_s": v for k, v in sorted(self.finish_seconds.items())},
            "segmentation_s": float(sum(r.segment_seconds for r in self.reports)),
        }
