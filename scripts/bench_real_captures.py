#!/usr/bin/env python
"""Benchmark of the MastSAM tracker on real captures without ground truth, scored over SfM tracks.

For every dataset written by ``mastsam prepare`` (a Nerfstudio dataset with its COLMAP model in
``sparse/0``), the tracker runs in consistent mode (the defaults) and in ``independent`` mode
(per-view segmentation, fresh ids) with the same backends (``tracker.job.track_to_folder``),
and both label sets are scored with ``mastsam eval``'s SfM-track score: coverage, IDC and PSC
over the model's track correspondences for near / far / all frame gaps, segments per frame,
the largest segment's share, ids in total and wall time per frame. The target checks compare
the consistent mode's figures with fixed thresholds and with the independent mode's. Scores are
those of the tracker's object level (its ids grouped as ``tracks.json`` groups them, what
``mastsam eval`` scores by default); the table's lines marked ``(ids)`` score the masks' ids
themselves (``mastsam eval --no-object-ids``), so a catch-all made by the grouping shows apart
from one in the ids. Prints a table and writes every number to JSON.

    mastsam prepare --images PHOTOS --output-dir DATASET --colmap.num-threads 1   # (one thread: the model repeats)
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_real_captures.py --datasets DATASET [DATASET ...]
    (more: --workdir DIR --out FILE.json --stride N --max-frames N --reuse)
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import tyro

from mastsam_splat.metrics.sfm_tracks import SfmTracksConfig
from mastsam_splat.tracker import TrackerConfig

MODES = ("mastsam", "independent")
BINS = ("near", "far", "all")
COUNTS = (
    "new",
    "reidentified",
    "merged",
    "corrected",
    "assigned_segments",
    "anchored_segments",
    "overruled_segments",
    "split_segments",
    "refined",
)
"""Per-frame report counts summed over the sequence (what each tracker step did)."""


@dataclass
class Targets:
    """Thresholds the consistent mode is checked against."""

    far_idc: float = 0.70
    """Far-gap IDC at least this."""
    near_idc: float = 0.90
    """Near-gap IDC at least this."""
    min_segments_ratio: float = 0.5
    """Segments per frame at least this times the independent mode's."""
    max_largest_share_ratio: float = 1.5
    """Largest segment's share at most this times the independent mode's (no catch-all segment)."""


