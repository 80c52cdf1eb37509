"""Unmasked-region initialisation: automatic segments that tracking did not explain.

Each automatic segment of the new frame is compared with the tracked labels:
- mostly uncovered (uncovered fraction >= ``min_uncovered_fraction``): its uncovered pixels are
  a candidate new object (a new id, unless the 3D memory recognises it);
- otherwise its uncovered pixels join the tracked id that dominates its covered part (the
  segment says they belong together), which closes the small gaps that prompted masks leave
  at object borders.

With the previous frame's label image carried into the frame (sparse correspondences, see
propagation.py), a mostly uncovered segment that is where one carried id went joins that id
(content labelled a frame ago whose prompt failed is not new), and the gaps of segments no
tracked id dominates take their carried id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.segment_table import (
    SegmentCodes,
    SegmentTable,
    id_segment_table,
    segment_codes,
    segment_count,
)


@dataclass
class NewRegionsConfig:
    """Which automatic segments start new ids and which fill gaps of tracked ids."""

    min_uncovered_fraction: float = 0.6
    """An automatic mask at least this uncovered by tracked ids starts a new id (or a re-identified one)."""
    fill_min_dominance: float = 0.6
    """Uncovered pixels of an automatic mask join the tracked id holding at least this fraction of its
    covered pixels (> 1 turns gap filling off)."""
    carried_min_share: float = 0.5
    """A mostly uncovered automatic mask joins the id the correspondences carry from the previous frame onto
    this fraction of its uncovered pixels or more, when this fraction of that id's carried pixels lies in the
    mask too, instead of starting a new id: content tracked a frame ago is not new, while a mask cut out of a
    larger id stays new (> 1 turns this off)."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_fraction(self.min_uncovered_fraction, "tracker.new-regions.min-uncovered-fraction")
        check_fraction(self.fill_min_dominance, "tracker.new-regions.fill-min-dominance")
        check_option(
            self.carried_min_share > 0, "tracker.new-regions.carried-min-share", "> 0", self.carried_min_share
        )


@dataclass
class RegionSplit:
    """Result of comparing tracked labels with automatic segments."""

    labels: np.ndarray
    """[H, W] int64 tracked labels with gaps filled from dominated segments (a new array the caller may write into)."""
    region_ids: list[int]
    """Segment numbers of the candidate regions, largest first."""
    filled_pixels: int
    """How many pixels the gap filling assigned to tracked ids."""
    gaps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """[G] flat indices of the pixels the tracked labels left at 0: the only pixels ``labels`` and the new ids
    change."""
    gap_regions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """[G] the candidate region of each gap pixel: its automatic segment number when that segment is a candidate,
    0 otherwise (the regions lie in the gaps: these values are all of them)."""
    is_new: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=bool))
    """[S + 1] whether each automatic segment is a candidate region."""
    segment_fill: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    """[S + 1] the id every gap pixel of each segment took (0: none, or pixel by pixel, see ``carried_gaps``)."""
    carried_gaps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """[K] flat indices of the gap pixels given the id carried onto them, pixel by pixel (in segments neither new
    nor filled whole); ``labels`` holds their ids (0 where none was carried)."""

    @property
    def regions(self) -> np.ndarray:
        """[H, W] int64 candidate new regions: the automatic segment number on their pixels, 0 elsewhere."""
        out = np.zeros(self.labels.shape, dtype=np.int64)
        out.reshape(-1)[self.gaps] = self.gap_regions
        return out

    def regions_at(self, segments: np.ndarray, tracked: np.ndarray) -> np.ndarray:
        """The candidate region [N] at pixels whose automatic segments are ``segments`` [N] and whose tracked ids
        (before the gaps were filled) are ``tracked`` [N]: ``regions`` read there, without drawing it."""
        segments = np.asarray(segments, dtype=np.int64)
        is_new = np.zeros(max(len(self.is_new), int(segments.max(initial=0)) + 1), dtype=bool)
        is_new[: len(self.is_new)] = self.is_new
        return np.where(is_new.take(segments) & (np.asarray(tracked) == 0), segments, 0)


