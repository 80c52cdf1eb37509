"""Reading and writing scenes, label images, tracks, point clouds and 3D Gaussians.

Every file format of the project lives here: ``scene`` (datasets), ``labels``, ``tracks``,
``checkpoints``, ``gaussians`` (the 3DGS parameter container) and ``ply`` (labelled point
clouds and 3DGS PLY files).
"""

from mastsam_splat.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from mastsam_splat.io.gaussians import Gaussians
from mastsam_splat.io.labels import read_label_image, read_label_dir, write_label_image
from mastsam_splat.io.ply import (
    PointCloud,
    read_gaussians_ply,
    read_point_cloud,
    write_gaussians_ply,
    write_point_cloud,
)
from mastsam_splat.io.tracks import read_tracks, write_tracks
from mastsam_splat.io.scene import load_scene

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "Gaussians",
    "PointCloud",
    "read_gaussians_ply",
    "read_point_cloud",
    "write_gaussians_ply",
    "write_point_cloud",
    "read_label_image",
    "read_label_dir",
    "write_label_image",
    "read_tracks",
    "write_tracks",
    "load_scene",
]
