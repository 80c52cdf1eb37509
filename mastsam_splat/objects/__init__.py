"""Objects in a Gaussian scene: per-Gaussian ids from a run or a training-free lift, and per-object export.

The ``Gaussians`` container and its PLY files live in ``mastsam_splat.io`` (``gaussians``, ``ply``);
their names are re-exported here.

- ``run``: Gaussians of a Nerfstudio run (mastsam-splat or splatfacto) and its world frame.
- ``lift``: vote multi-view label images onto Gaussians through the renderer.
- ``export``: whole-scene PLY, one PLY per object, ``objects.json``.
"""

from mastsam_splat.io.gaussians import BACKGROUND, UNLABELLED, Gaussians
from mastsam_splat.io.ply import read_gaussians_ply, write_gaussians_ply, write_labelled_points
from mastsam_splat.objects.export import ExportResult, export_objects, parse_object_selection
from mastsam_splat.objects.lift import LiftConfig, LiftResult, LiftView, lift_labels
from mastsam_splat.objects.run import NerfstudioRun, RunFrame, dataset_to_run_frame, load_run_gaussians

__all__ = [
    "BACKGROUND",
    "UNLABELLED",
    "ExportResult",
    "Gaussians",
    "LiftConfig",
    "LiftResult",
    "LiftView",
    "NerfstudioRun",
    "RunFrame",
    "dataset_to_run_frame",
    "export_objects",
    "lift_labels",
    "load_run_gaussians",
    "parse_object_selection",
    "read_gaussians_ply",
    "write_gaussians_ply",
    "write_labelled_points",
]
