"""Consistency metrics: coverage, IDC and PSC of corresponding pixels, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from support.label_maps import grid_xy

from mastsam_splat.metrics import Correspondences, consistency_scores, matched_overlap, pair_consistency


def test_pair_consistency_hand_computed():
    labels_a = np.array([[1, 1, 2, 2], [1, 1, 2, 2]], dtype=np.uint16)
    labels_b = np.array([[5, 5, 0, 7], [5, 5, 7, 7]], dtype=np.uint16)
    xy = grid_xy(2, 4)
    pair = pair_consistency(labels_a, labels_b, xy, xy)
    assert (pair.total, pair.labelled, pair.same_id, pair.matched) == (8, 7, 0, 7)

    merged = np.full((2, 4), 3, dtype=np.uint16)
    pair = pair_consistency(labels_a, merged, xy, xy)
    assert (pair.total, pair.labelled, pair.same_id, pair.matched) == (8, 8, 0, 4)

    # One pixel to the right: the last column leaves the image; positions inside a pixel round down.
    pair = pair_consistency(labels_a, labels_a, xy, xy + [1.4, 0.0])
    assert (pair.total, pair.labelled, pair.same_id, pair.matched) == (6, 6, 4, 4)


def test_pair_consistency_restricted_to_ground_truth_confirmed_pairs():
    labels = np.array([[1, 1, 2, 0]], dtype=np.uint16)
    gt_a = np.array([[4, 4, 0, 6]], dtype=np.uint16)
    gt_b = np.array([[4, 9, 0, 6]], dtype=np.uint16)
    xy = grid_xy(1, 4)
    pair = pair_consistency(labels, labels, xy, xy, gt_a=gt_a, gt_b=gt_b)
    # Pixel 0 is confirmed (4 = 4), pixel 1 disagrees (4 vs 9), pixel 2 is background, pixel 3 is unlabelled.
    assert (pair.total, pair.labelled, pair.same_id, pair.matched) == (2, 1, 1, 1)


def test_consistency_scores_pool_over_pairs():
    a = np.array([[1, 1, 0, 0]], dtype=np.uint16)
    b = np.array([[2, 2, 2, 0]], dtype=np.uint16)
    c = np.array([[1, 1, 1, 1]], dtype=np.uint16)
    xy = grid_xy(1, 4)
    scores = consistency_scores([a, b, c], [Correspondences(0, 1, xy, xy), Correspondences(0, 2, xy, xy)])
    # Pair 0-1: 4 pairs, 2 labelled, 0 same, 2 matched. Pair 0-2: 4 pairs, 2 labelled, 2 same, 2 matched.
    assert scores.coverage == pytest.approx(4 / 8)
    assert scores.idc == pytest.approx(2 / 4)
    assert scores.psc == pytest.approx(4 / 4)
    assert scores.num_correspondences == 8
    with pytest.raises(ValueError):
        consistency_scores([a], [Correspondences(0, 1, xy, xy)])


def test_consistency_nan_without_labels():
    empty = np.zeros((2, 2), dtype=np.uint16)
    xy = grid_xy(2, 2)
    scores = consistency_scores([empty, empty], [Correspondences(0, 1, xy, xy)])
    assert scores.coverage == 0.0
    assert np.isnan(scores.idc) and np.isnan(scores.psc)


def test_matched_overlap_is_one_to_one():
    a = np.array([1, 1, 1, 2, 2, 3])
    b = np.array([7, 7, 8, 7, 7, 9])
    # Best: 1->8 (1) + 2->7 (2) + 3->9 (1) = 4 beats 1->7 (2) + 3->9 (1) = 3.
    assert matched_overlap(a, b) == 4
