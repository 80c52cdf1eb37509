"""Bad inputs and destinations stop every command before its work, with a message that names them."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.cli import entrypoint
from mastsam_splat.cli.eval import EvalCommand
from mastsam_splat.cli.objects import ExportCommand, LiftCommand, run_export, run_lift
from mastsam_splat.cli.synth import SynthCommand
from mastsam_splat.cli.track import TrackCommand, run_track
from mastsam_splat.cli.train import TrainCommand
from mastsam_splat.errors import InputError
from mastsam_splat.io.ply import write_gaussians_ply
from mastsam_splat.objects.lift import LiftConfig

from support.destinations import unwritable
from support.planar_scene import sequence

FAST = LiftConfig(rasterizer="torch", check_views=0)


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "scan[old]"
    folder.mkdir()
    for f in sequence([0.0, 0.2, 0.4]):
        cv2.imwrite(str(folder / f"{f.name}.png"), f.image[:, :, ::-1])
    return folder


@pytest.fixture()
def scene_ply(tmp_path: Path, scene_gaussians) -> Path:
    return write_gaussians_ply(tmp_path / "scene_in.ply", scene_gaussians[0])


def _no_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the tracker (the long work) starts."""
    from mastsam_splat.tracker import job

    def refuse(*args, **kwargs):
        raise AssertionError("the tracker ran before the input was checked")

    monkeypatch.setattr(job.TrackingJob, "make_tracker", refuse)


