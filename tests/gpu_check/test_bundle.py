"""The bundle check: every pinned wheel once, for cp312 manylinux x86_64, within the size limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle import Requirement, check_bundle, read_requirements, write_manifest
from install import register_project, unpack_wheel


def wheel(folder: Path, name: str, size: int = 10) -> Path:
    path = folder / name
    path.write_bytes(b"x" * size)
    return path


def test_the_pinned_list_parses_and_pins_every_line() -> None:
    reqs = read_requirements()
    assert {"nerfstudio", "gsplat", "segment-anything", "viser"} <= {r.name for r in reqs}
    assert all(r.version for r in reqs)
    assert not {"torch", "numpy", "torchvision"} & {r.name for r in reqs}  # preinstalled on the GPU machine


def test_check_finds_missing_extra_wrong_version_and_foreign_wheels(tmp_path: Path) -> None:
    reqs = [Requirement("gsplat", "1.4.0"), Requirement("segment-anything", "1.0"), Requirement("msgspec", "0.23.0")]
    wheel(tmp_path, "gsplat-1.4.0-py3-none-any.whl")
    wheel(tmp_path, "segment_anything-0.9-py3-none-any.whl")
    wheel(tmp_path, "stray-1.0-py3-none-any.whl")
    wheel(tmp_path, "msgspec-0.23.0-cp311-cp311-manylinux2014_x86_64.whl")
    write_manifest(tmp_path, reqs)
    problems = check_bundle(tmp_path, reqs).problems
    assert any("segment_anything-0.9" in p for p in problems)
    assert any("stray" in p for p in problems)
    assert any("msgspec" in p and "3.12" in p for p in problems)
    assert not any("gsplat" in p for p in problems)


def test_check_enforces_the_size_limit_and_the_manifest(tmp_path: Path) -> None:
    reqs = [Requirement("gsplat", "1.4.0")]
    w = wheel(tmp_path, "gsplat-1.4.0-py3-none-any.whl", size=1000)
    write_manifest(tmp_path, reqs)
    assert check_bundle(tmp_path, reqs, limit=10**9).ok
    assert any("exceed" in p for p in check_bundle(tmp_path, reqs, limit=100).problems)
    w.write_bytes(b"y" * 1000)
    assert any("differs from the manifest" in p for p in check_bundle(tmp_path, reqs, limit=10**9).problems)


def test_a_missing_bundle_folder_says_how_to_build_it(tmp_path: Path) -> None:
    problems = check_bundle(tmp_path / "nowhere", [Requirement("gsplat", "1.4.0")]).problems
    assert any("build_bundle.py" in p for p in problems)


def test_install_registers_the_project_entry_points(tmp_path: Path) -> None:
    import importlib.metadata as md

    info = register_project(tmp_path)
    dist = md.PathDistribution(info)
    assert dist.metadata["Name"] == "mastsam-splat"
    points = {(e.group, e.name): e.value for e in dist.entry_points}
    assert points[("nerfstudio.method_configs", "mastsam-splat")] == "nerfstudio_plugin.config:mastsam_splat_method"
    assert points[("console_scripts", "mastsam")] == "mastsam_splat.cli:main"


@pytest.mark.parametrize("data_dir", ["purelib", "platlib"])
def test_unpacking_a_wheel_without_pip(tmp_path: Path, data_dir: str) -> None:
    import zipfile

    path = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("demo/__init__.py", "X = 1\n")
        zf.writestr(f"demo-1.0.data/{data_dir}/demo_extra.py", "Y = 2\n")
        zf.writestr("demo-1.0.data/scripts/tool", "#!python\n")
        zf.writestr("demo-1.0.dist-info/METADATA", "Name: demo\n")
    target = tmp_path / "site"
    unpack_wheel(path, target)
    assert (target / "demo" / "__init__.py").read_text() == "X = 1\n"
    assert (target / "demo_extra.py").is_file()
    assert not (target / "tool").exists()
