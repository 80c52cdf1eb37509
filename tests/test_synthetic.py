"""Synthetic scenes: format, determinism, geometric ground truth, loaders and bad input.

Scenes are tiny (8 frames, 64x48) so the whole file runs in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.synthetic import SynthCommand, is_synthetic_scene, make_scene
from mastsam_splat.types import Camera

FRAMES, WIDTH, HEIGHT = 8, 64, 48
FOLDERS = ("images", "depth", "instances", "parts")


@pytest.fixture(scope="module", params=["orbit", "forward"])
def scene_dir(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"synth_{request.param}") / "scene"
    return make_scene(out, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=3, trajectory=request.param, progress=False)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return image


def _cameras(root: Path) -> list[Camera]:
    meta = json.loads((root / "transforms.json").read_text())
    K = np.array([[meta["fl_x"], 0, meta["cx"]], [0, meta["fl_y"], meta["cy"]], [0, 0, 1]])
    return [Camera.from_opengl_c2w(f["transform_matrix"], K, meta["w"], meta["h"]) for f in meta["frames"]]


def _labels(root: Path, folder: str) -> np.ndarray:
    return np.stack([_read(p) for p in sorted((root / folder).glob("*.png"))])  # [T, H, W]


def _depths(root: Path) -> np.ndarray:
    return _labels(root, "depth").astype(np.float64) / 1000.0  # [T, H, W] metres


def _unproject_all(camera: Camera, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [M, 3] of the pixels with depth, and those pixels' flat indices [M]."""
    idx = np.flatnonzero(depth > 0)
    rows, cols = np.divmod(idx, depth.shape[1])
    xy = np.stack([cols + 0.5, rows + 0.5], axis=1)
    return camera.unproject(xy, depth.reshape(-1)[idx]), idx


def _surface_distance(prim: dict, points: np.ndarray) -> np.ndarray:
    """Unsigned distance [N] of points to the surface of a primitive described in scene.json."""
    centre = np.asarray(prim["center"])
    size = np.asarray(prim["size"])
    rel = points - centre
    if prim["kind"] == "sphere":
        return np.abs(np.linalg.norm(rel, axis=1) - size[0])
    c, s = np.cos(prim["yaw"]), np.sin(prim["yaw"])
    if prim["kind"] == "box":
        local = rel @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        q = np.abs(local) - size
        outside = np.linalg.norm(np.maximum(q, 0), axis=1)
        inside = np.minimum(q.max(axis=1), 0)
        return np.abs(outside + inside)
    radius, height = size
    radial = np.linalg.norm(rel[:, :2], axis=1) - radius
    axial = np.abs(rel[:, 2] - height / 2) - height / 2
    q = np.stack([radial, axial], axis=1)
    return np.abs(np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(axis=1), 0))


# --------------------------------------------------------------------------------------------
# format


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
    image = _read(scene_dir / "images/frame_00000.png")
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    for folder in ("depth", "instances", "parts"):
        label = _read(scene_dir / folder / "frame_00000.png")
        assert label.shape == (HEIGHT, WIDTH) and label.dtype == np.uint16, folder

    info = json.loads((scene_dir / "scene.json").read_text())
    assert is_synthetic_scene(scene_dir)
    assert info["settings"]["frames"] == FRAMES
    object_ids = [o["id"] for o in info["objects"]]
    part_ids = [p["id"] for o in info["objects"] for p in o["parts"]]
    assert object_ids == list(range(1, len(object_ids) + 1))
    assert sorted(part_ids) == list(range(1, len(part_ids) + 1))
    assert len(part_ids) > len(object_ids), "some objects must have several parts"
    assert set(np.unique(_labels(scene_dir, "instances"))) <= {0, *object_ids}
    assert set(np.unique(_labels(scene_dir, "parts"))) <= {0, *part_ids}
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
            dist = np.min([_surface_distance(p, xyz[sel]) for p in obj["primitives"]], axis=0)
            assert dist.max() < 1e-3, obj["shape"]


