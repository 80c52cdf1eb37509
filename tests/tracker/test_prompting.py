"""Prompt building: negatives against a direct search over every pair of points."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.prompting import PromptingConfig, build_prompts
from mastsam_splat.tracker.propagation import TrackedPoints


def test_negatives_are_the_nearest_other_points_within_the_radius():
    rng = np.random.default_rng(0)
    tracked = {i: TrackedPoints(rng.uniform(0, 100, (int(rng.integers(0, 6)), 2)), 5) for i in range(1, 12)}
    config = PromptingConfig(negative_radius=0.2, max_negatives=4)
    prompts = build_prompts(tracked, config, (100, 100))
    radius = 0.2 * np.hypot(100, 100)
    assert set(prompts) == {i for i, t in tracked.items() if len(t.points)}
    for obj_id, prompt in prompts.items():
        others = [(float(np.min(np.linalg.norm(tracked[obj_id].points - p, axis=1))), j, tuple(p))
                  for j in prompts if j != obj_id for p in tracked[j].points]
        near = sorted(d for d in others if d[0] <= radius)[:4]  # distance, then owner order
        assert [tuple(p) for p in prompt.negative] == [p for _, _, p in near]
