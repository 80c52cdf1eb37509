"""Vectorised counting helpers shared by the metrics: id compaction and joint histograms."""

from __future__ import annotations

from typing import Sequence

import numpy as np

DENSE_COUNT_LIMIT = 1 << 24
"""Largest code space counted with ``np.bincount``; larger spaces fall back to ``np.unique``."""


def present_ids(label_maps: Sequence[np.ndarray]) -> np.ndarray:
    """Sorted ids > 0 that occur in any of the label maps, [n] int64."""
    if not label_maps:
        return np.zeros(0, dtype=np.int64)
    for labels in label_maps:
        if labels.size and np.min(labels) < 0:
            raise ValueError("label ids must be non-negative")
    top = max(int(labels.max()) if labels.size else 0 for labels in label_maps)
    if top < (1 << 20):
        seen = np.zeros(top + 1, dtype=bool)
        for labels in label_maps:
            seen |= np.bincount(labels.ravel().astype(np.int64), minlength=top + 1) > 0
        ids = np.flatnonzero(seen)
    else:
        ids = np.unique(np.concatenate([np.unique(labels) for labels in label_maps]))
    return ids[ids > 0].astype(np.int64)


def compact_labels(label_maps: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Renumber ids to ``1..n`` in sorted order (0 stays 0).

    Returns the original ids ``[n]`` (compact id ``k`` is ``ids[k - 1]``) and the renumbered
    maps as int64 arrays of the input shapes.
    """
    ids = present_ids(label_maps)
    if ids.size and ids[-1] < DENSE_COUNT_LIMIT:
        lut = np.zeros(int(ids[-1]) + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return ids, [lut[labels.astype(np.int64)] for labels in label_maps]
    full = np.concatenate([[0], ids])
    return ids, [np.searchsorted(full, labels.astype(np.int64)) for labels in label_maps]


def count_tuples(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Count the distinct tuples ``(c0[i], c1[i], ...)`` with ``0 <= ck < sizes[k]``.

    Returns the columns of the tuples that occur (sorted lexicographically) and their counts.
    """
    sizes = tuple(int(s) for s in sizes)
    code = np.zeros(len(columns[0]), dtype=np.int64)
    for column, size in zip(columns, sizes):
        code = code * size + column.astype(np.int64)
    total = int(np.prod(sizes, dtype=np.int64))
    if total <= DENSE_COUNT_LIMIT:
        counts = np.bincount(code, minlength=total)
        present = np.flatnonzero(counts)
        counts = counts[present]
    else:
        present, counts = np.unique(code, return_counts=True)
    return tuple(np.asarray(c, dtype=np.int64) for c in np.unravel_index(present, sizes)), counts.astype(np.int64)
