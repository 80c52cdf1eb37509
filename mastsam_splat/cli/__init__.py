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
from rich.text import Text

from mastsam_splat.errors import InputError, interrupt_exit_code, signals_interrupt

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
    try:
        command = tyro.extras.subcommand_cli_from_dict(
            commands,
            args=argv,
            description="mastsam-splat: multi-view-consistent masks and 3D Gaussians that know their objects.",
        )
        with signals_interrupt():
            command.main()
    except InputError as exc:
        print_error(console, exc)
        return 2
    except KeyboardInterrupt as exc:
        console.print("[yellow]interrupted[/yellow]")
        return interrupt_exit_code(exc)
    return 0


def error_text(exc: BaseException) -> Text:
    """``error: <message>`` with the message taken literally (a path like ``scan[old]`` is not markup)."""
    return Text.assemble(("error:", "bold red"), " ", str(exc))


def print_error(console: Console, exc: BaseException) -> None:
    """Print :func:`error_text` unwrapped and without highlighting, so paths stay intact."""
    console.print(error_text(exc), highlight=False, soft_wrap=True)


def main() -> None:
    sys.exit(entrypoint())
