"""All metrics of a predicted label-map sequence in one call, with or without ground truth."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from mastsam_splat.geometry.reprojection import dense_correspondences
from mastsam_splat.metrics.consistency import Correspondences, consistency_scores
from mastsam_splat.metrics.granularity import Granularity, granularity
from mastsam_splat.metrics.ground_truth import consistent_miou, id_switches, overlap_table, per_view_miou
from mastsam_splat.types import Frame


@dataclass
class MetricsConfig:
    """How view pairs are chosen and how id switches are counted."""

    pair_gaps: tuple[int, ...] = (1, 2, 4)
    """View pairs (i, i + gap) for each gap: 1 pairs consecutive frames, larger gaps test wider baselines."""
    correspondence_step: int = 2
    """Depth-based correspondences start from every step-th pixel (in x and y) of the first view."""
    depth_tolerance: Optional[float] = None
    """Relative depth disagreement treated as occlusion by the depth-based correspondences (unset: 0.02)."""
    id_switch_min_iou: float = 0.5
    """A ground-truth id's best predicted id counts for id switches only at this IoU or above."""
    id_switch_min_area: int = 64
    """A ground-truth id counts for id switches only in views where it covers this many pixels."""


def view_pairs(num_views: int, gaps: Sequence[int] = (1, 2, 4)) -> list[tuple[int, int]]:
    """Pairs ``(i, i + gap)`` for every valid ``i`` and every positive gap, sorted."""
    if any(int(g) < 1 for g in gaps):
        raise ValueError(f"view pair gaps must be positive, got {tuple(gaps)}")
    return sorted({(i, i + int(g)) for g in gaps for i in range(num_views - int(g))})


def geometric_correspondences(
    frames: Sequence[Frame],
    pairs: Sequence[tuple[int, int]],
    step: int = 2,
    depth_tolerance: Optional[float] = None,
) -> list[Correspondences]:
    """Correspondences of each view pair from the frames' depth maps and cameras (visible in both views)."""

    kwargs: dict[str, Any] = {"step": step}
    if depth_tolerance is not None:
        kwargs["depth_tolerance"] = depth_tolerance
    out = []
    for a, b in pairs:
        xy_a, xy_b = dense_correspondences(frames[a], frames[b], **kwargs)
        out.append(Correspondences(a=a, b=b, xy_a=xy_a, xy_b=xy_b))
    return out


@dataclass
class EvalResult:
    """Every metric of one evaluation; ``None`` where the inputs do not allow it (no ground truth,
    no correspondences). See ``consistency``, ``ground_truth`` and ``granularity`` for definitions."""

    coverage: Optional[float] = None
    idc: Optional[float] = None
    psc: Optional[float] = None
    per_view_miou: Optional[float] = None
    consistent_miou: Optional[float] = None
    id_switches: Optional[int] = None
    segments_per_frame: Optional[float] = None
    mean_segment_area: Optional[float] = None
    gt_segments_per_frame: Optional[float] = None
    gt_mean_segment_area: Optional[float] = None
    num_frames: int = 0
    num_view_pairs: int = 0
    num_correspondences: int = 0
    per_frame_miou: list[Optional[float]] = field(default_factory=list)
    """Per-view mIoU of each frame (``None`` where the frame has no ground-truth id)."""
    consistent_matching: dict[int, int] = field(default_factory=dict)
    """Ground-truth id -> predicted id of the matching shared by all views."""
    id_switches_per_object: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (snake_case keys; ``nan`` becomes ``None``, dict keys become strings)."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    return value


def _optional(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)


def evaluate(
    pred_maps: Sequence[np.ndarray],
    gt_maps: Optional[Sequence[np.ndarray]] = None,
    correspondences: Optional[Sequence[Correspondences]] = None,
    config: Optional[MetricsConfig] = None,
) -> EvalResult:
    """Score a sequence of predicted label maps [H, W].

    Consistency (coverage, IDC, PSC) needs ``correspondences``; with ``gt_maps`` it is measured
    over the correspondences the ground truth confirms. Ground-truth scores (per-view and
    consistent mIoU, id switches) need ``gt_maps``. Granularity is always reported.
    """
    config = config or MetricsConfig()
    pred_maps = list(pred_maps)
    gt_list = None if gt_maps is None else list(gt_maps)
    result = EvalResult(num_frames=len(pred_maps))
    if gt_list is None:
        grain = granularity(pred_maps)
    else:
        table = overlap_table(pred_maps, gt_list)
        per_view = per_view_miou(table)
        consistent = consistent_miou(table)
        switches = id_switches(table, min_iou=config.id_switch_min_iou, min_gt_area=config.id_switch_min_area)
        grain = Granularity.from_areas(table.pred_area)
        gt_grain = Granularity.from_areas(table.gt_area)
        result.per_view_miou = _optional(per_view.miou)
        result.consistent_miou = _optional(consistent.miou)
        result.id_switches = switches.total
        result.gt_segments_per_frame = _optional(gt_grain.segments_per_frame)
        result.gt_mean_segment_area = _optional(gt_grain.mean_segment_area)
        result.per_frame_miou = [_optional(v) for v in per_view.per_view]
        result.consistent_matching = consistent.matching
        result.id_switches_per_object = switches.per_object
    result.segments_per_frame = _optional(grain.segments_per_frame)
    result.mean_segment_area = _optional(grain.mean_segment_area)
    if correspondences is not None:
        scores = consistency_scores(pred_maps, correspondences, gt_maps=gt_list)
        result.coverage = _optional(scores.coverage)
        result.idc = _optional(scores.idc)
        result.psc = _optional(scores.psc)
        result.num_view_pairs = scores.num_view_pairs
        result.num_correspondences = scores.num_correspondences
    return result
