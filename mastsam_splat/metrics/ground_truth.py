"""Scores of predicted label maps against ground-truth label maps of the same views.

Definitions (``IoU_v(g, p)`` is the intersection over union of ground-truth id ``g`` and
predicted id ``p`` in view ``v``, counted in pixels; id 0 is "no object" on both sides and is
never matched, but predicted pixels over ground-truth 0 still enlarge a predicted id's area):

- per-view mIoU: in each view ``v`` holding ``n_v > 0`` ground-truth ids, match that view's
  ground-truth ids one-to-one to its predicted ids (Hungarian, maximising the summed IoU);
  ``mIoU_v`` is the mean over those ``n_v`` ground-truth ids of the IoU with their match, an
  unmatched id counting 0. ``per_view_miou`` is the mean of ``mIoU_v`` over those views.
- consistent mIoU: the same average, but with one matching ``m`` of ground-truth ids to
  predicted ids shared by all views, chosen to maximise it (Hungarian on
  ``S[g, p] = sum_v IoU_v(g, p) / n_v``). A predicted id that covers one object in some views
  and another object in others can match only one of them, so it is penalised. Because a
  single matching is one admissible choice per view, ``consistent_miou <= per_view_miou``.
- id switches: for each ground-truth id, walk the views in sequence order, keeping the views
  where the id covers at least ``min_gt_area`` pixels and its best-matching predicted id
  (highest IoU, ties to the smaller id) reaches ``min_iou``; every change of that best id
  between consecutive kept views is one switch. Views where the object is hidden, too small
  or unmatched are skipped, so losing and regaining the same id is not a switch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from mastsam_splat.metrics.tables import compact_labels, count_tuples


@dataclass
class OverlapTable:
    """Pixel overlaps of ground-truth and predicted ids in every view (sparse).

    Compact ids: ground-truth id ``g >= 1`` is ``gt_ids[g - 1]``, predicted id ``p >= 1`` is
    ``pred_ids[p - 1]``; 0 is "no object".
    """

    view: np.ndarray
    """[K] view of each overlapping (ground-truth id, predicted id) entry, both ids > 0."""
    gt: np.ndarray
    """[K] compact ground-truth id."""
    pred: np.ndarray
    """[K] compact predicted id."""
    intersection: np.ndarray
    """[K] pixels carrying both ids."""
    gt_area: np.ndarray
    """[V, nG + 1] pixels of each compact ground-truth id per view."""
    pred_area: np.ndarray
    """[V, nP + 1] pixels of each compact predicted id per view."""
    gt_ids: np.ndarray
    """[nG] original ground-truth ids."""
    pred_ids: np.ndarray
    """[nP] original predicted ids."""

    @property
    def num_views(self) -> int:
        return int(self.gt_area.shape[0])

    @property
    def iou(self) -> np.ndarray:
        """[K] IoU of each entry."""
        union = self.gt_area[self.view, self.gt] + self.pred_area[self.view, self.pred] - self.intersection
        return self.intersection / np.maximum(union, 1)

    @property
    def gt_per_view(self) -> np.ndarray:
        """[V] number of ground-truth ids present in each view."""
        return np.count_nonzero(self.gt_area[:, 1:], axis=1)


def overlap_table(pred_maps: Sequence[np.ndarray], gt_maps: Sequence[np.ndarray]) -> OverlapTable:
    """Build the overlap table of predicted and ground-truth label maps ([H, W] each, same shapes per view)."""
    if len(pred_maps) != len(gt_maps):
        raise ValueError(f"{len(pred_maps)} predicted label maps but {len(gt_maps)} ground-truth maps")
    for v, (pred, gt) in enumerate(zip(pred_maps, gt_maps)):
        if pred.shape != gt.shape:
            raise ValueError(f"view {v}: predicted labels are {pred.shape}, ground truth is {gt.shape}")
    gt_ids, gt_c = compact_labels(gt_maps)
    pred_ids, pred_c = compact_labels(pred_maps)
    num_views, n_g, n_p = len(gt_maps), len(gt_ids) + 1, len(pred_ids) + 1
    if num_views:
        views = np.repeat(np.arange(num_views), [m.size for m in gt_maps])
        gt_all = np.concatenate([m.ravel() for m in gt_c])
        pred_all = np.concatenate([m.ravel() for m in pred_c])
    else:
        views = gt_all = pred_all = np.zeros(0, dtype=np.int64)
    (view, gt, pred), counts = count_tuples((views, gt_all, pred_all), (max(num_views, 1), n_g, n_p))
    gt_area = np.bincount(view * n_g + gt, weights=counts, minlength=num_views * n_g).reshape(num_views, n_g)
    pred_area = np.bincount(view * n_p + pred, weights=counts, minlength=num_views * n_p).reshape(num_views, n_p)
    both = (gt > 0) & (pred > 0)
    return OverlapTable(
        view=view[both],
        gt=gt[both],
        pred=pred[both],
        intersection=counts[both].astype(np.float64),
        gt_area=gt_area,
        pred_area=pred_area,
        gt_ids=gt_ids,
        pred_ids=pred_ids,
    )


def _split_by_view(table: OverlapTable) -> list[np.ndarray]:
    """Entry indices of each view."""
    order = np.argsort(table.view, kind="stable")
    bounds = np.searchsorted(table.view[order], np.arange(table.num_views + 1))
    return [order[bounds[v] : bounds[v + 1]] for v in range(table.num_views)]


@dataclass
class MIoUScores:
    """A mean IoU with its per-view values (``nan`` for views without ground-truth ids)."""

    miou: float
    per_view: np.ndarray
    matching: dict[int, int] = field(default_factory=dict)
    """Ground-truth id -> predicted id of the shared matching (consistent mIoU only)."""


def per_view_miou(table: OverlapTable) -> MIoUScores:
    """Per-view mIoU: ids matched to ground truth separately in each view (see module docstring)."""
    iou = table.iou
    n_gt = table.gt_per_view
    per_view = np.full(table.num_views, np.nan)
    for v, entries in enumerate(_split_by_view(table)):
        if n_gt[v] == 0:
            continue
        if entries.size == 0:
            per_view[v] = 0.0
            continue
        g_ids, g_inv = np.unique(table.gt[entries], return_inverse=True)
        p_ids, p_inv = np.unique(table.pred[entries], return_inverse=True)
        scores = np.zeros((len(g_ids), len(p_ids)))
        scores[g_inv, p_inv] = iou[entries]
        rows, cols = linear_sum_assignment(scores, maximize=True)
        per_view[v] = scores[rows, cols].sum() / n_gt[v]
    valid = ~np.isnan(per_view)
    return MIoUScores(miou=float(per_view[valid].mean()) if valid.any() else float("nan"), per_view=per_view)


def consistent_miou(table: OverlapTable) -> MIoUScores:
    """Consistent mIoU: one ground-truth-to-prediction matching for all views (see module docstring)."""
    n_gt = table.gt_per_view
    valid = n_gt > 0
    per_view = np.where(valid, 0.0, np.nan)
    if not valid.any():
        return MIoUScores(miou=float("nan"), per_view=per_view)
    weighted = table.iou / np.maximum(n_gt[table.view], 1)
    p_used, p_inv = np.unique(table.pred, return_inverse=True)
    n_g = len(table.gt_ids) + 1
    scores = np.bincount(table.gt * len(p_used) + p_inv, weights=weighted, minlength=n_g * len(p_used))
    scores = scores.reshape(n_g, len(p_used))
    rows, cols = linear_sum_assignment(scores, maximize=True)
    keep = scores[rows, cols] > 0
    rows, cols = rows[keep], cols[keep]
    match_of_gt = np.full(n_g, -1, dtype=np.int64)
    match_of_gt[rows] = p_used[cols]
    matched = match_of_gt[table.gt] == table.pred
    per_view += np.bincount(table.view[matched], weights=weighted[matched], minlength=table.num_views)
    matching = {int(table.gt_ids[g - 1]): int(table.pred_ids[p - 1]) for g, p in zip(rows, p_used[cols])}
    return MIoUScores(miou=float(per_view[valid].mean()), per_view=per_view, matching=matching)


@dataclass
class IdSwitches:
    """Id switches of each ground-truth id along the sequence (see module docstring)."""

    total: int
    per_object: dict[int, int]
    """Ground-truth id -> switches, for every id kept in at least one view."""
    tracked_views: int
    """Number of (ground-truth id, view) observations with a qualifying best match."""


@dataclass
class BestMatches:
    """Each ground-truth id's best-matching predicted id in every view: the rows ``id_switches`` walks, and what a
    benchmark prints to show where an id changed."""

    gt_ids: np.ndarray
    """[G] original ground-truth ids (the rows)."""
    pred: np.ndarray
    """[G, V] original id of the best-matching predicted id (highest IoU, ties to the smaller id); 0 where the
    ground-truth id is smaller than ``min_gt_area`` or no predicted id overlaps it."""
    iou: np.ndarray
    """[G, V] that match's IoU (0 where there is none)."""
    shown: np.ndarray
    """[G, V] whether the ground-truth id covers at least ``min_gt_area`` pixels of the view."""


