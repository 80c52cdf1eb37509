"""Benchmark ``prepare`` (SfM with pycolmap on CPU) on synthetic scenes with known cameras.

For each trajectory a scene is rendered, its images are prepared as a photo capture, and the
recovered cameras are compared with the true ones after a similarity alignment: registered
fraction, median and maximum rotation error (degrees), median and maximum camera-centre error
(fraction of the scene size: the largest distance between two true camera centres), time.

    python scripts/bench_prepare.py --frames 36 --width 320 --height 240
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from mastsam_splat.capture import CaptureWarning, PrepareOptions, prepare
from mastsam_splat.capture.accuracy import prepared_pose_errors
from mastsam_splat.synthetic import make_scene


@dataclass
class Args:
    trajectories: list[str] = field(default_factory=lambda: ["orbit", "forward"])
    """Synthetic camera paths to run."""
    frames: int = 36
    width: int = 320
    height: int = 240
    seed: int = 0
    workdir: Path | None = None
    """Where scenes and datasets are written (a temporary folder when not set)."""


def main(args: Args) -> None:
    table = Table(title=f"prepare on synthetic scenes ({args.frames} frames, {args.width}x{args.height})")
    for column in ("scene", "registered", "rot med (deg)", "rot max (deg)", "centre med", "centre max", "points", "time (s)"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        for trajectory in args.trajectories:
            scene = make_scene(
                root / f"scene_{trajectory}", args.frames, args.width, args.height, args.seed, trajectory, progress=False
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CaptureWarning)
                report = prepare(root / f"prepared_{trajectory}", PrepareOptions(images=scene / "images"), progress=False)
            errors = prepared_pose_errors(report.output_dir, scene)
            table.add_row(
                trajectory,
                f"{len(report.registered)}/{report.frames_in} ({100 * report.registered_fraction:.0f}%)",
                f"{errors.median_rotation_deg:.3f}",
                f"{errors.rotation_deg.max():.3f}",
                f"{100 * errors.median_centre_fraction:.3f}%",
                f"{100 * errors.centre.max() / errors.scene_size:.3f}%",
                str(report.num_points),
                f"{report.seconds:.1f}",
            )
    Console().print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
