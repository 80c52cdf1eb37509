"""Write a Nerfstudio dataset from a COLMAP reconstruction whose images sit in ``<root>/images``.

Files written next to ``images/``: ``transforms.json`` (OpenGL camera-to-world poses in the
reconstruction's world frame, intrinsics and distortion, per frame when the cameras differ),
``sparse_pc.ply`` (the SfM points with colours, to seed the Gaussians), ``sparse/0`` (the model
with its tracks, read by the real-capture consistency score) and ``images_2/4/8`` (Nerfstudio's
downscaled copies, sizes rounded down like its cameras).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_path, atomic_write_text
from mastsam_splat.io.colmap import has_pose, image_pose
from mastsam_splat.io.ply import PointCloud, write_point_cloud
from mastsam_splat.types import Camera

DOWNSCALES = (2, 4, 8)
"""Factors of Nerfstudio's ``images_<factor>`` folders."""
INTRINSIC_KEYS = ("camera_model", "fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "k3", "k4", "p1", "p2")


def camera_entry(camera: Any) -> dict[str, Any]:
    """Nerfstudio intrinsics (``camera_model``, focal, centre, size, distortion) of a pycolmap camera."""
    model = camera.model.name
    p = [float(v) for v in camera.params]
    entry: dict[str, Any] = {"w": int(camera.width), "h": int(camera.height)}
    if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        extra = p[3:] + [0.0] * (2 - len(p[3:]))
        entry.update(camera_model="OPENCV", fl_x=p[0], fl_y=p[0], cx=p[1], cy=p[2], k1=extra[0], k2=extra[1])
        entry.update(p1=0.0, p2=0.0)
    elif model in ("PINHOLE", "OPENCV"):
        extra = p[4:] + [0.0] * (4 - len(p[4:]))
        entry.update(camera_model="OPENCV", fl_x=p[0], fl_y=p[1], cx=p[2], cy=p[3])
        entry.update(k1=extra[0], k2=extra[1], p1=extra[2], p2=extra[3])
    elif model == "OPENCV_FISHEYE":
        entry.update(camera_model="OPENCV_FISHEYE", fl_x=p[0], fl_y=p[1], cx=p[2], cy=p[3])
        entry.update(k1=p[4], k2=p[5], k3=p[6], k4=p[7])
    else:
        raise InputError(
            f"COLMAP camera model {model} has no Nerfstudio equivalent (use SIMPLE_RADIAL, RADIAL, PINHOLE, "
            "OPENCV or OPENCV_FISHEYE)"
        )
    return entry


def registered_images(reconstruction: Any) -> list[Any]:
    """The reconstruction's posed images in name order."""
    images = [image for image in reconstruction.images.values() if has_pose(image)]
    return sorted(images, key=lambda image: str(image.name))


def image_camera(reconstruction: Any, image: Any) -> Camera:
    """Pinhole part (K, pose, size) of a posed image, as the project's camera type."""
    cam = reconstruction.cameras[image.camera_id]
    return Camera(K=np.asarray(cam.calibration_matrix()), world_to_cam=image_pose(image), width=cam.width, height=cam.height)


def transforms(reconstruction: Any, file_paths: Sequence[str], ply_file: str = "sparse_pc.ply") -> dict[str, Any]:
    """transforms.json contents: one frame per posed image (``file_paths`` in the same order)."""
    images = registered_images(reconstruction)
    entries = [camera_entry(reconstruction.cameras[image.camera_id]) for image in images]
    shared = all(entry == entries[0] for entry in entries)
    meta: dict[str, Any] = dict(entries[0]) if shared else {}
    frames = []
    for image, entry, file_path in zip(images, entries, file_paths):
        frame: dict[str, Any] = {
            "file_path": file_path,
            "transform_matrix": [[float(v) for v in row] for row in image_camera(reconstruction, image).opengl_c2w()],
            "colmap_im_id": int(image.image_id),
        }
        if not shared:
            frame.update(entry)
        frames.append(frame)
    meta["ply_file_path"] = ply_file
    meta["frames"] = frames
    return meta


def point_cloud(reconstruction: Any) -> PointCloud:
    """The reconstruction's 3D points with their colours."""
    points = list(reconstruction.points3D.values())
    xyz = np.array([p.xyz for p in points], dtype=np.float32).reshape(-1, 3)
    rgb = np.array([p.color for p in points], dtype=np.uint8).reshape(-1, 3)
    return PointCloud(xyz, rgb)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write [H, W, 3] RGB atomically (JPEG quality 95 for .jpg, lossless otherwise)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image[:, :, ::-1]), params):
            raise InputError("could not write the image", path)


def downscaled_size(width: int, height: int, factor: int) -> tuple[int, int]:
    """Size of an ``images_<factor>`` copy (rounded down, as Nerfstudio rescales its cameras)."""
    return max(1, width // factor), max(1, height // factor)


def write_downscales(root: Path, file_name: str, image: np.ndarray, factors: Sequence[int] = DOWNSCALES) -> None:
    """Write ``root/images_<f>/file_name`` for each factor (area averaging)."""
    import cv2

    height, width = image.shape[:2]
    for factor in factors:
        size = downscaled_size(width, height, factor)
        write_image(root / f"images_{factor}" / file_name, cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def write_model_files(root: Path, reconstruction: Any, file_paths: Sequence[str]) -> None:
    """transforms.json, sparse_pc.ply and sparse/0 of a dataset whose images are already in place."""
    model_dir = root / "sparse" / "0"
    model_dir.mkdir(parents=True, exist_ok=True)
    reconstruction.write_binary(str(model_dir))
    write_point_cloud(root / "sparse_pc.ply", point_cloud(reconstruction))
    atomic_write_text(root / "transforms.json", json.dumps(transforms(reconstruction, file_paths), indent=2) + "\n")
