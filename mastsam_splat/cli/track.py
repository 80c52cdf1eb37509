"""``mastsam track``: multi-view-consistent label images, tracks and a labelled point cloud."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mastsam_splat.io import load_scene
from mastsam_splat.io.destinations import check_writable_dir
from mastsam_splat.io.scene import input_image_folders
from mastsam_splat.matchers import MatcherName
from mastsam_splat.segmenters import SegmenterName
from mastsam_splat.threads import cpu_threads
from mastsam_splat.tracker.job import (
    BackendOptions,
    TrackingJob,
    backend_options,
    check_matcher_inputs,
    resolve_matcher,
    track_to_folder,
    with_sfm_points,
)
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.results import FrameReport
from mastsam_splat.types import Frame


@dataclass
class TrackCommand(BackendOptions):
    """Track masks across the frames of a capture (MastSAM) and write label images, tracks.json, a
    labelled point cloud and overlays. Reruns with the same input and options reuse the results."""

    data: Path
    """Nerfstudio dataset folder (or its transforms.json), a folder of images, or a video file."""
    output_dir: Path
    """Folder for masks/, tracks.json, points.ply, overlays/ and contact_sheet.png."""
    segmenter: SegmenterName = "classical"
    """Segmenter backend: classical (no weights), sam (segment-anything; needs --sam-checkpoint) or simulated
    (SAM-like masks from a synthetic dataset's ground truth, for benchmarks)."""
    matcher: Union[Literal["auto"], MatcherName] = "auto"
    """Correspondence backend: sift (OpenCV), geometric (needs depth + cameras), mast3r (needs --mast3r-checkpoint),
    sfm (the tracks of the dataset's COLMAP model, sparse/0: no matching at all) or auto (geometric with depth maps
    and cameras, sfm with a COLMAP model, else sift)."""
    stride: int = 1
    """Use every n-th frame."""
    max_frames: Optional[int] = None
    """Use at most this many frames (after --stride)."""
    overwrite: bool = False
    """Replace results of another input (or of unknown origin) found in --output-dir."""
    quiet: bool = False
    """No progress bar or summary."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    """Tracker parameters, one group per step (--tracker.mode mastsam|independent selects the baseline)."""

    def main(self) -> None:
        run_track(self)

    def job(self, frames: Sequence[Frame] = ()) -> TrackingJob:
        """The tracker run these options ask for on ``frames`` (which ``auto`` picks its matcher by)."""
        return TrackingJob.from_options(
            self.segmenter,
            resolve_matcher(self.matcher, frames),
            self.tracker,
            data=self.data,
            sam_checkpoint=self.sam_checkpoint,
            sam_model_type=self.sam_model_type,
            mast3r_checkpoint=self.mast3r_checkpoint,
            selection={"stride": self.stride, "max_frames": self.max_frames},
            **backend_options(self),
        )


def run_track(cmd: TrackCommand) -> dict[str, Any]:
    """Load, track (or reuse cached results) and write; returns a summary of the run."""
    console = Console(stderr=True, quiet=cmd.quiet)
    t0 = time.perf_counter()
    inputs = input_image_folders(cmd.data) if Path(cmd.data).exists() else []
    check_writable_dir(cmd.output_dir, "--output-dir", inputs=inputs)
    scene = load_scene(cmd.data, stride=cmd.stride, max_frames=cmd.max_frames)
    subset = cmd.stride > 1 or cmd.max_frames is not None
    frames = with_sfm_points(scene.frames, scene.root, cmd.tracker.points, subset=subset)
    job = cmd.job(frames)
    check_matcher_inputs(job.matcher, frames, Path(cmd.data))
    load_s = time.perf_counter() - t0

    progress = _FrameProgress(console, cmd.tracker.mode, len(frames))
    try:
        with cpu_threads():
            run = track_to_folder(
                frames,
                job,
                Path(cmd.output_dir),
                source=str(Path(cmd.data).resolve()),
                overwrite=cmd.overwrite,
                timing={"load_s": load_s},
                on_start=progress.start,
                on_frame=progress.on_frame,
                on_warning=lambda message: console.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False),
            )
    finally:
        progress.stop()
    if run.status == "reused":
        console.print(f"[green]reusing[/green] results in {escape(str(cmd.output_dir))} ({escape(run.reason)})")
        return {"reused": True, "output_dir": str(cmd.output_dir), "frames": len(frames)}

    result = run.result
    timing = result.timing()
    num_ids = len(set().union(*(np.unique(labels).tolist() for labels in result.labels)) - {0})
    console.print(
        f"[bold]{len(frames)}[/bold] frames ({job.segmenter} + {job.matcher}), [bold]{num_ids}[/bold] ids, "
        f"{timing['median_frame_s']:.2f} s/frame (median), write {run.write_seconds:.1f} s; "
        f"point cloud: {len(result.cloud_xyz)} points from {result.points_source}"
    )
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    console.print(f"results in {escape(str(cmd.output_dir))}")
    return {
        "reused": False,
        "output_dir": str(cmd.output_dir),
        "frames": len(frames),
        "matcher": job.matcher,
        "ids": num_ids,
        "timing": timing,
    }


class _FrameProgress:
    """A progress bar over the frames, shown once tracking starts (not when results are reused)."""

    def __init__(self, console: Console, mode: str, total: int) -> None:
        columns = (
            TextColumn(f"[bold]{mode}[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("frames"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        self.progress = Progress(*columns, console=console, transient=False, disable=console.quiet)
        self.total = total
        self.task: Optional[int] = None

    def start(self, reason: str) -> None:
        self.progress.start()
        self.task = self.progress.add_task("track", total=self.total, info="")

    def on_frame(self, report: FrameReport) -> None:
        info = f"{report.total_seconds:.2f} s/frame, {report.num_ids} ids, {report.new} new"
        self.progress.update(self.task, advance=1, info=info)

    def stop(self) -> None:
        self.progress.stop()