def test_deterministic(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a = make_scene(tmp_path / "a", frames=4, width=48, height=32, seed=7, progress=False)
    b = make_scene(tmp_path / "b", frames=4, width=48, height=32, seed=7, progress=False)
    c = make_scene(tmp_path / "c", frames=4, width=48, height=32, seed=8, progress=False)
    assert files(a) == files(b)
    assert files(a)["images/frame_00000.png"] != files(c)["images/frame_00000.png"]


# --------------------------------------------------------------------------------------------
# geometric ground truth


def test_depth_reprojects_onto_same_instance(scene_dir: Path) -> None:
    cameras = _cameras(scene_dir)
    depths = _depths(scene_dir)
    instances = _labels(scene_dir, "instances")
    checked = 0
    for a, b in [(i, i + 1) for i in range(FRAMES - 1)]:
        # Interior pixels only: a pixel whose 3x3 neighbourhood is one instance.
        inst_a = instances[a]
        uniform = (cv2.dilate(inst_a, np.ones((3, 3))) == inst_a) & (cv2.erode(inst_a, np.ones((3, 3))) == inst_a)
        points, idx = _unproject_all(cameras[a], depths[a] * uniform)
        xy, z = cameras[b].project(points)
        col, row = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
        inside = (z > 0) & (col >= 0) & (col < WIDTH) & (row >= 0) & (row < HEIGHT)
        col, row, z, idx = col[inside], row[inside], z[inside], idx[inside]
        depth_b = depths[b][row, col]
        visible = np.abs(depth_b - z) < 0.05 * z  # not occluded in b
        same = instances[b][row, col][visible] == inst_a.reshape(-1)[idx][visible]
        objects = inst_a.reshape(-1)[idx][visible] > 0
        # Most surface seen in a is seen in b (wrong cameras or depth units would give ~0).
        assert visible.mean() > 0.5, (a, b)
        assert same.mean() > 0.99, (a, b, same.mean())
        assert same[objects].mean() > 0.98, (a, b)
        checked += int(objects.sum())
    assert checked > 100


def test_instance_ids_are_the_same_objects_in_every_frame(scene_dir: Path) -> None:
    """Each labelled pixel, lifted to 3D, lies on a primitive of the object its id names."""
    info = json.loads((scene_dir / "scene.json").read_text())
    objects = {o["id"]: o for o in info["objects"]}
    cameras = _cameras(scene_dir)
    depths = _depths(scene_dir)
    instances = _labels(scene_dir, "instances")
    seen = set()
    for t in range(FRAMES):
        points, idx = _unproject_all(cameras[t], depths[t])
        ids = instances[t].reshape(-1)[idx]
        np.testing.assert_allclose(points[ids == 0, 2], 0.0, atol=0.01)
        for obj_id in np.unique(ids[ids > 0]):
            sel = points[ids == obj_id]
            dist = np.min([_surface_distance(p, sel) for p in objects[obj_id]["primitives"]], axis=0)
            # Depth is quantised to millimetres.
            assert np.quantile(dist, 0.99) < 0.01 and dist.max() < 0.05, (t, obj_id)
            seen.add(int(obj_id))
    assert len(seen) >= 3


def test_parts_refine_instances(scene_dir: Path) -> None:
    info = json.loads((scene_dir / "scene.json").read_text())
    owner = {p["id"]: o["id"] for o in info["objects"] for p in o["parts"]}
    instances = _labels(scene_dir, "instances")
    parts = _labels(scene_dir, "parts")
    np.testing.assert_array_equal(parts == 0, instances == 0)
    for part_id in np.unique(parts[parts > 0]):
        assert set(np.unique(instances[parts == part_id])) == {owner[int(part_id)]}
    # Some object shows several parts in one view, so parts really split objects.
    assert any(
        len(np.unique(parts[t][instances[t] == obj])) > 1 for t in range(FRAMES) for obj in np.unique(instances[t]) if obj
    )


# --------------------------------------------------------------------------------------------
# loaders


def test_loads_with_load_scene(scene_dir: Path) -> None:
    from mastsam_splat.io import load_scene

    scene = load_scene(scene_dir)
    assert len(scene) == FRAMES and scene.has_cameras and scene.has_depth
    assert scene.ply_file == scene_dir / "sparse_pc.ply"
    cameras = _cameras(scene_dir)
    depths = _depths(scene_dir)
    for t, frame in enumerate(scene.frames):
        assert frame.name == f"frame_{t:05d}"
        np.testing.assert_array_equal(frame.image, _read(scene_dir / f"images/{frame.name}.png")[:, :, ::-1])
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


# --------------------------------------------------------------------------------------------
# command line and bad input


def test_synth_command(tmp_path: Path, capsys) -> None:
    import tyro

    cmd = tyro.cli(
        SynthCommand,
        args=["--output-dir", str(tmp_path / "cli"), "--frames", "3", "--width", "40", "--height", "30",
              "--trajectory", "forward"],
    )
    cmd.main()
    assert len(list((tmp_path / "cli" / "images").iterdir())) == 3
    out = capsys.readouterr().out
    assert "objects" in out and "parts" in out


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
