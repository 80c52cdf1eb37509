"""How well a prepared dataset recovered known cameras (synthetic scenes, real captures with
reference poses, benchmarks and tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mastsam_splat.geometry.similarity import PoseErrors, pose_errors
from mastsam_splat.io.scene import read_transforms
from mastsam_splat.types import Camera


def transforms_cameras(path: Path) -> dict[str, Camera]:
    """Cameras of a ``transforms.json`` (or its folder) by image stem, read from the file alone:
    the images need not exist (reference poses of a capture whose images were partly removed)."""
    path = path / "transforms.json" if path.is_dir() else path
    meta = read_transforms(path)
    cameras: dict[str, Camera] = {}
    for entry in meta["frames"]:

        def get(key: str, default: float = 0.0) -> float:
            return float(entry.get(key, meta.get(key, default)))

        width, height = int(get("w")), int(get("h"))
        fl_x = get("fl_x", get("fl_y"))
        fl_y = get("fl_y", fl_x)
        K = np.array([[fl_x, 0.0, get("cx", width / 2.0)], [0.0, fl_y, get("cy", height / 2.0)], [0.0, 0.0, 1.0]])
        c2w = np.asarray(entry["transform_matrix"], dtype=np.float64)
        cameras[Path(entry["file_path"]).stem] = Camera.from_opengl_c2w(c2w, K, width, height)
    return cameras


def prepared_pose_errors(prepared: Path, reference: Path) -> PoseErrors:
    """Pose errors of the frames of ``prepared`` against the frames of the same name in ``reference``
    (both Nerfstudio datasets; the reference's images need not exist), after aligning the camera
    centres by a similarity. Frames the reference lacks are left out."""
    truth = transforms_cameras(reference)
    estimated = transforms_cameras(prepared)
    names = [name for name in estimated if name in truth]
    return pose_errors([estimated[n] for n in names], [truth[n] for n in names])
