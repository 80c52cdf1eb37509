"""The wheel bundle of the GPU checks: its pinned requirements, its manifest and its checks.

The GPU machine has Python 3.12 with torch and a few libraries preinstalled and no network.
Everything else travels as cp312 manylinux x86_64 (or pure-Python) wheels, built or downloaded
here by ``build_bundle.py`` into an ignored folder, and carried with the working tree; both
together must stay within the machine's transfer limit.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REQUIREMENTS = HERE / "bundle.txt"
MACHINE_PACKAGES = HERE / "machine-packages.txt"
DEFAULT_BUNDLE = REPO / ".gpu_check" / "wheels"
MANIFEST_NAME = "manifest.json"
TRANSFER_LIMIT = 64 * 2**20
"""Bytes the working tree and the bundle may take together on their way to the GPU machine."""


@dataclass(frozen=True)
class Requirement:
    """One pinned package of the bundle."""

    name: str
    version: str

    @property
    def key(self) -> str:
        """The normalised name wheels use in their file names (PEP 427/503)."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def read_requirements(path: Path = REQUIREMENTS) -> list[Requirement]:
    """The pinned ``name==version`` lines of ``path`` (comments and blank lines skipped)."""
    reqs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected name==version, got {line!r}")
        reqs.append(Requirement(name.strip(), version.strip()))
    return reqs


def wheel_key(filename: str) -> tuple[str, str]:
    """(normalised name, version) of a wheel file name."""
    parts = filename[: -len(".whl")].split("-")
    return re.sub(r"[-_.]+", "_", parts[0]).lower(), parts[1]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(bundle: Path, reqs: list[Requirement]) -> dict:
    """Record every wheel of ``bundle`` (file, size, sha256) next to them."""
    wheels = sorted(bundle.glob("*.whl"))
    manifest = {
        "requirements": [str(r) for r in reqs],
        "wheels": [{"file": w.name, "bytes": w.stat().st_size, "sha256": sha256(w)} for w in wheels],
    }
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def tree_bytes(repo: Path = REPO) -> int:
    """Bytes of the files git tracks or would carry (tracked plus untracked, not ignored)."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout
    total = 0
    for name in filter(None, listing.decode().split("\0")):
        path = repo / name
        if path.is_file():
            total += path.stat().st_size
    return total


@dataclass
class BundleCheck:
    """What :func:`check_bundle` found."""

    problems: list[str]
    wheel_bytes: int
    tree_bytes: int
    wheels: int

    @property
    def total_bytes(self) -> int:
        return self.wheel_bytes + self.tree_bytes

    @property
    def ok(self) -> bool:
        return not self.problems


def check_bundle(bundle: Path, reqs: list[Requirement], repo: Path = REPO, limit: int = TRANSFER_LIMIT) -> BundleCheck:
    """Every pinned wheel is present once and intact, nothing else is, and tree + bundle fit the limit."""
    problems: list[str] = []
    wheels = sorted(bundle.glob("*.whl")) if bundle.is_dir() else []
    if not bundle.is_dir():
        problems.append(f"bundle folder {bundle} does not exist; run scripts/gpu_check/build_bundle.py")
    found: dict[str, list[Path]] = {}
    for w in wheels:
        found.setdefault(wheel_key(w.name)[0], []).append(w)
    for req in reqs:
        hits = found.pop(req.key, [])
        if not hits:
            problems.append(f"missing wheel for {req}")
        elif len(hits) > 1:
            problems.append(f"{len(hits)} wheels for {req.name}: {', '.join(h.name for h in hits)}")
        elif wheel_key(hits[0].name)[1] != req.version:
            problems.append(f"{hits[0].name} is not version {req.version} of {req.name}")
    for extra in found.values():
        problems.extend(f"wheel {w.name} is not in bundle.txt" for w in extra)
    for w in wheels:
        tags = w.name[: -len(".whl")].split("-")[-3:]
        if not (tags[0] in ("py3", "py2.py3", "py312", "cp312") or tags[1] == "abi3"):
            problems.append(f"{w.name} is not for CPython 3.12")
        if not (tags[2] == "any" or ("manylinux" in tags[2] and "x86_64" in tags[2])):
            problems.append(f"{w.name} is not a manylinux x86_64 or pure-Python wheel")
    manifest_path = bundle / MANIFEST_NAME
    if wheels and manifest_path.is_file():
        recorded = {w["file"]: w for w in json.loads(manifest_path.read_text())["wheels"]}
        for w in wheels:
            entry = recorded.get(w.name)
            if entry is None or entry["bytes"] != w.stat().st_size or entry["sha256"] != sha256(w):
                problems.append(f"{w.name} differs from the manifest (rebuild the bundle)")
    elif wheels:
        problems.append(f"no {MANIFEST_NAME} in {bundle}; run scripts/gpu_check/build_bundle.py")
    wheel_bytes = sum(w.stat().st_size for w in wheels)
    tree = tree_bytes(repo)
    if wheel_bytes + tree > limit:
        problems.append(
            f"working tree ({tree / 2**20:.1f} MiB) and bundle ({wheel_bytes / 2**20:.1f} MiB) exceed "
            f"{limit / 2**20:.0f} MiB"
        )
    return BundleCheck(problems, wheel_bytes, tree, len(wheels))
