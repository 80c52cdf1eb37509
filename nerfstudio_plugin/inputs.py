"""What ``ns-train mastsam-splat --data X`` accepts, and the Nerfstudio dataset each kind becomes.

- a Nerfstudio dataset (``transforms.json`` with focal lengths and existing images): used as is;
- an instant-ngp ``transforms.json`` (``camera_angle_x`` or ``aabb_scale``, names without extension):
  converted (frames without an image are left out with one warning);
- a COLMAP project (``images/`` and ``sparse/0``, optionally ``images_2/4/8``): converted;
- a folder of photos, or a video file: ``mastsam prepare`` runs first (SfM with pycolmap).

Converted and prepared datasets are cached in ``<folder>/mastsam-dataset`` (for a video,
``<video name>.mastsam-dataset`` next to it) and reused while the input files (names, sizes,
modification times) are unchanged, like the tracker's cache.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Optional

from mastsam_splat.capture import CaptureWarning, PrepareOptions, is_prepared_dataset, prepare
from mastsam_splat.capture.convert import convert_colmap_project, convert_instant_ngp
from mastsam_splat.capture.frames import image_files
from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import find_sparse_model
from mastsam_splat.io.scene import VIDEO_SUFFIXES

InputKind = Literal["nerfstudio", "instant-ngp", "colmap", "images", "video"]
CACHE_NAME = "mastsam-dataset"
"""Folder (inside a folder input) holding the dataset made from it."""


NGP_KEYS = ("camera_angle_x", "camera_angle_y", "aabb_scale", "scale", "offset", "integer_depth_scale")
"""Keys instant-ngp writes and Nerfstudio does not."""


def _is_nerfstudio(transforms: Path) -> bool:
    """Whether a transforms.json is in Nerfstudio's form: no instant-ngp keys, a focal length for
    every frame, file names with extensions. Others are read as instant-ngp files."""
    try:
        meta = json.loads(transforms.read_text())
    except (OSError, ValueError):
        return True  # the dataset checks report the broken file
    if not isinstance(meta, dict):
        return True
    if any(k in meta for k in NGP_KEYS):
        return False
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        return True
    has_focal = any(k in meta for k in ("fl_x", "fl_y"))
    for frame in frames:
        if not isinstance(frame, dict) or "file_path" not in frame:
            return True
        if not Path(str(frame["file_path"])).suffix:
            return False
        if not has_focal and not any(k in frame for k in ("fl_x", "fl_y")):
            return False
    return True


def input_kind(data: Path) -> tuple[InputKind, Path]:
    """The kind of ``data`` and the file or folder it is read from."""
    data = Path(data)
    if not data.exists():
        raise InputError("no such file or folder", data)
    if data.is_file():
        if data.suffix.lower() == ".json":
            return ("nerfstudio" if _is_nerfstudio(data) else "instant-ngp"), data
        if data.suffix.lower() in VIDEO_SUFFIXES:
            return "video", data
        raise InputError("expected a dataset folder, a transforms.json, a folder of photos or a video", data)
    if (data / "transforms.json").is_file():
        transforms = data / "transforms.json"
        return ("nerfstudio" if _is_nerfstudio(transforms) else "instant-ngp"), transforms
    if (data / "images").is_dir() and find_sparse_model(data) is not None:
        return "colmap", data
    if image_files(data):
        return "images", data
    if (data / "images").is_dir() and image_files(data / "images"):
        return "images", data / "images"
    raise InputError(
        "not a Nerfstudio dataset (no transforms.json), nor a COLMAP project (images/ and sparse/0), "
        "nor a folder of photos; pass one of these or a video",
        data,
    )


def cache_folder(data: Path, kind: InputKind) -> Path:
    """Where the dataset made from ``data`` is kept."""
    data = Path(data)
    if kind == "video":
        return data.with_name(data.name + "." + CACHE_NAME)
    folder = data.parent if data.is_file() else data
    if kind == "images" and folder.name == "images" and not image_files(folder.parent):
        folder = folder.parent
    return folder / CACHE_NAME


def _source_files(kind: InputKind, source: Path) -> Iterable[Path]:
    if kind == "video":
        return [source]
    if kind == "images":
        return image_files(source)
    root = source.parent if kind == "instant-ngp" else source
    skip = root / CACHE_NAME
    return sorted(p for p in root.rglob("*") if p.is_file() and skip not in p.parents)


def fingerprint(kind: InputKind, source: Path) -> str:
    """Hash of the input files' names, sizes and modification times (and the kind)."""
    digest = hashlib.sha1(kind.encode())
    for path in _source_files(kind, source):
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached(folder: Path) -> Optional[str]:
    """The input fingerprint a cached dataset was made from."""
    try:
        return json.loads((folder / "capture.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def training_dataset(data: Path, log: Callable[[str], None] = print) -> Path:
    """A Nerfstudio dataset for ``data``: ``data`` itself, or the (cached) conversion of it."""
    kind, source = input_kind(Path(data))
    if kind == "nerfstudio":
        return Path(data)
    out = cache_folder(source, kind)
    stamp = fingerprint(kind, source)
    if (out / "transforms.json").is_file() and _cached(out) == stamp:
        log(f"MastSAM: reusing the dataset made from {source} in {out}")
        return out
    if out.exists() and any(out.iterdir()) and not is_prepared_dataset(out):
        raise InputError(f"the dataset made from {kind} input is kept here, but the folder holds other files", out)
    log(f"MastSAM: making a Nerfstudio dataset from {kind} input {source} -> {out}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CaptureWarning)
        if kind == "colmap":
            convert_colmap_project(source, out, stamp)
        elif kind == "instant-ngp":
            convert_instant_ngp(source, out, stamp)
        else:
            options = PrepareOptions(images=source) if kind == "images" else PrepareOptions(video=source)
            prepare(out, options, fingerprint=stamp)
    for warning in caught:
        log(f"warning: {warning.message}")
    return out


def use_training_dataset(config: Any, log: Callable[[str], None] = print) -> Optional[Path]:
    """Point a datamanager config (``data`` and ``dataparser.data``) at the dataset made from its input."""
    data = config.data if config.data is not None else config.dataparser.data
    if data is None or str(data) in ("", "."):
        return data
    dataset = training_dataset(Path(data), log)
    if config.data is not None:
        config.data = dataset
    config.dataparser.data = dataset
    return dataset