def test_error_text_is_printed_literally(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "scan[old]" / "[bold]x"
    code = entrypoint(["track", "--data", str(missing), "--output-dir", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: {missing}: no such file or folder" in err


def test_option_out_of_range_is_a_clear_error(image_folder: Path, tmp_path: Path, capsys) -> None:
    args = ["track", "--data", str(image_folder), "--output-dir", str(tmp_path / "o")]
    assert entrypoint([*args, "--tracker.representatives.min-points", "0"]) == 2
    assert "tracker.representatives.min-points must be >= 1, got 0" in capsys.readouterr().err
    assert entrypoint([*args, "--tracker.consensus.share", "1.5"]) == 2
    assert "tracker.consensus.share must be between 0 and 1, got 1.5" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_track_refuses_the_input_images_folder(image_folder: Path, monkeypatch) -> None:
    _no_tracking(monkeypatch)
    before = sorted(p.name for p in image_folder.iterdir())
    with pytest.raises(InputError, match="folder of the input images"):
        run_track(TrackCommand(data=image_folder, output_dir=image_folder, quiet=True))
    assert sorted(p.name for p in image_folder.iterdir()) == before


def test_track_output_under_a_file_or_unwritable(image_folder: Path, tmp_path: Path, monkeypatch) -> None:
    _no_tracking(monkeypatch)
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match=r"--output-dir cannot be created: .*file is a file"):
        run_track(TrackCommand(data=image_folder, output_dir=tmp_path / "file" / "out", quiet=True))
    with unwritable(tmp_path / "ro", monkeypatch):
        with pytest.raises(InputError, match="--output-dir cannot be written"):
            run_track(TrackCommand(data=image_folder, output_dir=tmp_path / "ro" / "out", quiet=True))


def test_eval_json_must_be_a_writable_file(tmp_path: Path, synthetic_scene: Path, monkeypatch) -> None:
    import mastsam_splat.cli.eval as eval_cli

    monkeypatch.setattr(eval_cli.EvalCommand, "report", lambda self: pytest.fail("evaluated before checking --json"))
    pred = synthetic_scene / "instances"
    with pytest.raises(InputError, match=r"--json is a folder; give a file name"):
        EvalCommand(pred=pred, data=synthetic_scene, json=tmp_path).main()
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"--json cannot be created"):
        EvalCommand(pred=pred, data=synthetic_scene, json=tmp_path / "f" / "m.json").main()
    with unwritable(tmp_path / "ro", monkeypatch):
        with pytest.raises(InputError, match=r"--json cannot be written"):
            EvalCommand(pred=pred, data=synthetic_scene, json=tmp_path / "ro" / "m.json").main()


def test_lift_downscale_too_large(tmp_path: Path, synthetic_scene: Path, scene_ply: Path) -> None:
    cmd = LiftCommand(
        output_dir=tmp_path / "lift",
        ply=scene_ply,
        data=synthetic_scene,
        masks=synthetic_scene / "instances",
        downscale=1000,
        quiet=True,
        lift=FAST,
    )
    with pytest.raises(InputError, match=r"--downscale 1000 is too large for frames of \d+ px .*at most \d+"):
        run_lift(cmd)
    assert not (tmp_path / "lift").exists()


def test_lift_on_a_read_only_dataset_asks_for_a_cache(
    tmp_path: Path, synthetic_scene: Path, scene_ply: Path, monkeypatch
) -> None:
    _no_tracking(monkeypatch)
    data = tmp_path / "data"
    shutil.copytree(synthetic_scene, data)
    cmd = LiftCommand(output_dir=tmp_path / "lift", ply=scene_ply, data=data, quiet=True, lift=FAST)
    with unwritable(data, monkeypatch):
        with pytest.raises(InputError, match=r"tracker's cache .* is not writable .*pass --track-cache DIR"):
            run_lift(cmd)
    (tmp_path / "f").write_text("")
    cmd = LiftCommand(
        output_dir=tmp_path / "lift", ply=scene_ply, data=data, track_cache=tmp_path / "f" / "c", quiet=True, lift=FAST
    )
    with pytest.raises(InputError, match=r"--track-cache cannot be created"):
        run_lift(cmd)


def test_lift_and_export_output_under_a_file(tmp_path: Path, synthetic_scene: Path, scene_ply: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"--output-dir cannot be created"):
        run_lift(
            LiftCommand(
                output_dir=tmp_path / "f" / "lift",
                ply=scene_ply,
                data=synthetic_scene,
                masks=synthetic_scene / "instances",
                quiet=True,
                lift=FAST,
            )
        )
    with pytest.raises(InputError, match=r"--output-dir cannot be created"):
        run_export(ExportCommand(output_dir=tmp_path / "f" / "exp", ply=scene_ply, quiet=True))


def test_train_and_synth_check_their_output_first(tmp_path: Path, synthetic_scene: Path, monkeypatch) -> None:
    import mastsam_splat.cli.train as train_cli

    monkeypatch.setattr(train_cli, "train", lambda config: pytest.fail("trained before checking --output-dir"))
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"--output-dir cannot be created"):
        TrainCommand(data=synthetic_scene, output_dir=tmp_path / "f" / "out", progress=False).main()
    with pytest.raises(InputError, match=r"folder of the input images"):
        TrainCommand(data=synthetic_scene, output_dir=synthetic_scene / "images", progress=False).main()
    with pytest.raises(InputError, match=r"--output-dir cannot be created"):
        SynthCommand(output_dir=tmp_path / "f" / "scene", frames=2).main()


def test_train_options_out_of_range(synthetic_scene: Path) -> None:
    with pytest.raises(InputError, match=r"--downscale must be >= 1, got 0"):
        TrainCommand(data=synthetic_scene, downscale=0)
    with pytest.raises(InputError, match=r"--sh-degree must be between 0 and 4, got 9"):
        TrainCommand(data=synthetic_scene, sh_degree=9)
    with pytest.raises(InputError, match=r"--downscale 500 is too large"):
        TrainCommand(data=synthetic_scene, downscale=500, steps=1, progress=False).main()


def test_paths_in_progress_messages_are_literal(image_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out[v2]"
    run_track(TrackCommand(data=image_folder, output_dir=out))
    run_track(TrackCommand(data=image_folder, output_dir=out))
    err = capsys.readouterr().err
    assert re.search(r"\nresults in\s+" + re.escape(str(out)), err)
    assert re.search(r"reusing results in\s+" + re.escape(str(out)), err)
