"""Captures to datasets: frames from photos or a video, structure from motion, a Nerfstudio dataset."""

from mastsam_splat.capture.prepare import CaptureWarning, PrepareOptions, PrepareReport, is_prepared_dataset, prepare
from mastsam_splat.capture.sfm import SfmOptions

__all__ = ["CaptureWarning", "PrepareOptions", "PrepareReport", "SfmOptions", "is_prepared_dataset", "prepare"]
