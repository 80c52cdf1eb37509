"""Per-object export: files partition the scene, reload bit for bit, index, bad input, atomicity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData
from support.gaussian_factories import random_gaussians

import mastsam_splat.objects.export as export_module
from mastsam_splat.errors import InputError
from mastsam_splat.io.ply import read_gaussians_ply
from mastsam_splat.objects.export import export_objects, object_file_name, parse_object_selection


def _rows(path: Path) -> np.ndarray:
    return PlyData.read(str(path))["vertex"].data


def _sorted_bytes(rows: np.ndarray) -> list[bytes]:
    return sorted(r.tobytes() for r in rows)


def test_objects_partition_the_scene_and_reload_bit_for_bit(tmp_path: Path) -> None:
    gaussians = random_gaussians(500, sh_degree=2)
    result = export_objects(gaussians, tmp_path / "out", points=True)

    scene = read_gaussians_ply(result.scene_file)
    for name in ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest", "instance_ids"):
        assert getattr(scene, name).tobytes() == getattr(gaussians, name).tobytes(), name

    ids = set(np.unique(gaussians.instance_ids).tolist())
    assert set(result.object_files) == ids  # objects 1..4, background 0, unlabelled -1
    parts = []
    for instance_id, path in result.object_files.items():
        rows = _rows(path)
        assert (rows["instance_id"] == instance_id).all()
        assert len(rows) == int((gaussians.instance_ids == instance_id).sum())
        parts.append(rows)
        sub = read_gaussians_ply(path)
        keep = gaussians.instance_ids == instance_id
        assert sub.means.tobytes() == gaussians.means[keep].tobytes()
        assert sub.sh_rest.tobytes() == gaussians.sh_rest[keep].tobytes()
    # together they are exactly the whole scene's rows
    assert _sorted_bytes(np.concatenate(parts)) == _sorted_bytes(_rows(result.scene_file))

    index = json.loads(result.index_file.read_text())
    assert index["num_gaussians"] == 500 and index["complete_partition"] and index["sh_degree"] == 2
    by_id = {e["id"]: e for e in index["objects"]}
    e = by_id[3]
    keep = gaussians.instance_ids == 3
    assert e["num_gaussians"] == int(keep.sum()) and e["file"] == f"objects/{object_file_name(3)}"
    np.testing.assert_allclose(e["bbox_min"], gaussians.means[keep].min(0), atol=1e-5)
    np.testing.assert_allclose(e["bbox_max"], gaussians.means[keep].max(0), atol=1e-5)
    np.testing.assert_allclose(e["mean_color"], gaussians.colors[keep].mean(0), atol=1e-3)
    assert by_id[0]["kind"] == "background" and by_id[-1]["kind"] == "unlabelled"
    points = _rows(result.points_file)
    assert len(points) == 500 and (points["instance_id"] == gaussians.instance_ids).all()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folder left behind"


def test_selected_objects_only(tmp_path: Path) -> None:
    gaussians = random_gaussians(100)
    result = export_objects(gaussians, tmp_path / "out", objects=parse_object_selection("2, 4"))
    assert sorted(p.name for p in (tmp_path / "out" / "objects").iterdir()) == ["object_0002.ply", "object_0004.ply"]
    assert len(_rows(result.scene_file)) == 100
    assert not result.index["complete_partition"]


def test_selection_parsing() -> None:
    assert parse_object_selection("all") is None
    assert parse_object_selection("5,3,3") == [3, 5]
    assert parse_object_selection("background,unlabelled,1") == [-1, 0, 1]
    with pytest.raises(InputError, match="comma-separated"):
        parse_object_selection("cat")


def test_unknown_id_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no object with id 42; the scene's object ids are \[1, 2, 3, 4\]"):
        export_objects(random_gaussians(100), tmp_path / "out", objects=[2, 42])
    assert list(tmp_path.iterdir()) == []


def test_nan_parameters_write_nothing(tmp_path: Path) -> None:
    gaussians = random_gaussians(50)
    gaussians.means[7, 0] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        export_objects(gaussians, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_scene_without_ids_points_to_lift(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="mastsam lift"):
        export_objects(random_gaussians(5, with_ids=False), tmp_path / "out")


def test_unwritable_destination(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the output folder here"):
        export_objects(random_gaussians(5), blocker / "out")
    with pytest.raises(InputError, match="not a folder"):
        export_objects(random_gaussians(5), blocker)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        try:
            with pytest.raises(InputError, match="cannot write the output folder here"):
                export_objects(random_gaussians(5), locked / "out")
        finally:
            locked.chmod(0o700)


def test_refuses_foreign_folder_and_replaces_earlier_export(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing to overwrite"):
        export_objects(random_gaussians(5), foreign)
    assert (foreign / "notes.txt").read_text() == "mine"

    out = tmp_path / "out"
    export_objects(random_gaussians(60, seed=1), out)
    second = random_gaussians(30, seed=2)
    second.instance_ids[:] = 9
    export_objects(second, out)
    assert sorted(p.name for p in (out / "objects").iterdir()) == ["object_0009.ply"]
    assert len(_rows(out / "scene.ply")) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failure_midway_leaves_no_partial_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    export_objects(random_gaussians(40, seed=3), out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "write_labelled_points", broken)
    with pytest.raises(InputError, match="No space left"):
        export_objects(random_gaussians(40, seed=4), out, points=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the earlier export is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_re_export_replaces_only_its_own_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    export_objects(random_gaussians(200, seed=1), out, points=True)
    (out / "README.txt").write_text("the user's notes")
    (out / "objects" / "my_edit.ply").write_bytes(b"the user's file")
    out.chmod(0o750)
    gaussians = random_gaussians(100, seed=2)
    gaussians.instance_ids[:] = np.where(gaussians.instance_ids > 2, 1, gaussians.instance_ids)
    result = export_objects(gaussians, out)  # fewer objects, no points.ply
    assert (out / "README.txt").read_text() == "the user's notes"
    assert (out / "objects" / "my_edit.ply").read_bytes() == b"the user's file"
    assert not (out / "points.ply").exists() and not (out / "objects" / object_file_name(4)).exists()
    assert len(read_gaussians_ply(out / "scene.ply")) == 100
    assert set(result.index["files"]) == {"objects.json", "scene.ply"} | {
        f"objects/{object_file_name(i)}" for i in result.object_files
    }
    assert (out.stat().st_mode & 0o777) == 0o750
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
