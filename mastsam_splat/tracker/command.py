"""``mastsam track``: multi-view-consistent label images, tracks and a labelled point cloud."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional

from mastsam_splat import __version__
from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene
from mastsam_splat.matchers import MATCHER_CONFIGS, MatcherName, make_matcher
from mastsam_splat.segmenters import SEGMENTER_CONFIGS, SegmenterName, make_segmenter
from mastsam_splat.tracker.cache import ResultCache, config_fingerprint, input_fingerprint
from mastsam_splat.tracker.outputs import MASKS_DIR, OUTPUT_NAMES, OVERLAYS_DIR, write_outputs
from mastsam_splat.tracker.tracker import MastSAMTracker, TrackerConfig


@dataclass
class TrackCommand:
    """Track masks across the frames of a capture (MastSAM) and write label images, tracks.json, a
    labelled point cloud and overlays. Reruns with the same input and options reuse the results."""

    data: Path
    """Nerfstudio dataset folder (or its transforms.json), a folder of images, or a video file."""
    output_dir: Path
    """Folder for masks/, tracks.json, points.ply, overlays/ and contact_sheet.png."""
    segmenter: SegmenterName = "classical"
    """Segmenter backend: classical (no weights), sam (segment-anything; needs --sam-checkpoint) or simulated
    (SAM-like masks from a synthetic dataset's ground truth, for benchmarks)."""
    sam_checkpoint: Optional[Path] = None
    """Local segment-anything checkpoint (.pth) for --segmenter sam."""
    sam_model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_h"
    """Architecture of the SAM checkpoint."""
    matcher: MatcherName = "sift"
    """Correspondence backend: sift (OpenCV), geometric (needs depth + cameras) or mast3r (needs --mast3r-checkpoint)."""
    mast3r_checkpoint: Optional[Path] = None
    """Local MASt3R checkpoint for --matcher mast3r."""
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

    # -------------------------------------------------------------- backends
    def segmenter_config(self) -> Any:
        """The selected segmenter's config, with the checkpoint options applied."""
        config = SEGMENTER_CONFIGS[self.segmenter]()
        if self.segmenter == "sam":
            config = replace(config, checkpoint=self.sam_checkpoint, model_type=self.sam_model_type)
        elif self.segmenter == "simulated":
            config = replace(config, data=self.data)
        return config

    def matcher_config(self) -> Any:
        """The selected matcher's config, with the checkpoint options applied."""
        config = MATCHER_CONFIGS[self.matcher]()
        if self.matcher == "mast3r":
            config = replace(config, checkpoint=self.mast3r_checkpoint)
        return config

    def fingerprint_config(self) -> dict[str, Any]:
        """Everything that changes the results (used by the cache)."""
        return {
            "version": __version__,
            "tracker": asdict(self.tracker),
            "segmenter": {"name": self.segmenter, "config": asdict(self.segmenter_config())},
            "matcher": {"name": self.matcher, "config": asdict(self.matcher_config())},
            "stride": self.stride,
            "max_frames": self.max_frames,
        }


def run_track(cmd: TrackCommand) -> dict[str, Any]:
    """Load, track (or reuse cached results) and write; returns a summary of the run."""
    from rich.console import Console

    console = Console(stderr=True, quiet=cmd.quiet)
    t0 = time.perf_counter()
    scene = load_scene(cmd.data, stride=cmd.stride, max_frames=cmd.max_frames)
    frames = scene.frames
    if cmd.matcher == "geometric" and not (scene.has_depth and scene.has_cameras):
        raise InputError("--matcher geometric needs depth maps and cameras for every frame; use --matcher sift", cmd.data)
    load_s = time.perf_counter() - t0

    config = cmd.fingerprint_config()
    cache = ResultCache(
        output_dir=Path(cmd.output_dir),
        source=str(Path(cmd.data).resolve()),
        input_hash=input_fingerprint(frames),
        config_hash=config_fingerprint(config),
    )
    decision = cache.decide(OUTPUT_NAMES, overwrite=cmd.overwrite)
    if decision.action == "reuse":
        console.print(f"[green]reusing[/green] results in {cmd.output_dir} ({decision.reason})")
        return {"reused": True, "output_dir": str(cmd.output_dir), "frames": len(frames)}

    segmenter = make_segmenter(cmd.segmenter, cmd.segmenter_config())
    matcher = make_matcher(cmd.matcher, cmd.matcher_config())
    tracker = MastSAMTracker(cmd.tracker, segmenter, matcher, matcher_name=cmd.matcher)
    result = _track_with_progress(tracker, frames, console, cmd.tracker.mode)

    planned = (
        [f"{MASKS_DIR}/{f.name}.png" for f in frames]
        + [f"{OVERLAYS_DIR}/{f.name}.jpg" for f in frames]
        + [n for n in OUTPUT_NAMES if n not in (MASKS_DIR, OVERLAYS_DIR)]
    )
    cache.begin(planned)
    t1 = time.perf_counter()
    written = write_outputs(Path(cmd.output_dir), frames, result, config, {"load_s": load_s})
    write_s = time.perf_counter() - t1
    cache.finish(written, extra={"reason": decision.reason})

    timing = result.timing()
    num_ids = len({int(i) for labels in result.labels for i in set(labels.ravel().tolist())} - {0})
    console.print(
        f"[bold]{len(frames)}[/bold] frames, [bold]{num_ids}[/bold] ids, "
        f"{timing['median_frame_s']:.2f} s/frame (median), write {write_s:.1f} s; "
        f"point cloud: {len(result.cloud_xyz)} points from {result.points_source}"
    )
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"results in {cmd.output_dir}")
    return {"reused": False, "output_dir": str(cmd.output_dir), "frames": len(frames), "ids": num_ids, "timing": timing}


def _track_with_progress(tracker: Any, frames: list, console: Any, mode: str) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
    with Progress(*columns, console=console, transient=False, disable=console.quiet) as progress:
        task = progress.add_task("track", total=len(frames), info="")

        def on_frame(report: Any) -> None:
            progress.update(
                task,
                advance=1,
                info=f"{report.total_seconds:.2f} s/frame, {report.num_ids} ids, {report.new} new",
            )

        return tracker.run(frames, on_frame=on_frame)
