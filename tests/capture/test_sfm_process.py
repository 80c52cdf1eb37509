"""SfM in a child process: a signal during pycolmap's mapping ends ``prepare`` cleanly, leaving nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.capture_scenes import CAPTURE_HEIGHT, CAPTURE_WIDTH

from mastsam_splat.synthetic import make_scene

TESTS = Path(__file__).resolve().parents[1]


def prepare_signalled(images: Path, out: Path, signum: int) -> subprocess.CompletedProcess:
    """``mastsam prepare`` in a child process whose SfM child sends ``signum`` to it during mapping."""
    script = textwrap.dedent(
        f"""
        import functools, sys
        sys.path.insert(0, {str(TESTS)!r})
        from support.sfm_signals import signalling_child_main
        from mastsam_splat.capture import sfm_process
        sfm_process._child_main = functools.partial(signalling_child_main, {int(signum)})
        from mastsam_splat.cli import entrypoint
        sys.exit(entrypoint(["prepare", "--images", {str(images)!r}, "--output-dir", {str(out)!r}, "--quiet"]))
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "2000"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def orbit_photos(tmp_path_factory) -> Path:
    scene = make_scene(tmp_path_factory.mktemp("sigterm") / "scene", 16, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0,
                       trajectory="orbit", progress=False)
    return scene / "images"


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_during_mapping_leaves_no_dataset_and_no_staging(orbit_photos: Path, tmp_path: Path, signum) -> None:
    out = tmp_path / "dataset"
    result = prepare_signalled(orbit_photos, out, signum)
    assert result.returncode == 128 + signum, result.stderr[-3000:]
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert "stack trace" not in result.stderr  # glog's handler did not end the process
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_crashed_child_is_an_error_in_the_parent(orbit_photos: Path, tmp_path: Path, monkeypatch) -> None:
    from support.sfm_signals import aborting_child_main

    from mastsam_splat.capture import sfm_process

    monkeypatch.setattr(sfm_process, "_child_main", aborting_child_main)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RuntimeError, match=r"signal 6 \(SIGABRT\)"):
        sfm_process.run_sfm_in_child(orbit_photos, ["frame_00000.png"], (CAPTURE_WIDTH, CAPTURE_HEIGHT), work)
