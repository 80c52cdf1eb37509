"""Pipeline: Nerfstudio's vanilla pipeline plus the object viewer, instance metrics and a final report.

- The model gets an :class:`~nerfstudio_plugin.viewer.ObjectViewer` (click-to-select controls).
- ``get_average_image_metrics`` adds the *consistent* instance mIoU: one matching of rendered
  ids to ground-truth ids shared by all eval views (see ``mastsam_splat.metrics.ground_truth``),
  which the per-image metrics cannot give.
- After the last step the pipeline evaluates every eval image (whatever ``--vis`` is) and writes
  ``eval_metrics.json`` into the run folder: image and instance metrics, the tracker's and the
  training's wall time, iterations per second.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Type

import numpy as np

from nerfstudio.data.datamanagers.base_datamanager import DataManagerConfig
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import ModelConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.table import Table

from mastsam_splat.io.atomic import atomic_write_text
from mastsam_splat.metrics.ground_truth import consistent_miou, overlap_table, per_view_miou
from nerfstudio_plugin.datamanager import MastsamDatamanagerConfig
from nerfstudio_plugin.model import MastsamSplatModelConfig
from nerfstudio_plugin.viewer import ObjectViewer

EVAL_REPORT_NAME = "eval_metrics.json"


@dataclass
class MastsamPipelineConfig(VanillaPipelineConfig):
    """Vanilla pipeline with the MastSAM datamanager and the instance-feature Splatfacto model."""

    _target: Type = field(default_factory=lambda: MastsamPipeline)
    datamanager: DataManagerConfig = field(default_factory=MastsamDatamanagerConfig)
    model: ModelConfig = field(default_factory=MastsamSplatModelConfig)
    final_eval: bool = True
    """After the last step, evaluate all eval images and write eval_metrics.json into the run folder."""


class MastsamPipeline(VanillaPipeline):
    """See module docstring."""

    config: MastsamPipelineConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ObjectViewer.attach(self.model)
        self._train_started: Optional[float] = None
        self._start_step: Optional[int] = None
        self._iteration_started = 0.0
        self._iteration_seconds: List[float] = []

    def get_average_image_metrics(
        self,
        data_loader,
        image_prefix: str,
        step: Optional[int] = None,
        output_path: Optional[Path] = None,
        get_std: bool = False,
    ):
        self.model.start_eval_recording()
        try:
            metrics = super().get_average_image_metrics(data_loader, image_prefix, step, output_path, get_std)
        finally:
            record = self.model.stop_eval_recording()
        if record:
            table = overlap_table([pred for pred, _ in record], [gt for _, gt in record])
            metrics["instance_miou_consistent"] = _finite(consistent_miou(table).miou)
            metrics["instance_miou_per_view"] = _finite(per_view_miou(table).miou)
        return metrics

    # ------------------------------------------------------------------ final report

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        callbacks = super().get_training_callbacks(training_callback_attributes)
        trainer = training_callback_attributes.trainer
        callbacks.append(TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self._before_iteration))
        callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], self._after_iteration))
        if self.config.final_eval and trainer is not None:
            callbacks.append(
                TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN], self._final_report, args=[trainer])
            )
        return callbacks

    def _before_iteration(self, step: int) -> None:
        self._iteration_started = time.perf_counter()
        if self._train_started is None:
            self._train_started, self._start_step = self._iteration_started, step

    def _after_iteration(self, step: int) -> None:
        self._iteration_seconds.append(time.perf_counter() - self._iteration_started)

    def training_timing(self, last_step: int) -> Dict[str, float]:
        """Wall time of the training loop so far and its iteration rate."""
        if self._train_started is None or self._start_step is None:
            return {"training_s": 0.0, "iterations": 0, "iterations_per_s": 0.0}
        seconds = time.perf_counter() - self._train_started
        iterations = last_step - self._start_step + 1
        median = float(np.median(self._iteration_seconds)) if self._iteration_seconds else float("nan")
        return {
            "training_s": round(seconds, 3),
            "iterations": int(iterations),
            "iterations_per_s": round(iterations / max(seconds, 1e-9), 3),
            "median_iteration_s": round(median, 4),
        }

    def _final_report(self, trainer, step: int) -> None:
        """Evaluate every eval image and write ``eval_metrics.json`` next to config.yml."""
        timing = self.training_timing(step)
        report: Dict[str, Any] = {"step": int(step), "timing": {**timing}}
        tracker = getattr(self.datamanager, "tracker_report", None)
        if tracker:
            report["tracker"] = tracker
            report["timing"]["tracker_s"] = tracker.get("seconds", 0.0)
        if len(self.datamanager.eval_dataset) > 0:
            CONSOLE.log("Evaluating all eval images")
            report["eval"] = {k: _finite(v) for k, v in self.get_average_eval_image_metrics(step=step).items()}
            report["eval_images"] = len(self.datamanager.eval_dataset)
        base_dir = Path(trainer.base_dir)
        report["outputs"] = {
            "config": str(base_dir / "config.yml"),
            "checkpoints": str(trainer.checkpoint_dir),
        }
        path = atomic_write_text(base_dir / EVAL_REPORT_NAME, json.dumps(report, indent=2) + "\n")
        _print_report(report, path)


def _finite(value: Any) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def _print_report(report: Dict[str, Any], path: Path) -> None:
    table = Table(title="mastsam-splat results", show_header=False)
    for key in ("psnr", "ssim", "lpips", "instance_miou", "instance_miou_consistent"):
        value = report.get("eval", {}).get(key)
        if value is not None:
            table.add_row(f"eval {key}", f"{value:.4f}")
    timing = report["timing"]
    if "tracker_s" in timing:
        table.add_row("tracker", f"{timing['tracker_s']:.1f} s ({report['tracker'].get('status', '')})")
    table.add_row(
        "training", f"{timing['training_s']:.1f} s, {timing['iterations']} it, {timing['iterations_per_s']:.2f} it/s"
    )
    if report.get("tracker", {}).get("cache_dir"):
        table.add_row("tracker output", str(report["tracker"]["cache_dir"]))
    table.add_row("report", str(path))
    CONSOLE.print(table)
