"""Build the wheel bundle of the GPU checks (see bundle.py): one wheel per line of bundle.txt.

Binary wheels are downloaded for CPython 3.12 on manylinux x86_64; a package published only as
a source archive is built here into a pure-Python wheel (``pip wheel --no-deps``). Nothing is
resolved: each requirement is fetched alone (``--no-deps``), so the bundle is exactly the list.

    python scripts/gpu_check/build_bundle.py [--bundle .gpu_check/wheels]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bundle import DEFAULT_BUNDLE, REQUIREMENTS, Requirement, check_bundle, read_requirements, wheel_key, write_manifest

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def fetch(req: Requirement, dest: Path) -> Path:
    """The wheel of ``req`` in ``dest``: downloaded for cp312 when one exists, else built here."""
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", tmp, str(req)]  # fmt: skip
        if subprocess.run(download, capture_output=True, text=True).returncode != 0:
            build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", tmp, str(req)]
            result = subprocess.run(build, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"cannot get a wheel of {req}:\n{result.stderr[-2000:]}")
        wheels = [w for w in Path(tmp).glob("*.whl") if wheel_key(w.name)[0] == req.key]
        if len(wheels) != 1:
            raise SystemExit(f"expected one wheel of {req}, got {[w.name for w in Path(tmp).iterdir()]}")
        target = dest / wheels[0].name
        shutil.move(str(wheels[0]), target)
        return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE, help="folder of the wheels (replaced)")
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    parser.add_argument("--clean", action="store_true", help="fetch every wheel again (default: keep matching ones)")
    args = parser.parse_args(argv)
    reqs = read_requirements(args.requirements)
    if args.clean and args.bundle.exists():
        shutil.rmtree(args.bundle)
    args.bundle.mkdir(parents=True, exist_ok=True)
    wanted = {(r.key, r.version) for r in reqs}
    present = {}
    for wheel in args.bundle.glob("*.whl"):
        if wheel_key(wheel.name) in wanted:
            present[wheel_key(wheel.name)] = wheel
        else:
            wheel.unlink()  # another version, or no longer in the list
    for req in reqs:
        wheel = present.get((req.key, req.version)) or fetch(req, args.bundle)
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}", flush=True)
    write_manifest(args.bundle, reqs)
    check = check_bundle(args.bundle, reqs)
    print(
        f"{check.wheels} wheels, {check.wheel_bytes / 2**20:.1f} MiB; with the working tree "
        f"{check.total_bytes / 2**20:.1f} MiB"
    )
    for problem in check.problems:
        print(f"problem: {problem}")
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
