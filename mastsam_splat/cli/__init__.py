"""The ``mastsam`` command: one subcommand per job, each a dataclass with a ``main()`` in its own module.

This is the top layer: a subcommand may use any library layer and the Nerfstudio plugin. Subcommand
modules keep heavy imports (torch, SAM, nerfstudio) inside ``main()`` so that ``mastsam --help``
stays fast.
"""

from __future__ import annotations

import importlib
import sys
import tyro
from rich.console import Console

from mastsam_splat.errors import InputError

# name -> "module:Class"; each class is a dataclass with a ``main(self) -> None`` method.
SUBCOMMANDS: dict[str, str] = {
    "synth": "mastsam_splat.cli.synth:SynthCommand",
    "prepare": "mastsam_splat.cli.prepare:PrepareCommand",
    "eval": "mastsam_splat.cli.eval:EvalCommand",
    "track": "mastsam_splat.cli.track:TrackCommand",
    "train": "mastsam_splat.cli.train:TrainCommand",
    "export": "mastsam_splat.cli.objects:ExportCommand",
    "lift": "mastsam_splat.cli.objects:LiftCommand",
}


def _load(spec: str) -> type:
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def entrypoint(argv: list[str] | None = None) -> int:
    """Parse the command line, run the chosen subcommand, report bad input without a traceback."""
    console = Console(stderr=True)
    commands = {name: _load(spec) for name, spec in SUBCOMMANDS.items()}
    command = tyro.extras.subcommand_cli_from_dict(
        commands, args=argv, description="mastsam-splat: multi-view-consistent masks and 3D Gaussians that know their objects."
    )
    try:
        command.main()
    except InputError as exc:
        console.print(f"[bold red]error:[/bold red] {exc}")
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    return 0


def main() -> None:
    sys.exit(entrypoint())
