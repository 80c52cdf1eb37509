"""``tracks.json``: the frame list, per-object statistics, config and timing of a tracking run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_write_text

TRACKS_VERSION = 1
PathLike = Union[str, Path]


def summarize_objects(label_maps: list[np.ndarray], object_of: Optional[dict[int, int]] = None) -> list[dict[str, int]]:
    """Per-id first/last frame, number of frames and total area (pixels) over a label sequence; with
    ``object_of`` (id -> object id, ids absent are their own object) also each id's ``object``."""
    stats: dict[int, dict[str, int]] = {}
    for t, labels in enumerate(label_maps):
        ids, counts = np.unique(labels, return_counts=True)
        for obj_id, count in zip(ids.tolist(), counts.tolist()):
            if obj_id == 0:
                continue
            entry = stats.setdefault(obj_id, {"id": obj_id, "first_frame": t, "last_frame": t, "num_frames": 0, "area_px": 0})
            entry["last_frame"] = t
            entry["num_frames"] += 1
            entry["area_px"] += count
    if object_of is not None:
        for obj_id, entry in stats.items():
            entry["object"] = int(object_of.get(obj_id, obj_id))
    return [stats[k] for k in sorted(stats)]


def object_map(tracks: dict[str, Any]) -> dict[int, int]:
    """Id -> object id of every id ``tracks.json`` groups under another (empty when it holds no object level)."""
    out: dict[int, int] = {}
    for entry in tracks.get("objects", []):
        if isinstance(entry, dict) and "object" in entry and int(entry["object"]) != int(entry["id"]):
            out[int(entry["id"])] = int(entry["object"])
    return out


def write_tracks(
    path: PathLike,
    frames: list[dict[str, Any]],
    objects: list[dict[str, int]],
    config: dict[str, Any],
    timing: dict[str, float],
) -> Path:
    """Write ``tracks.json`` atomically (format in docs/architecture.md)."""
    for key in ("name", "file", "width", "height"):
        missing = [i for i, f in enumerate(frames) if key not in f]
        if missing:
            raise ValueError(f"tracks frame entries {missing[:5]} lack {key!r}")
    payload = {"version": TRACKS_VERSION, "frames": frames, "objects": objects, "config": config, "timing": timing}
    return atomic_write_text(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def read_tracks(path: PathLike) -> dict[str, Any]:
    """Read and validate ``tracks.json``."""
    path = Path(path)
    if not path.is_file():
        raise InputError("tracks.json not found", path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path) from None
    if not isinstance(data, dict) or data.get("version") != TRACKS_VERSION:
        raise InputError(f"unsupported tracks.json (expected version {TRACKS_VERSION})", path)
    for key in ("frames", "objects"):
        if not isinstance(data.get(key), list):
            raise InputError(f"missing list {key!r}", path)
    return data


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
