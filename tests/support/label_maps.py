"""Label-map helpers for metric tests: pixel-centre grids and random renumbering of ids."""

from __future__ import annotations

import numpy as np


def grid_xy(height: int, width: int) -> np.ndarray:
    """Pixel centres of every pixel, row-major, [H*W, 2]."""
    xx, yy = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def shuffle_ids(maps: list[np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """Give every view's ids a fresh random numbering (0 stays 0)."""
    rng = np.random.default_rng(seed)
    out = []
    for labels in maps:
        ids = np.unique(labels)
        ids = ids[ids > 0]
        lut = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
        lut[ids] = rng.permutation(np.arange(100, 100 + len(ids)))
        out.append(lut[labels])
    return out
