"""Segmenters that change the classical segmenter's answers in chosen frames of a sequence with ground truth:
cutting one object in half (the granularity changes SAM makes between views) or leaking a prompt into the
background."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from mastsam_splat.segmenters import make_segmenter


class FrameSegmenter:
    """The classical segmenter, with each frame's state carrying the frame's index in ``frames`` (whose ``gt``
    the subclasses read)."""

    def __init__(self, frames: Sequence) -> None:
        self.inner = make_segmenter("classical")
        self.frames = frames

    def prepare(self, image):
        index = next(i for i, f in enumerate(self.frames) if f.image is image)
        return index, self.inner.prepare(image)

    def auto(self, state):
        return self.inner.auto(state[1])

    def prompt(self, state, positive_xy, negative_xy=None):
        return self.inner.prompt(state[1], positive_xy, negative_xy)


class CuttingSegmenter(FrameSegmenter):
    """In the frames ``cut(index)`` selects, object ``object_id`` of the frames' ground truth (``frame.gt``) is cut
    into a left and a right half (two automatic segments)."""

    def __init__(self, frames: Sequence, cut: Callable[[int], bool], object_id: int = 2) -> None:
        super().__init__(frames)
        self.cut = cut
        self.object_id = object_id

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


class LeakingSegmenter(FrameSegmenter):
    """In frame ``leak_frame`` a prompt on object 1 of the ground truth returns object 1 with the background around
    it (the prompt leaks into the background segment)."""

    def __init__(self, frames: Sequence, leak_frame: int) -> None:
        super().__init__(frames)
        self.leak_frame = leak_frame

    def prompt(self, state, positive_xy, negative_xy=None):
        index, inner = state
        gt = self.frames[index].gt
        cols, rows = positive_xy[:, 0].astype(int), positive_xy[:, 1].astype(int)
        if index == self.leak_frame and len(positive_xy) and np.mean(gt[rows, cols] == 1) > 0.5:
            leaked = (gt == 0) | (gt == 1)
            return type(self.inner.prompt(inner, positive_xy, negative_xy))(segmentation=leaked)
        return self.inner.prompt(inner, positive_xy, negative_xy)
