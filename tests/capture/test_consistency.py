"""Verified matches a reconstruction explains: Sampson errors, and the support of a model."""

from __future__ import annotations

import numpy as np

from mastsam_splat.capture.consistency import Support, _skew, sampson_errors


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = _skew(axis)
    angle = np.radians(degrees)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_sampson_error_is_zero_for_true_correspondences_and_grows_for_wrong_ones():
    rng = np.random.default_rng(0)
    points = rng.uniform([-1, -1, 4], [1, 1, 6], size=(50, 3))
    rotation, translation = _rotation(np.array([0.0, 1.0, 0.2]), 10.0), np.array([0.5, 0.0, 0.1])
    x1 = points[:, :2] / points[:, 2:]
    moved = points @ rotation.T + translation
    x2 = moved[:, :2] / moved[:, 2:]
    essential = _skew(translation / np.linalg.norm(translation)) @ rotation
    assert np.abs(sampson_errors(essential, x1, x2)).max() < 1e-9
    wrong = _skew(translation / np.linalg.norm(translation)) @ _rotation(np.array([1.0, 0.0, 0.0]), 20.0)
    assert np.median(sampson_errors(wrong, x1, x2)) > 1e-2


def test_support_fractions():
    support = Support(explained=90, total=100, pairs=50, contradicted=1)
    assert support.fraction == 0.9
    assert support.contradicted_fraction == 0.02
    assert Support(0, 0, 0, 0).contradicted_fraction == 0.0
