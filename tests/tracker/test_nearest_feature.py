import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from mastsam_splat.tracker.nearest_feature import feature_transform_near, near_boxes


def _features(rng: np.random.Generator, h: int, w: int, density: float, clustered: bool) -> np.ndarray:
    features = rng.random((h, w)) < density
    if clustered:  # features in a few patches, much of the image far from any
        keep = np.zeros((h, w), dtype=bool)
        for _ in range(3):
            r, c = rng.integers(0, h), rng.integers(0, w)
            keep[max(r - 12, 0) : r + 12, max(c - 12, 0) : c + 12] = True
        features &= keep
    return features


@pytest.mark.parametrize("seed", range(6))
def test_transform_near_the_features_equals_the_whole_images_within_the_reach(seed: int) -> None:
    """On integer grids many pixels lie equally far from several features: the window picks the same one."""
    rng = np.random.default_rng(seed)
    for _ in range(20):
        h, w = (int(v) for v in rng.integers(8, 90, 2))
        features = _features(rng, h, w, float(rng.choice([0.005, 0.03, 0.2])), bool(rng.integers(0, 2)))
        if not features.any():
            continue
        reach = float(rng.choice([1.0, np.sqrt(2.0), 2.5, 5.0, 13.0]))
        distance, (rows, cols) = distance_transform_edt(~features, return_indices=True)
        r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        box = (slice(r0, int(rng.integers(r0 + 1, h + 1))), slice(c0, int(rng.integers(c0 + 1, w + 1))))
        near_distance, near_rows, near_cols = feature_transform_near(features, box, reach)
        within = distance[box] <= reach
        np.testing.assert_array_equal(near_rows[within], rows[box][within])
        np.testing.assert_array_equal(near_cols[within], cols[box][within])
        np.testing.assert_array_equal(near_distance[within], distance[box][within])
        assert (near_distance[~within] > reach).all()
        _, only_rows, only_cols = feature_transform_near(features, box, reach, return_distances=False)
        np.testing.assert_array_equal(only_rows, near_rows)
        np.testing.assert_array_equal(only_cols, near_cols)


def test_a_window_without_features_names_none() -> None:
    features = np.zeros((40, 40), dtype=bool)
    features[0, 0] = True
    distance, rows, cols = feature_transform_near(features, (slice(30, 40), slice(30, 40)), 3.0)
    assert np.isinf(distance).all() and (rows == -1).all() and (cols == -1).all()


@pytest.mark.parametrize("seed", range(4))
def test_near_boxes_hold_every_pixel_within_the_reach(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(10):
        h, w = (int(v) for v in rng.integers(20, 300, 2))
        features = _features(rng, h, w, 0.002, bool(rng.integers(0, 2)))
        reach = float(rng.choice([2.0, 9.5, 40.0]))
        boxes = near_boxes(features, reach, band=int(rng.choice([8, 64])))
        covered = np.zeros((h, w), dtype=bool)
        for box in boxes:
            covered[box] = True
        if not features.any():
            assert boxes == []
            continue
        distance = distance_transform_edt(~features)
        assert covered[distance <= reach].all()
