"""``mastsam lift`` / ``mastsam export`` as a user runs them: options, tracker fallback, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tyro

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import UNLABELLED
from mastsam_splat.io.ply import read_gaussians_ply, write_gaussians_ply
from mastsam_splat.cli.objects import ExportCommand, LiftCommand, run_export, run_lift
from mastsam_splat.objects.filters import ObjectFilter
from mastsam_splat.objects.lift import LiftConfig

FAST = LiftConfig(rasterizer="torch", check_views=0)


@pytest.fixture()
def scene_ply(tmp_path: Path, scene_gaussians) -> Path:
    return write_gaussians_ply(tmp_path / "scene_in.ply", scene_gaussians[0])


def test_cli_options_parse() -> None:
    cmd = tyro.cli(
        LiftCommand,
        args=[
            "--output-dir",
            "o",
            "--ply",
            "s.ply",
            "--data",
            "d",
            "--masks",
            "m",
            "--min-share",
            "0.6",
            "--rasterizer",
            "torch",
            "--downscale",
            "2",
        ],
    )
    assert cmd.lift.min_share == 0.6 and cmd.lift.rasterizer == "torch" and cmd.downscale == 2
    cmd = tyro.cli(ExportCommand, args=["--load-config", "c.yml", "--output-dir", "o", "--objects", "1,2", "--points"])
    assert cmd.objects == "1,2" and cmd.points


def test_lift_ply_with_masks_then_export_some_objects(
    tmp_path: Path, synthetic_scene, scene_ply, scene_gaussians
) -> None:
    truth = scene_gaussians[1]
    summary = run_lift(
        LiftCommand(
            output_dir=tmp_path / "lift",
            ply=scene_ply,
            data=synthetic_scene,
            masks=synthetic_scene / "instances",
            stride=2,
            points=True,
            quiet=True,
            lift=FAST,
        )
    )
    ids = summary["result"].instance_ids
    seen = ids != UNLABELLED
    assert (ids[seen] == truth[seen]).mean() > 0.9
    out = tmp_path / "lift"
    assert {p.name for p in out.iterdir()} == {"scene.ply", "objects", "objects.json", "points.ply"}
    index = json.loads((out / "objects.json").read_text())
    assert index["frame"] == "transforms.json of the dataset" and index["lift"]["views"] == 5

    obj = int(np.bincount(ids[ids > 0]).argmax())
    result = run_export(ExportCommand(output_dir=tmp_path / "one", ply=out / "scene.ply", objects=str(obj), quiet=True))
    part = read_gaussians_ply(result.object_files[obj])
    left_out = next(e for e in result.index["objects"] if e["id"] == obj)["left_out"]  # default filters
    assert len(part) + sum(left_out.values()) == int((ids == obj).sum()) and (part.instance_ids == obj).all()
    whole = run_export(
        ExportCommand(
            output_dir=tmp_path / "whole", ply=out / "scene.ply", objects=str(obj), quiet=True,
            object_filter=ObjectFilter(keep_transparent=True, keep_outliers=True),
        )
    )  # fmt: skip
    assert len(read_gaussians_ply(whole.object_files[obj])) == int((ids == obj).sum())


def test_lift_downscaled(tmp_path: Path, synthetic_scene, scene_ply, scene_gaussians) -> None:
    truth = scene_gaussians[1]
    summary = run_lift(
        LiftCommand(
            output_dir=tmp_path / "lift",
            ply=scene_ply,
            data=synthetic_scene,
            masks=synthetic_scene / "instances",
            stride=2,
            downscale=2,
            quiet=True,
            lift=FAST,
        )
    )
    ids = summary["result"].instance_ids
    seen = ids != UNLABELLED
    assert seen.mean() > 0.9 and (ids[seen] == truth[seen]).mean() > 0.85


def test_lift_without_masks_runs_the_tracker(tmp_path: Path, synthetic_scene, scene_ply) -> None:
    cache = tmp_path / "track"
    cmd = LiftCommand(
        output_dir=tmp_path / "lift",
        ply=scene_ply,
        data=synthetic_scene,
        track_cache=cache,
        stride=3,
        max_frames=3,
        quiet=True,
        lift=FAST,
    )
    summary = run_lift(cmd)
    assert (cache / "masks").is_dir() and json.loads((cache / "cache.json").read_text())["complete"]
    assert summary["result"].counts()["objects"] > 0
    assert summary["metadata"]["masks"] == str((cache / "masks").resolve())
    # a second run reuses the tracker's cached masks (same files, untouched)
    stamp = {p.name: p.stat().st_mtime_ns for p in (cache / "masks").iterdir()}
    run_lift(LiftCommand(**{**cmd.__dict__, "output_dir": tmp_path / "lift2"}))
    assert {p.name: p.stat().st_mtime_ns for p in (cache / "masks").iterdir()} == stamp


def test_lift_passes_backend_options_to_the_tracker(tmp_path: Path, synthetic_scene, scene_ply, monkeypatch) -> None:
    """SAM/MASt3R settings given to ``mastsam lift`` reach the tracker run, as with ``mastsam track``."""
    import mastsam_splat.cli.objects as objects_cli

    seen: list = []

    def fake_track(track) -> None:
        seen.append(track)
        raise InputError("stop here")

    monkeypatch.setattr(objects_cli, "run_track", fake_track)
    cmd = LiftCommand(
        output_dir=tmp_path / "lift",
        ply=scene_ply,
        data=synthetic_scene,
        segmenter="sam",
        sam_checkpoint=tmp_path / "sam.pth",
        sam_model_type="vit_b",
        sam_points_per_side=8,
        sam_crop_n_layers=1,
        matcher="mast3r",
        mast3r_checkpoint=tmp_path / "m.pth",
        mast3r_image_size=224,
        mast3r_min_conf=2.0,
        quiet=True,
    )
    with pytest.raises(InputError, match="stop here"):
        run_lift(cmd)
    (track,) = seen
    assert (track.segmenter, track.matcher) == ("sam", "mast3r")
    assert (track.sam_checkpoint, track.sam_model_type, track.sam_points_per_side) == (tmp_path / "sam.pth", "vit_b", 8)
    assert (track.sam_crop_n_layers, track.mast3r_checkpoint) == (1, tmp_path / "m.pth")
    assert (track.mast3r_image_size, track.mast3r_min_conf) == (224, 2.0)


def test_masks_of_wrong_count_or_size(tmp_path: Path, synthetic_scene, scene_ply) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(synthetic_scene / "instances", masks)
    (masks / "frame_00004.png").unlink()
    cmd = LiftCommand(
        output_dir=tmp_path / "out", ply=scene_ply, data=synthetic_scene, masks=masks, stride=2, quiet=True, lift=FAST
    )
    with pytest.raises(InputError, match=r"no label image for 1 of 5 frames \(e.g. frame_00004.png\)"):
        run_lift(cmd)
    assert not (tmp_path / "out").exists()
    cmd.skip_views_without_masks = True
    assert run_lift(cmd)["result"].num_views == 4

    cv2.imwrite(str(masks / "frame_00002.png"), np.zeros((10, 12), np.uint16))
    with pytest.raises(InputError, match=r"frame_00002.png: label image is 12x10 but its frame is 64x48"):
        run_lift(LiftCommand(**{**cmd.__dict__, "output_dir": tmp_path / "out2"}))
    assert not (tmp_path / "out2").exists()


def test_lift_bad_sources(tmp_path: Path, synthetic_scene, scene_gaussians) -> None:
    with pytest.raises(InputError, match="exactly one of --ply"):
        run_lift(LiftCommand(output_dir=tmp_path / "o", data=synthetic_scene, quiet=True))
    with pytest.raises(InputError, match="--ply needs --data"):
        run_lift(LiftCommand(output_dir=tmp_path / "o", ply=tmp_path / "x.ply", quiet=True))
    with pytest.raises(InputError, match="plain point cloud"):
        run_lift(
            LiftCommand(
                output_dir=tmp_path / "o",
                ply=synthetic_scene / "sparse_pc.ply",
                data=synthetic_scene,
                masks=synthetic_scene / "instances",
                quiet=True,
            )
        )
    broken = scene_gaussians[0].subset(np.arange(len(scene_gaussians[0])))
    broken.means[0, 0] = np.nan
    write_gaussians_ply(tmp_path / "nan.ply", broken)
    with pytest.raises(InputError, match="non-finite"):
        run_lift(
            LiftCommand(
                output_dir=tmp_path / "o",
                ply=tmp_path / "nan.ply",
                data=synthetic_scene,
                masks=synthetic_scene / "instances",
                quiet=True,
            )
        )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    write_gaussians_ply(tmp_path / "ok.ply", scene_gaussians[0])
    with pytest.raises(InputError, match="not a folder"):
        run_lift(
            LiftCommand(
                output_dir=blocker,
                ply=tmp_path / "ok.ply",
                data=synthetic_scene,
                masks=synthetic_scene / "instances",
                quiet=True,
            )
        )
    images = tmp_path / "photos"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"p{i}.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="no cameras"):
        run_lift(LiftCommand(output_dir=tmp_path / "o", ply=tmp_path / "ok.ply", data=images, masks=images, quiet=True))
    assert not (tmp_path / "o").exists()


def test_export_needs_one_source_and_ids(tmp_path: Path, scene_ply) -> None:
    with pytest.raises(InputError, match="exactly one of --load-config"):
        run_export(ExportCommand(output_dir=tmp_path / "o", quiet=True))
    with pytest.raises(InputError, match="no instance_id field.*mastsam lift"):
        run_export(ExportCommand(output_dir=tmp_path / "o", ply=scene_ply, quiet=True))
    assert not (tmp_path / "o").exists()


def test_lift_takes_a_track_output_folder_as_masks(tmp_path: Path, synthetic_scene, scene_ply) -> None:
    from mastsam_splat.cli.track import TrackCommand, run_track

    track_out = tmp_path / "track"
    run_track(TrackCommand(data=synthetic_scene, output_dir=track_out, stride=3, max_frames=3, quiet=True))
    assert (track_out / "contact_sheet.png").is_file()  # a PNG beside masks/
    summary = run_lift(
        LiftCommand(
            output_dir=tmp_path / "lift",
            ply=scene_ply,
            data=synthetic_scene,
            masks=track_out,
            stride=3,
            max_frames=3,
            quiet=True,
            lift=FAST,
        )
    )
    assert summary["metadata"]["masks"] == str((track_out / "masks").resolve())
    assert summary["result"].counts()["objects"] > 0
