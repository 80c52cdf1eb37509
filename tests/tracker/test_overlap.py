"""Overlap resolution of tracked ids' masks against a direct per-pixel reference."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from mastsam_splat.tracker.overlap import nearest_distance, resolve_overlaps
from mastsam_splat.tracker.prompting import Prompt
from mastsam_splat.types import Mask


def reference_labels(masks: dict[int, Mask], prompts: dict[int, Prompt], shape: tuple[int, int]) -> np.ndarray:
    """Each pixel: its only claimant, or the claimant with the smallest score-weighted prompt distance."""
    labels = np.zeros(shape, dtype=np.int64)
    ids = sorted(masks)
    for r in range(shape[0]):
        for c in range(shape[1]):
            claimants = [i for i in ids if masks[i].segmentation[r, c]]
            if len(claimants) == 1:
                labels[r, c] = claimants[0]
            elif claimants:
                costs = []
                for i in claimants:
                    positive = prompts[i].positive if i in prompts else np.zeros((0, 2))
                    d = cKDTree(positive).query([[c + 0.5, r + 0.5]])[0][0] if len(positive) else 1e9
                    costs.append(d / (0.5 + 0.5 * float(np.clip(masks[i].score, 0.0, 1.0))))
                labels[r, c] = claimants[int(np.argmin(costs))]
    return labels


def test_resolve_overlaps_matches_the_per_pixel_reference():
    rng = np.random.default_rng(0)
    shape = (24, 31)
    for trial in range(8):
        masks, prompts = {}, {}
        for obj_id in rng.choice(np.arange(1, 40), size=int(rng.integers(1, 6)), replace=False).tolist():
            r0, c0 = rng.integers(0, 18), rng.integers(0, 25)
            seg = np.zeros(shape, dtype=bool)
            seg[r0 : r0 + int(rng.integers(3, 12)), c0 : c0 + int(rng.integers(3, 12))] = True
            if trial % 2:
                seg &= rng.random(shape) < 0.8  # ragged masks
            masks[obj_id] = Mask(seg, score=float(rng.random()))
            if obj_id % 5:  # some ids without prompts
                prompts[obj_id] = Prompt(rng.uniform(0, 31, (int(rng.integers(0, 4)), 2)), np.zeros((0, 2)))
        labels = resolve_overlaps(masks, prompts, shape)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, reference_labels(masks, prompts, shape))
    assert not resolve_overlaps({}, {}, shape).any()


def test_nearest_distance_equals_the_k_d_tree_and_cdist_bit_for_bit():
    rng = np.random.default_rng(4)
    for sites_count in (1, 3, 12, 27):
        sites = rng.uniform(-50.0, 400.0, (sites_count, 2))
        for points in (rng.integers(0, 320, (500, 2)) + 0.5, rng.uniform(-1e3, 1e3, (500, 2))):
            got = nearest_distance(sites, points)
            np.testing.assert_array_equal(got, cKDTree(sites).query(points)[0])
            np.testing.assert_array_equal(got, cdist(points, sites).min(axis=1))
    assert nearest_distance(sites, np.zeros((0, 2))).shape == (0,)
