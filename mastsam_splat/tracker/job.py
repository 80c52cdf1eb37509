"""One tracker run into an output folder: backends, cache decision, tracking, writing.

``mastsam track``, ``mastsam lift`` and the Nerfstudio datamanager all label frames the same way:
build the segmenter and matcher, reuse the folder's results when the frames and every setting are
unchanged, otherwise track and write ``masks/``, ``tracks.json``, ``points.ply`` and ``overlays/``
with a cache manifest. The files are staged and appear together (see :func:`track_to_folder`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Optional, Sequence

from mastsam_splat import __version__
from mastsam_splat.matchers import MATCHER_CONFIGS, make_matcher
from mastsam_splat.segmenters import SEGMENTER_CONFIGS, make_segmenter
from mastsam_splat.errors import InputError
from mastsam_splat.geometry.sfm_points import attach_sfm_points
from mastsam_splat.io.atomic import atomic_dir
from mastsam_splat.io.colmap import find_sparse_model, read_sparse_model
from mastsam_splat.tracker.cache import (
    MANIFEST,
    ResultCache,
    code_fingerprint,
    config_fingerprint,
    file_fingerprint,
    input_fingerprint,
    paths_in,
)
from mastsam_splat.tracker.outputs import OUTPUT_NAMES, write_outputs
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.points3d import PointSource
from mastsam_splat.tracker.results import FrameReport, TrackResult
from mastsam_splat.tracker.tracker import MastSAMTracker
from mastsam_splat.types import Frame


@dataclass(kw_only=True)
class BackendOptions:
    """Checkpoints and settings of the weight-based backends (SAM, MASt3R), shared by ``mastsam track``
    and the Nerfstudio method's tracking config; :func:`backend_options` turns them into backend configs."""

    sam_checkpoint: Optional[Path] = None
    """Local segment-anything checkpoint (.pth) for the sam segmenter."""
    sam_model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_h"
    """Architecture of the SAM checkpoint."""
    sam_points_per_side: int = 32
    """SAM automatic masks: point grid of points_per_side**2 prompts per frame (16 decodes 4x fewer)."""
    sam_pred_iou_thresh: float = 0.88
    """SAM automatic masks: keep masks whose predicted IoU exceeds this."""
    sam_stability_score_thresh: float = 0.95
    """SAM automatic masks: keep masks whose stability score reaches this."""
    sam_crop_n_layers: int = 0
    """SAM automatic masks: extra layers of image crops (0: whole image only; each crop costs an encoder pass)."""
    mast3r_checkpoint: Optional[Path] = None
    """Local MASt3R checkpoint for the mast3r matcher."""
    mast3r_repo: Optional[Path] = None
    """Clone of github.com/naver/mast3r (with its dust3r submodule) when it is not on PYTHONPATH."""
    mast3r_image_size: int = 512
    """Long side of MASt3R's network input (512: the checkpoint's resolution; smaller is faster, coarser)."""
    mast3r_min_conf: float = 1.5
    """Keep MASt3R 3D points whose pointmap confidence (> 1) exceeds this in both frames (1.0: keep all)."""


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
        """Everything that changes the results (stored in ``tracks.json`` and hashed by the cache).

        Besides the settings: the content of the backends' model files (not just their paths)
        and the backends' code.
        """
        tracker = asdict(self.tracker)
        del tracker["segment_ahead"]  # (how the segmentation is scheduled: the masks are the same)
        return {
            "version": __version__,
            "tracker": tracker,
            "segmenter": _backend_fingerprint(self.segmenter, self.segmenter_config),
            "matcher": _backend_fingerprint(self.matcher, self.matcher_config),
            **self.selection,
        }

    def make_tracker(self) -> MastSAMTracker:
        """The tracker with both backends built."""
        segmenter = make_segmenter(self.segmenter, self.segmenter_config)
        matcher = make_matcher(self.matcher, self.matcher_config)
        return MastSAMTracker(self.tracker, segmenter, matcher, matcher_name=self.matcher)


def _backend_fingerprint(name: str, config: Any) -> dict[str, Any]:
    return {
        "name": name,
        "config": asdict(config),
        "files": {field: file_fingerprint(path) for field, path in paths_in(config).items()},
        "code": code_fingerprint(type(config).__module__),
    }


def backend_options(options: BackendOptions) -> dict[str, dict[str, Any]]:
    """``sam_options`` and ``mast3r_options`` for :meth:`TrackingJob.from_options` from the backend options."""
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
    warnings: list[str] = field(default_factory=list)
    """Frame pairs whose matching failed (see :class:`PairWarnings`)."""


def with_sfm_points(
    frames: Sequence[Frame], data_root: Path, points: PointSource, subset: bool = False, model: Optional[Path] = None
) -> list[Frame]:
    """``frames`` with the points of the dataset's COLMAP model they observed attached (``Frame.observed``, see
    geometry/sfm_points.py) when the tracker's 3D source ``points`` may use them (``auto``, ``sfm``).

    ``model``: the model folder (default: found under ``data_root``, see ``find_sparse_model``); ``subset``: the
    frames are a selection of the model's images. ``sfm`` without a model is refused.
    """
    if points not in ("auto", "sfm"):
        return list(frames)
    folder = find_sparse_model(data_root, model)
    if folder is None:
        if points == "sfm":
            raise InputError("the 3D source 'sfm' needs a COLMAP model (sparse/0 or colmap/sparse/0)", data_root)
        return list(frames)
    return attach_sfm_points(frames, read_sparse_model(folder), subset=subset)


