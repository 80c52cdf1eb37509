"""The ``mastsam eval`` command: scores, levels and bad input, on written datasets and a synthetic scene."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.label_maps import shuffle_ids

from mastsam_splat.errors import InputError
from mastsam_splat.cli.eval import EvalCommand
from mastsam_splat.io import read_label_image, write_tracks
from mastsam_splat.io.tracks import summarize_objects
from mastsam_splat.metrics import MetricsConfig, view_pairs


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


def test_eval_command_scores_a_tracker_output_at_both_levels(dataset, tmp_path):
    data, gts = dataset
    # Part ids (ground-truth parts renumbered 1..n), grouped into their objects by tracks.json.
    part_maps = [read_label_image(p) for p in sorted((data / "parts").glob("*.png"))]
    part_ids = sorted({int(i) for m in part_maps for i in np.unique(m) if i > 0})
    renumber = {p: n for n, p in enumerate(part_ids, start=1)}
    pred = [np.vectorize(lambda i: renumber.get(int(i), 0))(m).astype(np.uint16) for m in part_maps]
    first_of = {}
    for p in part_ids:
        first_of.setdefault(p // 10, renumber[p])
    object_of = {renumber[p]: first_of[p // 10] for p in part_ids}
    track = tmp_path / "track"
    write_predictions(track / "masks", pred)
    frames = [{"name": f"frame_{t:05d}", "file": None, "width": 48, "height": 32} for t in range(len(pred))]
    write_tracks(track / "tracks.json", frames, summarize_objects(pred, object_of), {}, {})
    assert EvalCommand(pred=track, data=data, level="part").run().consistent_miou == pytest.approx(1.0)
    assert EvalCommand(pred=track, data=data).run().consistent_miou == pytest.approx(1.0)
    assert EvalCommand(pred=track / "masks", data=data).run().consistent_miou == pytest.approx(1.0)
    # Without the object level, every object is split in two.
    assert EvalCommand(pred=track, data=data, object_ids=False).run().consistent_miou < 0.9


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
