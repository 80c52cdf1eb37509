"""Ground-truth metrics: per-view and consistent mIoU and id switches, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.metrics import best_matches, consistent_miou, id_switches, overlap_table, per_view_miou


def test_miou_hand_computed_and_id_swap_penalised():
    gt = [np.array([[1, 1, 0, 0]]), np.array([[1, 1, 2, 2]])]
    pred = [np.array([[3, 3, 3, 0]]), np.array([[3, 3, 4, 4]])]
    table = overlap_table(pred, gt)
    per_view = per_view_miou(table)
    np.testing.assert_allclose(per_view.per_view, [2 / 3, 1.0])
    assert per_view.miou == pytest.approx(5 / 6)
    consistent = consistent_miou(table)
    assert consistent.miou == pytest.approx(5 / 6)
    assert consistent.matching == {1: 3, 2: 4}

    # Swapping the ids in view 1: per view nothing changes; one shared matching must choose.
    # S[1,3] = 2/3, S[1,4] = 1/2, S[2,3] = 1/2, S[2,4] = 0 -> best is 1->4, 2->3 (sum 1).
    pred_swapped = [pred[0], np.array([[4, 4, 3, 3]])]
    table = overlap_table(pred_swapped, gt)
    assert per_view_miou(table).miou == pytest.approx(5 / 6)
    consistent = consistent_miou(table)
    assert consistent.matching == {1: 4, 2: 3}
    np.testing.assert_allclose(consistent.per_view, [0.0, 1.0])
    assert consistent.miou == pytest.approx(0.5)


def test_miou_unmatched_ground_truth_counts_zero_and_empty_views_are_skipped():
    gt = [np.array([[1, 2, 3, 0]]), np.zeros((1, 4), dtype=np.uint16)]
    pred = [np.array([[5, 5, 0, 0]]), np.array([[5, 5, 5, 5]])]
    table = overlap_table(pred, gt)
    # Only one predicted id: it matches gt 1 or 2 with IoU 1/2; the other two count 0.
    result = per_view_miou(table)
    assert np.isnan(result.per_view[1])
    assert result.miou == pytest.approx((1 / 2) / 3)
    assert consistent_miou(table).miou == pytest.approx((1 / 2) / 3)


def test_miou_of_empty_prediction_is_zero():
    gt = [np.array([[1, 1, 2, 2]])]
    table = overlap_table([np.zeros((1, 4), dtype=np.uint16)], gt)
    assert per_view_miou(table).miou == 0.0
    assert consistent_miou(table).miou == 0.0
    with pytest.raises(ValueError):
        overlap_table([np.zeros((2, 4), dtype=np.uint16)], gt)


def test_id_switches_hand_computed():
    full = np.ones((1, 4), dtype=np.uint16)
    gt = [full] * 5
    pred = [full * 3, full * 3, full * 4, full * 4, full * 3]
    switches = id_switches(overlap_table(pred, gt), min_iou=0.5, min_gt_area=1)
    assert switches.total == 2
    assert switches.per_object == {1: 2}
    assert switches.tracked_views == 5


def test_id_switches_skip_hidden_small_and_unmatched_views():
    gt = [
        np.array([[1, 1, 1, 1]]),
        np.array([[0, 0, 0, 0]]),  # hidden
        np.array([[1, 0, 0, 0]]),  # too small
        np.array([[1, 1, 1, 1]]),  # no prediction good enough
        np.array([[1, 1, 1, 1]]),
    ]
    pred = [
        np.array([[3, 3, 3, 3]]),
        np.array([[0, 0, 0, 0]]),
        np.array([[8, 0, 0, 0]]),
        np.array([[9, 0, 0, 0]]),
        np.array([[3, 3, 3, 0]]),
    ]
    switches = id_switches(overlap_table(pred, gt), min_iou=0.5, min_gt_area=2)
    assert switches.total == 0
    assert switches.tracked_views == 2
    # Counting the small view again turns its different id into two switches (3 -> 8 -> 3).
    assert id_switches(overlap_table(pred, gt), min_iou=0.5, min_gt_area=1).total == 2


def test_best_matches_name_each_ids_best_prediction_per_view_ties_to_the_smaller_id():
    gt = [
        np.array([[1, 1, 2, 2]]),
        np.array([[1, 1, 1, 1]]),  # ground truth 2 hidden
        np.array([[1, 1, 2, 2]]),
    ]
    pred = [
        np.array([[7, 7, 5, 5]]),
        np.array([[6, 6, 9, 9]]),  # a tie for ground truth 1 (IoU 1/2 each): the smaller id, 6
        np.array([[0, 7, 7, 0]]),  # 7 overlaps both ground-truth ids with IoU 1/3
    ]
    best = best_matches(overlap_table(pred, gt), min_gt_area=1)
    assert best.gt_ids.tolist() == [1, 2]
    assert best.pred.tolist() == [[7, 6, 7], [5, 0, 7]]
    np.testing.assert_allclose(best.iou, [[1.0, 0.5, 1 / 3], [1.0, 0.0, 1 / 3]])
    assert best.shown.tolist() == [[True, True, True], [True, False, True]]
    # the switches walk these rows at IoU >= 0.5: ground truth 1 goes 7 -> 6 (views 0, 1); 2 keeps 5
    switches = id_switches(overlap_table(pred, gt), min_iou=0.5, min_gt_area=1)
    assert switches.per_object == {1: 1, 2: 0} and switches.total == 1
