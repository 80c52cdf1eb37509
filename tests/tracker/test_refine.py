"""Granularity refinement: a family's pixels go to the member of the nearest evidence pixel."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from mastsam_splat.tracker.refine import family_labels


def _whole_image(labels: np.ndarray, evidence: np.ndarray, members: list[int]) -> np.ndarray:
    family = np.isin(labels, members)
    seeds = np.where(np.isin(evidence, members), evidence, 0)
    if not family.any() or not seeds.any():
        return labels
    _, (rows, cols) = distance_transform_edt(seeds == 0, return_indices=True)
    out = labels.copy()
    out[family] = seeds[rows[family], cols[family]]
    return out


def test_family_labels_equal_the_whole_image_transform() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(5, 50, 2)
        labels = rng.integers(0, 6, (h, w))
        labels[: rng.integers(0, h), :] = 0
        labels[:, : rng.integers(0, w)] = 0
        evidence = np.where(rng.random((h, w)) < 0.05, rng.integers(1, 6, (h, w)), 0)
        np.testing.assert_array_equal(family_labels(labels, evidence, [1, 2, 3]), _whole_image(labels, evidence, [1, 2, 3]))


def test_family_without_evidence_is_unchanged() -> None:
    labels = np.array([[1, 1, 2], [0, 2, 2]])
    assert family_labels(labels, np.zeros_like(labels), [1, 2]) is labels