def split_regions(
    labels: np.ndarray,
    auto_labels: np.ndarray,
    config: NewRegionsConfig,
    min_area: int,
    carried: Optional[np.ndarray] = None,
    carried_counted: Optional[SegmentCodes] = None,
    counted: Optional[SegmentTable] = None,
) -> RegionSplit:
    """Find new-object candidates and fill tracked gaps.

    Args:
        labels: [H, W] tracked labels of the new frame (0 = uncovered).
        auto_labels: [H, W] disjoint automatic segments (0 = none, 1..n).
        config: how uncovered a segment must be to be a candidate, and how dominant a tracked id
            must be for the segment's uncovered pixels to join it.
        min_area: smallest candidate, in uncovered pixels.
        carried: [H, W] the previous frame's ids carried into this frame by the correspondences (0 = none):
            a candidate whose uncovered pixels mostly carry one id joins that id.
        carried_counted: ``segment_codes(carried, auto_labels)`` when the caller has it.
        counted: ``id_segment_table(labels, auto_labels)`` when the caller has it.
    """
    labels = labels.astype(np.int64, order="C", copy=True)
    num_segments = segment_count(auto_labels)
    if num_segments == 0:
        return RegionSplit(labels, [], 0)
    tracked_ids, by_id = id_segment_table(labels, auto_labels, num_segments) if counted is None else counted
    n_cols = len(tracked_ids)
    table = by_id.T.copy()  # [S + 1, I]
    table[0] = 0
    area = table.sum(axis=1)
    uncovered = table[:, 0]
    covered = area - uncovered
    with np.errstate(divide="ignore", invalid="ignore"):
        uncovered_fraction = np.where(area > 0, uncovered / np.maximum(area, 1), 0.0)
    is_new = (uncovered_fraction >= config.min_uncovered_fraction) & (uncovered >= min_area)
    is_new[0] = False

    fill_id = np.zeros(num_segments + 1, dtype=np.int64)
    if n_cols > 1:
        dominant = np.argmax(table[:, 1:], axis=1) + 1
        dominance = np.where(covered > 0, table[np.arange(len(table)), dominant] / np.maximum(covered, 1), 0.0)
        can_fill = (~is_new) & (uncovered > 0) & (covered > 0) & (dominance >= config.fill_min_dominance)
        can_fill[0] = False
        fill_id[can_fill] = tracked_ids[dominant[can_fill]]

    uncovered_px = np.flatnonzero(labels == 0)  # (flat indices: found once for the reads and writes below)
    if carried is not None and config.carried_min_share <= 1.0 and np.any(is_new):
        # (segment, carried id) per pixel, and the pixels of each pair
        counted = segment_codes(carried, auto_labels, num_segments) if carried_counted is None else carried_counted
        carried_ids, code, in_segment = counted
        if len(carried_ids) > 1:
            size = (num_segments + 1) * len(carried_ids)
            # the gaps' pixels only: the votes for "no id carried" (column 0) are never read
            votes = np.bincount(code.take(uncovered_px), minlength=size).reshape(num_segments + 1, len(carried_ids))
            best = np.argmax(votes[:, 1:], axis=1) + 1
            rows = np.arange(num_segments + 1)
            share = votes[rows, best] / np.maximum(uncovered, 1)
            # The segment is where that id went (most of its carried pixels), not a part of a larger id.
            extent = in_segment[rows, best] / np.maximum(in_segment[1:].sum(axis=0)[best], 1)
            known = is_new & (share >= config.carried_min_share) & (extent >= config.carried_min_share)
            fill_id[known] = carried_ids[best[known]]
            is_new &= ~known

    seg_of_uncovered = np.ravel(auto_labels).take(uncovered_px)
    fills = fill_id.take(seg_of_uncovered)
    in_new = is_new.take(seg_of_uncovered)
    carried_gaps = np.zeros(0, dtype=np.int64)
    if carried is not None and config.carried_min_share <= 1.0:
        # Gaps of segments that are neither new nor held by one id keep the id carried onto them.
        undecided = np.flatnonzero((fills == 0) & ~in_new & (seg_of_uncovered > 0))
        carried_gaps = uncovered_px.take(undecided)
        fills[undecided] = np.ravel(carried).take(carried_gaps)
    labels.reshape(-1)[uncovered_px] = fills
    gap_regions = np.where(in_new, seg_of_uncovered, 0)
    region_ids = sorted(np.flatnonzero(is_new).tolist(), key=lambda s: (-uncovered[s], s))
    filled = int(np.count_nonzero(fills))
    return RegionSplit(labels, region_ids, filled, uncovered_px, gap_regions, is_new, fill_id, carried_gaps)
