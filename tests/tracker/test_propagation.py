"""Propagation details: the median of the correspondences' votes."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.propagation import _nanmedian_rows


def test_vote_median_ignores_missing_votes_like_nanmedian():
    rng = np.random.default_rng(0)
    for k in range(1, 7):
        votes = rng.normal(size=(50, k, 2))
        missing = rng.random((50, k)) < 0.5
        missing[:, 0] = False  # every row keeps a vote
        votes[missing] = np.nan
        np.testing.assert_array_equal(_nanmedian_rows(votes), np.nanmedian(votes, axis=1))
