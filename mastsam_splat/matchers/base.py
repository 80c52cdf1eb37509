"""The matcher protocol: pixel correspondences between two frames.

Every backend returns :class:`~mastsam_splat.types.Matches` with coordinates in each
frame's original pixels (pixel ``(c, r)`` has its centre at ``(c + 0.5, r + 0.5)``) and a
confidence in ``[0, 1]``. The two frames of a pair may differ in size. Backends satisfy the
protocol structurally (no base class); the registry in ``mastsam_splat.matchers`` builds them by name.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.reprojection import frame_label
from mastsam_splat.types import Frame, Matches


@runtime_checkable
class Matcher(Protocol):
    """Finds corresponding pixels of two frames."""

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """Correspondences ``frame_a -> frame_b`` in original pixel coordinates."""
        ...


def check_image(frame: Frame) -> None:
    """Raise :class:`InputError` unless the frame holds a non-empty ``uint8`` RGB image [H, W, 3]."""
    image = np.asarray(frame.image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(
            f"{frame_label(frame)}: expected an RGB uint8 image of shape [H, W, 3], got {image.dtype} {image.shape}",
            frame.file,
        )
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InputError(
            f"{frame_label(frame)}: image of size {image.shape[1]}x{image.shape[0]} is too small", frame.file
        )


def check_camera(frame: Frame) -> None:
    """Raise :class:`InputError` when the frame's camera does not describe its image size."""
    if frame.camera is None:
        return
    if (frame.camera.width, frame.camera.height) != (frame.width, frame.height):
        raise InputError(
            f"{frame_label(frame)}: camera is {frame.camera.width}x{frame.camera.height} "
            f"but the image is {frame.width}x{frame.height}",
            frame.file,
        )