def resolve_matcher(matcher: str, frames: Sequence[Frame]) -> str:
    """The matcher ``auto`` stands for with these frames: ``geometric`` when every frame has a depth map and a
    camera (exact), ``sfm`` when every frame carries the points of the dataset's COLMAP model (verified tracks,
    no matching), else ``sift``. Any other name is returned as it is."""
    if matcher != "auto":
        return matcher
    if frames and all(f.depth is not None and f.camera is not None for f in frames):
        return "geometric"
    if frames and all(f.observed is not None for f in frames):
        return "sfm"
    return "sift"


def check_matcher_inputs(matcher: str, frames: Sequence[Frame], where: Path) -> None:
    """Refuse a matcher the frames cannot serve, before any work starts: ``geometric`` needs a depth map and a
    camera on every frame, ``sfm`` the points of a COLMAP model on every frame (see :func:`with_sfm_points`)."""
    if matcher == "geometric" and not all(f.depth is not None and f.camera is not None for f in frames):
        raise InputError("the geometric matcher needs depth maps and cameras for every frame; use sift", where)
    if matcher == "sfm":
        missing = [f.name for f in frames if f.observed is None]
        if missing:
            raise InputError(
                f"the sfm matcher reads correspondences from a COLMAP model's tracks (sparse/0 or colmap/sparse/0, "
                f"with cameras for the frames and the tracker's 3D source auto or sfm), but {len(missing)} of "
                f"{len(frames)} frames have none (first: {missing[0]}); use sift",
                where,
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
    on_warning: Optional[Callable[[str], None]] = None,
) -> TrackingRun:
    """Reuse the results in ``output_dir`` when frames and settings match, else track and write them.

    ``source`` names the input in the cache manifest; results of another source are replaced only
    with ``overwrite`` (otherwise :class:`InputError`). ``recompute`` forgets earlier results of this
    folder. ``on_start(reason)`` is called before tracking starts; ``on_frame`` after every frame;
    ``on_warning`` with each warning (also kept in ``report.json`` and the returned run).
    The outputs are written into a staging folder and moved into place together, the manifest
    last, so an interrupted run leaves the folder as it was before the write.
    """
    output_dir = Path(output_dir)
    fingerprint = job.fingerprint()
    cache = ResultCache(
        output_dir=output_dir,
        source=source,
        input_hash=input_fingerprint(frames),
        config_hash=config_fingerprint(fingerprint),
    )
    decision = cache.decide(OUTPUT_NAMES, overwrite=overwrite or recompute, recompute=recompute)
    reason = decision.reason
    if decision.action == "reuse":
        return TrackingRun("reused", reason, output_dir, len(frames))

    tracker = job.make_tracker()
    if on_start is not None:
        on_start(reason)
    tracking = job.tracker.mode == "mastsam"
    pairs = PairWarnings(on_warning, always_matched=tracking, carries_ids=tracking)

    def frame_done(report: FrameReport) -> None:
        pairs.check(report)
        if on_frame is not None:
            on_frame(report)

    result = tracker.run(list(frames), on_frame=frame_done)
    start = time.perf_counter()
    with atomic_dir(output_dir, owned=decision.replace, last=[MANIFEST]) as staging:
        written = write_outputs(staging, list(frames), result, fingerprint, dict(timing or {}), pairs.warnings)
        cache.finish(written, extra={"reason": reason}, folder=staging)
    write_seconds = time.perf_counter() - start
    return TrackingRun("computed", reason, output_dir, len(frames), result, write_seconds, pairs.warnings)


class PairWarnings:
    """Warnings for consecutive frames whose matching failed: no correspondence, or no id carried over.

    Without this, such a pair silently gives every region of the later frame a new id.
    """

    def __init__(
        self, on_warning: Optional[Callable[[str], None]] = None, always_matched: bool = False, carries_ids: bool = True
    ) -> None:
        self.on_warning = on_warning
        self.always_matched = always_matched
        """Every frame after the first is matched to its predecessor (``mode=mastsam``)."""
        self.carries_ids = carries_ids
        """Ids are carried from frame to frame; ``False`` (``mode=independent``, whose frames may still be matched
        for 3D points): every region gets a new id by design, so no pair is reported."""
        self.warnings: list[str] = []
        self.previous: Optional[FrameReport] = None

    def check(self, report: FrameReport) -> None:
        previous, self.previous = self.previous, report
        matched = self.always_matched or "match" in report.seconds
        if previous is None or not self.carries_ids or not matched or report.tracked > 0:
            return
        if report.num_matches > 0 and previous.num_ids == 0:
            return
        message = (
            f"matching failed between frames {previous.name} and {report.name} ({report.num_matches} matches): "
            f"no id carried over, the {report.new} regions of {report.name} got new ids"
        )
        self.warnings.append(message)
        if self.on_warning is not None:
            self.on_warning(message)
