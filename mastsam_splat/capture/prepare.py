"""``prepare``: photos or a video in, a Nerfstudio dataset with SfM cameras out.

Steps: read the frames upright (``capture.frames``), cap their size, write them with Nerfstudio's
downscaled copies, run SfM (``capture.sfm``, in a child process: ``capture.sfm_process``), leave
out frames that did not register, and write ``transforms.json``, ``sparse_pc.ply`` and
``sparse/0`` (``capture.writer``) plus ``capture.json`` (source, settings, registered and
left-out frames). Everything is written into a staging folder
renamed into place at the end (``io.atomic.atomic_dir``): a failure leaves no dataset behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

import numpy as np

from mastsam_splat.capture.frames import (
    FrameSource,
    SourceFrame,
    open_images,
    open_video,
    photo_frames,
    video_frames,
)
from mastsam_splat.capture.mast3r_sfm import Mast3rSfmOptions, check_mast3r, run_mast3r_sfm
from mastsam_splat.capture.sfm import MIN_REGISTERED, SfmOptions, SfmResult
from mastsam_splat.capture.sfm_process import run_sfm_in_child
from mastsam_splat.capture.writer import DOWNSCALES, write_downscales, write_image, write_model_files
from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_dir, atomic_write_text

GENERATOR = "mastsam_splat.capture"
"""Marker in ``capture.json`` naming folders ``prepare`` may replace."""
CAPTURE_FILE = "capture.json"
SfmBackend = Literal["colmap", "mast3r"]


class CaptureWarning(UserWarning):
    """Something was left out of a capture (unreadable images, unregistered frames, a short video)."""


@dataclass
class PrepareOptions:
    """What ``prepare`` reads and how it reconstructs it."""

    images: Optional[Path] = None
    """Folder of photos (name order is the sequence order)."""
    video: Optional[Path] = None
    """Video file."""
    fps: Optional[float] = None
    """Video: frames taken per second of video."""
    max_frames: Optional[int] = None
    """Video: frames taken, evenly spread (default 150 when --fps is not given); with --fps, a cap."""
    sfm: SfmBackend = "colmap"
    """``colmap``: SIFT + incremental mapping with pycolmap on CPU (no weights needed); ``mast3r``:
    MASt3R's sparse global alignment (needs the MASt3R code and ``mast3r_checkpoint``)."""
    max_image_size: Optional[int] = 3200
    """Longer side (pixels) of the images written to ``images/``; larger frames are reduced. None: keep."""
    mast3r_checkpoint: Optional[Path] = None
    """MASt3R checkpoint, for ``--sfm mast3r``."""
    colmap: SfmOptions = field(default_factory=SfmOptions)
    """SfM settings of the ``colmap`` backend."""
    mast3r: Mast3rSfmOptions = field(default_factory=Mast3rSfmOptions)
    """Settings of the ``mast3r`` backend."""


@dataclass
class PrepareReport:
    """What ``prepare`` did."""

    output_dir: Path
    frames_in: int
    registered: list[str]
    unregistered: list[str]
    skipped: list[str]
    image_size: tuple[int, int]
    num_points: int
    seconds: float
    mapping_runs: int = 0
    """COLMAP mapping runs SfM made (0 with ``--sfm mast3r``)."""

    @property
    def registered_fraction(self) -> float:
        return len(self.registered) / max(self.frames_in, 1)


