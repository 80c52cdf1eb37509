"""Granularity: segments per frame and mean segment area."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.metrics import granularity


def test_granularity_hand_computed():
    maps = [np.array([[1, 1, 0, 2]]), np.zeros((1, 4), dtype=np.uint16), np.array([[5, 5, 5, 5]])]
    result = granularity(maps)
    assert result.segments_per_frame == pytest.approx(1.0)
    assert result.mean_segment_area == pytest.approx(7 / 3)
