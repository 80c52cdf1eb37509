"""Trainer that checks the user's input before setting anything up.

Nerfstudio looks at ``--load-dir`` only after building the pipeline (here: after the tracker
has run and the images are cached) and then fails with an ``IndexError`` or ``AssertionError``.
This trainer checks resume paths first and reports every :class:`InputError` raised while
setting up (dataset, tracker settings, cached masks) as a one-line message with exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Type

from nerfstudio.engine.trainer import Trainer, TrainerConfig

from nerfstudio_plugin.checks import check_resume_paths, user_errors


@dataclass
class MastsamTrainerConfig(TrainerConfig):
    """Nerfstudio's trainer config, building a :class:`MastsamTrainer`."""

    _target: Type = field(default_factory=lambda: MastsamTrainer)


class MastsamTrainer(Trainer):
    """Nerfstudio's trainer with input checks ahead of setup (see module docstring)."""

    config: MastsamTrainerConfig

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        with user_errors():
            check_resume_paths(self.config.load_dir, self.config.load_step, self.config.load_checkpoint)
            super().setup(test_mode=test_mode)
