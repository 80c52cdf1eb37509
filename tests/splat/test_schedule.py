"""Budget-aware schedule: Splatfacto's values for long runs, scaled values for short ones, user values kept."""

from __future__ import annotations

import pytest

from mastsam_splat.splat.schedule import (
    MIN_REFINE_EVERY,
    REFERENCE_STEPS,
    SPLATFACTO,
    budget_schedule,
    scale_factor,
)


@pytest.mark.parametrize("steps", [REFERENCE_STEPS, 100_000])
def test_long_runs_keep_splatfactos_schedule(steps: int) -> None:
    assert scale_factor(steps) == 1.0
    assert budget_schedule(steps) == SPLATFACTO


def test_short_run_is_scaled_into_its_budget() -> None:
    s = budget_schedule(300)
    assert s.refine_every == MIN_REFINE_EVERY
    assert s.warmup_length == MIN_REFINE_EVERY  # 500 * 0.01 = 5, at least one round
    assert s.stop_split_at == 150  # half the run, as Splatfacto's 15000 of 30000
    assert s.resolution_schedule == 30 and s.stop_screen_size_at == 40
    assert s.sh_degree_interval == 10
    assert s.lr_max_steps == 300 and s.lr_warmup_steps == 10
    # densification rounds fall inside the run; no opacity reset after step 0 (no time to recover)
    assert s.warmup_length < s.stop_split_at < 300
    assert s.reset_alpha_every * s.refine_every >= 300


def test_medium_run_scales_proportionally() -> None:
    s = budget_schedule(3000)
    assert (s.refine_every, s.warmup_length, s.stop_split_at, s.sh_degree_interval) == (10, 50, 1500, 100)
    assert s.reset_alpha_every * s.refine_every == 300  # resets every 300 steps, as 3000 of 30000


def test_user_values_win() -> None:
    s = budget_schedule(300, {"refine_every": 25, "sh_degree_interval": None, "stop_split_at": 200, "unknown": 1})
    assert s.refine_every == 25 and s.stop_split_at == 200
    assert s.sh_degree_interval == budget_schedule(300).sh_degree_interval
    assert budget_schedule(REFERENCE_STEPS, {"warmup_length": 7}).warmup_length == 7


def test_a_late_user_warmup_still_gets_one_round() -> None:
    s = budget_schedule(40, {"warmup_length": 10, "refine_every": 10})
    assert s.stop_split_at > s.warmup_length + s.refine_every


def test_bad_budget() -> None:
    with pytest.raises(ValueError):
        scale_factor(0)


def test_short_runs_cull_less() -> None:
    assert budget_schedule(REFERENCE_STEPS).cull_alpha_thresh == SPLATFACTO.cull_alpha_thresh == 0.1
    assert budget_schedule(300).cull_alpha_thresh == 0.02
    assert 0.02 < budget_schedule(3000).cull_alpha_thresh < 0.1
