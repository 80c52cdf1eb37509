#!/usr/bin/env python
"""Cost of the MastSAM tracker: time per frame against per-view segmentation, and peak memory over long runs.

1. ``time``: one synthetic scene (rendered once under ``--workdir``), the tracker in ``mastsam`` and in
   ``independent`` mode with the same backends, alternated in one process for ``--repeats`` rounds;
   prints the median wall and CPU seconds per frame of each mode and their ratios (median of the
   per-round ratios). The CPU time (the process's own) is the steadier figure on a shared machine.
   ``--data DATASET`` times a dataset instead (a real capture at full size, with the backends ``mastsam track``
   picks for it); ``--segment-once`` segments the frames once per round, both modes read that segmentation
   back, and the ratio adds the round's segmentation time to both (the segmenter's share is measured once
   per round rather than in each run, so a machine whose speed drifts moves both sides together): the work of
   each mode as if done in turn, which is what ``--segment-ahead 0`` runs. By default both modes segment the next
   frames in a worker thread while they track (``--tracker.segment-ahead``), and the wall time shows the overlap.
2. ``memory``: ``mastsam track`` on the first N frames of a long scene (``--rss-frames``), each N in a
   fresh subprocess; prints the peak resident memory of each run (``os.wait4``) and its growth per
   100 frames between the smallest and the largest N.
3. ``profile``: one ``mastsam`` run of the ``time`` scene under cProfile; prints the ``--top`` functions by
   own time and by cumulative time.

``time`` and ``profile`` hold the frames' pixels in memory (decoded once) so that only the tracker is measured;
``mastsam track`` (``memory``) reads them from disk when a step uses them.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker_cost.py time --width 320 --height 240 --frames 40 \
        --repeats 5 [--no-parts] [--segment-ahead 0] [--segment-once]
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker_cost.py memory --rss-frames 100 300 1000 \
        --width 160 --height 120 --workdir /tmp/bench_tracker_cost
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker_cost.py profile --frames 40 --top 30
    OMP_NUM_THREADS=1 .venv/bin/python scripts/bench_tracker_cost.py time --data DATASET --segment-once --repeats 5
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional

import numpy as np
import tyro


@dataclass
class BenchCost:
    """Options of the tracker cost benchmark."""

    figure: tyro.conf.Positional[Literal["time", "memory", "both", "profile"]] = "both"
    """Which figure to measure."""
    workdir: Path = Path("outputs/bench_tracker_cost")
    """Where the synthetic scenes are rendered (reused when present)."""
    width: int = 320
    """Width of the synthetic scene."""
    height: int = 240
    """Height of the synthetic scene."""
    frames: int = 40
    """Frames of the scene timed in ``time``."""
    trajectory: Literal["orbit", "forward"] = "orbit"
    seed: int = 0
    segmenter: Literal["classical", "simulated"] = "classical"
    matcher: Literal["geometric", "sift"] = "geometric"
    repeats: int = 3
    """Rounds of (independent, mastsam) runs in ``time``."""
    parts: bool = True
    """The tracker with its naming of segments after 3D parts (``--no-parts``: without it; the step runs with depth
    maps only)."""
    rss_frames: tuple[int, ...] = (100, 300, 1000)
    """Frame counts of the ``memory`` runs (the scene has the largest count of frames)."""
    top: int = 25
    """Functions listed by ``profile``."""
    out: Optional[Path] = None
    """JSON file with every number."""
    data: Optional[Path] = None
    """A dataset timed by ``time`` and ``profile`` instead of the synthetic scene (``mastsam prepare``'s output, or any
    dataset ``mastsam track`` reads), at its full resolution, with the backends ``mastsam track`` picks for it (the
    ``auto`` matcher and 3D points: a COLMAP model's tracks where it has one) and ``--segmenter``."""
    segment_ahead: int = 1
    """Frames segmented ahead in a worker thread while the tracker works (``--tracker.segment-ahead``; 0: each frame
    in turn), in both modes."""
    segment_once: bool = False
    """``time``: segment every frame once per round and let both modes read that segmentation back. Each round
    times the segmentation (the same work in both modes) and each mode's own work on top of it, and the ratio is
    (segmentation + consistent mode) / (segmentation + independent mode): on a machine whose speed drifts between
    runs, the three move together."""


def scene_folder(args: BenchCost, frames: int) -> Path:
    """The synthetic scene of ``frames`` frames, rendered on first use."""
    from mastsam_splat.synthetic import make_scene

    folder = args.workdir / f"{args.trajectory}_s{args.seed}_{frames}f_{args.width}x{args.height}"
    if not (folder / "transforms.json").exists():
        start = time.perf_counter()
        make_scene(folder, frames=frames, width=args.width, height=args.height, seed=args.seed,
                   trajectory=args.trajectory, progress=False)
        print(f"rendered {folder} in {time.perf_counter() - start:.1f} s", flush=True)
    return folder


class SegmentedOnce:
    """A segmenter whose ``prepare`` and ``auto`` read back results computed before (keyed by the image and state
    objects); prompts go to the real segmenter."""

    def __init__(self, inner: Any, states: dict[int, Any], autos: dict[int, Any]) -> None:
        self.inner, self.states, self.autos = inner, states, autos

    def prepare(self, image: np.ndarray) -> Any:
        return self.states[id(image)]

    def auto(self, state: Any) -> Any:
        return self.autos[id(state)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


Segmentation = tuple[dict[int, Any], dict[int, Any]]


def tracker_runner(
    args: BenchCost,
) -> tuple[list[Any], Callable[..., Any], Callable[[], tuple[Segmentation, float, float]]]:
    """The ``time`` scene's (or ``--data``'s) frames, pixels held in memory; a function running the tracker on them in
    a mode (reading a segmentation made before, when given one); and a function segmenting every frame once (the
    segmentation and its wall and CPU seconds per frame)."""
    from mastsam_splat.io import load_scene
    from mastsam_splat.matchers import make_matcher
    from mastsam_splat.segmenters import SEGMENTER_CONFIGS, make_segmenter
    from mastsam_splat.tracker import MastSAMTracker, TrackerConfig
    from mastsam_splat.tracker.job import TrackingJob, check_matcher_inputs, resolve_matcher, with_sfm_points

    folder = scene_folder(args, args.frames) if args.data is None else args.data
    frames = [replace(f) for f in load_scene(folder).frames]  # a copy of a frame holds its decoded arrays
    for frame in frames:
        frame.image  # (decoded once, before any timing)
    segmenter_config = SEGMENTER_CONFIGS[args.segmenter]()
    if args.segmenter == "simulated":
        segmenter_config = replace(segmenter_config, data=folder)
    if args.data is not None:
        frames = with_sfm_points(frames, folder, "auto", subset=False)
        matcher = resolve_matcher("auto", frames)
        check_matcher_inputs(matcher, frames, folder)

    def make(mode: str) -> Any:
        config = replace(TrackerConfig(), mode=mode, segment_ahead=args.segment_ahead)
        config.parts.enabled = args.parts
        if args.data is not None:
            return TrackingJob.from_options(args.segmenter, matcher, config, data=folder).make_tracker()
        return MastSAMTracker(
            config, make_segmenter(args.segmenter, segmenter_config), make_matcher(args.matcher), args.matcher
        )

    def track(mode: str, segmentation: Optional[Segmentation] = None) -> Any:
        tracker = make(mode)
        if segmentation is not None:
            tracker.segmenter = SegmentedOnce(tracker.segmenter, *segmentation)
        return tracker.run(frames)

    def segment() -> tuple[Segmentation, float, float]:
        segmenter = make("independent").segmenter
        states: dict[int, Any] = {}
        autos: dict[int, Any] = {}
        start, cpu = time.perf_counter(), time.process_time()
        for frame in frames:
            state = segmenter.prepare(frame.image)
            states[id(frame.image)] = state
            autos[id(state)] = segmenter.auto(state)
        return (states, autos), (time.perf_counter() - start) / len(frames), (time.process_time() - cpu) / len(frames)

    return frames, track, segment


def bench_time(args: BenchCost) -> dict[str, Any]:
    """Median seconds per frame of both modes, alternated in this process."""
    frames, track, segment = tracker_runner(args)
    segmentation: Optional[Segmentation] = None

    def run(mode: str) -> tuple[float, float, dict[str, float]]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = track(mode, segmentation)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall / len(frames), cpu / len(frames), result.timing()

    if args.segment_once:
        segmentation, _, _ = segment()
    run("independent")  # warm-up: imports and caches are not charged to either mode
    seconds: dict[str, list[float]] = {"independent": [], "mastsam": []}
    cpu: dict[str, list[float]] = {"independent": [], "mastsam": []}
    stages: dict[str, list[dict[str, float]]] = {"independent": [], "mastsam": []}
    segmenting: list[float] = []
    segmenting_cpu: list[float] = []
    for r in range(args.repeats):
        if args.segment_once:
            segmentation, seconds_per_frame, cpu_per_frame = segment()
            segmenting.append(seconds_per_frame)
            segmenting_cpu.append(cpu_per_frame)
        for mode in ("independent", "mastsam"):
            per_frame, cpu_per_frame, timing = run(mode)
            seconds[mode].append(per_frame)
            cpu[mode].append(cpu_per_frame)
            stages[mode].append(timing)
        print(f"round {r}: independent {seconds['independent'][-1]:.4f} s/frame (cpu {cpu['independent'][-1]:.4f}), "
              f"mastsam {seconds['mastsam'][-1]:.4f} s/frame (cpu {cpu['mastsam'][-1]:.4f})"
              + (f", segmentation {segmenting[-1]:.4f} s/frame" if segmenting else ""), flush=True)
    if segmenting:  # each mode's time with the segmentation it read back, measured in the same round
        for mode in seconds:
            seconds[mode] = [s + g for s, g in zip(seconds[mode], segmenting)]
            cpu[mode] = [s + g for s, g in zip(cpu[mode], segmenting_cpu)]
    ratios = [m / i for m, i in zip(seconds["mastsam"], seconds["independent"])]
    cpu_ratios = [m / i for m, i in zip(cpu["mastsam"], cpu["independent"])]
    summary = {
        "independent_s_per_frame": float(np.median(seconds["independent"])),
        "mastsam_s_per_frame": float(np.median(seconds["mastsam"])),
        "ratio_median": float(np.median(ratios)),
        "ratios": ratios,
        "independent_cpu_s_per_frame": float(np.median(cpu["independent"])),
        "mastsam_cpu_s_per_frame": float(np.median(cpu["mastsam"])),
        "cpu_ratio_median": float(np.median(cpu_ratios)),
        "cpu_ratios": cpu_ratios,
        "mastsam_stages_s_per_frame": {
            k: float(np.median([s[k] for s in stages["mastsam"]])) / len(frames)
            for k in stages["mastsam"][0]
            if k.endswith("_s") and k not in ("total_s", "median_frame_s") and not k.startswith("finish_")
        },
        "mastsam_finish_s": {  # (the steps after the sequence, whole seconds)
            k[len("finish_"):-2]: float(np.median([s[k] for s in stages["mastsam"]]))
            for k in stages["mastsam"][0] if k.startswith("finish_")
        },
    }
    if segmenting:
        summary["segmentation_s_per_frame"] = float(np.median(segmenting))
    size = f"{frames[0].width}x{frames[0].height}" if frames else "-"
    matcher = args.matcher if args.data is None else "auto"
    print(f"{len(frames)} frames {size}, {args.segmenter} + {matcher}"
          + (" (segmented once per round)" if segmenting else "") + ": "
          f"independent {summary['independent_s_per_frame']:.4f} s/frame, "
          f"mastsam {summary['mastsam_s_per_frame']:.4f} s/frame, ratio {summary['ratio_median']:.3f}; CPU: "
          f"independent {summary['independent_cpu_s_per_frame']:.4f} s/frame, "
          f"mastsam {summary['mastsam_cpu_s_per_frame']:.4f} s/frame, ratio {summary['cpu_ratio_median']:.3f} "
          f"(medians of {args.repeats})")
    print("mastsam stages (s/frame): " + ", ".join(
        f"{k[:-2]} {v:.4f}" for k, v in summary["mastsam_stages_s_per_frame"].items()))
    print("mastsam after the sequence (s): " + ", ".join(
        f"{k} {v:.3f}" for k, v in summary["mastsam_finish_s"].items()))
    return summary


def bench_profile(args: BenchCost) -> dict[str, Any]:
    """cProfile of one ``mastsam`` run (after a warm-up run): the top functions by own and cumulative time."""
    frames, track, _ = tracker_runner(args)
    track("mastsam")
    profile = cProfile.Profile()
    wall = time.perf_counter()
    profile.enable()
    track("mastsam")
    profile.disable()
    wall = time.perf_counter() - wall
    summary: dict[str, Any] = {"wall_s": wall, "frames": len(frames)}
    for key in ("tottime", "cumtime"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(key).print_stats(args.top)
        print(text.getvalue())
        stats = pstats.Stats(profile).sort_stats(key)
        summary[key] = [
            {"function": f"{Path(file).name}:{line}({name})", "calls": calls, "tottime": tt, "cumtime": ct}
            for (file, line, name), (_, calls, tt, ct, _) in list(stats.stats.items())  # type: ignore[attr-defined]
        ]
        summary[key] = sorted(summary[key], key=lambda row: -row[key])[: args.top]
    size = f"{frames[0].width}x{frames[0].height}" if frames else "-"
    print(f"{len(frames)} frames {size}, {args.segmenter}: {wall:.2f} s under cProfile")
    return summary


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall seconds of ``command`` run as one child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr is not None else ""
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-2000:]}")
    return usage.ru_maxrss / 1024.0, time.perf_counter() - start  # ru_maxrss is KiB on Linux


def bench_memory(args: BenchCost) -> dict[str, Any]:
    """Peak RSS of ``mastsam track`` on the first N frames, each N in a fresh process."""
    counts = sorted(args.rss_frames)
    folder = scene_folder(args, counts[-1])
    rows = []
    for n in counts:
        out = Path(tempfile.mkdtemp(prefix="track_", dir=args.workdir))
        try:
            command = [
                sys.executable, "-m", "mastsam_splat.cli", "track", "--data", str(folder), "--output-dir", str(out),
                "--segmenter", args.segmenter, "--matcher", args.matcher, "--max-frames", str(n), "--quiet",
                "--overwrite",
                "--tracker.segment-ahead", str(args.segment_ahead),
            ] + ([] if args.parts else ["--tracker.parts.no-enabled"])
            rss, wall = peak_rss_mib(command)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        rows.append({"frames": n, "peak_rss_mib": rss, "wall_s": wall})
        print(f"{n:5d} frames: peak RSS {rss:8.1f} MiB, {wall:7.1f} s", flush=True)
    summary: dict[str, Any] = {"runs": rows}
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = (last["peak_rss_mib"] - first["peak_rss_mib"]) / (last["frames"] - first["frames"]) * 100
        summary["growth_mib_per_100_frames"] = growth
        print(f"growth {growth:.2f} MiB per 100 frames ({first['frames']} -> {last['frames']} frames)")
        # Per interval too: a long run's growth is the later intervals' (the first runs also hold fixed costs, such
        # as the raw point cloud before it is summarised).
        steps = []
        for a, b in zip(rows[:-1], rows[1:]):
            steps.append((b["peak_rss_mib"] - a["peak_rss_mib"]) / (b["frames"] - a["frames"]) * 100)
            print(f"  {a['frames']} -> {b['frames']} frames: {steps[-1]:.2f} MiB per 100 frames")
        summary["growth_per_interval_mib_per_100_frames"] = steps
    return summary


def main(args: BenchCost) -> int:
    args.workdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"args": {k: str(v) for k, v in asdict(args).items()}}
    if args.figure in ("time", "both"):
        result["time"] = bench_time(args)
    if args.figure in ("memory", "both"):
        result["memory"] = bench_memory(args)
    if args.figure == "profile":
        result["profile"] = bench_profile(args)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(tyro.cli(BenchCost)))
