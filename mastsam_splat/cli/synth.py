"""``mastsam synth``: generate a synthetic scene and print a short summary."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mastsam_splat.errors import check_option
from mastsam_splat.io.destinations import check_writable_dir
from mastsam_splat.synthetic.layout import Trajectory


@dataclass
class SynthCommand:
    """Generate a procedural multi-view scene with ground truth, as a Nerfstudio dataset.

    An existing output folder is replaced only if it is empty or a previous synthetic scene.
    """

    output_dir: Path
    """Folder to write (transforms.json, images/, depth/, instances/, parts/, sparse_pc.ply, scene.json)."""
    frames: int = 40
    """Number of views."""
    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    seed: int = 0
    """Random seed; the same seed and settings give byte-identical files."""
    trajectory: Trajectory = "orbit"
    """Camera path: a 360° orbit around the objects, or a forward walk between them."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.frames >= 1, "--frames", ">= 1", self.frames)
        check_option(self.width >= 16, "--width", ">= 16", self.width)
        check_option(self.height >= 16, "--height", ">= 16", self.height)

    def main(self) -> None:
        """Generate the scene and print its summary."""
        check_writable_dir(self.output_dir, "--output-dir", staged=True)
        from rich.console import Console
        from rich.table import Table

        from mastsam_splat.synthetic.dataset import make_scene

        start = time.perf_counter()
        out = make_scene(
            self.output_dir,
            frames=self.frames,
            width=self.width,
            height=self.height,
            seed=self.seed,
            trajectory=self.trajectory,
            progress=True,
        )
        elapsed = time.perf_counter() - start
        info = json.loads((out / "scene.json").read_text())
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())

        table = Table(title=f"Synthetic scene: {out}", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        table.add_row("frames", f"{self.frames} ({self.trajectory})")
        table.add_row("image size", f"{self.width}×{self.height}")
        table.add_row("objects", str(info["num_objects"]))
        table.add_row("parts", str(info["num_parts"]))
        table.add_row("points", str(info["num_points"]))
        table.add_row("size on disk", f"{size / 1e6:.1f} MB")
        table.add_row("time", f"{elapsed:.1f} s")
        Console().print(table)
