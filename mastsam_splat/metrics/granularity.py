"""Granularity of a segmentation: coarser label maps are trivially more consistent, so
consistency is always reported next to how many segments there are and how big they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mastsam_splat.metrics.tables import compact_labels, count_tuples


@dataclass
class Granularity:
    """``segments_per_frame``: mean over views of the number of ids > 0 present.
    ``mean_segment_area``: mean pixel area over all (view, id > 0) segments (``nan`` without any)."""

    segments_per_frame: float
    mean_segment_area: float

    @classmethod
    def from_areas(cls, areas: np.ndarray) -> "Granularity":
        """From per-view pixel areas of each id, [V, n + 1] (column 0 is "no object")."""
        if areas.shape[0] == 0:
            return cls(float("nan"), float("nan"))
        segments = areas[:, 1:][areas[:, 1:] > 0]
        return cls(
            segments_per_frame=float(segments.size) / areas.shape[0],
            mean_segment_area=float(segments.mean()) if segments.size else float("nan"),
        )


def granularity(label_maps: Sequence[np.ndarray]) -> Granularity:
    """Segment count and size statistics of a sequence of label maps."""
    if not label_maps:
        return Granularity(float("nan"), float("nan"))
    ids, compact = compact_labels(label_maps)
    views = np.repeat(np.arange(len(compact)), [m.size for m in compact])
    num_ids = len(ids) + 1
    (view, label), counts = count_tuples((views, np.concatenate([m.ravel() for m in compact])), (len(compact), num_ids))
    areas = np.bincount(view * num_ids + label, weights=counts, minlength=len(compact) * num_ids)
    return Granularity.from_areas(areas.reshape(len(compact), num_ids))


def largest_segment_share(label_maps: Sequence[np.ndarray]) -> float:
    """Mean over views of the largest segment's (id > 0) share of the image: near 1 when one segment
    swallows the view, which consistency scores alone would reward (``nan`` without views)."""
    shares = []
    for labels in label_maps:
        counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
        shares.append(float(counts[1:].max()) / labels.size if len(counts) > 1 and labels.size else 0.0)
    return float(np.mean(shares)) if shares else float("nan")
