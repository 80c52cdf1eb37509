"""Image retrieval without trained weights: which images of a long capture look alike.

Each image becomes a tf-idf weighted histogram of visual words (its SIFT descriptors assigned
to centres of a k-means codebook learned on a sample of the capture's own descriptors); images
with the most similar histograms are matched too, which links views that revisit a place far
apart in the sequence (an orbit closing on its start, a second pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CODEBOOK_SIZE = 256
SAMPLE_PER_IMAGE = 200


def word_histograms(descriptors: Sequence[np.ndarray], words: int = CODEBOOK_SIZE, seed: int = 0) -> np.ndarray:
    """[N, words] L2-normalised tf-idf histograms of visual words, one row per image."""
    from scipy.cluster.vq import kmeans2
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    sample = [d[rng.choice(len(d), min(len(d), SAMPLE_PER_IMAGE), replace=False)] for d in descriptors if len(d)]
    if not sample:
        return np.zeros((len(descriptors), 1))
    stacked = np.concatenate(sample).astype(np.float32)
    words = max(1, min(words, len(stacked)))
    centres, _ = kmeans2(stacked, words, iter=10, minit="++", seed=seed)
    tree = cKDTree(centres)
    counts = np.zeros((len(descriptors), words))
    for i, d in enumerate(descriptors):
        if len(d):
            _, index = tree.query(d.astype(np.float32))
            counts[i] = np.bincount(index, minlength=words)
    idf = np.log(len(descriptors) / np.maximum((counts > 0).sum(axis=0), 1))
    weighted = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) * idf
    return weighted / np.maximum(np.linalg.norm(weighted, axis=1, keepdims=True), 1e-12)


def similar_pairs(histograms: np.ndarray, neighbours: int, min_gap: int) -> list[tuple[int, int]]:
    """For each image, its ``neighbours`` most similar images at least ``min_gap`` apart in the sequence."""
    similarity = histograms @ histograms.T
    count = len(histograms)
    index = np.arange(count)
    similarity[np.abs(index[:, None] - index[None, :]) < min_gap] = -np.inf
    pairs = set()
    for i in range(count):
        for j in np.argsort(-similarity[i])[:neighbours]:
            if np.isfinite(similarity[i, j]):
                pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def retrieval_pairs(database: Path, neighbours: int, min_gap: int) -> list[tuple[str, str]]:
    """Image-name pairs to match in a COLMAP database whose features are extracted (names in order)."""
    import pycolmap

    db = pycolmap.Database.open(database)
    try:
        images = sorted(db.read_all_images(), key=lambda image: str(image.name))
        descriptors = [np.asarray(db.read_descriptors(image.image_id).data) for image in images]
    finally:
        db.close()
    pairs = similar_pairs(word_histograms(descriptors), neighbours, min_gap)
    return [(str(images[i].name), str(images[j].name)) for i, j in pairs]
