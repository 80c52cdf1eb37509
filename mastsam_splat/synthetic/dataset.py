"""Writing a synthetic scene as a Nerfstudio dataset with ground-truth depth, instances and parts.

Layout of the folder (see ``make_scene``)::

    transforms.json              OPENCV camera model, OpenGL camera-to-world ``transform_matrix``
    images/frame_<index:05d>.png       RGB
    depth/frame_<index:05d>.png        uint16 z-depth in millimetres, 0 = sky
    instances/frame_<index:05d>.png    uint16 object ids, 0 = ground / sky
    parts/frame_<index:05d>.png        uint16 part ids, 0 = ground / sky
    sparse_pc.ply                x y z red green blue instance_id surface samples
    scene.json                   objects, their parts and colours, generation settings
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional, Union, get_args

import cv2
import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_dir, atomic_path, atomic_write_text
from mastsam_splat.io.labels import write_label_image
from mastsam_splat.io.ply import PointCloud, write_point_cloud
from mastsam_splat.synthetic.layout import Layout, Trajectory, build_layout
from mastsam_splat.synthetic.raycast import Renderer, RenderOutput
from mastsam_splat.synthetic.trajectory import make_cameras
from mastsam_splat.types import Camera

GENERATOR = "mastsam_splat.synthetic"
"""Marker in ``scene.json`` identifying folders this module may replace."""
SCENE_VERSION = 1
MAX_FRAMES = 100_000  # frame names have five digits
MIN_SIZE, MAX_SIZE = 16, 4096
DEPTH_SCALE = 1000.0  # depth PNG units per metre (Nerfstudio's default depth_unit_scale_factor is 1e-3)
POINT_VOXEL = 0.01
"""Point-cloud samples closer than this (metres, same voxel) are merged."""

PathLike = Union[str, Path]


def frame_name(index: int) -> str:
    return f"frame_{index:05d}"


def is_synthetic_scene(path: PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`make_scene` (its ``scene.json`` says so)."""
    scene_json = Path(path) / "scene.json"
    try:
        return json.loads(scene_json.read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_args(output_dir: Path, frames: int, width: int, height: int, seed: int, trajectory: str) -> None:
    for name, value, lo, hi in (
        ("frames", frames, 1, MAX_FRAMES),
        ("width", width, MIN_SIZE, MAX_SIZE),
        ("height", height, MIN_SIZE, MAX_SIZE),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise InputError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}", output_dir)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}", output_dir)
    if trajectory not in get_args(Trajectory):
        raise InputError(f"trajectory must be one of {list(get_args(Trajectory))}, got {trajectory!r}", output_dir)
    if output_dir.exists():
        if not output_dir.is_dir():
            raise InputError("output path exists and is not a folder", output_dir)
        if any(output_dir.iterdir()) and not is_synthetic_scene(output_dir):
            raise InputError(
                "output folder is not empty and is not a synthetic scene; refusing to overwrite it "
                "(choose an empty or new folder)",
                output_dir,
            )


