"""Budget-aware training schedules: Splatfacto's step-based schedule, scaled to a short run.

Splatfacto's schedule is written for 30,000 steps: no densification before step 500, full
resolution from step 6,000, opacity resets every 3,000 steps, the SH degree raised every
1,000 steps, splitting until step 15,000. A run of a few hundred steps (CPU runs, the demo,
tests) would stop inside that warm-up: no densification, no resolution change, degree 0.

:func:`budget_schedule` scales every step count by ``max_steps / 30000`` when the run is shorter
than :data:`REFERENCE_STEPS`, with floors that keep the schedule meaningful (a refinement round
needs some steps to gather gradient statistics). Runs of 30,000 steps or more keep Splatfacto's
values. Both the Nerfstudio method and the standalone trainer take their defaults from here;
a value the user sets explicitly is kept.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterator, Mapping, Optional

REFERENCE_STEPS = 30_000
"""Run length Splatfacto's schedule is written for; shorter runs get a scaled schedule."""

MIN_REFINE_EVERY = 10
"""Fewest steps between two densification rounds of a scaled schedule."""

MIN_SH_DEGREE_INTERVAL = 10
"""Fewest steps between two SH degree increments of a scaled schedule."""

MIN_CULL_ALPHA = 0.02
"""Lowest opacity threshold of a scaled schedule's culling."""


@dataclass(frozen=True)
class Schedule:
    """Step counts of Splatfacto's schedule (field names as in ``SplatfactoModelConfig``)."""

    warmup_length: int = 500
    """Steps before the first densification round."""
    refine_every: int = 100
    """Steps between densification rounds."""
    reset_alpha_every: int = 30
    """Densification rounds between opacity resets."""
    stop_split_at: int = 15_000
    """Step after which Gaussians are no longer split, duplicated or culled."""
    stop_screen_size_at: int = 4_000
    """Step after which Gaussians are no longer culled or split for their size on screen."""
    resolution_schedule: int = 3_000
    """Steps between halvings of the training-image downscale factor."""
    sh_degree_interval: int = 1_000
    """Steps between raising the SH degree by one."""
    lr_max_steps: int = REFERENCE_STEPS
    """Steps over which the means' learning rate decays to its final value."""
    lr_warmup_steps: int = 1_000
    """Warm-up steps of the camera-optimiser and bilateral-grid learning rates."""
    cull_alpha_thresh: float = 0.1
    """Densification rounds remove Gaussians below this opacity."""


SPLATFACTO = Schedule()
"""Splatfacto's own schedule (what a 30,000-step run uses)."""

SCHEDULE_FIELDS = tuple(asdict(SPLATFACTO))
"""Names of the scheduled values."""


def scale_factor(max_steps: int) -> float:
    """``max_steps / REFERENCE_STEPS`` for shorter runs, else 1 (longer runs keep Splatfacto's schedule)."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    return min(1.0, max_steps / REFERENCE_STEPS)


def budget_schedule(max_steps: int, overrides: Optional[Mapping[str, Any]] = None) -> Schedule:
    """Splatfacto's schedule scaled to a run of ``max_steps`` (see module docstring).

    Each step count is multiplied by :func:`scale_factor`; densification rounds stay at least
    :data:`MIN_REFINE_EVERY` steps apart, warm-up lasts at least one round, and the opacity reset
    keeps Splatfacto's 30 rounds (so a run of a few hundred steps has none after step 0, which
    would leave too few steps to recover); densification stops after half the run, but not before
    one round after the warm-up. Culling's opacity threshold shrinks with the square root of the
    budget (at least :data:`MIN_CULL_ALPHA`): seeds start at opacity 0.1, and a short run's first
    rounds come before they have had time to become opaque. ``overrides`` (values the user set) win over scaled ones;
    ``None`` values in it are ignored.
    """
    f = scale_factor(max_steps)
    if f >= 1.0:
        scaled = SPLATFACTO
    else:

        def steps(value: int, floor: int = 1) -> int:
            return max(floor, int(round(value * f)))

        refine_every = steps(SPLATFACTO.refine_every, MIN_REFINE_EVERY)
        scaled = Schedule(
            warmup_length=steps(SPLATFACTO.warmup_length, refine_every),
            refine_every=refine_every,
            reset_alpha_every=SPLATFACTO.reset_alpha_every,
            stop_split_at=steps(SPLATFACTO.stop_split_at),
            stop_screen_size_at=steps(SPLATFACTO.stop_screen_size_at),
            resolution_schedule=steps(SPLATFACTO.resolution_schedule),
            sh_degree_interval=steps(SPLATFACTO.sh_degree_interval, MIN_SH_DEGREE_INTERVAL),
            lr_max_steps=max_steps,
            lr_warmup_steps=steps(SPLATFACTO.lr_warmup_steps),
            cull_alpha_thresh=max(MIN_CULL_ALPHA, SPLATFACTO.cull_alpha_thresh * f**0.5),
        )
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k in SCHEDULE_FIELDS}
    values: Dict[str, Any] = {**asdict(scaled), **given}
    if f < 1.0 and "stop_split_at" not in given:
        # at least one densification round after the warm-up, also when the user moved the warm-up
        values["stop_split_at"] = max(values["stop_split_at"], values["warmup_length"] + values["refine_every"] + 1)
    return Schedule(**values)


@contextlib.contextmanager
def growth_capped(strategy: Any, num_gaussians: int, max_gaussians: Optional[int]) -> Iterator[None]:
    """Within this block a gsplat ``DefaultStrategy`` grows no Gaussians once there are ``max_gaussians``
    (pruning and opacity resets go on). Keeps the cost of a step bounded on the CPU rasterizer,
    whose time grows with the number of Gaussians; None or 0: no cap."""
    if not max_gaussians or num_gaussians < max_gaussians or not hasattr(strategy, "grow_grad2d"):
        yield
        return
    threshold = strategy.grow_grad2d
    strategy.grow_grad2d = float("inf")
    try:
        yield
    finally:
        strategy.grow_grad2d = threshold
