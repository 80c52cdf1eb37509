"""Which pixels of a label image hold one of a few ids: one table look-up per pixel.

``np.isin(labels, ids)`` makes several passes over the image (range checks, an offset, a gather); the label
images and evidence images of the tracker hold small non-negative ids, so a boolean table over the ids, read
once per pixel, gives the same mask in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def ids_mask(image: np.ndarray, ids: Iterable[int]) -> np.ndarray:
    """Boolean mask, shaped as the integer ``image``, of its elements equal to one of the positive ``ids``
    (``np.isin(image, ids)``); ids below 1 fall back to ``np.isin``."""
    wanted = np.asarray(list(ids), dtype=np.int64)
    if len(wanted) == 0:
        return np.zeros(np.shape(image), dtype=bool)
    if wanted.min() < 1:
        return np.isin(image, wanted)
    table = np.zeros(int(wanted.max()) + 2, dtype=bool)  # the last entry stands for every larger value
    table[wanted] = True
    # clipping sends negatives to entry 0 (id 0, not wanted) and values above the ids to the last entry
    return np.take(table, image, mode="clip")
