"""Reading and writing scenes, label images, tracks and point clouds."""

from mastsam_splat.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from mastsam_splat.io.labels import read_label_image, read_label_dir, write_label_image
from mastsam_splat.io.tracks import read_tracks, write_tracks
from mastsam_splat.io.scene import load_scene

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_label_image",
    "read_label_dir",
    "write_label_image",
    "read_tracks",
    "write_tracks",
    "load_scene",
]
