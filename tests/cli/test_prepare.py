"""The ``mastsam prepare`` command: a dataset from photos, and one clear error for bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from support.capture_scenes import CAPTURE_FRAMES, CAPTURE_HEIGHT, CAPTURE_WIDTH, photo_folder

from mastsam_splat.cli import entrypoint
from mastsam_splat.synthetic import make_scene


def test_prepare_command(tmp_path: Path, capsys) -> None:
    scene = make_scene(tmp_path / "scene", CAPTURE_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0,
                       trajectory="forward", progress=False)
    photos = photo_folder(scene, tmp_path / "photos", extra_bad=True)
    code = entrypoint(["prepare", "--output-dir", str(tmp_path / "dataset"), "--images", str(photos), "--quiet"])
    assert code == 0
    assert (tmp_path / "dataset" / "transforms.json").is_file()
    err = " ".join(capsys.readouterr().err.split())
    assert "warning:" in err and "zz_truncated.png" in err


def test_prepare_command_reports_bad_input(tmp_path: Path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, size in enumerate([(40, 30), (40, 30), (30, 40)]):
        cv2.imwrite(str(photos / f"{i}.png"), np.zeros((size[1], size[0], 3), np.uint8))
    code = entrypoint(["prepare", "--output-dir", str(tmp_path / "dataset"), "--images", str(photos), "--quiet"])
    assert code == 2
    assert "2 is 30x40 (upright) but 0 is 40x30" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "dataset").exists()
    assert entrypoint(["prepare", "--output-dir", str(tmp_path / "d"), "--images", str(photos), "--sfm", "mast3r"]) == 2


def test_prepare_command_passes_the_mast3r_options(tmp_path: Path, capsys) -> None:
    """--mast3r-checkpoint and --mast3r.* reach the backend: a missing checkpoint is named before any work."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        cv2.imwrite(str(photos / f"{i}.png"), np.zeros((30, 40, 3), np.uint8))
    missing = tmp_path / "no-such-mast3r.pth"
    args = ["prepare", "--output-dir", str(tmp_path / "d"), "--images", str(photos), "--quiet", "--sfm", "mast3r"]
    assert entrypoint([*args, "--mast3r-checkpoint", str(missing), "--mast3r.image-size", "224"]) == 2
    assert "no-such-mast3r.pth" in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "d").exists()
