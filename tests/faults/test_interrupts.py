"""SIGINT / SIGTERM / SIGKILL at a controlled point of a write: the earlier complete result or nothing.

Each command runs in a child process whose writer sends the signal to its own process on a given
call, so the signal lands at the same point every time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.faults import run_mastsam, snapshot


def run_signalled(args: list, module: str, function: str, on_call: int, signum: int) -> subprocess.CompletedProcess:
    """``mastsam <args>`` in a child process that sends ``signum`` to itself on the ``on_call``-th call of
    ``module.function``."""
    script = textwrap.dedent(
        f"""
        import importlib, signal, sys
        module = importlib.import_module({module!r})
        original = getattr(module, {function!r})
        calls = []

        def hooked(*args, **kwargs):
            calls.append(1)
            if len(calls) == {on_call}:
                signal.raise_signal({int(signum)})  # to this thread: a process-wide kill may reach another one
            return original(*args, **kwargs)

        setattr(module, {function!r}, hooked)
        from mastsam_splat.cli import entrypoint
        sys.exit(entrypoint({[str(a) for a in args]!r}))
        """
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "2000"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)


def hidden_entries(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(".*"))


def track_args(data: Path, out: Path, *extra: str) -> list:
    return ["track", "--data", data, "--output-dir", out, "--quiet", *extra]


def lift_args(data: Path, ply: Path, out: Path) -> list:
    return [
        "lift", "--ply", ply, "--data", data, "--masks", data / "instances", "--output-dir", out,
        "--quiet", "--rasterizer", "torch", "--check-views", "0",
    ]  # fmt: skip


def test_sigterm_while_track_writes_leaves_nothing(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_signalled(track_args(tiny_dataset, out), "mastsam_splat.tracker.outputs", "write_label_image", 3, signal.SIGTERM)
    assert result.returncode == 143, result.stderr[-2000:]
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and hidden_entries(tmp_path) == []


def test_sigint_while_track_rewrites_keeps_the_earlier_result(tiny_dataset: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    out = tmp_path / "out"
    assert run_mastsam(track_args(tiny_dataset, out), capsys, monkeypatch).code == 0
    before = snapshot(out)
    args = track_args(tiny_dataset, out, "--tracker.min-area-fraction", "0.002")  # another config: recompute
    result = run_signalled(args, "mastsam_splat.tracker.outputs", "write_label_image", 3, signal.SIGINT)
    assert result.returncode == 130, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert snapshot(out) == before and hidden_entries(tmp_path) == []
    # the earlier result is complete: rerunning its settings reuses it
    outcome = run_mastsam(track_args(tiny_dataset, out), capsys, monkeypatch)
    assert outcome.code == 0 and snapshot(out) == before


def test_sigterm_while_lift_exports_leaves_nothing(tiny_dataset: Path, gaussian_plys, tmp_path: Path) -> None:
    out = tmp_path / "lift"
    args = lift_args(tiny_dataset, gaussian_plys[0], out)
    result = run_signalled(args, "mastsam_splat.objects.export", "write_gaussians_ply", 2, signal.SIGTERM)
    assert result.returncode == 143, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not out.exists() and hidden_entries(tmp_path) == []


def test_a_killed_lift_leaves_a_staging_folder_the_next_run_removes(
    tiny_dataset: Path, gaussian_plys, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "lift"
    args = lift_args(tiny_dataset, gaussian_plys[0], out)
    result = run_signalled(args, "mastsam_splat.objects.export", "write_gaussians_ply", 2, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    assert not out.exists() and len(hidden_entries(tmp_path)) > 0  # what a killed process leaves
    outcome = run_mastsam(args, capsys, monkeypatch)
    assert outcome.code == 0, outcome.stderr
    assert hidden_entries(tmp_path) == [] and (out / "objects.json").is_file()


def test_a_killed_track_leaves_a_staging_folder_the_next_run_removes(
    tiny_dataset: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "out"
    assert run_mastsam(track_args(tiny_dataset, out), capsys, monkeypatch).code == 0
    args = track_args(tiny_dataset, out, "--tracker.min-area-fraction", "0.002")
    result = run_signalled(args, "mastsam_splat.tracker.outputs", "write_label_image", 3, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    assert hidden_entries(out)  # the killed run's staging folder
    outcome = run_mastsam(args, capsys, monkeypatch)
    assert outcome.code == 0, outcome.stderr
    assert hidden_entries(tmp_path) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_eval_exits_with_the_signal_status(tiny_dataset: Path, tmp_path: Path, signum) -> None:
    pred = tmp_path / "pred"
    shutil.copytree(tiny_dataset / "instances", pred)
    args = ["eval", "--pred", pred, "--data", tiny_dataset, "--json", tmp_path / "m.json"]
    result = run_signalled(args, "mastsam_splat.cli.eval", "read_label_image", 2, signum)
    assert result.returncode == 128 + signum, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "m.json").exists()
