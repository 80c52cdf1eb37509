"""Benchmark ``prepare`` (SfM with pycolmap on CPU) on synthetic scenes and on real captures.

For each trajectory and frame count a scene is rendered, its images are prepared as a photo
capture, and the recovered cameras are compared with the true ones after a similarity
alignment: registered fraction, median and maximum rotation error (degrees), median and
maximum camera-centre error (fraction of the scene size: the largest distance between two true
camera centres), mapping runs, time. Real captures (``--real DIR`` or ``--real DIR@TRANSFORMS``) are prepared
the same way; with a reference ``transforms.json`` (its images need not exist) the frames it
lists are compared with its poses.

    python scripts/bench_prepare.py --frames 36 24 --width 320 --height 240
    python scripts/bench_prepare.py --trajectories --real kitchen/images fox/images@fox/transforms.json
    python scripts/bench_prepare.py --trajectories orbit --frames 60 --width 960 --height 540 --upscale 4 \
        --max-image-size 3840   # 60 photos of 3840x2160
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import tyro
from rich.console import Console
from rich.table import Table

from mastsam_splat.capture import CaptureWarning, PrepareOptions, PrepareReport, prepare
from mastsam_splat.capture.accuracy import prepared_pose_errors
from mastsam_splat.synthetic import make_scene


@dataclass
class Args:
    trajectories: list[str] = field(default_factory=lambda: ["orbit", "forward"])
    """Synthetic camera paths to run (none: real captures only)."""
    frames: list[int] = field(default_factory=lambda: [36])
    """Views of each synthetic scene (one scene per count and trajectory)."""
    width: int = 320
    height: int = 240
    seed: int = 0
    upscale: int = 1
    """Synthetic images are enlarged this many times (cubic) and written as JPEG photos before
    ``prepare``: large photos from a small render (``--width 960 --height 540 --upscale 4``: 4K)."""
    real: list[str] = field(default_factory=list)
    """Real captures: an image folder, or ``FOLDER@TRANSFORMS`` with reference poses."""
    max_image_size: Optional[int] = 3200
    """Longer side of the prepared images (as ``mastsam prepare --max-image-size``)."""
    workdir: Optional[Path] = None
    """Where scenes and datasets are written (a temporary folder when not set)."""


def run(images: Path, output: Path, max_image_size: Optional[int]) -> tuple[PrepareReport, int]:
    """``prepare`` a photo folder, its warnings silenced (the table reports what was left out),
    and the number of mapping runs it made."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        report = prepare(output, PrepareOptions(images=images, max_image_size=max_image_size), progress=False)
    return report, report.mapping_runs


def add_row(table: Table, name: str, report: PrepareReport, runs: int, reference: Optional[Path]) -> None:
    """One row: registration, pose errors against ``reference`` (when given), points, mapping runs
    and time."""
    cells = ["-"] * 4
    if reference is not None:
        errors = prepared_pose_errors(report.output_dir, reference)
        cells = [
            f"{errors.median_rotation_deg:.3f}",
            f"{errors.rotation_deg.max():.3f}",
            f"{100 * errors.median_centre_fraction:.3f}%",
            f"{100 * errors.centre.max() / errors.scene_size:.3f}%",
        ]
    table.add_row(
        name,
        f"{len(report.registered)}/{report.frames_in} ({100 * report.registered_fraction:.0f}%)",
        *cells,
        str(report.num_points),
        str(runs),
        f"{report.seconds:.1f}",
    )


def enlarged_photos(images: Path, folder: Path, factor: int) -> Path:
    """The PNG images of ``images`` enlarged ``factor`` times, as JPEG files in ``folder``."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for image in sorted(images.glob("*.png")):
        pixels = cv2.imread(str(image), cv2.IMREAD_COLOR)
        large = cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{image.stem}.jpg"), large, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return folder


def main(args: Args) -> None:
    size = f"{args.width * args.upscale}x{args.height * args.upscale}"
    table = Table(title=f"prepare (synthetic scenes {size}, max image size {args.max_image_size})")
    columns = ("scene", "registered", "rot med (deg)", "rot max (deg)", "centre med", "centre max", "points", "runs")
    for column in (*columns, "time (s)"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        for trajectory in args.trajectories:
            for count in args.frames:
                name = f"{trajectory}_{count}"
                scene = make_scene(
                    root / f"scene_{name}", count, args.width, args.height, args.seed, trajectory, progress=False
                )
                photos = scene / "images"
                if args.upscale > 1:
                    photos = enlarged_photos(photos, root / f"photos_{name}_x{args.upscale}", args.upscale)
                report, runs = run(photos, root / f"prepared_{name}", args.max_image_size)
                add_row(table, f"{trajectory} {count}", report, runs, scene)
        for entry in args.real:
            folder, _, reference = entry.partition("@")
            images = Path(folder)
            name = images.parent.name if images.name == "images" else images.name
            report, runs = run(images, root / f"prepared_real_{name}", args.max_image_size)
            add_row(table, name, report, runs, Path(reference) if reference else None)
    Console().print(table)


if __name__ == "__main__":
    main(tyro.cli(Args))
