"""Files a tracking run writes: label images, ``tracks.json``, ``points.ply`` and a visual report.

Layout of the output folder:
- ``masks/<frame_stem>.png``: uint16 label image per frame (0 = no object);
- ``tracks.json``: frames, per-id statistics with each id's object (the object level above the ids), config and
  timing (``mastsam_splat.io.write_tracks``);
- ``points.ply``: labelled point cloud ``x y z red green blue instance_id`` (may hold no points);
- ``overlays/<frame_stem>.jpg``: each frame with its labels blended in, one stable colour per id;
- ``contact_sheet.png``: a grid of overlays over the sequence;
- ``report.json``: per-frame statistics (ids tracked, new, re-identified, rejected; stage timings) and
  warnings (e.g. frame pairs whose matching failed).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from mastsam_splat.io import write_label_image, write_tracks
from mastsam_splat.io.atomic import atomic_path, atomic_write_text
from mastsam_splat.io.ply import PointCloud, write_point_cloud
from mastsam_splat.io.tracks import summarize_objects
from mastsam_splat.tracker.results import TrackResult
from mastsam_splat.types import Frame

MASKS_DIR = "masks"
OVERLAYS_DIR = "overlays"
TRACKS_FILE = "tracks.json"
POINTS_FILE = "points.ply"
CONTACT_SHEET = "contact_sheet.png"
REPORT_FILE = "report.json"
OUTPUT_NAMES = (MASKS_DIR, OVERLAYS_DIR, TRACKS_FILE, POINTS_FILE, CONTACT_SHEET, REPORT_FILE)
"""Every name a run writes directly in the output folder."""


def id_colours(ids: np.ndarray) -> np.ndarray:
    """A stable, well-spread RGB colour [N, 3] uint8 for each id [N] (the same id always gets the same colour)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    hue = (ids * 0.6180339887498949) % 1.0
    sat = 0.55 + 0.45 * (((ids * 7919) % 5) / 4.0)
    val = 0.75 + 0.25 * (((ids * 104729) % 3) / 2.0)
    hsv = np.stack([hue * 180.0, sat * 255.0, val * 255.0], axis=1).astype(np.uint8)[None]
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    rgb[ids == 0] = 0
    return rgb


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image [H, W, 3] with each id's colour blended in and its boundary and number drawn."""
    ids, inverse = np.unique(labels, return_inverse=True)
    colours = id_colours(ids)[inverse.reshape(labels.shape)].astype(np.float32)
    out = image.astype(np.float32)
    labelled = labels > 0
    out[labelled] = (1 - alpha) * out[labelled] + alpha * colours[labelled]
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    out[edges] = 255.0
    out = np.clip(out, 0, 255).astype(np.uint8)
    scale = max(0.3, min(labels.shape) / 600.0)
    for obj_id in ids[ids > 0]:
        rows, cols = np.nonzero(labels == obj_id)
        if len(rows) < 30:
            continue
        centre = np.array([np.median(cols), np.median(rows)])
        k = np.argmin((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2)
        org = (int(cols[k]), int(rows[k]))
        cv2.putText(out, str(int(obj_id)), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, str(int(obj_id)), org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def sheet_tiles(count: int, max_tiles: int = 24) -> np.ndarray:
    """Indices of up to ``max_tiles`` of ``count`` images, evenly spread over the sequence."""
    return np.unique(np.linspace(0, count - 1, min(max_tiles, count)).round().astype(int))


def contact_sheet(
    images: Sequence[np.ndarray], captions: Sequence[str], max_tiles: int = 24, tile_width: int = 320
) -> np.ndarray:
    """A grid of up to ``max_tiles`` images [H, W, 3] evenly spread over the sequence, captioned."""
    if not images:
        raise ValueError("no images for a contact sheet")
    pick = sheet_tiles(len(images), max_tiles)
    h, w = images[0].shape[:2]
    tile_w = min(tile_width, w)
    tile_h = max(1, round(h * tile_w / w))
    caption_h = 18
    cols = min(len(pick), max(1, math.ceil(math.sqrt(len(pick) * 4 / 3))))
    rows = math.ceil(len(pick) / cols)
    sheet = np.full((rows * (tile_h + caption_h), cols * tile_w, 3), 32, dtype=np.uint8)
    for n, i in enumerate(pick):
        r, c = divmod(n, cols)
        y, x = r * (tile_h + caption_h), c * tile_w
        sheet[y : y + tile_h, x : x + tile_w] = cv2.resize(images[i], (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        cv2.putText(
            sheet, captions[i][:40], (x + 4, y + tile_h + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA
        )
    return sheet


def _write_rgb(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image[:, :, ::-1], list(params)):
            raise OSError(f"{path}: could not write image")


def frame_entries(frames: Sequence[Frame]) -> list[dict[str, Any]]:
    """``tracks.json`` frame entries."""
    return [
        {"name": f.name, "file": str(f.file) if f.file is not None else None, "width": f.width, "height": f.height}
        for f in frames
    ]


def write_outputs(
    output_dir: Path,
    frames: Sequence[Frame],
    result: TrackResult,
    config: dict[str, Any],
    extra_timing: dict[str, float],
    warnings: Sequence[str] = (),
) -> list[str]:
    """Write every output file of a run; returns their paths relative to ``output_dir``."""
    output_dir = Path(output_dir)
    written: list[str] = []
    for frame, labels in zip(frames, result.labels):
        rel = f"{MASKS_DIR}/{frame.name}.png"
        write_label_image(output_dir / rel, labels)
        written.append(rel)

    write_point_cloud(output_dir / POINTS_FILE, PointCloud(result.cloud_xyz, result.cloud_rgb, result.cloud_ids))
    written.append(POINTS_FILE)

    tiles = set(sheet_tiles(len(frames)).tolist()) if frames else set()
    overlays, captions = [], []  # only the sheet's tiles stay in memory
    for index, (frame, labels) in enumerate(zip(frames, result.labels)):
        image = overlay(frame.image, labels)
        rel = f"{OVERLAYS_DIR}/{frame.name}.jpg"
        _write_rgb(output_dir / rel, image, (cv2.IMWRITE_JPEG_QUALITY, 90))
        written.append(rel)
        if index in tiles:
            overlays.append(image)
            captions.append(frame.name)
    _write_rgb(output_dir / CONTACT_SHEET, contact_sheet(overlays, captions, max_tiles=len(overlays)))
    written.append(CONTACT_SHEET)

    timing = {**result.timing(), **extra_timing, "frames": len(frames)}
    points_info = {"source": result.points_source, "num_points": int(len(result.cloud_xyz)), "notes": result.notes}
    write_tracks(
        output_dir / TRACKS_FILE,
        frame_entries(frames),
        summarize_objects(result.labels, result.object_of),
        {**config, "points": points_info},
        timing,
    )
    written.append(TRACKS_FILE)
    atomic_write_text(output_dir / REPORT_FILE, json.dumps({"warnings": list(warnings), "frames": frame_reports(result)}, indent=1) + "\n")
    written.append(REPORT_FILE)
    return written


def frame_reports(result: TrackResult) -> list[dict[str, Any]]:
    """Per-frame statistics of a run (ids, tracked, new, re-identified, rejected, timings)."""
    return [
        {
            "name": r.name,
            "num_ids": r.num_ids,
            "tracked": r.tracked,
            "new": r.new,
            "reidentified": r.reidentified,
            "extended": r.extended,
            "merged": r.merged,
            "rejected": r.rejected,
            "filled_pixels": r.filled_pixels,
            "num_matches": r.num_matches,
            "num_points3d": r.num_points3d,
            "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
        }
        for r in result.reports
    ]
