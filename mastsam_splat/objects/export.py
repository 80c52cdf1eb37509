"""Per-object export of labelled Gaussians: whole-scene PLY, one PLY per object, a JSON index.

Output folder::

    scene.ply                  every Gaussian, standard 3DGS fields + instance_id
    objects/object_<id>.ply    the Gaussians of one object (same fields)
    objects/background.ply     Gaussians of no object (id 0), when there are any
    objects/unlabelled.ply     Gaussians no view saw (id -1), when there are any
    objects.json               index: id, file, Gaussian count, bounding box, mean colour
    points.ply                 (optional) labelled point cloud of the Gaussian centres

With every object exported and no filter, the files under ``objects/`` partition ``scene.ply``;
an :class:`~mastsam_splat.objects.filters.ObjectFilter` leaves nearly transparent Gaussians and
3D outliers out of the object files (never out of ``scene.ply``; the index counts them). The files
are written into a staging folder and renamed into place, so a failure leaves no partial
output. Re-exporting into an earlier export replaces only the files that export wrote (listed
under ``files`` in its ``objects.json``); anything else in the folder stays.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_dir, staged_files
from mastsam_splat.io.gaussians import BACKGROUND, UNLABELLED, Gaussians
from mastsam_splat.io.ply import write_gaussians_ply, write_labelled_points
from mastsam_splat.objects.filters import ObjectFilter, select_object_rows

PathLike = Union[str, Path]

INDEX_NAME = "objects.json"
SCENE_NAME = "scene.ply"
POINTS_NAME = "points.ply"
OBJECTS_DIR = "objects"
GENERATOR = "mastsam_splat.objects"
"""Marker in ``objects.json``: folders carrying it may be replaced by a new export."""
INDEX_VERSION = 1


def object_file_name(instance_id: int) -> str:
    """File name (under ``objects/``) of the Gaussians of ``instance_id``."""
    if instance_id == BACKGROUND:
        return "background.ply"
    if instance_id == UNLABELLED:
        return "unlabelled.ply"
    return f"object_{instance_id:04d}.ply"


def parse_object_selection(text: str) -> Optional[list[int]]:
    """``"all"`` -> None; ``"3,5"`` -> [3, 5] (``background`` / ``unlabelled`` accepted as 0 / -1)."""
    text = text.strip()
    if text.lower() == "all":
        return None
    aliases = {"background": BACKGROUND, "unlabelled": UNLABELLED}
    ids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.lower() in aliases:
            ids.append(aliases[part.lower()])
            continue
        try:
            ids.append(int(part))
        except ValueError:
            raise InputError(f"--objects takes 'all' or comma-separated ids (e.g. 3,5), got {text!r}") from None
    if not ids:
        raise InputError(f"--objects names no id: {text!r}")
    return sorted(set(ids))


def object_summary(gaussians: Gaussians, instance_id: int, rows: np.ndarray) -> dict[str, Any]:
    """Index entry of one object: id, Gaussian count, bounding box of the centres, mean colour."""
    means = gaussians.means[rows]
    colour = gaussians.colors[rows].mean(axis=0) if len(means) else np.zeros(3)
    entry: dict[str, Any] = {
        "id": int(instance_id),
        "file": f"{OBJECTS_DIR}/{object_file_name(instance_id)}",
        "num_gaussians": int(len(means)),
        "bbox_min": [round(float(v), 6) for v in means.min(axis=0)] if len(means) else None,
        "bbox_max": [round(float(v), 6) for v in means.max(axis=0)] if len(means) else None,
        "mean_color": [round(float(v), 4) for v in colour],
        "mean_color_hex": "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in colour),
    }
    if instance_id == BACKGROUND:
        entry["kind"] = "background"
    elif instance_id == UNLABELLED:
        entry["kind"] = "unlabelled"
    else:
        entry["kind"] = "object"
    return entry


@dataclass
class ExportResult:
    """Where an export put its files."""

    output_dir: Path
    scene_file: Path
    index_file: Path
    object_files: dict[int, Path] = field(default_factory=dict)
    points_file: Optional[Path] = None
    index: dict[str, Any] = field(default_factory=dict)


def check_destination(output_dir: Path) -> list[str]:
    """The destination is new, empty, or an earlier export (never someone else's files).

    Returns the files of the earlier export (relative to ``output_dir``), which a new export replaces.
    """
    if not output_dir.exists():
        return []
    if not output_dir.is_dir():
        raise InputError("the output path exists and is not a folder", output_dir)
    if not any(output_dir.iterdir()):
        return []
    try:
        previous = json.loads((output_dir / INDEX_NAME).read_text())
        ours = isinstance(previous, dict) and previous.get("generator") == GENERATOR
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise InputError(
            "the output folder is not empty and holds no earlier export; refusing to overwrite it "
            "(choose a new or empty folder)",
            output_dir,
        )
    return previous_export_files(output_dir, previous)


def previous_export_files(output_dir: Path, index: dict[str, Any]) -> list[str]:
    """Files an earlier export wrote, from its index (``files``, or its scene, objects and viewer run)."""
    listed = index.get("files")
    if isinstance(listed, list):
        return [str(f) for f in listed if isinstance(f, str)]
    files = [INDEX_NAME, SCENE_NAME, POINTS_NAME]
    files += [str(e["file"]) for e in index.get("objects", []) if isinstance(e, dict) and isinstance(e.get("file"), str)]
    viewer = index.get("viewer_config")
    if isinstance(viewer, str):
        try:
            files.append(Path(viewer).resolve().relative_to(output_dir.resolve()).parts[0])
        except (ValueError, IndexError):
            pass
    return files


def export_objects(
    gaussians: Gaussians,
    output_dir: PathLike,
    objects: Optional[Sequence[int]] = None,
    points: bool = False,
    metadata: Optional[dict[str, Any]] = None,
    extra: Optional[Callable[[Path, Path], dict[str, Any]]] = None,
    object_filter: Optional[ObjectFilter] = None,
) -> ExportResult:
    """Write the scene, per-object PLYs and the index into ``output_dir`` (atomically).

    Args:
        gaussians: Labelled Gaussians (``instance_ids`` set).
        output_dir: Destination folder; must be new, empty or an earlier export.
        objects: Ids to write per-object files for (None: every id, incl. background and
            unlabelled, so the files partition the scene). Unknown ids raise :class:`InputError`.
        points: Also write ``points.ply``, the Gaussian centres with colour and id.
        metadata: Extra entries for the index (source, frame, ...).
        extra: Writes more files: called with the staging folder and the final folder, returns
            entries for the index; its files move into place with the rest.
        object_filter: Leaves transparent Gaussians and outliers out of the files of objects
            (ids > 0; background and unlabelled files stay complete). None: no filter.
    """
    output_dir = Path(output_dir)
    if gaussians.instance_ids is None:
        raise InputError("these Gaussians carry no object ids; run `mastsam lift` to label them", gaussians.source)
    gaussians.check_finite()
    ids = gaussians.instance_ids
    present = np.unique(ids)
    if objects is None:
        selected = [int(i) for i in present]
    else:
        unknown = sorted(set(int(i) for i in objects) - set(int(i) for i in present))
        if unknown:
            objs = [int(i) for i in present if i > 0]
            raise InputError(
                f"no object with id {', '.join(map(str, unknown))}; the scene's object ids are "
                f"{objs if objs else 'none'}" + (" (plus background 0)" if BACKGROUND in present else "")
            )
        selected = sorted(set(int(i) for i in objects))
    previous_files = check_destination(output_dir)

    order = np.argsort(ids, kind="stable")
    starts = np.searchsorted(ids[order], present)
    ends = np.searchsorted(ids[order], present, side="right")
    rows_of = {int(i): order[s:e] for i, s, e in zip(present, starts, ends)}
    dropped_of: dict[int, dict[str, int]] = {}
    if object_filter is not None:
        object_filter.check()
        for instance_id in selected:
            if instance_id > 0:
                rows_of[instance_id], dropped_of[instance_id] = select_object_rows(
                    gaussians, rows_of[instance_id], object_filter
                )
    filtered = any(sum(d.values()) for d in dropped_of.values())

    try:
        with atomic_dir(output_dir, owned=previous_files, last=[INDEX_NAME]) as staging:
            write_gaussians_ply(staging / SCENE_NAME, gaussians)
            (staging / OBJECTS_DIR).mkdir()
            entries = []
            for instance_id in selected:
                rows = rows_of[instance_id]
                write_gaussians_ply(staging / OBJECTS_DIR / object_file_name(instance_id), gaussians.subset(rows))
                entries.append(object_summary(gaussians, instance_id, rows))
                if instance_id in dropped_of:
                    entries[-1]["left_out"] = dropped_of[instance_id]
            if points:
                write_labelled_points(staging / POINTS_NAME, gaussians)
            extra_entries = extra(staging, output_dir) if extra is not None else {}
            index = {
                "generator": GENERATOR,
                "version": INDEX_VERSION,
                "scene": SCENE_NAME,
                "points": POINTS_NAME if points else None,
                "num_gaussians": len(gaussians),
                "sh_degree": gaussians.sh_degree,
                "complete_partition": objects is None and not filtered,
                "object_filter": None if object_filter is None else asdict(object_filter),
                "objects": entries,
                **(metadata or {}),
                **extra_entries,
            }
            index["files"] = staged_files(staging) + [INDEX_NAME]
            (staging / INDEX_NAME).write_text(json.dumps(index, indent=1) + "\n")
    except OSError as exc:
        raise InputError(f"could not write the export ({exc.strerror or exc})", output_dir) from None
    return ExportResult(
        output_dir=output_dir,
        scene_file=output_dir / SCENE_NAME,
        index_file=output_dir / INDEX_NAME,
        object_files={i: output_dir / OBJECTS_DIR / object_file_name(i) for i in selected},
        points_file=output_dir / POINTS_NAME if points else None,
        index=index,
    )
