"""``mastsam eval``: score predicted label images against a dataset's ground truth and geometry."""

from __future__ import annotations

import json as jsonlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from rich.markup import escape

from mastsam_splat.errors import InputError
from mastsam_splat.io import atomic_write_text, load_scene, read_label_dir, read_label_image, read_tracks
from mastsam_splat.io.labels import map_ids
from mastsam_splat.io.tracks import object_map
from mastsam_splat.io.colmap import find_sparse_model, read_sparse_model, tracks_in_frames
from mastsam_splat.io.destinations import check_output_file
from mastsam_splat.metrics.evaluate import EvalResult, MetricsConfig, evaluate, geometric_correspondences, view_pairs
from mastsam_splat.metrics.sfm_tracks import SfmConsistency, SfmTracksConfig, sfm_consistency
from mastsam_splat.types import Scene

GT_FOLDERS = {"object": "instances", "part": "parts"}
"""Ground-truth label folder of each evaluation level, inside the dataset."""


def prediction_folder(pred: Path) -> Path:
    """The folder holding the predicted ``<frame_stem>.png`` files: ``pred/masks`` when present, else ``pred``."""
    if not pred.is_dir():
        raise InputError("prediction folder not found", pred)
    masks = pred / "masks"
    return masks if masks.is_dir() else pred


def read_predictions(folder: Path, scene: Scene) -> list[np.ndarray]:
    """One predicted label map per frame of ``scene``, checked against the frame's size."""

    missing = [f.name for f in scene.frames if not (folder / f"{f.name}.png").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more frames)" if len(missing) > 1 else ""
        raise InputError(f"no predicted label image for frame {missing[0]!r}{more}", folder / f"{missing[0]}.png")
    return [read_label_image(folder / f"{f.name}.png", (f.height, f.width)) for f in scene.frames]


def tracker_object_map(pred: Path) -> dict[int, int]:
    """Id -> object id from the ``tracks.json`` of a tracker output (next to its masks/ folder); empty when there
    is none or it has no object level."""
    folder = prediction_folder(pred)
    tracks = (folder.parent if folder.name == "masks" else folder) / "tracks.json"
    return object_map(read_tracks(tracks)) if tracks.is_file() else {}


def read_ground_truth(scene: Scene, level: str) -> Optional[list[np.ndarray]]:
    """Ground-truth label maps of the level, or ``None`` when the dataset has no such folder."""

    folder = Path(scene.root) / GT_FOLDERS[level]
    if not folder.is_dir():
        return None
    return read_label_dir(folder, [f.name for f in scene.frames], [(f.height, f.width) for f in scene.frames])


ROWS = (
    ("coverage", "matched pixels labelled in both views"),
    ("idc", "labelled matches with the same id"),
    ("psc", "same, after best id matching per pair"),
    ("per_view_miou", "mIoU, ids matched per view"),
    ("consistent_miou", "mIoU, one id matching for all views"),
    ("id_switches", "best predicted id changes of an object"),
    ("segments_per_frame", "predicted segments per frame"),
    ("mean_segment_area", "mean predicted segment area (px)"),
    ("gt_segments_per_frame", "ground-truth segments per frame"),
    ("gt_mean_segment_area", "mean ground-truth segment area (px)"),
)


