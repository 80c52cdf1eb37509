"""``mastsam train``: the standalone Gaussian + instance-feature trainer (no Nerfstudio)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape

from mastsam_splat.io.destinations import check_writable_dir
from mastsam_splat.io.scene import input_image_folders
from mastsam_splat.splat.trainer import SplatTrainConfig, train


@dataclass
class TrainCommand(SplatTrainConfig):
    """Train Gaussians with a per-Gaussian instance feature on a dataset and its consistent masks,
    then report held-out PSNR and instance mIoU."""

    def main(self) -> None:
        """Train, evaluate, write outputs and print the figures."""
        if self.output_dir is not None:
            inputs = input_image_folders(self.data) if self.data.exists() else []
            check_writable_dir(self.output_dir, "--output-dir", inputs=inputs)
        result = train(self)
        console = Console()
        console.print(result.summary())
        if self.output_dir is not None:
            console.print(f"outputs in [bold]{escape(str(self.output_dir))}[/bold]")
