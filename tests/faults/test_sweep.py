"""Fault injection: every input file of a tiny dataset, corrupted in turn, for every command.

Each corrupted run must exit non-zero with one ``error:`` line naming the file, print no
traceback, and leave the output folder (holding an earlier complete result) as it was.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from support.faults import Outcome, run_mastsam, snapshot

IMAGE = "data/images/frame_00001.png"
DEPTH = "data/depth/frame_00001.png"
TRUTH = "data/instances/frame_00001.png"
TRANSFORMS = "data/transforms.json"
PRED = "pred/frame_00001.png"
PLY = "gaussians.ply"
LABELLED_PLY = "labelled.ply"


def track(work: Path, out: Path) -> list:
    return ["track", "--data", work / "data", "--output-dir", out, "--quiet"]


def lift(work: Path, out: Path) -> list:
    return [
        "lift", "--ply", work / PLY, "--data", work / "data", "--masks", work / "data" / "instances",
        "--output-dir", out, "--quiet", "--rasterizer", "torch", "--check-views", "0",
    ]  # fmt: skip


def export(work: Path, out: Path) -> list:
    return ["export", "--ply", work / LABELLED_PLY, "--output-dir", out, "--quiet"]


def evaluate(work: Path, out: Path) -> list:
    return ["eval", "--pred", work / "pred", "--data", work / "data", "--json", out / "metrics.json"]


COMMANDS: dict[str, tuple[Callable[[Path, Path], list], tuple[str, ...]]] = {
    "track": (track, (TRANSFORMS, IMAGE, DEPTH)),
    "lift": (lift, (TRANSFORMS, IMAGE, DEPTH, TRUTH, PLY)),
    "export": (export, (LABELLED_PLY,)),
    "eval": (evaluate, (TRANSFORMS, IMAGE, DEPTH, TRUTH, PRED)),
}


def _png_bytes() -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return data.tobytes()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def truncate_tail(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-16])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, dtype=np.uint8).tobytes())


def wrong_type(path: Path) -> None:
    path.write_bytes(_png_bytes() if path.suffix in (".json", ".ply") else b'{"not": "an image"}\n')


def wrong_json(path: Path) -> None:
    path.write_text(json.dumps([{"frames": "none"}]))


def nan(path: Path) -> None:
    if path.suffix == ".json":
        meta = json.loads(path.read_text())
        meta["frames"][1]["transform_matrix"][0][3] = math.nan
        path.write_text(json.dumps(meta))
        return
    import io

    from plyfile import PlyData

    ply = PlyData.read(io.BytesIO(path.read_bytes()))
    ply["vertex"].data["x"][3] = np.nan
    ply.write(str(path))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "truncate": truncate,
    "truncate_tail": truncate_tail,
    "empty": empty,
    "garbage": garbage,
    "wrong_type": wrong_type,
    "wrong_json": wrong_json,
    "nan": nan,
}
APPLIES = {
    ".png": ("truncate", "truncate_tail", "empty", "garbage", "wrong_type"),
    ".json": ("truncate", "empty", "garbage", "wrong_type", "wrong_json", "nan"),
    ".ply": ("truncate", "truncate_tail", "empty", "garbage", "wrong_type", "nan"),
}

def case(command: str, rel: str, corruption: str, with_command: bool = True) -> object:
    values = (command, rel, corruption) if with_command else (rel, corruption)
    return pytest.param(*values, id=f"{command}-{Path(rel).name}-{corruption}")


def cases() -> list:
    return [
        case(command, rel, corruption)
        for command, (_, files) in COMMANDS.items()
        for rel in files
        for corruption in APPLIES[Path(rel).suffix]
    ]


@pytest.fixture(scope="module")
def workspace(tiny_dataset: Path, gaussian_plys, tmp_path_factory) -> Path:
    """Pristine inputs under ``<base>/pristine`` and each command's earlier result under ``<base>/ref``."""
    base = tmp_path_factory.mktemp("sweep")
    pristine = base / "pristine"
    shutil.copytree(tiny_dataset, pristine / "data")
    shutil.copytree(tiny_dataset / "instances", pristine / "pred")
    shutil.copy(gaussian_plys[0], pristine / PLY)
    shutil.copy(gaussian_plys[1], pristine / LABELLED_PLY)
    return base


def reset(base: Path) -> Path:
    work = base / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base / "pristine", work)
    return work


@pytest.fixture(scope="module")
def earlier_results(workspace: Path) -> dict[str, Path]:
    """Each command's output on the pristine inputs (the 'earlier complete result')."""
    from mastsam_splat.cli import entrypoint

    work = reset(workspace)
    refs = {}
    for command, (args, _) in COMMANDS.items():
        out = workspace / "ref" / command
        out.mkdir(parents=True)
        assert entrypoint([str(a) for a in args(work, out)]) == 0, command
        refs[command] = out
    return refs


@pytest.mark.parametrize("command,rel,corruption", cases())
def test_corrupted_input(command: str, rel: str, corruption: str, workspace, earlier_results, capsys, monkeypatch) -> None:
    work = reset(workspace)
    out = workspace / "out"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(earlier_results[command], out)
    before, parent_before = snapshot(out), sorted(os.listdir(workspace))
    CORRUPTIONS[corruption](work / rel)

    args, _ = COMMANDS[command]
    outcome: Outcome = run_mastsam(args(work, out), capsys, monkeypatch)

    assert not outcome.crash, outcome.crash
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code != 0, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert rel.split("/", 1)[-1] in outcome.error_lines[0], outcome.error_lines[0]
    assert snapshot(out) == before
    assert sorted(os.listdir(workspace)) == parent_before


NS_TRAIN_FILES = (TRANSFORMS, IMAGE, DEPTH)


def ns_train_setup(work: Path, out: Path, capsys, monkeypatch) -> Outcome:
    """``ns-train mastsam-splat --data <work>/data --output-dir <out>`` up to the end of its setup, in this process."""
    import traceback

    from nerfstudio_plugin.config import make_trainer_config

    monkeypatch.setenv("COLUMNS", "2000")
    config = make_trainer_config()
    config.machine.device_type = "cpu"
    config.vis = "tensorboard"
    config.output_dir = out
    config.pipeline.datamanager.data = work / "data"
    config.timestamp = "sweep"
    capsys.readouterr()
    crash, code = "", 0
    try:
        config.save_config()
        config.setup(local_rank=0, world_size=1).setup()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001
        code, crash = 1, traceback.format_exc()
    captured = capsys.readouterr()
    return Outcome(code, captured.out + captured.err, crash)


@pytest.mark.parametrize(
    "rel,corruption",
    [case("ns-train", rel, c, with_command=False) for rel in NS_TRAIN_FILES for c in APPLIES[Path(rel).suffix]],
)
def test_ns_train_on_a_corrupted_dataset(rel: str, corruption: str, workspace, capsys, monkeypatch) -> None:
    pytest.importorskip("nerfstudio")
    work = reset(workspace)
    out = workspace / "outputs"
    shutil.rmtree(out, ignore_errors=True)
    CORRUPTIONS[corruption](work / rel)
    data_before = snapshot(work)

    outcome = ns_train_setup(work, out, capsys, monkeypatch)

    assert not outcome.crash, outcome.crash
    assert "Traceback" not in outcome.stderr, outcome.stderr
    assert outcome.code != 0, outcome.stderr
    assert len(outcome.error_lines) == 1, outcome.stderr
    assert rel.split("/", 1)[-1] in outcome.error_lines[0], outcome.error_lines[0]
    assert not out.exists()
    assert snapshot(work) == data_before
