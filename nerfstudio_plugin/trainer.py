"""Trainer that checks the user's input before setting anything up.

Nerfstudio looks at ``--load-dir`` only after building the pipeline (here: after the tracker
has run and the images are cached) and then fails with an ``IndexError`` or ``AssertionError``.
This trainer checks resume paths first and reports every :class:`InputError` raised while
setting up (dataset, tracker settings, cached masks) as a one-line message with exit status 2.

It also scales the schedule to the run's length (``mastsam_splat.splat.schedule``) before the
config is saved and the model is built: the model's unset schedule fields, and the learning-rate
schedulers still at Splatfacto's 30,000 steps (``max_steps``) and 1,000 warm-up steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

from nerfstudio.engine.trainer import Trainer, TrainerConfig

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
        """Save the config with its schedule resolved (what the run actually uses)."""
        self.apply_budget()
        super().save_config()


class MastsamTrainer(Trainer):
    """Nerfstudio's trainer with input checks ahead of setup (see module docstring)."""

    config: MastsamTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        with user_errors():
            check_resume_paths(self.config.load_dir, self.config.load_step, self.config.load_checkpoint)
            self.config.apply_budget()
            super().setup(test_mode=test_mode)
