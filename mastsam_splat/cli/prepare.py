"""``mastsam prepare``: photos or a video -> a Nerfstudio dataset with SfM cameras (see ``mastsam_splat.capture``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from mastsam_splat.capture import PrepareOptions, prepare
from mastsam_splat.capture.prepare import CaptureWarning


@dataclass(kw_only=True)
class PrepareCommand(PrepareOptions):
    """Turn a folder of photos or a video into a Nerfstudio dataset for ``ns-train mastsam-splat``.

    Writes transforms.json (intrinsics, distortion, poses), images/ (upright: EXIF orientation
    applied) with images_2/4/8, sparse_pc.ply and the COLMAP model sparse/0. Frames that SfM does
    not register are left out with a warning; fewer than 3 registered frames is an error.
    """

    output_dir: Path
    """Dataset folder to write (new, empty, or an earlier output of this command)."""
    quiet: bool = False
    """No progress bars."""

    def main(self) -> None:
        """Run prepare and print what it kept."""
        from rich.console import Console

        console = Console(stderr=True, quiet=self.quiet)
        options = PrepareOptions(**{option.name: getattr(self, option.name) for option in fields(PrepareOptions)})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", CaptureWarning)
            report = prepare(self.output_dir, options, progress=not self.quiet)
        for warning in caught:
            Console(stderr=True).print(f"[yellow]warning:[/yellow] {warning.message}")
        width, height = report.image_size
        console.print(
            f"{report.output_dir}: {len(report.registered)} of {report.frames_in} frames registered "
            f"({width}x{height}), {report.num_points} points, {report.seconds:.1f} s\n"
            f"next: ns-train mastsam-splat --data {report.output_dir}"
        )