def is_prepared_dataset(path: Path) -> bool:
    """Whether ``path`` was written by ``prepare`` (its ``capture.json`` says so)."""
    try:
        return json.loads((path / CAPTURE_FILE).read_text()).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def check_output_dir(output_dir: Path, source: Path) -> None:
    """Refuse an output folder that holds other files, or that holds or sits inside the input."""
    out, src = output_dir.resolve(), source.resolve()
    if out == src or out in src.parents:
        raise InputError("the output folder must not hold the input", output_dir)
    if output_dir.is_file():
        raise InputError("the output path is a file; give a folder", output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not is_prepared_dataset(output_dir):
        raise InputError(
            "the output folder exists and is not a dataset written by 'mastsam prepare'; choose a new or empty folder",
            output_dir,
        )


def open_source(options: PrepareOptions) -> tuple[FrameSource, Iterator[SourceFrame]]:
    """The frame source the options name, checked before any work."""
    if (options.images is None) == (options.video is None):
        raise InputError("give exactly one of --images DIR or --video FILE")
    if options.images is not None:
        if options.fps is not None or options.max_frames is not None:
            raise InputError("--fps and --max-frames apply to --video only", options.images)
        source = open_images(Path(options.images))
        return source, photo_frames(source.path, source)
    if options.fps is not None and options.max_frames is not None:
        raise InputError("give --fps or --max-frames, not both", options.video)
    source, picks = open_video(Path(options.video), options.fps, options.max_frames)  # type: ignore[arg-type]
    return source, video_frames(source.path, picks, source)


def fit_size(image: np.ndarray, max_size: Optional[int]) -> np.ndarray:
    """``image`` reduced (area averaging) so its longer side is at most ``max_size``."""
    height, width = image.shape[:2]
    if max_size is None or max(width, height) <= max_size:
        return image
    import cv2

    scale = max_size / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def write_frames(
    root: Path, frames: Iterator[SourceFrame], source: FrameSource, max_size: Optional[int], progress: bool
) -> tuple[list[str], tuple[int, int], Optional[float]]:
    """Write each frame (and its downscaled copies); file names, the common size and a focal-length prior."""
    from tqdm.auto import tqdm

    names: list[str] = []
    first: Optional[tuple[str, tuple[int, int]]] = None
    size = (0, 0)
    focal: Optional[float] = None
    for frame in tqdm(frames, total=source.count, desc="writing frames", unit="frame", disable=not progress):
        original = frame.image.shape[1], frame.image.shape[0]
        if first is None:
            first = frame.name, original
        elif original != first[1]:
            raise InputError(
                f"{frame.name} is {original[0]}x{original[1]} (upright) but {first[0]} is "
                f"{first[1][0]}x{first[1][1]}; all frames of a capture must have the same size and orientation",
                source.path,
            )
        image = fit_size(frame.image, max_size)
        size = image.shape[1], image.shape[0]
        if frame.focal_length_px is not None and focal is None:
            focal = frame.focal_length_px * size[0] / original[0]
        name = frame.name + frame.suffix
        write_image(root / "images" / name, image)
        write_downscales(root, name, image)
        names.append(name)
    if source.skipped:
        warnings.warn(
            f"{len(source.skipped)} of {source.count} images could not be read and are left out: "
            + "; ".join(source.skipped),
            CaptureWarning,
            stacklevel=3,
        )
    if source.note:
        warnings.warn(f"{source.path}: {source.note}", CaptureWarning, stacklevel=3)
    if len(names) < MIN_REGISTERED:
        raise InputError(f"{len(names)} readable frames; a capture needs at least {MIN_REGISTERED}", source.path)
    return names, size, focal


def remove_frames(root: Path, names: list[str]) -> None:
    """Delete the staged files of frames left out of the dataset."""
    for name in names:
        for folder in ("images", *(f"images_{f}" for f in DOWNSCALES)):
            (root / folder / name).unlink(missing_ok=True)


def check_backend(options: PrepareOptions) -> None:
    """Refuse an SfM backend that cannot run."""
    if options.sfm == "mast3r":
        check_mast3r(options.mast3r_checkpoint, options.mast3r)


def reconstruct(
    root: Path, names: list[str], size: tuple[int, int], options: PrepareOptions, focal: Optional[float], progress: bool
) -> SfmResult:
    """Run the SfM backend on the staged images (pycolmap's in a child process, ``capture.sfm_process``)."""
    check_backend(options)
    sfm_options = options.colmap
    if focal is not None and sfm_options.focal_length_px is None:
        sfm_options = SfmOptions(**{**asdict(sfm_options), "focal_length_px": focal})
    work = root / ".sfm"
    work.mkdir()
    try:
        if options.sfm == "mast3r":
            return run_mast3r_sfm(root / "images", names, work, options.mast3r_checkpoint, options.mast3r, progress)
        return run_sfm_in_child(root / "images", names, size, work, sfm_options, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def capture_record(
    options: PrepareOptions, source: FrameSource, result: SfmResult, size: tuple[int, int], fingerprint: str
) -> dict[str, Any]:
    """Contents of capture.json."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()}
    return {
        "generator": GENERATOR,
        "source": {"kind": source.kind, "path": str(Path(os.path.abspath(source.path)))},
        "fingerprint": fingerprint,
        "settings": settings,
        "image_size": list(size),
        "registered": result.registered,
        "unregistered": result.unregistered,
        "skipped": source.skipped,
    }


def prepare(output_dir: Path, options: PrepareOptions, progress: bool = True, fingerprint: str = "") -> PrepareReport:
    """Turn photos or a video into a Nerfstudio dataset at ``output_dir`` (see module docstring);
    ``fingerprint`` (of the input, for caches) is stored in capture.json."""
    start = time.perf_counter()
    output_dir = Path(os.path.abspath(output_dir))
    if options.max_image_size is not None and options.max_image_size < 16:
        raise InputError(f"--max-image-size must be >= 16, got {options.max_image_size}")
    check_backend(options)
    source, frames = open_source(options)
    check_output_dir(output_dir, source.path)
    with atomic_dir(output_dir) as staging:
        names, size, focal = write_frames(staging, frames, source, options.max_image_size, progress)
        result = reconstruct(staging, names, size, options, focal, progress)
        if result.unregistered:
            warnings.warn(
                f"{len(result.unregistered)} of {len(names)} frames did not register in SfM and are left out: "
                + ", ".join(result.unregistered),
                CaptureWarning,
                stacklevel=2,
            )
            remove_frames(staging, result.unregistered)
        write_model_files(staging, result.reconstruction, [f"images/{name}" for name in result.registered])
        record = capture_record(options, source, result, size, fingerprint)
        atomic_write_text(staging / CAPTURE_FILE, json.dumps(record, indent=2) + "\n")
    return PrepareReport(
        output_dir=output_dir,
        frames_in=source.count,
        registered=result.registered,
        unregistered=result.unregistered,
        skipped=source.skipped,
        image_size=size,
        num_points=int(result.reconstruction.num_points3D()),
        seconds=time.perf_counter() - start,
        mapping_runs=result.mapping_runs,
    )
