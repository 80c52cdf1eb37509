"""``mastsam track`` end to end (Nerfstudio dataset, image folder, video), its outputs and its cache."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Iterator, get_args, get_type_hints

import cv2
import numpy as np
import pytest
from plyfile import PlyData

from mastsam_splat.errors import InputError
from mastsam_splat.io import read_label_image, read_tracks
from mastsam_splat.tracker import TrackerConfig
from mastsam_splat.tracker.cache import MANIFEST, ResultCache, config_fingerprint, input_fingerprint
from mastsam_splat.cli.track import TrackCommand, run_track

from support.planar_scene import sequence


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from mastsam_splat.synthetic import make_scene

    return make_scene(tmp_path_factory.mktemp("synth") / "scene", frames=6, width=96, height=72, seed=1, progress=False)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for f in sequence([0.0, 0.2, 0.4, 0.6]):
        cv2.imwrite(str(folder / f"{f.name}.png"), f.image[:, :, ::-1])
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    frames = sequence([0.0, 0.1, 0.2, 0.3, 0.4])
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (frames[0].width, frames[0].height))
    assert writer.isOpened()
    for f in frames:
        writer.write(np.ascontiguousarray(f.image[:, :, ::-1]))
    writer.release()
    return path


def check_outputs(out: Path, names: list[str], size: tuple[int, int]) -> dict:
    for name in names:
        labels = read_label_image(out / "masks" / f"{name}.png", expected_shape=(size[1], size[0]))
        assert labels.dtype == np.uint16
        assert (out / "overlays" / f"{name}.jpg").is_file()
    tracks = read_tracks(out / "tracks.json")
    assert [f["name"] for f in tracks["frames"]] == names
    assert all((f["width"], f["height"]) == size for f in tracks["frames"])
    assert tracks["objects"] and all(o["num_frames"] >= 1 and o["area_px"] > 0 for o in tracks["objects"])
    # Every id names its object (an id of the run, never a later one).
    assert all(0 < o["object"] <= o["id"] for o in tracks["objects"])
    assert tracks["timing"]["frames"] == len(names)
    vertex = PlyData.read(str(out / "points.ply"))["vertex"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue", "instance_id"]
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 0
    report = json.loads((out / "report.json").read_text())
    assert len(report["frames"]) == len(names)
    assert json.loads((out / MANIFEST).read_text())["complete"] is True
    return tracks


def test_track_synthetic_dataset_reuses_and_recomputes(synthetic, tmp_path):
    out = tmp_path / "out"
    cmd = TrackCommand(data=synthetic, output_dir=out, matcher="geometric", quiet=True)
    first = run_track(cmd)
    assert first["reused"] is False
    names = [f"frame_{i:05d}" for i in range(6)]
    tracks = check_outputs(out, names, (96, 72))
    assert tracks["config"]["points"]["source"] == "depth"
    assert len(PlyData.read(str(out / "points.ply"))["vertex"].data) > 0
    # Same input and options: reused, files untouched.
    stamp = (out / "tracks.json").stat().st_mtime_ns
    assert run_track(cmd)["reused"] is True
    assert (out / "tracks.json").stat().st_mtime_ns == stamp
    # Another option: recomputed; fewer frames leave no stale masks behind.
    changed = TrackCommand(data=synthetic, output_dir=out, matcher="geometric", quiet=True, max_frames=3,
                           tracker=TrackerConfig(mode="independent"))
    assert run_track(changed)["reused"] is False
    assert sorted(p.stem for p in (out / "masks").iterdir()) == names[:3]
    assert sorted(p.stem for p in (out / "overlays").iterdir()) == names[:3]
    assert read_tracks(out / "tracks.json")["config"]["tracker"]["mode"] == "independent"


def test_track_image_folder_and_refuses_mixing(image_folder, tmp_path):
    out = tmp_path / "out"
    result = run_track(TrackCommand(data=image_folder, output_dir=out, quiet=True, matcher="auto"))
    assert result["matcher"] == "sift"  # no depth, no COLMAP model
    assert result["frames"] == 4
    tracks = check_outputs(out, [f"frame_{i:05d}" for i in range(4)], (96, 72))
    assert tracks["config"]["points"]["source"] == "none"
    assert len(PlyData.read(str(out / "points.ply"))["vertex"].data) == 0
    # The same output folder for another input: refused, nothing touched.
    other = tmp_path / "other"
    shutil.copytree(image_folder, other)
    stamp = (out / "tracks.json").stat().st_mtime_ns
    with pytest.raises(InputError, match="another input"):
        run_track(TrackCommand(data=other, output_dir=out, quiet=True))
    assert (out / "tracks.json").stat().st_mtime_ns == stamp
    # ... unless asked to overwrite.
    assert run_track(TrackCommand(data=other, output_dir=out, quiet=True, overwrite=True))["reused"] is False
    # Changed pixels under the same path: recomputed.
    img = cv2.imread(str(other / "frame_00000.png"))
    cv2.imwrite(str(other / "frame_00000.png"), 255 - img)
    assert run_track(TrackCommand(data=other, output_dir=out, quiet=True))["reused"] is False


def test_track_video(video, tmp_path):
    out = tmp_path / "out"
    result = run_track(TrackCommand(data=video, output_dir=out, quiet=True, stride=2))
    assert result["frames"] == 3
    check_outputs(out, ["frame_00000", "frame_00002", "frame_00004"], (96, 72))


def test_outputs_of_unknown_origin_are_refused(image_folder, tmp_path):
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    (out / "masks" / "frame_00000.png").write_bytes(b"not ours")
    with pytest.raises(InputError, match="unknown origin"):
        run_track(TrackCommand(data=image_folder, output_dir=out, quiet=True))
    # Unrelated files are fine and stay.
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "notes.txt").write_text("keep me")
    run_track(TrackCommand(data=image_folder, output_dir=clean, quiet=True, max_frames=2))
    assert (clean / "notes.txt").read_text() == "keep me"


def test_bad_input_is_reported_clearly(image_folder, tmp_path):
    with pytest.raises(InputError, match="no such file"):
        run_track(TrackCommand(data=tmp_path / "missing", output_dir=tmp_path / "o", quiet=True))
    with pytest.raises(InputError, match="depth maps and cameras"):
        run_track(TrackCommand(data=image_folder, output_dir=tmp_path / "o", matcher="geometric", quiet=True))
    with pytest.raises(InputError, match="sfm matcher reads correspondences from a COLMAP model"):
        run_track(TrackCommand(data=image_folder, output_dir=tmp_path / "o", matcher="sfm", quiet=True))
    assert not (tmp_path / "o").exists()


def test_track_with_the_tracks_of_the_dataset_model(tmp_path):
    """``--matcher sfm`` tracks a capture from its COLMAP model's tracks alone: the run's matches are the model's."""
    pytest.importorskip("pycolmap")
    from mastsam_splat.synthetic import make_scene
    from mastsam_splat.synthetic.sfm import write_scene_sfm_model

    root = make_scene(tmp_path / "scene", frames=5, width=96, height=72, seed=2, max_points=20000, progress=False)
    write_scene_sfm_model(root)
    out = tmp_path / "out"
    result = run_track(TrackCommand(data=root, output_dir=out, matcher="sfm", quiet=True))
    assert result["reused"] is False and result["matcher"] == "sfm"
    tracks = check_outputs(out, [f"frame_{i:05d}" for i in range(5)], (96, 72))
    assert tracks["config"]["matcher"]["name"] == "sfm"
    report = json.loads((out / "report.json").read_text())
    assert sum(f["num_matches"] for f in report["frames"]) > 100


