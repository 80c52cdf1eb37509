"""A segmenter that cuts one object in half in chosen frames: the granularity changes SAM makes between views."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mastsam_splat.segmenters import make_segmenter


class CuttingSegmenter:
    """The classical segmenter, except that in the frames ``cut(index)`` selects it cuts object ``object_id``
    of the frames' ground truth (``frame.gt``) into a left and a right half (two automatic segments)."""

    def __init__(self, frames: Sequence, cut: Callable[[int], bool], object_id: int = 2) -> None:
        self.inner = make_segmenter("classical")
        self.frames = frames
        self.cut = cut
        self.object_id = object_id

    def prepare(self, image):
        index = next(i for i, f in enumerate(self.frames) if f.image is image)
        return index, self.inner.prepare(image)

    def auto(self, state):
        index, inner = state
        masks = self.inner.auto(inner)
        if not self.cut(index):
            return masks
        target = self.frames[index].gt == self.object_id
        cols = np.flatnonzero(target.any(axis=0))
        middle = (cols.min() + cols.max() + 1) // 2
        out = []
        for mask in masks:
            seg = mask.segmentation
            if np.count_nonzero(seg & target) > 0.5 * np.count_nonzero(seg):
                for half in (np.s_[:, :middle], np.s_[:, middle:]):
                    piece = np.zeros_like(seg)
                    piece[half] = seg[half]
                    out.append(type(mask)(segmentation=piece, area=int(piece.sum()), score=mask.score))
            else:
                out.append(mask)
        return out

    def prompt(self, state, positive_xy, negative_xy=None):
        return self.inner.prompt(state[1], positive_xy, negative_xy)
