"""Label images: single-channel uint16 PNG, 0 = no object, one file per frame stem."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

import cv2
import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_path

PathLike = Union[str, Path]


def map_ids(label_maps: Iterable[np.ndarray], mapping: dict[int, int]) -> list[np.ndarray]:
    """Label maps [H, W] with every id in ``mapping`` replaced by its value (other ids unchanged), e.g. ids by
    their object at the object level of a tracking run."""
    maps = [np.asarray(x) for x in label_maps]
    if not mapping:
        return maps
    top = max(max(mapping), max((int(x.max()) for x in maps if x.size), default=0)) + 1
    lut = np.arange(top, dtype=np.int64)
    for src, dst in mapping.items():
        lut[src] = dst
    return [lut[x].astype(x.dtype) for x in maps]


def write_label_image(path: PathLike, labels: np.ndarray) -> Path:
    """Write a [H, W] label array as a uint16 PNG, atomically."""
    path = Path(path)
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"{path}: a label image must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        raise ValueError(f"{path}: label ids must fit in uint16")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), labels.astype(np.uint16)):
            raise OSError(f"{path}: could not write label image")
    return path


def read_label_image(path: PathLike, expected_shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read a label PNG as a [H, W] uint16 array, checking dtype, channels and (optionally) size."""
    path = Path(path)
    if not path.is_file():
        raise InputError("label image not found", path)
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise InputError("label image could not be decoded (not a valid PNG?)", path)
    if labels.ndim != 2:
        raise InputError(f"label image must be single-channel, got shape {labels.shape}", path)
    if labels.dtype not in (np.uint16, np.uint8):
        raise InputError(f"label image must be 8- or 16-bit unsigned, got {labels.dtype}", path)
    if expected_shape is not None and tuple(labels.shape) != tuple(expected_shape):
        raise InputError(
            f"label image is {labels.shape[1]}x{labels.shape[0]} but its frame is "
            f"{expected_shape[1]}x{expected_shape[0]}",
            path,
        )
    return labels.astype(np.uint16)


def read_label_dir(
    folder: PathLike, names: Iterable[str], shapes: Optional[Iterable[tuple[int, int]]] = None
) -> list[np.ndarray]:
    """Read ``<folder>/<name>.png`` for each frame name, optionally checking each frame's size."""
    folder = Path(folder)
    names = list(names)
    shape_list = [None] * len(names) if shapes is None else list(shapes)
    return [read_label_image(folder / f"{name}.png", shape) for name, shape in zip(names, shape_list)]
