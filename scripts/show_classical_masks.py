"""Draw the classical segmenter's automatic masks and a few prompted masks on real photos.

Usage: python scripts/show_classical_masks.py [OUTPUT.png] [--size 320x240] [--max-side N] [--images a.jpg ...]

Each row: the photo, its automatic masks (one colour per mask, black where none), and the masks
from one positive click (green dot) at the centre of each of the three largest automatic masks
with a negative click (red dot) in the next one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np
import tyro

from mastsam_splat.io import atomic_path
from mastsam_splat.segmenters import ClassicalSegmenterConfig, make_segmenter

OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
DEFAULT_IMAGES = ["fruits.jpg", "aloeL.jpg", "smarties.png", "home.jpg", "baboon.jpg", "messi5.jpg"]


@dataclass
class ShowClassicalMasks:
    """Draw automatic and prompted classical masks of a few photos into one picture."""

    output: tyro.conf.Positional[Path] = Path("/tmp/classical_masks.png")
    """Picture to write."""
    size: str = "320x240"
    """Resize photos to WxH before segmenting."""
    images: Optional[tuple[Path, ...]] = None
    """Image files (default: opencv-doc photos)."""
    max_side: int = 0
    """ClassicalSegmenterConfig.max_side (0: default)."""


def colour_masks(image: np.ndarray, masks: list, seed: int = 0) -> np.ndarray:
    """Blend one random colour per mask over a dimmed copy of ``image`` and outline every mask."""
    rng = np.random.default_rng(seed)
    out = (image * 0.35).astype(np.float32)
    for m in masks:
        colour = rng.integers(40, 256, size=3).astype(np.float32)
        out[m.segmentation] = 0.45 * image[m.segmentation] + 0.55 * colour
    out = out.astype(np.uint8)
    for m in masks:
        contours, _ = cv2.findContours(m.segmentation.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def interior_point(mask: np.ndarray) -> np.ndarray:
    """The mask pixel farthest from its boundary, as an (x, y) pixel centre."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([col + 0.5, row + 0.5])


def main(args: ShowClassicalMasks) -> None:
    files = [Path(p) for p in args.images] if args.images else [OPENCV_DATA / n for n in DEFAULT_IMAGES]
    files = [f for f in files if f.is_file()]
    if not files:
        sys.exit(f"no input images found (install opencv-doc for {OPENCV_DATA})")
    width, height = (int(v) for v in args.size.lower().split("x"))
    segmenter = make_segmenter("classical", ClassicalSegmenterConfig(max_side=args.max_side) if args.max_side else None)

    rows = []
    for file in files:
        image = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        state = segmenter.prepare(image)
        masks = segmenter.auto(state)
        auto_view = colour_masks(image, masks)
        prompted, clicks = [], []
        for k in range(min(3, len(masks) - 1)):
            pos = interior_point(masks[k].segmentation)[None]
            neg = interior_point(masks[k + 1].segmentation)[None]
            prompted.append(segmenter.prompt(state, pos, neg))
            clicks.append((pos[0], neg[0]))
        prompt_view = colour_masks(image, prompted, seed=1)
        for pos, neg in clicks:
            cv2.circle(prompt_view, tuple(int(v) for v in pos), 4, (0, 255, 0), -1)
            cv2.circle(prompt_view, tuple(int(v) for v in neg), 4, (255, 0, 0), -1)
        for view, text in ((auto_view, f"auto: {len(masks)} masks"), (prompt_view, "prompts")):
            cv2.putText(view, text, (5, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([image, auto_view, prompt_view], axis=1))
        covered = np.any([m.segmentation for m in masks], axis=0).mean()
        print(f"{file.name}: {len(masks)} automatic masks covering {covered:.0%}")

    picture = np.concatenate(rows, axis=0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.output) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
            sys.exit(f"could not write {args.output}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main(tyro.cli(ShowClassicalMasks))
