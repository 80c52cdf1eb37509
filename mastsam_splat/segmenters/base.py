"""The segmenter protocol: per-image preparation, automatic masks, and masks from point prompts.

A segmenter works on one image at a time. ``prepare`` does the per-image work once (SAM: the
image embedding; classical: superpixels and their merge hierarchy) and returns an opaque state
that ``auto`` and every ``prompt`` on that image reuse. Backends satisfy the protocol
structurally (no base class); the registry in ``mastsam_splat.segmenters`` builds them by name.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.types import Mask


@runtime_checkable
class Segmenter(Protocol):
    """Produces binary masks of one image: automatically and from point prompts."""

    def prepare(self, image: np.ndarray) -> Any:
        """Compute what ``image`` ([H, W, 3] uint8 RGB) needs once; the result feeds ``auto`` and ``prompt``."""
        ...

    def auto(self, state: Any) -> list[Mask]:
        """Automatic masks of the prepared image (they may overlap), each with a score in [0, 1]."""
        ...

    def prompt(self, state: Any, positive_xy: np.ndarray, negative_xy: Optional[np.ndarray] = None) -> Mask:
        """One mask containing the ``positive_xy`` points and avoiding the ``negative_xy`` points.

        Points are ``[P, 2]`` float pixel coordinates ``(x, y)`` with pixel centres at ``+0.5``
        (see ``mastsam_splat.types``); points outside the image are ignored. Without any positive
        point inside the image the mask is empty with score 0.
        """
        ...


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an RGB image for segmentation and return it as a contiguous [H, W, 3] uint8 array."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"segmenters take [H, W, 3] RGB images, got an array of shape {image.shape}")
    if image.dtype != np.uint8:
        raise InputError(f"segmenters take uint8 images, got dtype {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(f"image of shape {image.shape} is too small to segment")
    return np.ascontiguousarray(image)


def points_in_image(xy: Optional[np.ndarray], width: int, height: int) -> np.ndarray:
    """Prompt points as a float64 [P, 2] array, keeping only those inside a ``width`` x ``height`` image."""
    if xy is None:
        return np.zeros((0, 2), dtype=np.float64)
    pts = np.asarray(xy, dtype=np.float64)
    if pts.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if pts.shape == (2,):
        pts = pts[None]
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"prompt points must have shape [P, 2], got {np.asarray(xy).shape}")
    x, y = pts[:, 0], pts[:, 1]
    # (NaN and infinite coordinates fail these comparisons)
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return pts[inside]


def empty_mask(height: int, width: int) -> Mask:
    """The mask returned when a prompt has nothing to segment."""
    return Mask(segmentation=np.zeros((height, width), dtype=bool), score=0.0, area=0)
