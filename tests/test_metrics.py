"""Tests of the consistency / ground-truth metrics and the ``mastsam eval`` command."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.metrics import (
    Correspondences,
    EvalCommand,
    MetricsConfig,
    consistency_scores,
    consistent_miou,
    evaluate,
    granularity,
    id_switches,
    matched_overlap,
    overlap_table,
    pair_consistency,
    per_view_miou,
    view_pairs,
)


def grid_xy(height: int, width: int) -> np.ndarray:
    """Pixel centres of every pixel, row-major, [H*W, 2]."""
    xx, yy = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


# ---------------------------------------------------------------- generated sequences


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


def shuffle_ids(maps: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Give every view's ids a fresh random numbering (0 stays 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for labels in maps:
        ids = np.unique(labels)
        ids = ids[ids > 0]
        lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
        lut[ids] = rng.permutation(np.arange(100, 100 + len(ids)))
        out.append(lut[labels])
    return out


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


# ---------------------------------------------------------------- hand-computed cases


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


def test_granularity_hand_computed():
    maps = [np.array([[1, 1, 0, 2]]), np.zeros((1, 4), dtype=np.uint16), np.array([[5, 5, 5, 5]])]
    result = granularity(maps)
    assert result.segments_per_frame == pytest.approx(1.0)
    assert result.mean_segment_area == pytest.approx(7 / 3)


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


# ---------------------------------------------------------------- the eval command


def write_dataset(root: Path, num_frames: int = 5, width: int = 48, height: int = 32) -> list[np.ndarray]:
    """A camera sliding along x in front of a plane at 2 m carrying labelled rectangles.

    Returns the ground-truth instance maps it wrote (Nerfstudio layout as ``mastsam synth`` writes).
    """
    fx = 40.0
    z = 2.0
    step_x = 2 * z / fx  # two pixels of image motion per frame
    rects = [(1, -0.9, -0.1, -0.6, 0.1), (2, 0.0, 0.6, -0.5, 0.3), (3, 0.2, 0.9, 0.35, 0.7)]
    for sub in ("images", "depth", "instances", "parts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    frames, gts = [], []
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    for t in range(num_frames):
        cam_x = t * step_x
        world_x = (cols - width / 2) * z / fx + cam_x
        world_y = (rows - height / 2) * z / fx
        labels = np.zeros((height, width), dtype=np.uint16)
        for obj, x0, x1, y0, y1 in rects:
            labels[(world_x >= x0) & (world_x < x1) & (world_y >= y0) & (world_y < y1)] = obj
        parts = labels * 10 + (world_y > 0)
        parts[labels == 0] = 0
        stem = f"frame_{t:05d}"
        image = np.stack([labels * 60, parts.astype(np.uint8) * 3, np.full_like(labels, 90)], axis=-1).astype(np.uint8)
        cv2.imwrite(str(root / "images" / f"{stem}.png"), image)
        cv2.imwrite(str(root / "depth" / f"{stem}.png"), np.full((height, width), int(z * 1000), dtype=np.uint16))
        cv2.imwrite(str(root / "instances" / f"{stem}.png"), labels)
        cv2.imwrite(str(root / "parts" / f"{stem}.png"), parts.astype(np.uint16))
        c2w = [[1, 0, 0, cam_x], [0, -1, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]]
        frames.append(
            {"file_path": f"images/{stem}.png", "depth_file_path": f"depth/{stem}.png", "transform_matrix": c2w}
        )
        gts.append(labels)
    meta = {
        "camera_model": "OPENCV", "fl_x": fx, "fl_y": fx, "cx": width / 2, "cy": height / 2, "w": width, "h": height,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames,
    }
    (root / "transforms.json").write_text(json.dumps(meta))
    return gts


def write_predictions(folder: Path, maps: list[np.ndarray], names: list[str] | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame_{t:05d}" for t in range(len(maps))]
    for name, labels in zip(names, maps):
        cv2.imwrite(str(folder / f"{name}.png"), labels.astype(np.uint16))


@pytest.fixture()
def dataset(tmp_path):
    data = tmp_path / "data"
    gts = write_dataset(data)
    return data, gts


def test_eval_command_ground_truth_scores_one(dataset, tmp_path, capsys):
    data, gts = dataset
    write_predictions(tmp_path / "track" / "masks", gts)  # a tracker output folder holding masks/
    out = tmp_path / "metrics.json"
    EvalCommand(pred=tmp_path / "track", data=data, json=out).main()
    result = json.loads(out.read_text())
    for key in ("coverage", "idc", "psc", "per_view_miou", "consistent_miou"):
        assert result[key] == pytest.approx(1.0), key
    assert result["id_switches"] == 0
    assert result["num_view_pairs"] == len(view_pairs(len(gts)))
    assert result["num_correspondences"] > 100
    assert result["segments_per_frame"] == pytest.approx(np.mean([len(np.unique(g)) - 1 for g in gts]))
    assert result["level"] == "object"
    printed = capsys.readouterr().out
    assert "consistent_miou" in printed and "1.0000" in printed


def test_eval_command_shuffled_ids_and_part_level(dataset, tmp_path):
    data, gts = dataset
    write_predictions(tmp_path / "pred", shuffle_ids(gts, seed=1))
    command = EvalCommand(pred=tmp_path / "pred", data=data)
    result = command.run()
    assert result.per_view_miou == pytest.approx(1.0)
    assert result.psc == pytest.approx(1.0)
    assert result.consistent_miou < 0.9 and result.idc < 0.9
    # Object-level predictions scored at part level: every object spans two parts.
    command = EvalCommand(pred=tmp_path / "pred", data=data, level="part", metrics=MetricsConfig(pair_gaps=(1,)))
    result = command.run()
    assert result.per_view_miou < 0.8
    # Coarser than the ground truth but consistent with itself: PSC stays 1, granularity tells the difference.
    assert result.psc == pytest.approx(1.0)
    assert result.gt_segments_per_frame > result.segments_per_frame
    assert result.num_view_pairs == len(gts) - 1


def test_eval_command_without_ground_truth_folder_reports_consistency_only(dataset, tmp_path):
    data, gts = dataset
    for file in (data / "parts").iterdir():
        file.unlink()
    (data / "parts").rmdir()
    write_predictions(tmp_path / "pred", gts)
    result = EvalCommand(pred=tmp_path / "pred", data=data, level="part").run()
    assert result.per_view_miou is None and result.consistent_miou is None
    assert 0.0 < result.coverage < 1.0
    assert result.idc == pytest.approx(1.0)


def test_eval_command_missing_prediction(dataset, tmp_path):
    data, gts = dataset
    write_predictions(tmp_path / "pred", gts[:-1])
    out = tmp_path / "metrics.json"
    with pytest.raises(InputError, match="frame_00004"):
        EvalCommand(pred=tmp_path / "pred", data=data, json=out).main()
    assert not out.exists()
    with pytest.raises(InputError, match="not found"):
        EvalCommand(pred=tmp_path / "nowhere", data=data, json=out).main()
    assert not out.exists()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), dtype=np.uint16),  # wrong size
        np.zeros((32, 48, 3), dtype=np.uint8),  # colour image
    ],
)
def test_eval_command_bad_prediction_image(dataset, tmp_path, bad):
    data, gts = dataset
    write_predictions(tmp_path / "pred", gts)
    cv2.imwrite(str(tmp_path / "pred" / "frame_00002.png"), bad)
    out = tmp_path / "metrics.json"
    with pytest.raises(InputError) as info:
        EvalCommand(pred=tmp_path / "pred", data=data, json=out).main()
    assert info.value.path == tmp_path / "pred" / "frame_00002.png"
    assert not out.exists()


def test_eval_command_corrupt_prediction_image(dataset, tmp_path):
    data, gts = dataset
    write_predictions(tmp_path / "pred", gts)
    (tmp_path / "pred" / "frame_00001.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="frame_00001"):
        EvalCommand(pred=tmp_path / "pred", data=data).main()


def test_eval_command_bad_ground_truth_image(dataset, tmp_path):
    data, gts = dataset
    write_predictions(tmp_path / "pred", gts)
    cv2.imwrite(str(data / "instances" / "frame_00003.png"), np.zeros((5, 5), dtype=np.uint16))
    with pytest.raises(InputError) as info:
        EvalCommand(pred=tmp_path / "pred", data=data).main()
    assert info.value.path == data / "instances" / "frame_00003.png"


def test_eval_command_nothing_to_evaluate(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for t in range(3):
        cv2.imwrite(str(images / f"img_{t}.png"), np.zeros((8, 8, 3), dtype=np.uint8))
    write_predictions(tmp_path / "pred", [])
    for t in range(3):
        cv2.imwrite(str(tmp_path / "pred" / f"img_{t}.png"), np.zeros((8, 8), dtype=np.uint16))
    with pytest.raises(InputError, match="nothing to evaluate"):
        EvalCommand(pred=tmp_path / "pred", data=images).main()


def test_eval_command_bad_options(dataset, tmp_path):
    data, gts = dataset
    write_predictions(tmp_path / "pred", gts)
    with pytest.raises(InputError, match="gaps"):
        EvalCommand(pred=tmp_path / "pred", data=data, metrics=MetricsConfig(pair_gaps=(0,))).main()
    with pytest.raises(InputError, match="step"):
        EvalCommand(pred=tmp_path / "pred", data=data, metrics=MetricsConfig(correspondence_step=0)).main()


# ---------------------------------------------------------------- on a rendered synthetic scene


@pytest.fixture(scope="module")
def synthetic_scene(tmp_path_factory):
    from mastsam_splat.synthetic import make_scene

    return make_scene(tmp_path_factory.mktemp("synth") / "scene", frames=6, width=80, height=60, seed=2, progress=False)


def test_cli_on_synthetic_scene(synthetic_scene, tmp_path, capsys):
    from mastsam_splat.cli import entrypoint
    from mastsam_splat.io import load_scene, read_label_dir

    out = tmp_path / "gt.json"
    assert entrypoint(["eval", "--pred", str(synthetic_scene / "parts"), "--data", str(synthetic_scene),
                       "--level", "part", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("coverage", "idc", "psc", "per_view_miou", "consistent_miou"):
        assert result[key] == pytest.approx(1.0), key
    assert result["id_switches"] == 0
    assert result["num_correspondences"] > 300
    assert "per_view_miou" in capsys.readouterr().out

    names = [f.name for f in load_scene(synthetic_scene).frames]
    write_predictions(tmp_path / "pred", shuffle_ids(read_label_dir(synthetic_scene / "instances", names)), names)
    out = tmp_path / "shuffled.json"
    args = ["eval", "--pred", str(tmp_path / "pred"), "--data", str(synthetic_scene), "--json", str(out)]
    assert entrypoint(args) == 0
    result = json.loads(out.read_text())
    assert result["per_view_miou"] == pytest.approx(1.0)
    assert result["psc"] == pytest.approx(1.0)
    assert result["consistent_miou"] < 0.9 and result["idc"] < 0.9


def test_cli_reports_bad_input_without_traceback(synthetic_scene, tmp_path, capsys):
    from mastsam_splat.cli import entrypoint

    out = tmp_path / "metrics.json"
    code = entrypoint(["eval", "--pred", str(tmp_path / "missing"), "--data", str(synthetic_scene), "--json", str(out)])
    assert code == 2
    assert "prediction folder not found" in capsys.readouterr().err
    assert not out.exists()
