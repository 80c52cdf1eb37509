"""Synthetic captures for SfM on CPU, and photo folders made from them (with unreadable files added).

- a forward walk (16 frames, 320x240): registers fully in seconds; its later frames see mostly
  the checkerboard ground, whose repeated tiles can fold the reconstruction there, so it is not
  used for pose accuracy;
- an orbit (36 frames, 320x240): registers fully with sub-degree errors for any mapper seed; the
  pose-accuracy scene.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CAPTURE_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT = 16, 320, 240
ORBIT_FRAMES = 36


def photo_folder(scene: Path, folder: Path, extra_bad: bool = False) -> Path:
    """Copy the scene's images into ``folder``; with ``extra_bad`` add a truncated PNG and a non-image .jpg."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in sorted((scene / "images").glob("*.png")):
        shutil.copy(image, folder / image.name)
    if extra_bad:
        data = (scene / "images" / "frame_00000.png").read_bytes()
        (folder / "zz_truncated.png").write_bytes(data[: len(data) // 3])
        (folder / "zz_not_an_image.jpg").write_bytes(b"this is not a jpeg")
    return folder
