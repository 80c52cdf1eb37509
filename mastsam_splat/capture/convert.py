"""Other dataset formats to Nerfstudio datasets: a COLMAP project and an instant-ngp ``transforms.json``.

The converted dataset is a new folder (a cache next to the input): images are hard-linked (copied
across file systems) into ``images/`` with Nerfstudio's ``images_2/4/8`` copies, and
``transforms.json`` is written in Nerfstudio's form. Every check (missing images, sizes that do
not match the cameras) runs before anything is written, and the folder is staged
(``io.atomic.atomic_dir``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Optional

from mastsam_splat.capture.prepare import CAPTURE_FILE, GENERATOR, CaptureWarning
from mastsam_splat.capture.writer import registered_images, write_downscales, write_model_files
from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_dir, atomic_write_text
from mastsam_splat.io.colmap import IMAGE_SUFFIXES, find_sparse_model, read_sparse_model

NGP_COPIED_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2", "camera_model")


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file header, or :class:`InputError` when unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            return handle.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"image could not be read ({exc})", path) from None


def link_or_copy(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (copy when linking is not possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _stage_images(staging: Path, files: list[tuple[Path, str]]) -> None:
    """Place each ``(source file, dataset name)`` in ``images/`` and write its downscaled copies
    (from the stored pixels, as COLMAP and Nerfstudio read them: no EXIF rotation here)."""
    import numpy as np
    from PIL import Image

    for source, name in files:
        link_or_copy(source, staging / "images" / name)
        with Image.open(source) as handle:
            write_downscales(staging, name, np.asarray(handle.convert("RGB")))


def _record(kind: str, source: Path, fingerprint: str, extra: dict[str, Any]) -> str:
    record = {"generator": GENERATOR, "source": {"kind": kind, "path": str(source)}, "fingerprint": fingerprint}
    return json.dumps({**record, **extra}, indent=2) + "\n"


def convert_colmap_project(project: Path, output_dir: Path, fingerprint: str = "") -> Path:
    """Write a Nerfstudio dataset from ``project`` (``images/`` and a sparse model such as ``sparse/0``).

    Posed images must exist with the size of their camera; unposed ones are left out with a warning.
    """
    import pycolmap

    project = Path(project)
    model_dir = find_sparse_model(project)
    if model_dir is None:
        raise InputError("no COLMAP model found (looked for sparse/0, colmap/sparse/0, sparse)", project)
    read_sparse_model(model_dir)  # refuses truncated or inconsistent models with a clear message
    reconstruction = pycolmap.Reconstruction(str(model_dir))
    images = registered_images(reconstruction)
    posed = {int(image.image_id) for image in images}
    unposed = sorted(str(i.name) for i in reconstruction.images.values() if int(i.image_id) not in posed)
    if len(images) < 3:
        raise InputError(f"the COLMAP model poses {len(images)} images; at least 3 are needed", model_dir)
    files: list[tuple[Path, str]] = []
    missing, wrong = [], []
    for image in images:
        path = project / "images" / str(image.name)
        if not path.is_file():
            missing.append(str(image.name))
            continue
        camera = reconstruction.cameras[image.camera_id]
        size = image_size(path)
        if size != (camera.width, camera.height):
            wrong.append(f"{image.name} is {size[0]}x{size[1]}, its camera {camera.width}x{camera.height}")
        files.append((path, str(image.name)))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} images of the COLMAP model are missing from images/: {shown}", project)
    if wrong:
        shown = "; ".join(wrong[:3]) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else "")
        raise InputError(f"image sizes do not match the COLMAP cameras: {shown}", project / "images")
    if unposed:
        warnings.warn(
            f"{project}: {len(unposed)} images of the COLMAP model have no pose and are left out: " + ", ".join(unposed),
            CaptureWarning,
            stacklevel=2,
        )
    with atomic_dir(output_dir) as staging:
        _stage_images(staging, files)
        write_model_files(staging, reconstruction, [f"images/{name}" for _, name in files])
        atomic_write_text(staging / CAPTURE_FILE, _record("colmap", project.resolve(), fingerprint, {}))
    return Path(output_dir)


def _resolve_ngp_image(root: Path, file_path: str) -> Optional[Path]:
    """The image a frame names; instant-ngp (and Blender) files may omit the extension."""
    path = root / file_path
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _focal(meta: dict[str, Any], frame: dict[str, Any], width: int, height: int) -> tuple[float, float]:
    def get(key: str) -> Optional[float]:
        value = frame.get(key, meta.get(key))
        return None if value is None else float(value)

    fl_x, fl_y = get("fl_x"), get("fl_y")
    angle_x, angle_y = get("camera_angle_x"), get("camera_angle_y")
    if fl_x is None and angle_x is not None:
        fl_x = 0.5 * width / math.tan(0.5 * angle_x)
    if fl_y is None and angle_y is not None:
        fl_y = 0.5 * height / math.tan(0.5 * angle_y)
    if fl_x is None and fl_y is None:
        raise InputError("a frame has no focal length (fl_x, fl_y, camera_angle_x or camera_angle_y)")
    return (fl_x if fl_x is not None else fl_y), (fl_y if fl_y is not None else fl_x)  # type: ignore[return-value]


def convert_instant_ngp(transforms_path: Path, output_dir: Path, fingerprint: str = "") -> Path:
    """Write a Nerfstudio dataset from an instant-ngp ``transforms.json`` (focal from ``camera_angle_x``
    when ``fl_x`` is absent, file names with or without extension). Frames whose image is missing
    are left out with one warning naming them; image sizes must match ``w``/``h`` when given."""
    transforms_path = Path(transforms_path)
    root = transforms_path.parent
    try:
        meta = json.loads(transforms_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", transforms_path) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list) or not meta["frames"]:
        raise InputError("expected an object with a non-empty 'frames' list", transforms_path)
    frames_out: list[dict[str, Any]] = []
    files: list[tuple[Path, str]] = []
    missing: list[str] = []
    names: set[str] = set()
    for i, frame in enumerate(meta["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise InputError(f"frame {i} needs 'file_path' and 'transform_matrix'", transforms_path)
        path = _resolve_ngp_image(root, str(frame["file_path"]))
        if path is None:
            missing.append(str(frame["file_path"]))
            continue
        width, height = image_size(path)
        given = frame.get("w", meta.get("w")), frame.get("h", meta.get("h"))
        if given[0] is not None and given[1] is not None and (int(given[0]), int(given[1])) != (width, height):
            raise InputError(f"transforms.json says {int(given[0])}x{int(given[1])} but the image is {width}x{height}", path)
        try:
            fl_x, fl_y = _focal(meta, frame, width, height)
        except InputError as exc:
            raise InputError(f"{exc} ({frame['file_path']})", transforms_path) from None
        name = path.name
        if name in names:
            raise InputError(f"two frames use images named {name}; frames are stored by name", transforms_path)
        names.add(name)
        entry: dict[str, Any] = {
            "file_path": f"images/{name}",
            "transform_matrix": frame["transform_matrix"],
            "fl_x": fl_x,
            "fl_y": fl_y,
            "cx": float(frame.get("cx", meta.get("cx", width / 2.0))),
            "cy": float(frame.get("cy", meta.get("cy", height / 2.0))),
            "w": width,
            "h": height,
        }
        for key in NGP_COPIED_KEYS:
            value = frame.get(key, meta.get(key))
            if value is not None:
                entry[key] = value
        frames_out.append(entry)
        files.append((path, name))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        warnings.warn(
            f"{transforms_path}: {len(missing)} of {len(meta['frames'])} frames have no image and are left out: {shown}",
            CaptureWarning,
            stacklevel=2,
        )
    if len(frames_out) < 1:
        raise InputError("no frame of transforms.json has its image", transforms_path)
    out_meta: dict[str, Any] = {"frames": frames_out}
    with atomic_dir(output_dir) as staging:
        _stage_images(staging, files)
        ply = meta.get("ply_file_path")
        if ply and (root / ply).is_file():
            shutil.copy2(root / ply, staging / "sparse_pc.ply")
            out_meta["ply_file_path"] = "sparse_pc.ply"
        atomic_write_text(staging / "transforms.json", json.dumps(out_meta, indent=2) + "\n")
        atomic_write_text(staging / CAPTURE_FILE, _record("instant-ngp", transforms_path.resolve(), fingerprint, {}))
    return Path(output_dir)
