"""Segment consensus: reconcile the prompted masks with the frame's automatic segments and the correspondences.

Prompted masks follow the points they were given; on their own they slowly drift (a mask that
leaks into a neighbour this frame puts representatives there in the next one) and they absorb
objects entering the view next to them. The frame's automatic segments and the
correspondences from the previous frame correct this:

- votes: every confident correspondence landing in automatic segment ``S`` votes for the id its
  source pixel carried in the previous frame (or for "unlabelled");
- an ``S`` whose labelled votes agree (one id holds at least ``share`` of them) goes entirely to
  that id: the correspondences say where its pixels came from;
- an ``S`` whose votes mostly come from unlabelled pixels, or, with dense correspondences, that
  receives almost none of the votes its size predicts (new content: it just came into view or
  out of occlusion), is released: no id keeps it, so it becomes a new region (or is recognised
  by the 3D memory);
- a segment with too few votes to tell, or any undecided segment when the correspondences are
  sparse, goes to the id its prompted masks give most of it (``snap_share``), so the tracked labels
  take the frame's segment boundaries; optionally (``snap_split_votes``) not when its votes name a second id
  too, with enough votes of its own: then the prompted masks' split stays;
- otherwise (dense votes split between ids) the prompted masks stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional

import numpy as np

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.representatives import match_labels
from mastsam_splat.tracker.segment_table import (
    SegmentTable,
    compact_ids,
    id_segment_table,
    segment_count,
    without_ids,
)
from mastsam_splat.types import Matches


@dataclass
class ConsensusConfig:
    """Thresholds of the segment consensus and of the merging of fragment ids."""

    enabled: bool = True
    """Reconcile prompted masks with the frame's automatic segments through correspondence votes."""
    min_votes: int = 5
    """Fewest correspondence votes for a segment's votes to decide."""
    share: float = 0.75
    """A segment goes to the id holding at least this fraction of its votes."""
    dense_min_density: float = 0.05
    """Correspondences per pixel above which missing votes mark new content (dense matchers only)."""
    new_content_ratio: float = 0.3
    """With dense correspondences, a segment receiving less than this fraction of its expected votes is new content."""
    snap_share: float = 0.5
    """An undecided segment (too few votes, or sparse correspondences) goes to the id holding this fraction of it
    in the prompted masks (> 1 turns this off)."""
    snap_split_votes: Optional[float] = None
    """With it set (e.g. 0.25), an undecided segment whose labelled votes give a second id at least this fraction
    of them (and ``min_votes``) is not snapped: the votes say it spans two ids, so the prompted masks' split stays
    (``None``, the default: every undecided segment snaps)."""
    fragment_merge_frames: int = 3
    """Ids lying inside one automatic segment for this many consecutive frames are merged into the oldest
    (fragments of one object); 0 turns this off."""
    fragment_containment: float = 0.9
    """Fraction of an id's pixels inside one automatic segment for it to count as lying inside it."""
    fragment_evidence_points: int = 8
    """An id absent from the frame counts as lying inside a segment when at least this many pixels of its 3D
    evidence, projected into the frame, fall there (with ``fragment_containment`` of them inside it): the segment
    shows its surface; in frames with a depth map, or with the capture's SfM points (the points the frame observed
    are the ones it sees), only. 0: only ids present in the frame count."""
    retroactive_merge: bool = True
    """A fragment merge also relabels the earlier frames, so the merged ids agree over the whole sequence."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.min_votes >= 1, "tracker.consensus.min-votes", ">= 1", self.min_votes)
        check_fraction(self.share, "tracker.consensus.share")
        check_fraction(self.dense_min_density, "tracker.consensus.dense-min-density")
        check_fraction(self.new_content_ratio, "tracker.consensus.new-content-ratio")
        check_fraction(self.snap_share, "tracker.consensus.snap-share")
        if self.snap_split_votes is not None:
            check_option(
                0 < self.snap_split_votes <= 1, "tracker.consensus.snap-split-votes", "in (0, 1]", self.snap_split_votes
            )
        check_option(
            self.fragment_merge_frames >= 0,
            "tracker.consensus.fragment-merge-frames",
            ">= 0",
            self.fragment_merge_frames,
        )
        check_fraction(self.fragment_containment, "tracker.consensus.fragment-containment")
        check_option(
            self.fragment_evidence_points >= 0,
            "tracker.consensus.fragment-evidence-points",
            ">= 0",
            self.fragment_evidence_points,
        )


@dataclass
class ConsensusResult:
    labels: np.ndarray
    """[H, W] int64 labels after the consensus."""
    assigned: int
    """Segments given to the id their votes agree on."""
    released: int
    """Segments released as new content."""
    target: Optional[np.ndarray] = None
    """[S + 1] the id every pixel of each segment was given (-1: the segment kept its labels); ``None`` when the
    consensus decided nothing (no segments or no correspondences)."""


def segment_votes(
    prev_labels: np.ndarray, auto_labels: np.ndarray, matches: Matches
) -> tuple[np.ndarray, np.ndarray]:
    """Vote table [S + 1, I] (segment x source id index) and the source ids [I] (0 first = unlabelled)."""
    num_segments = segment_count(auto_labels)
    seg = match_labels(auto_labels, matches.xy_b)
    src = match_labels(prev_labels, matches.xy_a)
    if len(src) == 0:
        return np.zeros((num_segments + 1, 1), dtype=np.int64), np.zeros(1, dtype=np.int64)
    ids, src_index = compact_ids(src)
    table = np.bincount(seg * len(ids) + src_index, minlength=(num_segments + 1) * len(ids)).reshape(
        num_segments + 1, len(ids)
    )
    table[0] = 0
    return table, ids


def apply_consensus(
    tracked: np.ndarray,
    auto_labels: np.ndarray,
    prev_labels: np.ndarray,
    matches: Matches,
    config: ConsensusConfig,
    alias: dict[int, int] | None = None,
    counted: SegmentTable | None = None,
) -> ConsensusResult:
    """Labels [H, W] after reconciling ``tracked`` with ``auto_labels`` through the votes of ``matches``.

    ``matches`` should hold the confident correspondences only. ``alias`` maps ids merged away in
    this frame to the id they joined. ``counted``: ``id_segment_table(tracked, auto_labels)`` when the caller has it.
    """
    num_segments = segment_count(auto_labels)
    if num_segments == 0 or len(matches) == 0:
        return ConsensusResult(tracked.astype(np.int64, copy=True), 0, 0)
    labels = tracked.astype(np.int64, copy=False)  # (only read: the result is a new array)
    table, ids = segment_votes(prev_labels, auto_labels, matches)
    if alias:
        ids = np.array([alias.get(int(i), int(i)) for i in ids], dtype=np.int64)
    # the prompted masks' pixels per (id, segment), for snapping; its columns count each segment's pixels
    claimed = None
    if config.snap_share <= 1.0:
        claimed = id_segment_table(labels, auto_labels, num_segments) if counted is None else counted
    if claimed is not None:
        area = claimed.table.sum(axis=0)
    else:
        area = np.bincount(auto_labels.ravel(), minlength=num_segments + 1)
    h, w = auto_labels.shape
    density = len(matches) / float(h * w)
    dense = density >= config.dense_min_density

    unlabelled_votes = table[:, 0]
    labelled = table[:, 1:]
    labelled_votes = labelled.sum(axis=1)
    target = np.full(num_segments + 1, -1, dtype=np.int64)  # -1: keep prompted labels
    uniq = np.unique(ids[1:])
    merged = np.zeros((num_segments + 1, len(uniq)), dtype=np.int64)
    if labelled.shape[1]:
        # Sum votes of ids that now share an id (after aliasing) before taking the winner.
        np.add.at(merged, (slice(None), np.searchsorted(uniq, ids[1:])), labelled)
        best = np.argmax(merged, axis=1)
        best_votes = merged[np.arange(num_segments + 1), best]
        agree = (labelled_votes >= config.min_votes) & (best_votes >= config.share * np.maximum(labelled_votes, 1))
        target[agree] = uniq[best[agree]]
    new_content = (unlabelled_votes >= config.min_votes) & (unlabelled_votes > labelled_votes)
    if dense:
        expected = density * area
        starved = (expected >= 4 * config.min_votes) & (table.sum(axis=1) < config.new_content_ratio * expected)
        new_content |= starved
    target[new_content] = 0
    if claimed is not None:
        # Segments the votes leave undecided follow the prompted masks' plurality id: the tracked labels
        # take the frame's segment boundaries.
        claim_ids, claims = claimed.ids, claimed.table.T  # claims [S + 1, I]
        holder = np.argmax(claims[:, 1:], axis=1) + 1 if len(claim_ids) > 1 else np.zeros(num_segments + 1, np.int64)
        held = claims[np.arange(num_segments + 1), holder] if len(claim_ids) > 1 else np.zeros(num_segments + 1)
        # Where the votes are too few to tell, or the correspondences too sparse for a split of a handful of
        # votes to mean much. Dense votes split between ids mean the prompted split is real.
        undecided = (labelled_votes < config.min_votes) | (not dense)
        if len(uniq) > 1 and config.snap_split_votes is not None:
            # Votes naming two ids (each with enough of them) tell the segment spans both: no snap.
            second = np.sort(merged, axis=1)[:, -2]
            undecided &= ~(
                (second >= config.min_votes) & (second >= config.snap_split_votes * np.maximum(labelled_votes, 1))
            )
        snap = (target < 0) & undecided & (held >= config.snap_share * np.maximum(area, 1)) & (len(claim_ids) > 1)
        target[snap] = claim_ids[holder[snap]]
    target[0] = -1
    change = target[auto_labels]
    labels = np.where(change >= 0, change, labels)
    return ConsensusResult(labels, int(np.count_nonzero(target > 0)), int(np.count_nonzero(target == 0)), target)


class DrawnIds(NamedTuple):
    """Ids drawn on some pixels of a frame (as the 3D evidence projects): the pixels' flat indices and their ids."""

    pixels: np.ndarray
    """[K] flat indices."""
    ids: np.ndarray
    """[K] the id drawn on each (non-zero)."""

    @classmethod
    def of_image(cls, image: np.ndarray) -> "DrawnIds":
        """The non-zero pixels of a label image ``image`` [H, W]."""
        pixels = np.flatnonzero(image)
        return cls(pixels, np.ravel(image).take(pixels))


