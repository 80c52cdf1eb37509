"""End to end on CPU: ``ns-train mastsam-splat --data photos/`` prepares the photos first (SfM), then trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.capture_scenes import CAPTURE_FRAMES, CAPTURE_HEIGHT, CAPTURE_WIDTH, photo_folder

from mastsam_splat.synthetic import make_scene

pytest.importorskip("nerfstudio")
pytestmark = pytest.mark.slow

ITERATIONS = 20


def test_train_from_a_folder_of_photos(tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "scene", CAPTURE_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0,
                       trajectory="forward", progress=False)
    photos = photo_folder(scene, tmp_path / "photos")
    command = [
        str(Path(sys.executable).with_name("ns-train")), "mastsam-splat",
        "--machine.device-type", "cpu", "--vis", "tensorboard", "--viewer.quit-on-train-completion", "True",
        "--steps-per-eval-image", "1000000", "--steps-per-eval-all-images", "1000000",
        "--max-num-iterations", str(ITERATIONS), "--output-dir", str(tmp_path / "out"), "--timestamp", "run",
        "--data", str(photos),
    ]
    env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "making a Nerfstudio dataset from images input" in result.stdout
    assert (photos / "mastsam-dataset" / "transforms.json").is_file()
    checkpoints = list((tmp_path / "out").rglob("step-*.ckpt"))
    assert checkpoints, result.stdout[-3000:]
