"""Synthetic scene files: format, point cloud, determinism, loaders, and bad arguments or outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from support.synthetic_scenes import (
    FRAMES,
    HEIGHT,
    WIDTH,
    read_depths,
    read_png,
    read_stack,
    scene_cameras,
    surface_distance,
)

from mastsam_splat.errors import InputError
from mastsam_splat.synthetic import is_synthetic_scene, make_scene

FOLDERS = ("images", "depth", "instances", "parts")


def test_files_format_and_dtypes(scene_dir: Path) -> None:
    meta = json.loads((scene_dir / "transforms.json").read_text())
    assert meta["camera_model"] == "OPENCV"
    assert (meta["w"], meta["h"]) == (WIDTH, HEIGHT)
    assert all(meta[k] == 0 for k in ("k1", "k2", "p1", "p2"))
    assert meta["fl_x"] > 0 and meta["fl_y"] > 0
    assert meta["ply_file_path"] == "sparse_pc.ply"
    assert len(meta["frames"]) == FRAMES
    for i, frame in enumerate(meta["frames"]):
        assert frame["file_path"] == f"images/frame_{i:05d}.png"
        assert frame["depth_file_path"] == f"depth/frame_{i:05d}.png"
        c2w = np.asarray(frame["transform_matrix"])
        assert c2w.shape == (4, 4)
        np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(c2w[3], [0, 0, 0, 1])
    for folder in FOLDERS:
        files = sorted((scene_dir / folder).iterdir())
        assert [f.name for f in files] == [f"frame_{i:05d}.png" for i in range(FRAMES)]
    image = read_png(scene_dir / "images/frame_00000.png")
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    for folder in ("depth", "instances", "parts"):
        label = read_png(scene_dir / folder / "frame_00000.png")
        assert label.shape == (HEIGHT, WIDTH) and label.dtype == np.uint16, folder

    info = json.loads((scene_dir / "scene.json").read_text())
    assert is_synthetic_scene(scene_dir)
    assert info["settings"]["frames"] == FRAMES
    object_ids = [o["id"] for o in info["objects"]]
    part_ids = [p["id"] for o in info["objects"] for p in o["parts"]]
    assert object_ids == list(range(1, len(object_ids) + 1))
    assert sorted(part_ids) == list(range(1, len(part_ids) + 1))
    assert len(part_ids) > len(object_ids), "some objects must have several parts"
    assert set(np.unique(read_stack(scene_dir, "instances"))) <= {0, *object_ids}
    assert set(np.unique(read_stack(scene_dir, "parts"))) <= {0, *part_ids}
    # Nothing but the scene: no staging folders left next to it.
    assert [p.name for p in scene_dir.parent.iterdir()] == ["scene"]


def test_ply_opens_with_plyfile(scene_dir: Path) -> None:
    from plyfile import PlyData

    ply = PlyData.read(str(scene_dir / "sparse_pc.ply"))
    vertex = ply["vertex"].data
    assert {n: vertex.dtype[n].kind for n in vertex.dtype.names} == {
        "x": "f", "y": "f", "z": "f", "red": "u", "green": "u", "blue": "u", "instance_id": "i"
    }
    assert len(vertex) == json.loads((scene_dir / "scene.json").read_text())["num_points"] > 100
    xyz = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=1).astype(np.float64)
    assert np.isfinite(xyz).all()
    # Every labelled point lies on the surface of its object; ground points lie on z = 0.
    info = json.loads((scene_dir / "scene.json").read_text())
    ground = vertex["instance_id"] == 0
    np.testing.assert_allclose(xyz[ground, 2], 0.0, atol=1e-4)
    for obj in info["objects"]:
        sel = vertex["instance_id"] == obj["id"]
        if sel.any():
            dist = np.min([surface_distance(p, xyz[sel]) for p in obj["primitives"]], axis=0)
            assert dist.max() < 1e-3, obj["shape"]


def test_deterministic(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a = make_scene(tmp_path / "a", frames=4, width=48, height=32, seed=7, progress=False)
    b = make_scene(tmp_path / "b", frames=4, width=48, height=32, seed=7, progress=False)
    c = make_scene(tmp_path / "c", frames=4, width=48, height=32, seed=8, progress=False)
    assert files(a) == files(b)
    assert files(a)["images/frame_00000.png"] != files(c)["images/frame_00000.png"]



def test_loads_with_load_scene(scene_dir: Path) -> None:
    from mastsam_splat.io import load_scene

    scene = load_scene(scene_dir)
    assert len(scene) == FRAMES and scene.has_cameras and scene.has_depth
    assert scene.ply_file == scene_dir / "sparse_pc.ply"
    cameras = scene_cameras(scene_dir)
    depths = read_depths(scene_dir)
    for t, frame in enumerate(scene.frames):
        assert frame.name == f"frame_{t:05d}"
        np.testing.assert_array_equal(frame.image, read_png(scene_dir / f"images/{frame.name}.png")[:, :, ::-1])
        np.testing.assert_allclose(frame.camera.world_to_cam, cameras[t].world_to_cam, atol=1e-9)
        np.testing.assert_allclose(frame.depth, depths[t], atol=1e-6)


def test_loads_with_nerfstudio_dataparser(scene_dir: Path) -> None:
    pytest.importorskip("nerfstudio")
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    outputs = NerfstudioDataParserConfig(data=scene_dir, load_3D_points=False).setup().get_dataparser_outputs("train")
    assert 0 < len(outputs.image_filenames) <= FRAMES
    assert all(Path(f).is_file() for f in outputs.image_filenames)
    assert int(outputs.cameras.width[0]) == WIDTH and int(outputs.cameras.height[0]) == HEIGHT
    depth_files = outputs.metadata["depth_filenames"]
    assert len(depth_files) == len(outputs.image_filenames) and all(Path(f).is_file() for f in depth_files)



@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames": 0},
        {"frames": 2.5},
        {"width": 8},
        {"height": -1},
        {"width": 100_000},
        {"seed": -1},
        {"trajectory": "spiral"},
    ],
)
def test_invalid_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(InputError):
        make_scene(tmp_path / "out", **{"frames": 2, "width": 32, "height": 24, "progress": False, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="cannot write"):
        make_scene(blocker / "scene", frames=2, width=32, height=24, progress=False)
    with pytest.raises(InputError, match="not a folder"):
        make_scene(blocker, frames=2, width=32, height=24, progress=False)
    if os.geteuid() != 0:  # permissions do not stop root
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        try:
            with pytest.raises(InputError, match="cannot write"):
                make_scene(locked / "scene", frames=2, width=32, height=24, progress=False)
        finally:
            locked.chmod(0o700)


def test_overwrite_rules(tmp_path: Path) -> None:
    # A non-empty folder that is not a synthetic scene is refused and left untouched.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="refusing"):
        make_scene(other, frames=2, width=32, height=24, progress=False)
    assert [p.name for p in other.iterdir()] == ["keep.txt"]
    # An empty folder is filled; a previous synthetic scene is replaced.
    target = tmp_path / "scene"
    target.mkdir()
    make_scene(target, frames=2, width=32, height=24, seed=1, progress=False)
    make_scene(target, frames=3, width=32, height=24, seed=2, progress=False)
    assert json.loads((target / "scene.json").read_text())["settings"]["seed"] == 2
    assert len(list((target / "images").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "scene"]


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    def fail(index: int, _render) -> None:
        if index == 1:
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        make_scene(tmp_path / "scene", frames=3, width=32, height=24, progress=False, on_frame=fail)
    assert list(tmp_path.iterdir()) == []
    # A failure while replacing a previous scene keeps the previous scene intact.
    previous = make_scene(tmp_path / "scene", frames=2, width=32, height=24, progress=False)
    before = (previous / "scene.json").read_bytes()
    with pytest.raises(RuntimeError, match="stop"):
        make_scene(previous, frames=3, width=32, height=24, seed=5, progress=False, on_frame=fail)
    assert (previous / "scene.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]
