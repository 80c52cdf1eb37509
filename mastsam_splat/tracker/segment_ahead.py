"""The automatic segmentation of the frames ahead, run in a worker thread while the tracker works on the current one.

Each frame's automatic masks depend on its image alone, and the visiting order is known before the first frame, so
the segmenter (SAM's encoder and mask generator on a GPU, or native image code on a CPU core) can run ahead on the
next frames while the tracker propagates, prompts and votes on this one: on a machine with a second core (or a GPU)
the tracker's own work then overlaps the segmentation instead of adding to it. Only segmenters that declare it safe
(``concurrent = True``: ``prepare`` and ``auto`` of one image may run while ``prompt`` runs on another image's state)
run ahead; others, and ``ahead = 0``, segment each frame in turn. Either way every frame gets the same masks.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from mastsam_splat.types import Frame, Mask


@dataclass
class Segmented:
    """One frame's prepared segmenter state and its automatic masks."""

    state: Any
    masks: list[Mask]
    seconds: float
    """Time the segmentation took (in the worker when it ran ahead)."""


def segment_frame(segmenter: Any, frame: Frame) -> Segmented:
    """``segmenter.prepare`` and ``segmenter.auto`` of ``frame``'s image."""
    start = time.perf_counter()
    state = segmenter.prepare(frame.image)
    masks = segmenter.auto(state)
    return Segmented(state, masks, time.perf_counter() - start)


def runs_concurrently(segmenter: Any) -> bool:
    """Whether ``segmenter`` declares that one image's ``prepare`` and ``auto`` may run in another thread while
    ``prompt`` runs on another image's state."""
    return getattr(segmenter, "concurrent", False) is True


class SegmentationAhead:
    """Hands out each frame's :class:`Segmented` in the visiting ``order``, with up to ``ahead`` frames after the one
    asked for being segmented in one worker thread meanwhile (``ahead = 0`` or a segmenter that does not run
    concurrently: each frame is segmented when asked for). A context manager: leaving it cancels the frames not yet
    started and waits for the one in progress, so no work outlives the run (an error or an interrupt included)."""

    def __init__(self, segmenter: Any, frames: Sequence[Frame], order: Sequence[int], ahead: int) -> None:
        self.segmenter = segmenter
        self.frames = frames
        self.order = [int(t) for t in order]
        self.ahead = int(ahead) if runs_concurrently(segmenter) else 0
        self._pending: dict[int, Future[Segmented]] = {}
        self._next = 0  # position in ``order`` of the next frame to submit
        self._taken = 0  # position in ``order`` of the next frame to hand out
        self._executor: Optional[ThreadPoolExecutor] = None

    def __enter__(self) -> "SegmentationAhead":
        if self.ahead > 0:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mastsam-segment")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()

    def take(self, t: int) -> Segmented:
        """Frame ``t``'s segmentation (``t`` is the next frame of the order not taken yet); the frames after it are
        queued for the worker. An error of the segmenter on frame ``t`` is raised here."""
        if self._executor is None:
            return segment_frame(self.segmenter, self.frames[t])
        position = self._taken
        if position >= len(self.order) or self.order[position] != t:
            raise ValueError(f"frame {t} is not the next frame of the visiting order")
        self._taken += 1
        while self._next < len(self.order) and self._next <= position + self.ahead:
            frame = self.frames[self.order[self._next]]
            self._pending[self.order[self._next]] = self._executor.submit(segment_frame, self.segmenter, frame)
            self._next += 1
        return self._pending.pop(t).result()
