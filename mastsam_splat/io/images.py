"""Decode image files with an explicit completeness check.

OpenCV decodes a truncated JPEG without an error (the missing rows come out grey) and PIL raises
a bare ``OSError`` for it; both mean a run that silently trains on, or crashes late over, a broken
file. Here a JPEG must end with its end-of-image marker after its last scan and a PNG must hold
its ``IEND`` chunk; otherwise the file is refused by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from mastsam_splat.errors import InputError

PathLike = Union[str, Path]

JPEG_START = b"\xff\xd8"
JPEG_SCAN = b"\xff\xda"
JPEG_END = b"\xff\xd9"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def truncation(data: bytes) -> str:
    """Why ``data`` is an incomplete JPEG or PNG ('' when complete or of another format).

    In a JPEG's entropy-coded data a 0xFF byte is always followed by 0x00 or a restart marker, so
    the end marker after the last start-of-scan marker exists only when the last scan is whole.
    """
    if data.startswith(JPEG_START):
        last_scan = data.rfind(JPEG_SCAN)
        if last_scan < 0:
            return "JPEG without image data (no start-of-scan marker)"
        if data.rfind(JPEG_END) < last_scan:
            return "JPEG is truncated (no end-of-image marker after its last scan)"
    elif data.startswith(PNG_SIGNATURE) and data.rfind(b"IEND") < 0:
        return "PNG is truncated (no IEND chunk)"
    return ""


def read_image_bytes(path: PathLike) -> bytes:
    """The file's bytes, checked to be a complete JPEG/PNG (other formats are left to the decoder)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("image not found", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"image could not be read ({exc.strerror or exc})", path) from None
    if not data:
        raise InputError("image file is empty", path)
    problem = truncation(data)
    if problem:
        raise InputError(f"{problem}; re-export or remove this image", path)
    return data


def check_image_file(path: PathLike) -> None:
    """Raise :class:`InputError` when the file is missing, empty or a truncated JPEG/PNG (no decoding)."""
    read_image_bytes(path)


def read_image_file(path: PathLike, flags: int = -1) -> np.ndarray:
    """Decode an image file with OpenCV (``flags`` as for ``cv2.imdecode``; default unchanged) after the check."""
    import cv2

    data = read_image_bytes(path)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise InputError("image could not be decoded (corrupt or unsupported format)", path)
    return image
