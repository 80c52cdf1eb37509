"""Install the wheel bundle into a target folder (``--no-deps``, offline) and register the project.

The project itself runs from the working tree (first on ``PYTHONPATH``); only its package
metadata (name, version, entry points: the ``mastsam-splat`` Nerfstudio method) is written into
the target, so Nerfstudio finds the method without a build step on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

from common import REPO, write_result


def pip_available() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def unpack_wheel(wheel: Path, target: Path) -> None:
    """Install a wheel by unpacking it (when pip is missing): purelib/platlib go to the target root."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            parts = Path(info.filename).parts
            if len(parts) > 2 and parts[0].endswith(".data"):
                if parts[1] not in ("purelib", "platlib"):
                    continue
                dest = target.joinpath(*parts[2:])
            else:
                dest = target / info.filename
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as out:
                shutil.copyfileobj(src, out)


def register_project(target: Path, repo: Path = REPO) -> Path:
    """A ``.dist-info`` for the working tree's project: metadata and entry points, no code."""
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    name, version = project["name"], project["version"]
    info = target / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, points in {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in points.items())
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    (info / "INSTALLER").write_text("gpu-check\n")
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True)
    args = parser.parse_args()
    wheels = sorted(args.bundle.glob("*.whl"))
    if not wheels:
        write_result({"error": f"no wheels in {args.bundle}"})
        return 1
    if args.target.exists():
        shutil.rmtree(args.target)
    args.target.mkdir(parents=True)
    start = time.perf_counter()
    method = "pip" if pip_available() else "unzip"
    if method == "pip":
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--no-compile",
                   "--disable-pip-version-check", "--target", str(args.target), *map(str, wheels)]  # fmt: skip
        proc = subprocess.run(command)
        if proc.returncode != 0:
            write_result({"error": f"pip install failed (exit {proc.returncode})", "method": method})
            return 1
    else:
        for wheel in wheels:
            unpack_wheel(wheel, args.target)
    register_project(args.target)
    write_result(
        {"wheels": len(wheels), "method": method, "seconds": round(time.perf_counter() - start, 2),
         "target": str(args.target)}  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