def best_matches(table: OverlapTable, min_gt_area: int = 64) -> BestMatches:
    """The best-matching predicted id of every ground-truth id in every view (see ``BestMatches``)."""
    num_gt = len(table.gt_ids)
    shown = table.gt_area[:, 1:].T >= min_gt_area  # [G, V]
    pred = np.zeros((num_gt, table.num_views), dtype=np.int64)
    iou = np.zeros((num_gt, table.num_views))
    entry_iou = table.iou
    keep = shown[table.gt - 1, table.view] if len(table.gt) else np.zeros(0, dtype=bool)
    gt, view, compact_pred, entry_iou = table.gt[keep], table.view[keep], table.pred[keep], entry_iou[keep]
    order = np.lexsort((compact_pred, -entry_iou, view, gt))  # each (id, view)'s best entry first
    gt, view, compact_pred, entry_iou = gt[order], view[order], compact_pred[order], entry_iou[order]
    first = np.ones(len(gt), dtype=bool)
    first[1:] = (gt[1:] != gt[:-1]) | (view[1:] != view[:-1])
    pred[gt[first] - 1, view[first]] = table.pred_ids[compact_pred[first] - 1]
    iou[gt[first] - 1, view[first]] = entry_iou[first]
    return BestMatches(gt_ids=table.gt_ids, pred=pred, iou=iou, shown=shown)


def id_switches(table: OverlapTable, min_iou: float = 0.5, min_gt_area: int = 64) -> IdSwitches:
    """Count changes of each ground-truth id's best-matching predicted id along the sequence."""
    return switches_of(best_matches(table, min_gt_area), min_iou)


def switches_of(best: BestMatches, min_iou: float = 0.5) -> IdSwitches:
    """``id_switches`` of matches already found: changes of each row's predicted id over the views where its IoU
    reaches ``min_iou``."""
    per_object: dict[int, int] = {}
    total = tracked = 0
    for gt_id, pred, iou in zip(best.gt_ids.tolist(), best.pred, best.iou):
        kept = pred[(pred > 0) & (iou >= min_iou)]
        if len(kept) == 0:
            continue
        switches = int(np.count_nonzero(kept[1:] != kept[:-1]))
        per_object[int(gt_id)] = switches
        total += switches
        tracked += len(kept)
    return IdSwitches(total=total, per_object=per_object, tracked_views=tracked)
