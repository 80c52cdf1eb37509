"""Trainer that checks the user's input before setting anything up, and creates the run folder last.

Nerfstudio looks at ``--load-dir`` only after building the pipeline (here: after the tracker
has run and the images are cached) and then fails with an ``IndexError`` or ``AssertionError``.
This trainer checks resume paths first and reports every :class:`InputError` raised while
setting up (dataset, tracker settings, cached masks) as a one-line message with exit status 2.

``ns-train`` writes ``config.yml`` (creating the run folder) before the dataset is read; this
config defers that until setup has succeeded, so a run that fails on bad input leaves no run
folder. SIGINT and SIGTERM end the run with status 130 / 143 and a one-line message (Nerfstudio
would print a traceback and exit 0).

It also scales the schedule to the run's length (``mastsam_splat.splat.schedule``) before the
config is saved and the model is built: the model's unset schedule fields, and the learning-rate
schedulers still at Splatfacto's 30,000 steps (``max_steps``) and 1,000 warm-up steps.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from typing import Iterator, Literal, Type

from nerfstudio.engine.trainer import Trainer, TrainerConfig

from mastsam_splat.errors import InputError, interrupt_exit_code, signals_interrupt
from mastsam_splat.splat.schedule import REFERENCE_STEPS, SPLATFACTO

from nerfstudio_plugin.checks import check_resume_paths, user_errors


@dataclass
class MastsamTrainerConfig(TrainerConfig):
    """Nerfstudio's trainer config, building a :class:`MastsamTrainer`."""

    _target: Type = field(default_factory=lambda: MastsamTrainer)

    def apply_budget(self) -> None:
        """Scale the model's schedule and the optimizers' schedulers to ``max_num_iterations`` (idempotent)."""
        model = self.pipeline.model
        resolve = getattr(model, "resolve_schedule", None)
        if resolve is None:
            return
        schedule = resolve(self.max_num_iterations)
        for group in self.optimizers.values():
            scheduler = group.get("scheduler")
            if scheduler is None:
                continue
            if getattr(scheduler, "max_steps", None) == REFERENCE_STEPS:
                scheduler.max_steps = schedule.lr_max_steps
            if getattr(scheduler, "warmup_steps", None) == SPLATFACTO.lr_warmup_steps:
                scheduler.warmup_steps = schedule.lr_warmup_steps

    def save_config(self) -> None:
        """Deferred: :class:`MastsamTrainer` writes ``config.yml`` once its setup has succeeded."""

    def write_config(self) -> None:
        """Write ``config.yml``, its schedule resolved (what the run uses), into the run folder (creating it)."""
        self.apply_budget()
        TrainerConfig.save_config(self)


class MastsamTrainer(Trainer):
    """Nerfstudio's trainer with input checks ahead of setup (see module docstring)."""

    config: MastsamTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        created = not self.base_dir.exists()
        with interrupts(), user_errors():
            try:
                check_resume_paths(self.config.load_dir, self.config.load_step, self.config.load_checkpoint)
                self.config.apply_budget()
                super().setup(test_mode=test_mode)
            except InputError:
                if created:
                    shutil.rmtree(self.base_dir, ignore_errors=True)
                raise
        if isinstance(self.config, MastsamTrainerConfig):
            self.config.write_config()

    def train(self) -> None:
        with interrupts(), user_errors():
            super().train()


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """SIGINT/SIGTERM while the block runs: one line and exit status 130 / 143 instead of a traceback."""
    try:
        with signals_interrupt():
            yield
    except KeyboardInterrupt as exc:
        from nerfstudio.utils.rich_utils import CONSOLE

        CONSOLE.print("[yellow]interrupted[/yellow]")
        raise SystemExit(interrupt_exit_code(exc)) from None
