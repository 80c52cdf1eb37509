"""Fault-injection fixtures: a tiny synthetic dataset (4 views of 64x48), Gaussians on its surfaces, and
helpers that run ``mastsam`` in this process and compare folders.

Imported by ``tests/faults/conftest.py``."""

from __future__ import annotations

import hashlib
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

FRAMES, WIDTH, HEIGHT = 4, 64, 48


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from mastsam_splat.synthetic import make_scene

    return make_scene(
        tmp_path_factory.mktemp("faults") / "scene", frames=FRAMES, width=WIDTH, height=HEIGHT, seed=1,
        max_points=800, progress=False,
    )


@pytest.fixture(scope="session")
def gaussian_plys(tiny_dataset: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(Gaussians without ids, for ``lift``; the same with their true ids, for ``export``)."""
    from support.gaussian_factories import seeded_gaussians

    from mastsam_splat.io.ply import write_gaussians_ply

    folder = tmp_path_factory.mktemp("plys")
    gaussians, ids = seeded_gaussians(tiny_dataset / "sparse_pc.ply")
    plain = write_gaussians_ply(folder / "gaussians.ply", gaussians)
    labelled = write_gaussians_ply(folder / "labelled.ply", gaussians.with_ids(ids))
    return plain, labelled


@dataclass
class Outcome:
    """What one ``mastsam`` command did."""

    code: int
    stderr: str
    crash: str = ""
    """The traceback of an exception that escaped the command (empty when none did)."""

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_mastsam(args: list[str], capsys, monkeypatch) -> Outcome:
    """``mastsam <args>`` in this process, its stderr captured (wide, so a message is one line)."""
    from mastsam_splat.cli import entrypoint

    monkeypatch.setenv("COLUMNS", "2000")
    capsys.readouterr()
    crash = ""
    try:
        code = entrypoint([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:  # noqa: BLE001  (a crash is what the caller checks for)
        code, crash = 1, traceback.format_exc()
    return Outcome(code, capsys.readouterr().err, crash)


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (hidden ones included) with its content hash."""
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix(): hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }
