"""All metrics at once: ``evaluate`` on generated sequences, view pairs and the JSON form of the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.label_maps import grid_xy, shuffle_ids

from mastsam_splat.metrics import Correspondences, evaluate, view_pairs


def moving_sequence(num_views: int = 8, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Ground truth of four rectangles sliding right by one pixel per view."""
    base = np.zeros((height, width + num_views), dtype=np.uint16)
    base[4:20, 2:20] = 1
    base[4:20, 24:40] = 2
    base[26:44, 6:30] = 3
    base[26:40, 34:56] = 4
    return [np.ascontiguousarray(base[:, num_views - t : num_views - t + width]) for t in range(num_views)]


def shift_correspondences(num_views: int, height: int, width: int, gaps=(1, 2, 4)) -> list[Correspondences]:
    """Exact correspondences of :func:`moving_sequence`: pixel x in view a is x + (b - a) in view b."""
    xy = grid_xy(height, width)
    return [Correspondences(a, b, xy, xy + [b - a, 0.0]) for a, b in view_pairs(num_views, gaps)]


@pytest.fixture()
def sequence():
    gt = moving_sequence()
    return gt, shift_correspondences(len(gt), *gt[0].shape)


def test_ground_truth_against_itself_scores_one(sequence):
    gt, corr = sequence
    result = evaluate(gt, gt, corr)
    for key in ("coverage", "idc", "psc", "per_view_miou", "consistent_miou"):
        assert getattr(result, key) == pytest.approx(1.0), key
    assert result.id_switches == 0
    assert result.num_view_pairs == len(view_pairs(len(gt)))
    assert result.num_correspondences > 0
    assert result.consistent_matching == {1: 1, 2: 2, 3: 3, 4: 4}
    assert result.segments_per_frame == pytest.approx(4.0)


def test_shuffled_ids_keep_per_view_scores_and_drop_consistent_ones(sequence):
    gt, corr = sequence
    pred = shuffle_ids(gt, seed=3)
    result = evaluate(pred, gt, corr)
    assert result.per_view_miou == pytest.approx(1.0)
    assert result.psc == pytest.approx(1.0)
    assert result.coverage == pytest.approx(1.0)
    assert result.consistent_miou < 0.8
    assert result.idc < 0.8
    assert result.id_switches > 0
    assert result.consistent_miou <= result.per_view_miou


def test_merging_two_objects_in_one_view_lowers_psc(sequence):
    gt, corr = sequence
    pred = [labels.copy() for labels in gt]
    pred[3][pred[3] == 2] = 1
    result = evaluate(pred, gt, corr)
    assert result.psc < 1.0
    assert result.per_view_miou < 1.0
    # The merged view still keeps object 1's id: id consistency only drops on object 2's pixels.
    assert result.idc < 1.0 and result.idc > result.psc - 0.5


def test_without_ground_truth_background_counts_against_coverage(sequence):
    gt, corr = sequence
    result = evaluate(gt, None, corr)
    fg = np.mean([np.count_nonzero(m) / m.size for m in gt])
    assert result.coverage < 1.0
    assert result.coverage == pytest.approx(fg, abs=0.05)
    assert result.idc == pytest.approx(1.0) and result.psc == pytest.approx(1.0)
    assert result.per_view_miou is None and result.id_switches is None


def test_view_pairs():
    assert view_pairs(4, (1, 2)) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    assert view_pairs(1) == []
    with pytest.raises(ValueError):
        view_pairs(4, (0,))


def test_result_json_has_snake_case_keys_and_no_nan(sequence):
    gt, corr = sequence
    data = evaluate([np.zeros_like(m) for m in gt], gt, corr).to_dict()
    for key in ("coverage", "idc", "psc", "per_view_miou", "consistent_miou", "id_switches",
                "segments_per_frame", "mean_segment_area"):
        assert key in data
    assert data["idc"] is None and data["mean_segment_area"] is None
    assert data["coverage"] == 0.0 and data["per_view_miou"] == 0.0
    json.dumps(data, allow_nan=False)
