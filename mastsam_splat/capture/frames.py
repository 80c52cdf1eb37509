"""Input frames of a capture: photos read upright (EXIF orientation applied) or frames sampled from a video.

Phone cameras store pixels in sensor order and an EXIF tag saying how to turn them; every
later step (SfM, the tracker, training) must see the same upright pixels, so frames are
turned here once and written without the tag. Images that cannot be decoded (corrupt or
truncated) are collected so the caller can name them all in one warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.scene import IMAGE_SUFFIXES, VIDEO_SUFFIXES

DEFAULT_VIDEO_FRAMES = 150
"""Frames taken evenly from a video when neither a rate nor a count is given."""


@dataclass
class SourceFrame:
    """One frame of the capture: its output name (file stem) and upright RGB pixels."""

    name: str
    image: np.ndarray
    """[H, W, 3] uint8 RGB."""
    focal_length_px: Optional[float] = None
    """Focal length from EXIF (35 mm equivalent), in pixels of ``image``; None when unknown."""
    suffix: str = ".png"
    """File type it is written as: ``.jpg`` for JPEG photos and video frames (quality 95), else ``.png``."""


@dataclass
class FrameSource:
    """Where frames come from, and what was left out while reading them."""

    path: Path
    kind: str
    """``"images"`` or ``"video"``."""
    count: int
    """Frames expected (images found, or video frames chosen from its header)."""
    skipped: list[str] = field(default_factory=list)
    """Inputs left out, each ``"name (reason)"``."""
    note: Optional[str] = None
    """A remark about the input (e.g. a video that ended early)."""


def image_files(folder: Path) -> list[Path]:
    """Image files of ``folder`` in name order."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_upright(path: Path) -> SourceFrame:
    """Decode a photo fully, apply its EXIF orientation, and read its 35 mm focal length if any."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as handle:
            exif = handle.getexif()
            handle.load()  # decode every pixel now: truncated files fail here, not later
            upright = ImageOps.exif_transpose(handle)
            image = np.asarray(upright.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"image could not be decoded ({exc})", path) from None
    focal = None
    f35 = exif.get_ifd(0x8769).get(0xA405) if exif else None  # Exif IFD, FocalLengthIn35mmFilm
    if f35:
        focal = float(f35) / 36.0 * max(image.shape[0], image.shape[1])
    suffix = ".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png"
    return SourceFrame(name=path.stem, image=np.ascontiguousarray(image), focal_length_px=focal, suffix=suffix)


def photo_frames(folder: Path, source: FrameSource) -> Iterator[SourceFrame]:
    """Upright frames of the photos in ``folder``; undecodable ones are added to ``source.skipped``."""
    for path in image_files(folder):
        try:
            yield read_upright(path)
        except InputError as exc:
            reason = str(exc).split(": ", 1)[-1]
            source.skipped.append(f"{path.name} ({reason})")


def open_images(folder: Path) -> FrameSource:
    """Check ``folder`` holds images (names unique by stem) and describe it."""
    if not folder.is_dir():
        raise InputError("image folder not found", folder)
    files = image_files(folder)
    if not files:
        raise InputError(f"no images found (looked for {', '.join(IMAGE_SUFFIXES)})", folder)
    stems: dict[str, str] = {}
    for path in files:
        if path.stem in stems:
            raise InputError(f"{path.name} and {stems[path.stem]} share a name; frames are stored by name", folder)
        stems[path.stem] = path.name
    return FrameSource(path=folder, kind="images", count=len(files))


def video_picks(total: int, native_fps: float, fps: Optional[float], max_frames: Optional[int]) -> list[int]:
    """Indices of the video frames to keep: every ``native_fps / fps``-th, else ``max_frames`` evenly spread."""
    if total <= 0:
        return []
    if fps is not None:
        step = max(1, int(round(native_fps / fps))) if native_fps > 0 else 1
        picks = list(range(0, total, step))
        return picks if max_frames is None else picks[:max_frames]
    count = min(total, max_frames or DEFAULT_VIDEO_FRAMES)
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


def open_video(path: Path, fps: Optional[float], max_frames: Optional[int]) -> tuple[FrameSource, list[int]]:
    """Check the video opens and choose which of its frames to keep (from its header)."""
    import cv2

    if not path.is_file():
        raise InputError("video not found", path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"not a video file (expected one of {', '.join(VIDEO_SUFFIXES)})", path)
    if fps is not None and fps <= 0:
        raise InputError(f"--fps must be > 0, got {fps}", path)
    if max_frames is not None and max_frames < 3:
        raise InputError(f"--max-frames must be >= 3, got {max_frames}", path)
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError("could not open as a video (unsupported format or corrupt file)", path)
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        native_fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()
    if total <= 0:
        raise InputError("the video's header gives no frame count; it may be corrupt", path)
    picks = video_picks(total, native_fps, fps, max_frames)
    return FrameSource(path=path, kind="video", count=len(picks)), picks


def video_frames(path: Path, picks: list[int], source: FrameSource) -> Iterator[SourceFrame]:
    """The chosen frames of a video, decoded in order; a video that ends early sets ``source.note``."""
    import cv2

    wanted = set(picks)
    capture = cv2.VideoCapture(str(path))
    index = 0
    try:
        while index <= picks[-1]:
            ok, bgr = capture.read()
            if not ok:
                break
            if index in wanted:
                yield SourceFrame(
                    name=f"frame_{index:05d}", image=np.ascontiguousarray(bgr[:, :, ::-1]), suffix=".jpg"
                )
            index += 1
    finally:
        capture.release()
    if index <= picks[-1]:
        missing = sum(1 for p in picks if p >= index)
        source.note = (
            f"the video ended after {index} frames, before the {picks[-1] + 1} its header announces; "
            f"{missing} chosen frames were not there"
        )