def format_value(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


SFM_ROWS = (
    ("sfm_coverage", "track pairs labelled in both views"),
    ("sfm_idc", "labelled track pairs with the same id"),
    ("sfm_psc", "same, after best id matching per pair"),
    ("sfm_correspondences", "track correspondences"),
)
"""Rows of the SfM-track score, one column per frame-gap bin."""


@dataclass
class EvalReport:
    """Everything ``mastsam eval`` measured: the dataset's metrics and, with a COLMAP model, the
    consistency over its tracks."""

    result: EvalResult
    sfm: Optional[SfmConsistency] = None
    sfm_model: Optional[Path] = None

    def to_dict(self) -> dict[str, object]:
        out = self.result.to_dict()
        if self.sfm is not None:
            out.update(self.sfm.to_dict())
            out["sfm_model"] = str(self.sfm_model)
        return out


def print_sfm_table(sfm: SfmConsistency, config: SfmTracksConfig, title: str) -> None:
    """Print the SfM-track score per frame-gap bin as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    values = sfm.to_dict()
    table = Table(title=title, caption=f"frame gap: near <= {config.near_gap}, far >= {config.far_gap}")
    table.add_column("metric", style="bold", no_wrap=True)
    for name in ("near", "far", "all"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("meaning")
    for key, meaning in SFM_ROWS:
        table.add_row(key, *(format_value(values[f"{key}_{name}"]) for name in ("near", "far", "all")), meaning)
    console = Console()
    console.print(table)
    console.print(
        f"{sfm.num_points} points with correspondences, {sfm.frames_in_model} of {sfm.num_frames} frames "
        f"in the model; segments per frame {format_value(values['segments_per_frame'])}, largest segment "
        f"{format_value(values['largest_segment_share'])} of the image"
    )


def print_table(result: EvalResult, title: str) -> None:
    """Print the metrics as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric", style="bold")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    values = result.to_dict()
    for key, meaning in ROWS:
        table.add_row(key, format_value(values[key]), meaning)
    console = Console()
    console.print(table)
    console.print(
        f"{result.num_frames} frames, {result.num_view_pairs} view pairs, "
        f"{result.num_correspondences} correspondences"
    )


@dataclass
class EvalCommand:
    """Score predicted label images: multi-view consistency (coverage, IDC, PSC) over depth-based
    correspondences and over the tracks of a COLMAP model (near / far / all frame gaps), mIoU and
    id switches against ground truth, and granularity."""

    pred: Path
    """Predicted label images: a folder of <frame_stem>.png (uint16), or one holding masks/ (a tracker output)."""
    data: Path
    """The dataset the predictions were made on (Nerfstudio dataset folder, image folder or video)."""
    level: Literal["object", "part"] = "object"
    """Ground truth to score against: instances/ (object) or parts/ (part)."""
    object_ids: bool = True
    """At object level, score a tracker output's object ids (each id replaced by its object, from its
    tracks.json) rather than its ids."""
    json: Optional[Path] = None
    """Also write the metrics to this JSON file."""
    stride: int = 1
    """Keep every n-th frame of the dataset (as the predictions were made)."""
    max_frames: Optional[int] = None
    """Keep at most this many frames (after striding)."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """View pairs and id-switch thresholds."""
    sparse: Optional[Path] = None
    """COLMAP model (folder with cameras, images, points3D as .bin or .txt) whose tracks give
    correspondences; by default sparse/0 or colmap/sparse/0 of the dataset when present."""
    sfm: SfmTracksConfig = field(default_factory=SfmTracksConfig)
    """Pair sampling and frame-gap bins of the SfM-track score."""

    def run(self) -> EvalResult:
        """Load inputs, compute every metric the dataset allows, and return the dataset's metrics."""
        return self.report().result

    def report(self) -> EvalReport:
        """Load inputs and compute every metric the dataset allows, the SfM-track score included."""

        if self.metrics.correspondence_step < 1:
            raise InputError(f"correspondence step must be >= 1, got {self.metrics.correspondence_step}")
        if not self.metrics.pair_gaps or min(self.metrics.pair_gaps) < 1:
            raise InputError(f"view pair gaps must be positive, got {self.metrics.pair_gaps}")
        if self.sfm.max_pairs_per_point < 1:
            raise InputError(f"max pairs per point must be >= 1, got {self.sfm.max_pairs_per_point}")
        if self.sfm.near_gap < 1 or self.sfm.far_gap < 1:
            raise InputError(f"frame gaps of the bins must be >= 1, got near {self.sfm.near_gap}, far {self.sfm.far_gap}")

        scene = load_scene(self.data, stride=self.stride, max_frames=self.max_frames)
        preds = read_predictions(prediction_folder(Path(self.pred)), scene)
        if self.level == "object" and self.object_ids:
            preds = map_ids(preds, tracker_object_map(Path(self.pred)))
        gts = read_ground_truth(scene, self.level)
        correspondences = None
        if scene.has_cameras and scene.has_depth and len(scene) > 1:
            pairs = view_pairs(len(scene), self.metrics.pair_gaps)
            correspondences = geometric_correspondences(
                scene.frames, pairs, step=self.metrics.correspondence_step, depth_tolerance=self.metrics.depth_tolerance
            )
        model = find_sparse_model(scene.root, self.sparse)
        if gts is None and correspondences is None and model is None:
            raise InputError(
                f"nothing to evaluate: no ground-truth '{GT_FOLDERS[self.level]}/' folder, no depth + cameras "
                "for correspondences and no COLMAP model (sparse/0, or --sparse)",
                self.data,
            )
        result = evaluate(preds, gts, correspondences, self.metrics)
        if model is None:
            return EvalReport(result=result)
        return EvalReport(result=result, sfm=self._sfm_score(model, scene, preds), sfm_model=model)

    def _sfm_score(self, model_folder: Path, scene: Scene, preds: list[np.ndarray]) -> SfmConsistency:
        """Consistency over the model's tracks, on the frames the evaluation kept."""

        model = read_sparse_model(model_folder)
        subset = self.stride > 1 or self.max_frames is not None
        tracks = tracks_in_frames(model, scene.frames, subset=subset)
        return sfm_consistency(preds, tracks, self.sfm)

    def main(self) -> None:
        if self.json is not None:
            check_output_file(self.json, "--json", example="metrics.json")
        report = self.report()
        print_table(report.result, title=escape(f"{self.pred} vs {self.data} ({self.level} level)"))
        if report.sfm is not None:
            print_sfm_table(report.sfm, self.sfm, title=escape(f"consistency over the tracks of {report.sfm_model}"))
        if self.json is not None:

            payload = {
                **report.to_dict(),
                "level": self.level,
                "pred": str(self.pred),
                "data": str(self.data),
                "config": {**asdict(self.metrics), "sfm": asdict(self.sfm)},
            }
            atomic_write_text(self.json, jsonlib.dumps(payload, indent=2) + "\n")
