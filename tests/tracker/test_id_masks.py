"""``ids_mask`` (id_masks.py) against ``np.isin``."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.id_masks import ids_mask


def test_ids_mask_equals_isin():
    rng = np.random.default_rng(0)
    image = rng.integers(-3, 40, (30, 20))
    for ids in ([], [1], [5, 7, 39], [39, 40, 100], list(range(1, 60)), [0, 4], [-3, 2]):
        got = ids_mask(image, ids)
        assert got.dtype == bool and got.shape == image.shape
        np.testing.assert_array_equal(got, np.isin(image, ids))
    uint16 = image.clip(0).astype(np.uint16)
    np.testing.assert_array_equal(ids_mask(uint16, [3, 9]), np.isin(uint16, [3, 9]))