def _write_png(path: Path, image: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise OSError(f"{path}: could not write image")


def _write_frame(root: Path, name: str, out: RenderOutput) -> None:
    _write_png(root / "images" / f"{name}.png", cv2.cvtColor(out.rgb, cv2.COLOR_RGB2BGR))
    depth_mm = np.clip(np.round(out.depth * DEPTH_SCALE), 0, np.iinfo(np.uint16).max).astype(np.uint16)
    _write_png(root / "depth" / f"{name}.png", depth_mm)
    write_label_image(root / "instances" / f"{name}.png", out.instance)
    write_label_image(root / "parts" / f"{name}.png", out.part)


def _sample_points(out: RenderOutput, rng: np.random.Generator, count: int) -> tuple[np.ndarray, ...]:
    """Up to ``count`` random surface pixels of a view: world xyz [M, 3], RGB [M, 3] uint8, instance ids [M]."""
    valid = np.flatnonzero(out.depth.reshape(-1) > 0)
    pick = np.sort(rng.choice(valid, size=min(count, valid.size), replace=False))
    return (
        out.points.reshape(-1, 3)[pick],
        out.rgb.reshape(-1, 3)[pick],
        out.instance.reshape(-1)[pick].astype(np.int32),
    )


def _merge_points(
    samples: list[tuple[np.ndarray, ...]], rng: np.random.Generator, max_points: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-view samples, keep one point per voxel, subsample to ``max_points``."""
    xyz = np.concatenate([s[0] for s in samples]).astype(np.float32)
    rgb = np.concatenate([s[1] for s in samples])
    inst = np.concatenate([s[2] for s in samples])
    keys = np.floor(xyz / POINT_VOXEL).astype(np.int64)
    _, first = np.unique(keys, axis=0, return_index=True)
    keep = np.sort(first)
    if keep.size > max_points:
        keep = np.sort(rng.choice(keep, size=max_points, replace=False))
    return xyz[keep], rgb[keep], inst[keep]


def _transforms(cameras: list[Camera], width: int, height: int) -> dict:
    K = cameras[0].K
    return {
        "camera_model": "OPENCV",
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": width,
        "h": height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "ply_file_path": "sparse_pc.ply",
        "frames": [
            {
                "file_path": f"images/{frame_name(i)}.png",
                "transform_matrix": [[float(v) for v in row] for row in cam.opengl_c2w()],
                "depth_file_path": f"depth/{frame_name(i)}.png",
            }
            for i, cam in enumerate(cameras)
        ],
    }


def _scene_json(layout: Layout, settings: dict, num_points: int) -> dict:
    return {
        "generator": GENERATOR,
        "version": SCENE_VERSION,
        "settings": settings,
        "num_objects": len(layout.objects),
        "num_parts": len(layout.parts),
        "num_points": num_points,
        **layout.to_json(),
    }


def make_scene(
    output_dir: PathLike,
    frames: int = 40,
    width: int = 320,
    height: int = 240,
    seed: int = 0,
    trajectory: Trajectory = "orbit",
    *,
    antialias: int = 2,
    max_points: int = 20_000,
    progress: bool = True,
    on_frame: Optional[Callable[[int, RenderOutput], None]] = None,
) -> Path:
    """Render a procedural multi-view scene with ground truth into ``output_dir`` and return its path.

    The scene (objects, colours, light) depends only on ``seed`` and ``trajectory``; the same
    arguments give byte-identical files. The folder is assembled in a hidden staging folder
    next to ``output_dir`` and renamed into place at the end, so a failed run leaves nothing
    behind. An existing ``output_dir`` is replaced only when it is empty or is itself a
    synthetic scene (its ``scene.json`` was written here); any other non-empty folder is
    refused with an :class:`InputError`.

    Args:
        output_dir: Folder to create.
        frames: Number of views (1 to 100000).
        width, height: Image size in pixels (16 to 4096).
        seed: Non-negative random seed.
        trajectory: ``"orbit"`` (360° around the scene) or ``"forward"`` (walk through it).
        antialias: Colour samples per pixel along each axis (ground truth uses pixel centres).
        max_points: Size cap of the sparse point cloud.
        progress: Show a progress bar over frames (on stderr).
        on_frame: Called with ``(index, render)`` after each frame (e.g. for previews or checks).
    """
    output_dir = Path(os.path.abspath(output_dir))  # "." and "x/.." get a real name and parent
    _check_args(output_dir, frames, width, height, seed, trajectory)
    if antialias < 1 or max_points < 1:
        raise InputError(f"antialias and max_points must be >= 1, got {antialias} and {max_points}", output_dir)

    layout_seq, camera_seq, points_seq = np.random.SeedSequence(int(seed)).spawn(3)
    layout = build_layout(np.random.default_rng(layout_seq), trajectory)
    cameras = make_cameras(trajectory, frames, width, height, np.random.default_rng(camera_seq))
    point_rng = np.random.default_rng(points_seq)
    renderer = Renderer(layout)
    per_view = max(1, (4 * max_points) // frames)

    from tqdm.auto import tqdm

    with atomic_dir(output_dir) as staging:
        samples = []
        for i, camera in enumerate(tqdm(cameras, desc="rendering", unit="frame", disable=not progress)):
            out = renderer.render(camera, antialias=antialias)
            _write_frame(staging, frame_name(i), out)
            samples.append(_sample_points(out, point_rng, per_view))
            if on_frame is not None:
                on_frame(i, out)
        xyz, rgb, inst = _merge_points(samples, point_rng, max_points)
        write_point_cloud(staging / "sparse_pc.ply", PointCloud(xyz, rgb, inst))
        atomic_write_text(staging / "transforms.json", json.dumps(_transforms(cameras, width, height), indent=2) + "\n")
        settings = {
            "frames": int(frames),
            "width": int(width),
            "height": int(height),
            "seed": int(seed),
            "trajectory": trajectory,
            "antialias": int(antialias),
            "max_points": int(max_points),
        }
        atomic_write_text(staging / "scene.json", json.dumps(_scene_json(layout, settings, len(xyz)), indent=2) + "\n")
    return output_dir
