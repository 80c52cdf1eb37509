"""``mastsam eval``: score predicted label images against a dataset's ground truth and geometry."""

from __future__ import annotations

import json as jsonlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.metrics.evaluate import EvalResult, MetricsConfig, evaluate, geometric_correspondences, view_pairs
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
    from mastsam_splat.io import read_label_image

    missing = [f.name for f in scene.frames if not (folder / f"{f.name}.png").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more frames)" if len(missing) > 1 else ""
        raise InputError(f"no predicted label image for frame {missing[0]!r}{more}", folder / f"{missing[0]}.png")
    return [read_label_image(folder / f"{f.name}.png", (f.height, f.width)) for f in scene.frames]


def read_ground_truth(scene: Scene, level: str) -> Optional[list[np.ndarray]]:
    """Ground-truth label maps of the level, or ``None`` when the dataset has no such folder."""
    from mastsam_splat.io import read_label_dir

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
    correspondences, mIoU and id switches against ground truth, and granularity."""

    pred: Path
    """Predicted label images: a folder of <frame_stem>.png (uint16), or one holding masks/ (a tracker output)."""
    data: Path
    """The dataset the predictions were made on (Nerfstudio dataset folder, image folder or video)."""
    level: Literal["object", "part"] = "object"
    """Ground truth to score against: instances/ (object) or parts/ (part)."""
    json: Optional[Path] = None
    """Also write the metrics to this JSON file."""
    stride: int = 1
    """Keep every n-th frame of the dataset (as the predictions were made)."""
    max_frames: Optional[int] = None
    """Keep at most this many frames (after striding)."""
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    """View pairs and id-switch thresholds."""

    def run(self) -> EvalResult:
        """Load inputs, compute every metric the dataset allows, and return them."""
        from mastsam_splat.io import load_scene

        if self.metrics.correspondence_step < 1:
            raise InputError(f"correspondence step must be >= 1, got {self.metrics.correspondence_step}")
        if not self.metrics.pair_gaps or min(self.metrics.pair_gaps) < 1:
            raise InputError(f"view pair gaps must be positive, got {self.metrics.pair_gaps}")

        scene = load_scene(self.data, stride=self.stride, max_frames=self.max_frames)
        preds = read_predictions(prediction_folder(Path(self.pred)), scene)
        gts = read_ground_truth(scene, self.level)
        correspondences = None
        if scene.has_cameras and scene.has_depth and len(scene) > 1:
            pairs = view_pairs(len(scene), self.metrics.pair_gaps)
            correspondences = geometric_correspondences(
                scene.frames, pairs, step=self.metrics.correspondence_step, depth_tolerance=self.metrics.depth_tolerance
            )
        if gts is None and correspondences is None:
            raise InputError(
                f"nothing to evaluate: no ground-truth '{GT_FOLDERS[self.level]}/' folder and no depth + cameras "
                "for correspondences",
                self.data,
            )
        return evaluate(preds, gts, correspondences, self.metrics)

    def main(self) -> None:
        result = self.run()
        print_table(result, title=f"{self.pred} vs {self.data} ({self.level} level)")
        if self.json is not None:
            from mastsam_splat.io import atomic_write_text

            payload = {
                **result.to_dict(),
                "level": self.level,
                "pred": str(self.pred),
                "data": str(self.data),
                "config": asdict(self.metrics),
            }
            atomic_write_text(self.json, jsonlib.dumps(payload, indent=2) + "\n")
