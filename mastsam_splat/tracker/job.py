"""One tracker run into an output folder: backends, cache decision, tracking, writing.

``mastsam track``, ``mastsam lift`` and the Nerfstudio datamanager all label frames the same way:
build the segmenter and matcher, reuse the folder's results when the frames and every setting are
unchanged, otherwise track and write ``masks/``, ``tracks.json``, ``points.ply`` and ``overlays/``
under a cache manifest (so an interrupted run is cleaned up, never reused).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

from mastsam_splat import __version__
from mastsam_splat.matchers import MATCHER_CONFIGS, make_matcher
from mastsam_splat.segmenters import SEGMENTER_CONFIGS, make_segmenter
from mastsam_splat.tracker.cache import ResultCache, config_fingerprint, input_fingerprint
from mastsam_splat.tracker.outputs import MASKS_DIR, OUTPUT_NAMES, OVERLAYS_DIR, write_outputs
from mastsam_splat.tracker.tracker import FrameReport, MastSAMTracker, TrackerConfig, TrackResult
from mastsam_splat.types import Frame


@dataclass
class TrackingJob:
    """Which backends the tracker runs with, their settings, and the tracker's own settings."""

    segmenter: str = "classical"
    segmenter_config: Any = None
    """The segmenter backend's config (``None``: its defaults)."""
    matcher: str = "sift"
    matcher_config: Any = None
    """The matcher backend's config (``None``: its defaults)."""
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    selection: dict[str, Any] = field(default_factory=dict)
    """How the frames were chosen (e.g. stride, max_frames); part of the results' fingerprint."""

    def __post_init__(self) -> None:
        if self.segmenter_config is None:
            self.segmenter_config = SEGMENTER_CONFIGS[self.segmenter]()
        if self.matcher_config is None:
            self.matcher_config = MATCHER_CONFIGS[self.matcher]()

    @classmethod
    def from_options(
        cls,
        segmenter: str,
        matcher: str,
        tracker: TrackerConfig,
        data: Optional[Path] = None,
        sam_checkpoint: Optional[Path] = None,
        sam_model_type: str = "vit_h",
        mast3r_checkpoint: Optional[Path] = None,
        selection: Optional[dict[str, Any]] = None,
        sam_options: Optional[dict[str, Any]] = None,
        mast3r_options: Optional[dict[str, Any]] = None,
    ) -> "TrackingJob":
        """A job from command-line style options (checkpoint paths, the dataset for ``simulated``).

        ``sam_options`` / ``mast3r_options`` are more fields of that backend's config, used when the
        backend is selected (e.g. ``points_per_side``, ``repo``, ``image_size``).
        """
        segmenter_config = SEGMENTER_CONFIGS[segmenter]()
        if segmenter == "sam":
            segmenter_config = replace(
                segmenter_config, checkpoint=sam_checkpoint, model_type=sam_model_type, **(sam_options or {})
            )
        elif segmenter == "simulated":
            segmenter_config = replace(segmenter_config, data=data)
        matcher_config = MATCHER_CONFIGS[matcher]()
        if matcher == "mast3r":
            matcher_config = replace(matcher_config, checkpoint=mast3r_checkpoint, **(mast3r_options or {}))
        return cls(segmenter, segmenter_config, matcher, matcher_config, tracker, dict(selection or {}))

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the results (stored in ``tracks.json`` and hashed by the cache)."""
        return {
            "version": __version__,
            "tracker": asdict(self.tracker),
            "segmenter": {"name": self.segmenter, "config": asdict(self.segmenter_config)},
            "matcher": {"name": self.matcher, "config": asdict(self.matcher_config)},
            **self.selection,
        }

    def make_tracker(self) -> MastSAMTracker:
        """The tracker with both backends built."""
        segmenter = make_segmenter(self.segmenter, self.segmenter_config)
        matcher = make_matcher(self.matcher, self.matcher_config)
        return MastSAMTracker(self.tracker, segmenter, matcher, matcher_name=self.matcher)


def backend_options(options: Any) -> dict[str, dict[str, Any]]:
    """``sam_options`` and ``mast3r_options`` for :meth:`TrackingJob.from_options` from an options object.

    ``options`` (``mastsam track``'s command, the plugin's tracking config) has the fields
    ``sam_points_per_side``, ``sam_pred_iou_thresh``, ``sam_stability_score_thresh``,
    ``sam_crop_n_layers``, ``mast3r_repo``, ``mast3r_image_size`` and ``mast3r_min_conf``.
    """
    sam = ("points_per_side", "pred_iou_thresh", "stability_score_thresh", "crop_n_layers")
    mast3r = {"repo": "mast3r_repo", "image_size": "mast3r_image_size", "min_pointmap_conf": "mast3r_min_conf"}
    return {
        "sam_options": {name: getattr(options, f"sam_{name}") for name in sam},
        "mast3r_options": {name: getattr(options, option) for name, option in mast3r.items()},
    }


@dataclass
class TrackingRun:
    """What :func:`track_to_folder` did."""

    status: Literal["reused", "computed"]
    reason: str
    """Why the results were reused or computed (from the cache)."""
    output_dir: Path
    num_frames: int
    result: Optional[TrackResult] = None
    """The tracker's result when computed."""
    write_seconds: float = 0.0


def planned_files(frames: Sequence[Frame]) -> list[str]:
    """Every file a run writes, relative to its output folder."""
    return (
        [f"{MASKS_DIR}/{f.name}.png" for f in frames]
        + [f"{OVERLAYS_DIR}/{f.name}.jpg" for f in frames]
        + [n for n in OUTPUT_NAMES if n not in (MASKS_DIR, OVERLAYS_DIR)]
    )


def track_to_folder(
    frames: Sequence[Frame],
    job: TrackingJob,
    output_dir: Path,
    source: str,
    overwrite: bool = False,
    recompute: bool = False,
    timing: Optional[dict[str, float]] = None,
    on_start: Optional[Callable[[str], None]] = None,
    on_frame: Optional[Callable[[FrameReport], None]] = None,
) -> TrackingRun:
    """Reuse the results in ``output_dir`` when frames and settings match, else track and write them.

    ``source`` names the input in the cache manifest; results of another source are replaced only
    with ``overwrite`` (otherwise :class:`InputError`). ``recompute`` forgets earlier results of this
    folder. ``on_start(reason)`` is called before tracking starts; ``on_frame`` after every frame.
    """
    output_dir = Path(output_dir)
    fingerprint = job.fingerprint()
    cache = ResultCache(
        output_dir=output_dir,
        source=source,
        input_hash=input_fingerprint(frames),
        config_hash=config_fingerprint(fingerprint),
    )
    if recompute:
        cache.manifest_path.unlink(missing_ok=True)  # its files then count as ours to replace
    decision = cache.decide(OUTPUT_NAMES, overwrite=overwrite or recompute)
    reason = "recompute requested" if recompute else decision.reason
    if decision.action == "reuse":
        return TrackingRun("reused", reason, output_dir, len(frames))

    tracker = job.make_tracker()
    if on_start is not None:
        on_start(reason)
    result = tracker.run(list(frames), on_frame=on_frame)
    cache.begin(planned_files(frames))
    start = time.perf_counter()
    written = write_outputs(output_dir, list(frames), result, fingerprint, dict(timing or {}))
    write_seconds = time.perf_counter() - start
    cache.finish(written, extra={"reason": reason})
    return TrackingRun("computed", reason, output_dir, len(frames), result, write_seconds)
