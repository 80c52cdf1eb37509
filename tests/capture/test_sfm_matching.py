"""Which pairs SfM matches (a budget in pairs x features) and how extraction is batched over threads."""

from __future__ import annotations

import os

import pytest

from mastsam_splat.capture.sfm import SfmOptions, extraction_batch, matches_all_pairs


@pytest.mark.parametrize(
    ("count", "features", "exhaustive"),
    [
        (25, 8192, True),  # a small capture (kitchen: 25 photos)
        (50, 8192, True),  # 1225 pairs: the budget (fox: 50 photos)
        (51, 8192, False),
        (60, 8192, False),  # 1770 pairs: sequential + retrieval
        (70, 4096, True),  # fewer features per image: more pairs fit
        (71, 4096, False),
        (200, 1024, False),
    ],
)
def test_exhaustive_matching_while_pairs_times_features_fit_the_budget(count, features, exhaustive):
    assert matches_all_pairs(count, SfmOptions(max_features=features)) is exhaustive


def test_the_budget_is_an_option():
    assert not matches_all_pairs(3, SfmOptions(exhaustive_pairs=0))
    assert matches_all_pairs(60, SfmOptions(exhaustive_pairs=1770))
    assert not matches_all_pairs(61, SfmOptions(exhaustive_pairs=1770))


def test_extraction_calls_hold_several_images_per_thread():
    assert extraction_batch(1) == 4 and extraction_batch(2) == 8
    assert extraction_batch(-1) == 4 * (os.cpu_count() or 1)
