"""Visual-word retrieval: images built from the same descriptors are found as look-alikes."""

from __future__ import annotations

import numpy as np

from mastsam_splat.capture.retrieval import similar_pairs, word_histograms


def test_look_alike_images_are_paired_across_the_sequence():
    rng = np.random.default_rng(0)
    places = [rng.integers(0, 256, (300, 128)).astype(np.uint8) for _ in range(4)]
    # Eight images: places 0,1,2,3 then a second pass over 0,1,2,3, each with a little noise.
    descriptors = [
        np.clip(places[i % 4] + rng.integers(-3, 4, places[0].shape), 0, 255).astype(np.uint8) for i in range(8)
    ]
    histograms = word_histograms(descriptors, words=64)
    assert histograms.shape == (8, 64)
    assert np.allclose(np.linalg.norm(histograms, axis=1), 1.0)
    pairs = similar_pairs(histograms, neighbours=1, min_gap=2)
    assert pairs == [(0, 4), (1, 5), (2, 6), (3, 7)]


def test_no_pairs_within_the_gap():
    histograms = np.eye(5)
    assert similar_pairs(histograms, neighbours=2, min_gap=5) == []
