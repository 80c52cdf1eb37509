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


def test_many_tracked_points_give_the_negatives_of_a_search_per_id():
    """More tracked points than one block of the distance table: the blocks give what one id at a time gives."""
    rng = np.random.default_rng(4)
    tracked = {i: TrackedPoints(rng.uniform(0, 300, (int(rng.integers(0, 13)), 2)), 12) for i in range(1, 90)}
    config = PromptingConfig(negative_radius=0.1, max_negatives=5)
    prompts = build_prompts(tracked, config, (300, 300))
    ids = [i for i, t in tracked.items() if len(t.points)]
    everything = np.concatenate([tracked[i].points for i in ids])
    owner = np.repeat(ids, [len(tracked[i].points) for i in ids])
    radius = 0.1 * np.hypot(300, 300)
    assert sum(len(tracked[i].points) for i in ids) > 256
    for obj_id in ids:
        diff = everything[None, :, :] - tracked[obj_id].points[:, None, :]
        nearest = np.sqrt(np.min(np.sum(diff * diff, axis=-1), axis=0))
        near = np.flatnonzero((owner != obj_id) & (nearest <= radius))
        want = everything[near[np.argsort(nearest[near], kind="stable")[:5]]]
        np.testing.assert_array_equal(prompts[obj_id].negative, want.reshape(-1, 2))


def test_negatives_at_equal_distances_keep_the_earlier_point_first():
    """Points on a coarse grid (many equal distances), more near points than negatives: the stable order of a
    search per id."""
    rng = np.random.default_rng(7)
    tracked = {
        i: TrackedPoints(rng.integers(0, 6, (int(rng.integers(1, 5)), 2)).astype(np.float64), 4) for i in range(1, 30)
    }
    config = PromptingConfig(negative_radius=0.3, max_negatives=3)
    prompts = build_prompts(tracked, config, (6, 6))
    everything = np.concatenate([tracked[i].points for i in tracked])
    owner = np.repeat(list(tracked), [len(t.points) for t in tracked.values()])
    radius = 0.3 * np.hypot(6, 6)
    for obj_id, t in tracked.items():
        nearest = np.sqrt(np.min(np.sum((everything[None, :, :] - t.points[:, None, :]) ** 2, axis=-1), axis=0))
        near = np.flatnonzero((owner != obj_id) & (nearest <= radius))
        want = everything[near[np.argsort(nearest[near], kind="stable")[:3]]]
        assert len(want) == 3
        np.testing.assert_array_equal(prompts[obj_id].negative, want)