@dataclass
class RealBenchOptions:
    """Options of the real-capture benchmark."""

    datasets: tuple[Path, ...]
    """Datasets written by ``mastsam prepare`` (with sparse/0)."""
    workdir: Path = Path("outputs/bench_real_captures")
    """Tracker outputs go to <workdir>/<dataset name>/<mode>."""
    out: Path = Path("outputs/bench_real_captures.json")
    """JSON file with every number."""
    segmenter: str = "classical"
    """Segmenter backend of both modes."""
    matcher: str = "auto"
    """Matcher backend of both modes (``auto``: as ``mastsam track --matcher auto``, the dataset's SfM tracks when
    the frames carry them, else SIFT)."""
    stride: int = 1
    """Use every n-th frame."""
    max_frames: Optional[int] = None
    """Use at most this many frames (after striding)."""
    held_out: bool = False
    """Give the tracker the SfM points with an even index only (``points`` ``auto``/``sfm``) and score over the
    odd ones, so that the score grades it on points it was not given."""
    reuse: bool = False
    """Reuse tracker outputs of an earlier run with the same frames and settings (wall times from that run)."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """Tracker settings of both modes (``mode`` is set per run)."""
    sfm: SfmTracksConfig = field(default_factory=SfmTracksConfig)
    """Pair sampling and frame-gap bins of the score (gaps count the frames kept after --stride)."""
    targets: Targets = field(default_factory=Targets)


def track(options: RealBenchOptions, dataset: Path, mode: str) -> tuple[Path, dict[str, Any]]:
    """Run (or reuse) the tracker on a dataset in one mode; the output folder and the run's timing."""
    from mastsam_splat.io import load_scene
    from mastsam_splat.io.tracks import read_tracks
    from mastsam_splat.threads import cpu_threads
    from mastsam_splat.tracker.job import (
        TrackingJob,
        check_matcher_inputs,
        resolve_matcher,
        track_to_folder,
        with_sfm_points,
    )

    scene = load_scene(dataset, stride=options.stride, max_frames=options.max_frames)
    subset = options.stride > 1 or options.max_frames is not None
    frames = with_sfm_points(scene.frames, scene.root, options.tracker.points, subset=subset)
    if options.held_out:
        frames = [
            f if f.observed is None else replace(f, observed=f.observed.subset(f.observed.point % 2 == 0))
            for f in frames
        ]
    matcher = resolve_matcher(options.matcher, frames)
    check_matcher_inputs(matcher, frames, dataset)
    job = TrackingJob.from_options(
        options.segmenter,
        matcher,
        replace(options.tracker, mode=mode),
        data=dataset,
        selection={"stride": options.stride, "max_frames": options.max_frames},
    )
    output_dir = options.workdir / dataset.name / mode
    start = time.perf_counter()
    with cpu_threads():
        run = track_to_folder(
            frames,
            job,
            output_dir,
            source=str(dataset.resolve()),
            overwrite=True,
            recompute=not options.reuse,
            on_frame=lambda r: print(
                f"    {mode} {r.name}: {r.num_ids} ids, {r.new} new, {r.num_points3d} 3D points, "
                f"{r.anchored_segments} anchored, {r.total_seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            ),
        )
    wall = time.perf_counter() - start
    timing = read_tracks(output_dir / "tracks.json").get("timing", {})
    timing = {
        **timing,
        "matcher": matcher,
        "bench_wall_s": wall,
        "reused": run.status == "reused",
        "warnings": len(run.warnings),
    }
    if run.result is not None:
        timing["points_source"] = run.result.points_source
        timing["notes"] = list(run.result.notes)
        timing["points3d_per_frame"] = float(np.median([r.num_points3d for r in run.result.reports]))
        for name in COUNTS:
            timing[name] = int(sum(getattr(r, name) for r in run.result.reports))
    return output_dir, timing


ID_LEVEL = ("sfm_idc_near", "sfm_idc_far", "sfm_idc_all", "sfm_psc_all", "segments_per_frame", "largest_segment_share")
"""Figures also given at the id level (the masks' ids, before the object level groups them)."""


def score(options: RealBenchOptions, dataset: Path, output_dir: Path) -> dict[str, Any]:
    """``mastsam eval``'s SfM-track score of a tracker output (its object level, as ``mastsam eval`` scores it by
    default), with the number of ids in total and, under ``id_level``, the ``ID_LEVEL`` figures of its ids."""
    from mastsam_splat.cli.eval import EvalCommand, prediction_folder, read_predictions
    from mastsam_splat.io import load_scene

    sfm = replace(options.sfm, points="odd") if options.held_out else options.sfm
    command = EvalCommand(pred=output_dir, data=dataset, stride=options.stride, max_frames=options.max_frames, sfm=sfm)
    report = command.report()
    if report.sfm is None:
        raise SystemExit(f"{dataset}: no COLMAP model (sparse/0) to score against")
    by_id = replace(command, object_ids=False).report().sfm
    assert by_id is not None
    scene = load_scene(dataset, stride=options.stride, max_frames=options.max_frames)
    labels = read_predictions(prediction_folder(output_dir), scene)
    ids = set()
    for x in labels:
        ids.update(int(i) for i in np.unique(x) if i > 0)
    id_level = {key: by_id.to_dict()[key] for key in ID_LEVEL}
    return {**report.sfm.to_dict(), "ids_total": len(ids), "frames": len(labels), "id_level": id_level}


def checks(consistent: dict[str, Any], independent: dict[str, Any], targets: Targets) -> dict[str, dict[str, Any]]:
    """Each target: the figure, the threshold and whether it is met (``None`` when the figure is missing)."""

    def check(value: Optional[float], threshold: Optional[float], higher: bool, strict: bool = False) -> dict[str, Any]:
        if value is None or threshold is None:
            return {"value": value, "threshold": threshold, "met": None}
        met = value > threshold if strict and higher else value >= threshold if higher else value <= threshold
        return {"value": round(value, 4), "threshold": round(threshold, 4), "met": bool(met)}

    def scaled(value: Optional[float], factor: float) -> Optional[float]:
        return None if value is None else value * factor

    return {
        "far_idc": check(consistent["sfm_idc_far"], targets.far_idc, higher=True),
        "near_idc": check(consistent["sfm_idc_near"], targets.near_idc, higher=True),
        "psc_above_independent": check(consistent["sfm_psc_all"], independent["sfm_psc_all"], higher=True, strict=True),
        "segments_per_frame": check(
            consistent["segments_per_frame"], scaled(independent["segments_per_frame"], targets.min_segments_ratio), True
        ),
        "largest_share": check(
            consistent["largest_segment_share"],
            scaled(independent["largest_segment_share"], targets.max_largest_share_ratio),
            higher=False,
        ),
    }


COLUMNS = (
    ("sfm_idc_near", "IDC near"),
    ("sfm_idc_far", "IDC far"),
    ("sfm_idc_all", "IDC all"),
    ("sfm_psc_near", "PSC near"),
    ("sfm_psc_far", "PSC far"),
    ("sfm_psc_all", "PSC all"),
    ("sfm_coverage_all", "cov"),
    ("segments_per_frame", "seg/f"),
    ("largest_segment_share", "largest"),
    ("ids_total", "ids"),
    ("seconds_per_frame", "s/frame"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    """One line per (dataset, mode), then the target checks of each dataset."""
    header = f"{'dataset':18s} {'mode':11s} " + " ".join(f"{title:>8s}" for _, title in COLUMNS)
    print(header)
    print("-" * len(header))

    def fmt(value: Any) -> str:
        if value is None:
            return f"{'-':>8s}"
        return f"{value:8d}" if isinstance(value, int) else f"{value:8.3f}"

    for row in rows:
        for mode in MODES:
            figures = row[mode]
            print(f"{row['dataset']:18s} {mode:11s} " + " ".join(fmt(figures.get(key)) for key, _ in COLUMNS))
    for row in rows:
        for mode in MODES:
            figures = row[mode]["id_level"]
            print(f"{row['dataset']:18s} {mode:11s} " + " ".join(fmt(figures.get(key)) for key, _ in COLUMNS) + "  (ids)")
    for row in rows:
        text = ", ".join(
            f"{name} {c['value']} vs {c['threshold']}: {'met' if c['met'] else 'MISSED' if c['met'] is False else 'n/a'}"
            for name, c in row["targets"].items()
        )
        print(f"{row['dataset']}: {text}")


def main(argv: Optional[list[str]] = None) -> int:
    options = tyro.cli(RealBenchOptions, args=argv, description=__doc__)
    rows = []
    for dataset in options.datasets:
        row: dict[str, Any] = {"dataset": dataset.name, "path": str(dataset)}
        for mode in MODES:
            output_dir, timing = track(options, dataset, mode)
            figures = score(options, dataset, output_dir)
            figures["seconds_per_frame"] = timing.get("total_s", 0.0) / max(figures["frames"], 1)
            figures["median_frame_s"] = timing.get("median_frame_s")
            row[mode] = figures
            row[f"{mode}_run"] = timing
            idc = "/".join("-" if figures[f"sfm_idc_{b}"] is None else f"{figures[f'sfm_idc_{b}']:.3f}" for b in BINS)
            print(
                f"  {dataset.name} {mode}: IDC near/far/all {idc}, {figures['ids_total']} ids, "
                f"{figures['seconds_per_frame']:.2f} s/frame",
                file=sys.stderr,
                flush=True,
            )
        row["targets"] = checks(row["mastsam"], row["independent"], options.targets)
        rows.append(row)
    print_table(rows)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"options": asdict(options), "rows": rows}
    options.out.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
