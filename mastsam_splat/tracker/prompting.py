"""Point prompts for re-segmenting tracked objects in the next frame.

An id is prompted with its own tracked points as positives and, as negatives, the tracked
points of other ids that lie near it: they tell the segmenter where the neighbouring objects
are, so the mask stops at their border instead of swallowing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mastsam_splat.errors import check_option
from mastsam_splat.tracker.propagation import TrackedPoints
from mastsam_splat.types import Mask


class PromptableSegmenter(Protocol):
    """The part of the segmenter protocol that prompting uses."""

    def prompt(self, state: Any, positive_xy: np.ndarray, negative_xy: np.ndarray) -> Mask: ...


@dataclass
class PromptingConfig:
    """Which points prompt the segmenter for each tracked id."""

    negative_radius: float = 0.2
    """Other ids' points within this distance (fraction of the image diagonal) of an id's positives are its negatives."""
    max_negatives: int = 24
    """Most negative points per prompt."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.negative_radius >= 0, "tracker.prompting.negative-radius", ">= 0", self.negative_radius)
        check_option(self.max_negatives >= 0, "tracker.prompting.max-negatives", ">= 0", self.max_negatives)


_TABLE_ROWS = 256
"""Rows (tracked points) of the point-distance table of ``build_prompts`` computed at once."""


@dataclass
class Prompt:
    """Point prompts of one id."""

    positive: np.ndarray
    """[P, 2] float pixel positions inside the object."""
    negative: np.ndarray
    """[Q, 2] float pixel positions on other objects nearby."""


def build_prompts(
    tracked: dict[int, TrackedPoints], config: PromptingConfig, image_size: tuple[int, int]
) -> dict[int, Prompt]:
    """Prompts for every id that has at least one tracked point.

    Negatives of an id are other ids' tracked points within ``config.negative_radius`` (of the
    diagonal of an image of ``image_size`` (width, height)) of one of its positives, the
    ``config.max_negatives`` nearest of them.
    """
    ids = [i for i, t in tracked.items() if len(t.points)]
    if not ids:
        return {}
    negative_radius = config.negative_radius * float(np.hypot(*image_size))
    max_negatives = config.max_negatives
    all_points = np.concatenate([tracked[i].points for i in ids]).astype(np.float64, copy=False)
    sizes = [len(tracked[i].points) for i in ids]
    chosen: list[np.ndarray] = []  # each id's negatives: indices into all_points, nearest first
    if max_negatives > 0 and len(ids) > 1:
        nearest = np.sqrt(_nearest_sq(all_points, sizes))  # [ids, points]
        owner = np.repeat(np.arange(len(ids)), sizes)
        near = (nearest <= negative_radius) & (owner[None, :] != np.arange(len(ids))[:, None])
        # Per id, its near points by distance (stable: the earlier point first on ties), the others after them.
        order = np.argsort(np.where(near, nearest, np.inf), axis=1, kind="stable")[:, :max_negatives]
        count = np.minimum(np.count_nonzero(near, axis=1), max_negatives).tolist()
        chosen = [row[:c] for row, c in zip(order, count)]
    prompts: dict[int, Prompt] = {}
    for n, obj_id in enumerate(ids):
        positive = tracked[obj_id].points.astype(np.float64)
        negative = all_points[chosen[n]] if chosen and len(chosen[n]) else np.zeros((0, 2))
        prompts[obj_id] = Prompt(positive=positive, negative=negative)
    return prompts


def _nearest_sq(points: np.ndarray, sizes: list[int]) -> np.ndarray:
    """[G, P] squared distance from each of ``points`` [P, 2] to the nearest point of each group, the groups being
    consecutive runs of ``sizes`` points: the [rows, P] tables of several groups at once, about ``_TABLE_ROWS`` rows
    at a time (bounded memory however many points are tracked); x and y differences apart, summed as x + y."""
    out = np.empty((len(sizes), len(points)))
    x = np.ascontiguousarray(points[:, 0])
    y = np.ascontiguousarray(points[:, 1])
    ends = np.cumsum(sizes).tolist()
    first = 0
    while first < len(sizes):
        start = ends[first] - sizes[first]
        last = first + 1
        while last < len(sizes) and ends[last] - start <= _TABLE_ROWS:
            last += 1
        dx = x[None, :] - x[start : ends[last - 1], None]
        dx *= dx
        dy = y[None, :] - y[start : ends[last - 1], None]
        dy *= dy
        dx += dy
        runs = [ends[g] - sizes[g] - start for g in range(first, last)]  # first row of each group in the block
        out[first:last] = np.minimum.reduceat(dx, runs, axis=0)
        first = last
    return out


def prompt_masks(segmenter: PromptableSegmenter, state: Any, prompts: dict[int, Prompt]) -> dict[int, Mask]:
    """One mask per id from its prompts, in id order."""
    return {obj_id: segmenter.prompt(state, p.positive, p.negative) for obj_id, p in sorted(prompts.items())}
