"""The object level above the ids: ids the segmenter shows as pieces of one region form one object.

The ids follow the finest cut the segmenter makes consistently (parts, see refine.py), so a
whole object can carry several ids. Two kinds of evidence put ids into one object: an id split
into pieces (``refine``) leaves its pieces in the object it formed, and ids that each lie
(almost) entirely inside one automatic segment of a frame, in ``frames`` visited frames and in
``share`` of the frames showing both, join one object: the segmenter keeps seeing them as one
region (an object it merges with its surroundings in a frame or two stays apart). Objects grow by
average linkage: two objects join only when, over all pairs of their ids that share frames, the
ids lay inside one segment in ``share`` of those frames, so a chain of small ids, each seen once
or twice inside a segment with its neighbours, cannot join two large surfaces the segmenter keeps
apart into one catch-all object. The test runs after the sequence, on every visited frame's finished
labels and its automatic segments (kept for it): frames are redrawn after the sequence (split
families, merges), so the parts the segment consensus gave to one id while the frame was labelled
show there as the segmenter cut them, and merged ids count each frame once. Each object is named by its oldest (smallest) id, so an id that was
never grouped is its own object and the object level of a run without grouping equals its ids.
A face merged into its solid's id after the sequence (creases.py) joins that id's object; its own links are
dropped first (``forget``), so a face that strayed into a neighbour's segment does not bring the neighbour along.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Optional

import numpy as np

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.segment_table import SegmentTable, id_segment_table, segment_count


@dataclass
class HierarchyConfig:
    """How ids are grouped into objects (the object level written next to the ids)."""

    frames: int = 2
    """Visited frames in which two ids must lie inside one automatic segment to join one object (0: only the
    pieces of split ids are grouped)."""
    containment: float = 0.9
    """Fraction of an id's pixels inside the segment for it to count as lying inside it."""
    share: float = 0.1
    """Fraction of the frames showing both ids in which they must lie inside one segment to join one object: the
    segmenter keeps seeing them as one region, rather than once in a while merging an object into its
    surroundings."""
    linkage: Literal["average", "single"] = "average"
    """How objects of several ids join: ``average`` when their ids, pooled over every pair that shares frames, lay
    inside one segment in ``share`` of those frames; ``single`` when any one pair of ids qualifies (a chain of
    pairs can then join surfaces the segmenter never shows as one region)."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.frames >= 0, "tracker.hierarchy.frames", ">= 0", self.frames)
        check_fraction(self.containment, "tracker.hierarchy.containment")
        check_fraction(self.share, "tracker.hierarchy.share")


def contained_pairs(
    labels: np.ndarray,
    auto: np.ndarray,
    containment: float,
    min_area: int,
    counted: Optional[SegmentTable] = None,
) -> set[tuple[int, int]]:
    """Pairs (smaller id, larger id) of ids of ``labels`` [H, W] that both lie inside one segment of ``auto``
    [H, W] (at least ``containment`` of each id's pixels, and ``min_area`` pixels); ``counted``: their
    ``id_segment_table`` when the caller has it."""
    num_segments = segment_count(auto)
    if num_segments == 0:
        return set()
    ids, table = id_segment_table(labels, auto, num_segments) if counted is None else counted
    if len(ids) < 3:
        return set()
    main = np.argmax(table[:, 1:], axis=1) + 1
    inside = table[np.arange(len(ids)), main]
    keep = (inside >= containment * np.maximum(table.sum(axis=1), 1)) & (inside >= min_area)
    keep[0] = False
    out: set[tuple[int, int]] = set()
    # the kept ids grouped by segment (ids ascend, a stable sort keeps them so); segments with one id hold no pair
    kept = np.flatnonzero(keep)
    kept = kept[np.argsort(main[kept], kind="stable")]
    segment = main[kept]
    bounds = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1], True])
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if end - start > 1:
            members = sorted(ids[kept[start:end]].tolist())
            out.update((a, b) for n, a in enumerate(members) for b in members[n + 1 :])
    return out


class ObjectGroups:
    """Pairs of ids known to belong to one object, kept through id merges."""

    def __init__(self, config: HierarchyConfig | None = None) -> None:
        self.config = config or HierarchyConfig()
        self._pairs: set[tuple[int, int]] = set()
        self._seen: dict[tuple[int, int], set[int]] = {}
        """Pairs found inside one segment -> the visited frames they were found in (kept as frames, not counts, so
        that when ids merge the pairs they become count each frame once)."""

    def observe(self, pairs: set[tuple[int, int]], frame: int) -> None:
        """Record one frame's pairs lying inside one segment; pairs seen in ``config.frames`` frames (and in
        ``config.share`` of the frames showing both, see ``object_of``) join."""
        if self.config.frames <= 0:
            return
        for pair in pairs:
            self._seen.setdefault(pair, set()).add(frame)

    def observe_frames(
        self, frames: Iterable[tuple[int, Optional[np.ndarray], Optional[np.ndarray]]], min_area: int
    ) -> None:
        """Record afresh, for each ``(frame, labels, segments)`` (a visited frame's finished labels and its automatic
        segments, [H, W] each; ``None``: not kept), the pairs of ids lying inside one segment (``contained_pairs``,
        ids of ``min_area`` pixels or more)."""
        self._seen = {}
        for frame, labels, auto in frames:
            if labels is None or auto is None:
                continue
            self.observe(contained_pairs(labels, auto, self.config.containment, min_area), frame)

    def join(self, a: int, b: int) -> None:
        """Record that ids ``a`` and ``b`` belong to one object."""
        if a != b:
            self._pairs.add((min(a, b), max(a, b)))

    def forget(self, ids: Iterable[int]) -> None:
        """Drop every pair involving one of ``ids`` (ids about to be merged into another without bringing their
        own objects along)."""
        gone = set(int(i) for i in ids)
        self._pairs = {pair for pair in self._pairs if not gone.intersection(pair)}
        self._seen = {pair: frames for pair, frames in self._seen.items() if not gone.intersection(pair)}

    def relabel(self, lut: np.ndarray) -> None:
        """Follow an id mapping (merges)."""

        def mapped(pair: tuple[int, int]) -> tuple[int, int]:
            a, b = (int(lut[i]) if i < len(lut) else i for i in pair)
            return min(a, b), max(a, b)

        pairs, self._pairs = self._pairs, set()
        for pair in pairs:
            self.join(*mapped(pair))
        seen, self._seen = self._seen, {}
        for pair, frames in seen.items():
            a, b = mapped(pair)
            if a != b:  # (ids that became one: the frames of both pairs, each once)
                self._seen[(a, b)] = self._seen.get((a, b), set()) | frames

    def together(self, frames_of: Optional[dict[int, set[int]]] = None) -> set[tuple[int, int]]:
        """Pairs seen inside one segment often enough to join: in ``config.frames`` frames and, given the frames
        each id shows in (``frames_of``), in ``config.share`` of the frames showing both."""
        out = set()
        for (a, b), frames in self._seen.items():
            n = len(frames)
            if self.config.frames <= 0 or n < self.config.frames:
                continue
            if frames_of is not None:
                both = len(frames_of.get(a, set()) & frames_of.get(b, set()))
                if n < self.config.share * both:
                    continue
            out.add((a, b))
        return out

    def object_of(self, present: Iterable[int], frames_of: Optional[dict[int, set[int]]] = None) -> dict[int, int]:
        """Id -> object id (the smallest id of its object) for every grouped id in ``present`` that is not its
        object's name (``frames_of``: the frames each id shows in, see ``together``). The split pairs join first;
        the pairs seen together then join, strongest first (largest share of their common frames), under the
        ``config.linkage`` test of the two objects they would join."""
        root: dict[int, int] = {}
        members: dict[int, list[int]] = {}

        def find(i: int) -> int:
            while root.get(i, i) != i:
                i = root[i]
            return i

        def union(ra: int, rb: int) -> None:
            low, high = min(ra, rb), max(ra, rb)
            root[high] = low
            members[low] = members.pop(low, [low]) + members.pop(high, [high])

        for a, b in sorted(self._pairs):
            ra, rb = find(a), find(b)
            if ra != rb:
                union(ra, rb)
        for a, b in self._by_strength(self.together(frames_of), frames_of):
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            if self.config.linkage == "single" or frames_of is None or self._linked(
                members.get(ra, [ra]), members.get(rb, [rb]), frames_of
            ):
                union(ra, rb)
        return {i: find(i) for i in sorted(set(present)) if find(i) != i}

    def _by_strength(
        self, pairs: set[tuple[int, int]], frames_of: Optional[dict[int, set[int]]]
    ) -> list[tuple[int, int]]:
        """``pairs`` by decreasing share of their common frames spent inside one segment (then count, then ids)."""

        def key(pair: tuple[int, int]) -> tuple[float, int, tuple[int, int]]:
            seen = self._times_seen(pair)
            both = _common_frames(pair, frames_of) if frames_of is not None else 0
            return (-(seen / both) if both else 0.0, -seen, pair)

        return sorted(pairs, key=key)

    def _times_seen(self, pair: tuple[int, int]) -> int:
        """Visited frames in which the ids of ``pair`` lay inside one segment."""
        return len(self._seen.get(pair, ()))

    def _linked(self, group_a: list[int], group_b: list[int], frames_of: dict[int, set[int]]) -> bool:
        """Whether the ids of two objects, pooled over every cross pair that shares frames, lay inside one segment
        in ``config.share`` of those frames."""
        together = common = 0
        for a in group_a:
            for b in group_b:
                pair = (min(a, b), max(a, b))
                both = _common_frames(pair, frames_of)
                if both:
                    together += self._times_seen(pair)
                    common += both
        return common == 0 or together >= self.config.share * common


def _common_frames(pair: tuple[int, int], frames_of: dict[int, set[int]]) -> int:
    """Frames showing both ids of ``pair``."""
    return len(frames_of.get(pair[0], set()) & frames_of.get(pair[1], set()))