def test_cache_decisions(tmp_path):
    frames = sequence([0.0, 0.2])
    cache = ResultCache(tmp_path / "out", source="/data/a", input_hash=input_fingerprint(frames), config_hash=config_fingerprint({"k": 1}))
    assert cache.decide(["masks"]).action == "compute"
    (tmp_path / "out" / "masks").mkdir(parents=True)
    (tmp_path / "out" / "masks" / "a.png").write_bytes(b"x")
    cache.begin(["masks/a.png"])
    # An unfinished run is recomputed and its files removed.
    decision = cache.decide(["masks"])
    assert decision.action == "compute" and decision.reason == "earlier run incomplete"
    assert not (tmp_path / "out" / "masks").exists()
    (tmp_path / "out" / "masks").mkdir()
    (tmp_path / "out" / "masks" / "a.png").write_bytes(b"x")
    cache.finish(["masks/a.png"])
    assert cache.decide(["masks"]).action == "reuse"
    (tmp_path / "out" / "masks" / "a.png").unlink()
    assert cache.decide(["masks"]).action == "compute"  # a listed file went missing
    # Fingerprints see pixels, cameras and config changes.
    moved = sequence([0.0, 0.25])
    assert input_fingerprint(frames) != input_fingerprint(moved)
    assert config_fingerprint({"a": 1, "b": 2}) == config_fingerprint({"b": 2, "a": 1})
    assert config_fingerprint({"a": 1}) != config_fingerprint({"a": 2})


def tracker_fields(config: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any, Any]]:
    """(path, value, type) of every leaf field of a nested config dataclass."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        if is_dataclass(value):
            yield from tracker_fields(value, prefix + (f.name,))
        else:
            yield prefix + (f.name,), value, hints[f.name]


def other_value(value: Any, hint: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return next(choice for choice in get_args(hint) if choice != value)


def test_config_fingerprint_sees_every_tracker_field(tmp_path):
    base = TrackCommand(data=tmp_path, output_dir=tmp_path / "out")
    hashes = {config_fingerprint(base.job().fingerprint())}
    leaves = list(tracker_fields(base.tracker))
    assert len(leaves) == 131
    scheduling = [("segment_ahead",)]  # (fields that change when work runs, not the results)
    for path, value, hint in leaves:
        changed = copy.deepcopy(base)
        owner = changed.tracker
        for name in path[:-1]:
            owner = getattr(owner, name)
        setattr(owner, path[-1], other_value(value, hint))
        fingerprint = config_fingerprint(changed.job().fingerprint())
        assert (fingerprint in hashes) == (path in scheduling), path
        hashes.add(fingerprint)
    assert len(hashes) == len(leaves) + 1 - len(scheduling)


def test_cli_help_lists_tracker_options():
    import tyro

    with pytest.raises(SystemExit):
        tyro.cli(TrackCommand, args=["--help"])
    args = ["--data", "x", "--output-dir", "y", "--tracker.mode", "independent", "--tracker.memory.no-enabled",
            "--tracker.propagation.radius", "0.05", "--tracker.consensus.min-votes", "7", "--matcher", "geometric"]
    cmd = tyro.cli(TrackCommand, args=args)
    assert cmd.tracker.mode == "independent" and cmd.tracker.memory.enabled is False and cmd.matcher == "geometric"
    assert cmd.tracker.propagation.radius == 0.05 and cmd.tracker.consensus.min_votes == 7
    assert cmd.tracker.rejection == TrackerConfig().rejection