class FragmentMerger:
    """Merges ids that keep lying inside one automatic segment: fragments of one object.

    An early frame can split an object into several segments, and tracking faithfully keeps
    the split. When, frame after frame, several ids each lie (almost) entirely inside the same
    automatic segment, they are fragments of what the segmenter now sees as one region: after
    ``config.fragment_merge_frames`` consecutive frames the younger ids are merged into the oldest
    one. Waiting out a few frames keeps a one-frame under-segmentation from merging two real objects.
    Frames are consecutive along the view graph: a frame continues the streaks of the frame it was
    matched with (``parent``), so two branches visited in turn do not break each other's streaks.
    An id absent from the frame counts where its 3D evidence projects (``absent``): a segment that
    shows the surfaces of a present id and of an absent one whole holds two fragments, though the
    absent one lost its pixels to the other.
    """

    def __init__(self, config: ConsensusConfig) -> None:
        self.frames = int(config.fragment_merge_frames)
        self.containment = float(config.fragment_containment)
        self._streak: dict[tuple[int, int], int] = {}
        self._by_frame: dict[int, dict[tuple[int, int], int]] = {}
        """Frame -> the streaks it ended with (those its children continue)."""

    def _previous(self, parent: Optional[int], frame: Optional[int]) -> dict[tuple[int, int], int]:
        if frame is None:
            return self._streak
        return self._by_frame.get(parent, {}) if parent is not None else {}

    def _store(self, streak: dict[tuple[int, int], int], frame: Optional[int]) -> None:
        self._streak = streak
        if frame is not None:
            self._by_frame[frame] = streak

    def update(
        self,
        labels: np.ndarray,
        auto_labels: np.ndarray,
        apart: Optional[Callable[[int, int], bool]] = None,
        frame: Optional[int] = None,
        parent: Optional[int] = None,
        absent: Optional[DrawnIds] = None,
        counted: Optional[SegmentTable] = None,
    ) -> dict[int, int]:
        """Record this frame's co-containments; returns the merges due now (younger id -> oldest id).

        ``apart(a, b)`` names pairs that are never merged (pieces an id was split into on purpose). With
        ``frame`` given, streaks continue those of ``parent`` (``None``: a first frame); without it, those of the
        previous call. ``absent``: ids absent from ``labels`` drawn where their 3D evidence projects; each counts
        with the pixels it has there. ``counted``: ``id_segment_table(labels, auto_labels)``
        when the caller has it.
        """
        if self.frames <= 0:
            return {}
        previous = self._previous(parent, frame)
        num_segments = segment_count(auto_labels)
        ids, table = id_segment_table(labels, auto_labels, num_segments) if counted is None else counted
        if absent is not None and num_segments > 0 and len(absent.pixels):
            # the absent ids' pixels only (their rows of the table; the unlabelled row is not read)
            others = without_ids(absent.ids, ids)
            absent_ids, absent_table = id_segment_table(others, np.ravel(auto_labels).take(absent.pixels), num_segments)
            ids, table = np.concatenate([ids, absent_ids[1:]]), np.concatenate([table, absent_table[1:]])
        if len(ids) < 3 or num_segments == 0:
            self._store({}, frame)
            return {}
        area = table.sum(axis=1)
        main = np.argmax(table[:, 1:], axis=1) + 1
        share = table[np.arange(len(ids)), main] / np.maximum(area, 1)
        groups: dict[int, list[int]] = {}
        for k in range(1, len(ids)):
            if share[k] >= self.containment:
                groups.setdefault(int(main[k]), []).append(int(ids[k]))
        streak: dict[tuple[int, int], int] = {}
        due: dict[int, int] = {}
        for members in groups.values():
            if len(members) < 2:
                continue
            oldest = min(members)
            for obj_id in members:
                if obj_id == oldest or (apart is not None and apart(obj_id, oldest)):
                    continue
                key = (obj_id, oldest)
                streak[key] = previous.get(key, 0) + 1
                if streak[key] >= self.frames:
                    due[obj_id] = oldest
                    del streak[key]
        self._store(streak, frame)
        return due
