"""Input dataset that adds each image's instance label map to its batch.

Two label sources, both uint16 PNGs with 0 = no object:
- ``instance_labels``: the tracker's consistent masks (training supervision);
- ``gt_instances``: ground-truth ids, when the dataset ships them (evaluation only).

Labels are resized with nearest neighbour to exactly the size of the (possibly downscaled)
image, so label pixels line up with image pixels, and kept in a small integer type.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from PIL import Image

from nerfstudio.data.datasets.base_dataset import InputDataset

from mastsam_splat.errors import InputError
from mastsam_splat.io.labels import read_label_image

LABEL_KEYS = ("instance_labels", "gt_instances")


def image_file_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise InputError("image not found", path) from None
    except OSError as exc:
        raise InputError(f"image could not be read ({exc})", path) from None
    return height, width


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a [h, w] label map to [height, width] (ids are never blended)."""
    if labels.shape == (height, width):
        return labels
    rows = np.minimum(((np.arange(height) + 0.5) * labels.shape[0] / height).astype(np.int64), labels.shape[0] - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * labels.shape[1] / width).astype(np.int64), labels.shape[1] - 1)
    return labels[rows[:, None], cols[None, :]]


def compact_label_tensor(labels: np.ndarray) -> torch.Tensor:
    """int16 when ids fit (half the memory of int32 for the image cache), else int32."""
    dtype = np.int16 if labels.size == 0 or int(labels.max()) <= np.iinfo(np.int16).max else np.int32
    return torch.from_numpy(labels.astype(dtype))


class InstanceLabelDataset(InputDataset):
    """``InputDataset`` whose ``get_data`` also returns label maps (see module docstring).

    The label files are attached after construction with :meth:`set_label_files`, because the
    tracker runs once the datamanager knows which images are in the training split.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_files: Dict[str, List[Optional[Path]]] = {}

    def set_label_files(self, key: str, files: List[Optional[Path]]) -> None:
        """Attach one label PNG per image (None where an image has none) under batch key ``key``."""
        if key not in LABEL_KEYS:
            raise ValueError(f"unknown label key {key!r}; expected one of {LABEL_KEYS}")
        if len(files) != len(self):
            raise ValueError(f"{len(files)} label files for {len(self)} images")
        self.label_files[key] = list(files)

    def get_numpy_image(self, image_idx: int) -> np.ndarray:
        """Nerfstudio's PIL read, with a file PIL cannot decode (e.g. truncated) named in an :class:`InputError`."""
        try:
            return super().get_numpy_image(image_idx)
        except OSError as exc:
            raise InputError(f"image could not be read ({exc})", self.image_filenames[image_idx]) from None

    def get_metadata(self, data: Dict) -> Dict:
        image_idx = data["image_idx"]
        height, width = data["image"].shape[:2]
        out = {}
        for key, files in self.label_files.items():
            path = files[image_idx]
            if path is None:
                continue
            labels = read_label_image(path)
            expected = image_file_size(self.image_filenames[image_idx])
            if labels.shape != expected and not _same_aspect(labels.shape, expected):
                raise InputError(
                    f"label image is {labels.shape[1]}x{labels.shape[0]} but its image "
                    f"{self.image_filenames[image_idx].name} is {expected[1]}x{expected[0]}",
                    path,
                )
            out[key] = compact_label_tensor(resize_labels(labels, height, width))
        return out


def _same_aspect(shape_a: tuple[int, int], shape_b: tuple[int, int]) -> bool:
    """Whether two (h, w) sizes differ only by a uniform scale (a downscaled copy of the same frame)."""
    (ha, wa), (hb, wb) = shape_a, shape_b
    return ha > 0 and hb > 0 and abs(ha * wb - wa * hb) <= max(ha, hb) and (ha % hb == 0 or hb % ha == 0)
