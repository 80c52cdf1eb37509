"""Package-level guarantees: light imports and a working console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY_MODULES = ("torch", "nerfstudio", "segment_anything", "gsplat", "mast3r")


def test_import_does_not_pull_heavy_modules() -> None:
    code = (
        "import sys, mastsam_splat, mastsam_splat.io, mastsam_splat.types, mastsam_splat.cli\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported at package import: {out.stdout.strip()}"


def test_cli_help_lists_subcommands() -> None:
    out = subprocess.run([sys.executable, "-m", "mastsam_splat.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("synth", "eval", "track", "export", "lift"):
        assert name in out.stdout


def test_imports_follow_the_layers() -> None:
    """import-linter's contracts in pyproject.toml (the layers of docs/architecture.md) hold."""
    lint = Path(sys.executable).with_name("lint-imports")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([str(lint)], capture_output=True, text=True, cwd=root)
    assert out.returncode == 0, out.stdout[-3000:]
