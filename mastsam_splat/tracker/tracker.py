"""The MastSAM tracker: multi-view-consistent label images from a segmenter and a matcher.

Frames are visited along the view graph (view_order.py: a spanning tree of view overlap; each
frame is matched with its tree parent, an already-visited frame) or in file order; label images
stay indexed by the given order. The first frame gets the segmenter's automatic masks, made
disjoint, as ids ``1..n``. Each next frame:
1. correspondences with the parent frame (matcher);
2. representatives of every id (K-Means over its confident correspondences);
3. propagation of the representatives through the correspondences;
4. re-prompting: the id's tracked points as positives, nearby points of other ids as negatives;
5. rejection of ids that lost their points, whose mask misses its prompts or leaked far beyond the id;
6. overlap filtering (contested pixels by prompt distance and score) and near-duplicate merging,
   then the segment consensus (consensus.py): the prompted masks are reconciled with the frame's
   automatic segments through the correspondences' votes, and new content is released; the 3D
   evidence of every id, projected into the frame, renames ids the chain carried wrongly, labels
   uncovered segments of absent ids and (optionally) splits segments holding several known ids
   (anchor.py);
7. unmasked-region initialisation: automatic segments nobody covers become new ids unless the 3D
   memory recognises an earlier id; the memory also gives back segments an id absorbed from a
   remembered object, and ids that keep lying inside one segment are merged (fragments);
8. optional granularity refinement: ids the automatic segments keep cutting into pieces become one
   id per piece, in every frame; a piece on the 3D evidence of an absent member of its family takes
   that member's id (refine.py).
Ids whose 3D evidence lies on an older id's are merged in every frame as soon as it shows (anchor.py).
Above the ids, an object level groups the pieces of split ids and ids one automatic segment keeps
holding (hierarchy.py), without merging them.
After the last frame, ids that never share a frame but share 3D voxels are merged (consolidate.py): the pieces
of each split family first, before the family's pixels are spread over every frame, then all ids; before the
merge over all ids, the segments of every frame without a depth map are checked again against the completed 3D
evidence (anchor.py, ``retroactive``). Last, ids that meet along a convex edge of continuous depth in several
frames with a depth map, the faces of one solid a colour segmenter cut apart, are merged (creases.py).
``mode="independent"`` is the per-view baseline: automatic masks of every frame with fresh ids.
Each step's parameters are a config in the step's module; ``TrackerConfig`` (config.py) nests them, and a run
gives back a ``TrackResult`` with a ``FrameReport`` per frame (results.py).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Literal, Optional, Sequence

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.tracker.anchor import (
    anchor_labels,
    apply_segment_changes,
    evidence_merges,
    reassign_segments,
    segment_changes,
)
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.consensus import DrawnIds, FragmentMerger, apply_consensus
from mastsam_splat.tracker.consolidate import consolidation_merges, presence_from_counts, voxel_centres
from mastsam_splat.tracker.creases import CreaseTally, frame_edges
from mastsam_splat.tracker.evidence import AnchorEvidence, pair_counts
from mastsam_splat.tracker.evidence_image import project_evidence
from mastsam_splat.tracker.hierarchy import ObjectGroups
from mastsam_splat.tracker.jumps import piece_strengths, split_jumps, split_new_surface
from mastsam_splat.tracker.label_store import LabelStore
from mastsam_splat.tracker.memory import (
    VoxelMemory,
    WeightedVoxelMemory,
    auto_voxel_size,
    check_targets,
    nearest_point_cells,
    unique_pairs,
)
from mastsam_splat.tracker.new_regions import RegionSplit, split_regions
from mastsam_splat.tracker.overlap import auto_label_image, merge_duplicates, resolve_overlaps
from mastsam_splat.tracker.parts3d import (
    SegmentCooccurrence,
    frame_names,
    part_regions,
    region_names,
    regions_apart,
    renamed_objects,
    segment_regions,
)
from mastsam_splat.tracker.pointcloud import LabelledPointCloud
from mastsam_splat.tracker.points3d import (
    FramePoints,
    PairChain,
    choose_source,
    depth_grid_step,
    depth_points,
    matched_points,
    observed_points,
    point_labels,
    triangulated_points,
)
from mastsam_splat.tracker.refine import (
    Refiner,
    evidence_holder,
    families_labels,
    reused_members,
    split_all,
    split_pieces,
)
from mastsam_splat.tracker.prompting import build_prompts, prompt_masks
from mastsam_splat.tracker.propagation import (
    carry_labels,
    keep_carried,
    propagate_representatives,
    supported_carry,
)
from mastsam_splat.tracker.rejection import lost_after_prompting, lost_before_prompting
from mastsam_splat.tracker.segment_ahead import SegmentationAhead, segment_frame
from mastsam_splat.tracker.segment_table import (
    SegmentCodes,
    SegmentTable,
    gaps_given,
    id_segment_table,
    pixels_changed,
    segment_codes,
    segment_count,
    segments_given,
)
from mastsam_splat.tracker.representatives import select_representatives
from mastsam_splat.tracker.results import FrameReport, TrackResult
from mastsam_splat.tracker.view_order import ViewOrder, sequence_order, view_order
from mastsam_splat.types import Camera, Frame, Matches

_POINT_KINDS: dict[str, Literal["dense", "tracks", "sparse"]] = {"depth": "dense", "sfm": "tracks"}
"""Consolidation settings per 3D point source (``ConsolidationConfig.for_points``; any other source: sparse)."""
MAX_ID = int(np.iinfo(np.uint16).max)
MEMORY_SAMPLE = 128
"""3D points per segment looked up in the memory (a random sample estimates the shares well enough)."""
RECHECK_PIXELS = 400_000
"""Pixels of a frame the evidence votes on when frames are checked again after the sequence, within a factor of
four (larger frames are subsampled on a regular grid: the votes are counts over segments, which a subsample
estimates well)."""


def depth_map(frame: Frame) -> Optional[np.ndarray]:
    """The frame's depth map, or ``None`` when it has none (missing or all zero)."""
    return frame.depth if frame.depth is not None and np.any(frame.depth > 0) else None


def _sample_per_group(group: np.ndarray, wanted: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Indices of at most ``cap`` random elements of each group in ``wanted`` (``group`` [N] int labels)."""
    wanted = np.asarray(wanted)
    # Segment numbers: 16-bit labels, found by one table look-up and sorted by a radix sort (the stable sort of 16-bit
    # keys: the same order as on any other type, in linear time).
    narrow = (
        len(group) > 0
        and len(wanted) > 0
        and min(int(group.min()), int(wanted.min())) >= 0
        and max(int(group.max()), int(wanted.max())) <= np.iinfo(np.uint16).max
    )
    if narrow:
        member = np.zeros(max(int(group.max()), int(wanted.max())) + 1, dtype=bool)
        member[wanted] = True
        index = np.flatnonzero(member[group])
    else:
        index = np.flatnonzero(np.isin(group, wanted))
    if len(index) == 0:
        return index
    index = index[np.random.default_rng(seed).permutation(len(index))]
    keys = group[index]
    order = np.argsort(keys.astype(np.uint16) if narrow else keys, kind="stable")
    index = index[order]
    g = group[index]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    rank = np.arange(len(index)) - np.repeat(starts, np.diff(np.r_[starts, len(index)]))
    return np.sort(index[rank < cap])


def _sample(mask: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """``_sample_per_group(mask.astype(np.int64), np.array([1]), cap, seed)`` of one group, without grouping: indices
    of at most ``cap`` random elements where ``mask`` [N] holds, ascending."""
    index = np.flatnonzero(mask)
    if len(index) == 0:
        return index
    return np.sort(index[np.random.default_rng(seed).permutation(len(index))][:cap])


class _Clock:
    """Accumulates wall time per stage into a dict."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds = seconds
        self._stage: Optional[str] = None
        self._start = 0.0

    def __call__(self, stage: str) -> "_Clock":
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        assert self._stage is not None
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + time.perf_counter() - self._start


class MastSAMTracker:
    """Runs the tracker over a frame sequence with a segmenter and a matcher backend."""

    def __init__(self, config: TrackerConfig, segmenter: Any, matcher: Optional[Any], matcher_name: str = "") -> None:
        self.config = config
        self.segmenter = segmenter
        self.matcher = matcher
        self.matcher_name = matcher_name

    # ------------------------------------------------------------------ driver
    def run(
        self, frames: Sequence[Frame], on_frame: Optional[Callable[[FrameReport], None]] = None
    ) -> TrackResult:
        """Label every frame in order; ``on_frame`` is called after each one (progress)."""
        if not frames:
            raise InputError("no frames to track")
        cfg = self.config
        source = choose_source(frames, cfg.points, self.matcher_name)
        needs_matches = cfg.mode == "mastsam" or source in ("matches", "triangulated")
        if needs_matches and self.matcher is None:
            raise ValueError("this configuration needs a matcher")
        notes = []
        if source == "none":
            notes.append("no 3D points (no depth + cameras, no 3D from the matcher, no cameras): "
                         "no re-identification memory and an empty point cloud")
        if cfg.mode == "mastsam" and cfg.representatives.kmeans == "sklearn":
            import sklearn.cluster  # noqa: F401  (imported here so that its import time is not charged to frame 1)
        if cfg.mode == "mastsam":
            order = view_order(frames, cfg.view_order, self.matcher)
        else:
            order = sequence_order(len(frames))
        run = _Run(self, frames, source, order)
        with SegmentationAhead(self.segmenter, frames, order.order, cfg.segment_ahead) as segmentation:
            for t in order.order:
                report = run.step(t, frames[t], order.parent[t], segmentation)
                if on_frame is not None:
                    on_frame(report)
        finish: dict[str, float] = {}
        clock = _Clock(finish)
        with clock("consolidate"):
            merged = run.consolidate_families()
        with clock("refine"):
            run.refine_families()
        with clock("consolidate"):
            merged += run.consolidate()
        with clock("creases"):
            faces = run.merge_creases()
        if run.anchor_merged:
            notes.append(f"{run.anchor_merged} id(s) merged on shared 3D evidence")
        if merged:
            notes.append(f"{merged} id(s) merged after the sequence (same 3D surface, never in the same frame)")
        if faces:
            notes.append(f"{faces} id(s) merged along convex edges (faces of one solid)")
        with clock("objects"):
            object_of = run.object_map(count_ids=True)
        with clock("parts"):
            object_of, renamed = run.name_parts(object_of)
        if renamed:
            notes.append(f"{renamed} segment(s) named again after the 3D part they lie on")
        with clock("cloud"):
            xyz, rgb, ids = run.cloud.downsampled(cfg.cloud_voxel_fraction)
        if source == "matches" and run.chain is not None and run.chain.aligned_pairs:
            notes.append(f"matcher 3D points of {run.chain.aligned_pairs} pair(s) aligned into one frame")
        return TrackResult(
            labels=run.finished_labels(),
            reports=[r for r in run.reports if r is not None],
            points_source=source,
            cloud_xyz=xyz,
            cloud_rgb=rgb,
            cloud_ids=ids,
            notes=notes,
            object_of=object_of,
            finish_seconds=finish,
        )


class _Run:
    """State of one pass over a sequence."""

    def __init__(self, tracker: MastSAMTracker, frames: Sequence[Frame], source: str, order: ViewOrder) -> None:
        self.tracker = tracker
        self.cfg = tracker.config
        self.frames = frames
        self.source = source
        self.order = order
        self.labels = LabelStore(len(frames))
        """Label image of every visited frame, by the frame's original index (compressed; merges applied on read)."""
        self.reports: list[Optional[FrameReport]] = [None] * len(frames)
        self.in_cloud: set[int] = set()
        """Frames whose points are in the point cloud."""
        self.evidence: Optional[AnchorEvidence] = None
        self.anchor_merged = 0
        self.refiner = Refiner(self.cfg.refine)
        self.groups = ObjectGroups(self.cfg.hierarchy)
        self.cloud = LabelledPointCloud(
            fine_fraction=self.cfg.cloud_voxel_fraction / 2, max_voxels=self.cfg.cloud_max_voxels
        )
        self.memory: Optional[VoxelMemory] = None
        self.chain = PairChain(seed=self.cfg.seed) if source == "matches" else None
        self.next_id = 1
        self.fragments = FragmentMerger(self.cfg.consensus)
        self.observed: Optional[VoxelMemory] = None
        """Every voxel each id was seen on (not exclusive), for the sequence-level consolidation."""
        self.segments = LabelStore(len(frames))
        """Automatic segments of the frames the evidence checks again after the sequence (``anchor.retroactive``)."""
        self.carried: Optional[np.ndarray] = None
        """The parent frame's ids carried into the frame being tracked (``_track`` to ``_new_regions``)."""
        self.carried_counted: Optional[SegmentCodes] = None
        """``segment_codes`` of ``carried`` over the frame's segments (``None``: not counted)."""
        self._recount = False
        """Whether the reports' id counts are due for a recount (label images changed after the sequence)."""
        self._counted: Optional[tuple[np.ndarray, np.ndarray, SegmentTable]] = None
        """(labels, segments, their ``id_segment_table``): the steps of a frame read one table when none changed the
        labels in between (``_segment_table``)."""
        self._projected: Optional[tuple[int, np.ndarray, np.ndarray]] = None
        """(frame, evidence owners, their projection into the frame): ``_anchor`` and ``_absent_evidence`` project the
        same evidence into one frame when no step changed it in between."""
        self.parts: Optional[SegmentCooccurrence] = None
        """How often the automatic segments keep neighbouring voxels together (frames with a depth map)."""

    # -------------------------------------------------------------- helpers
    def _new_id(self) -> int:
        if self.next_id > MAX_ID:
            raise InputError(
                f"more than {MAX_ID} ids: label images cannot hold them; use fewer frames (--max-frames, --stride) "
                "or a coarser segmentation"
            )
        self.next_id += 1
        return self.next_id - 1

    def finished_labels(self) -> Sequence[np.ndarray]:
        """Label images in the original frame order (every frame visited), decompressed when accessed."""
        return self.labels.finished()

    def _visited(self) -> list[int]:
        return self.labels.stored()

    def _ensure_evidence(self, points: FramePoints, frame: Frame) -> None:
        config = self.cfg.anchor
        if self.evidence is not None or not (config.enabled and self.cfg.memory.enabled) or len(points) == 0:
            return
        if self.cfg.mode != "mastsam":
            return
        viewpoint = frame.camera.center if frame.camera is not None else None
        size = auto_voxel_size(points.xyz, config.voxel_fraction, viewpoint)
        if size is not None:
            self.evidence = AnchorEvidence(size, config.max_rows)

    def _relabel(self, lut: np.ndarray) -> None:
        """Apply an id mapping to every visited frame, the memories, the evidence and the point cloud."""
        self.labels.relabel(lut)
        if self.memory is not None or self.observed is not None:
            for src in np.flatnonzero(lut != np.arange(len(lut))).tolist():
                if self.memory is not None:
                    self.memory.merge(src, int(lut[src]))
                if self.observed is not None:
                    self.observed.merge(src, int(lut[src]))
        if self.evidence is not None:
            self.evidence.relabel(lut)
        self.refiner.relabel(lut)
        self.groups.relabel(lut)
        self.cloud.relabel(lut)

    def _ensure_memory(self, points: FramePoints, frame: Frame) -> None:
        config = self.cfg.memory
        if self.memory is not None or not config.enabled or len(points) == 0:
            return
        if self.cfg.mode != "mastsam":  # (per-view ids: nothing to re-identify)
            return
        viewpoint = frame.camera.center if frame.camera is not None else None
        size = auto_voxel_size(points.xyz, config.voxel_fraction, viewpoint)
        if size is not None:
            if config.weighted:
                self.memory = WeightedVoxelMemory(size, neighborhood=config.neighborhood)
            else:
                self.memory = VoxelMemory(size, neighborhood=config.neighborhood, exclusive=config.exclusive)

    def _pair_points(
        self, t: int, parent: Optional[int], frame: Frame, matches: Optional[Matches]
    ) -> tuple[FramePoints, FramePoints]:
        """3D points of (parent frame, this frame) from this pair, or of this frame alone (depth)."""
        empty = FramePoints.empty()
        if self.source == "depth":
            return empty, depth_points(frame, self.cfg.max_points_per_frame)
        if self.source == "sfm":
            return empty, observed_points(frame)
        if parent is None or matches is None:
            return empty, empty
        if self.source == "matches":
            a, b = matched_points(matches)
            assert self.chain is not None
            return self.chain.add_pair(a, b, key_a=parent, key_b=t)
        if self.source == "triangulated":
            return triangulated_points(self.frames[parent], frame, matches, self.cfg.max_reprojection_error)
        return empty, empty

    def consolidate(self) -> int:
        """Merge ids that share 3D voxels but not frames (see consolidate.py); returns how many were merged."""
        self._reassign_visited()
        merges = self._consolidation_merges(self.refiner.lineal)
        return self._merge_finished(merges)

    def merge_creases(self) -> int:
        """Merge ids that meet along a convex edge of one solid in the frames with a depth map (see creases.py);
        returns how many were merged."""
        config = self.cfg.creases
        if not config.enabled or self.cfg.mode != "mastsam":
            return 0
        tally = CreaseTally(config)
        for t, labels in zip(self.labels.stored(), self.finished_labels()):
            frame = self.frames[t]
            depth = depth_map(frame)
            if depth is not None and frame.camera is not None and depth.shape == labels.shape:
                tally.observe(labels, depth, frame.camera.K)
        # a face joins the object of its solid's oldest id: its own links (an id straying onto a neighbour for a
        # few frames is seen inside the neighbour's segment) would bring another object along
        return self._merge_finished(tally.merges(), forget_links=True)

    def _merge_finished(self, merges: dict[int, int], forget_links: bool = False) -> int:
        """Apply ``merges`` (id -> id) after the sequence to the labels, the cloud, the split families and the object
        groups (dropping the merged ids' own object links with ``forget_links``); returns how many were merged."""
        if not merges:
            return 0
        lut = self._merge_table(merges)
        self.labels.relabel(lut)
        self.cloud.relabel(lut)
        self.refiner.relabel(lut)
        if forget_links:
            self.groups.forget(merges)
        self.groups.relabel(lut)
        self._count_ids()
        return len(merges)

    def consolidate_families(self) -> int:
        """Merge the pieces of one split family that share 3D voxels but not frames: one part split off in two
        branches of the view graph (or before and after a loss); returns how many were merged."""
        if not self.refiner.parent:
            return 0
        refiner = self.refiner
        # An id outside every family is kept apart from every other id: only the families' members are compared.
        members = {i for family in refiner.families().values() for i in family}
        merges = self._consolidation_merges(
            lambda a, b: refiner.root(a) != refiner.root(b) or refiner.lineal(a, b), only=members
        )
        if not merges:
            return 0
        self._relabel(self._merge_table(merges))
        self._count_ids()
        return len(merges)

    def _merge_table(self, merges: dict[int, int]) -> np.ndarray:
        """Id lookup table applying ``merges`` (source -> destination id)."""
        lut = np.arange(self.next_id, dtype=np.int64)
        for src, dst in merges.items():
            lut[src] = dst
        return lut

    def _consolidation_merges(
        self, apart: Callable[[int, int], bool], only: Optional[set[int]] = None
    ) -> dict[int, int]:
        """``consolidation_merges`` over every id, or over the ids of ``only`` (the others can merge with none)."""
        visited = self._visited()
        if self.observed is None or not visited:
            return {}
        shape = self.labels.shape(visited[0])
        assert shape is not None
        h, w = shape
        min_area = max(1, int(round(self.cfg.min_area_fraction * h * w)))
        config = self.cfg.consolidation.for_points(_POINT_KINDS.get(self.source, "sparse"))
        frames_of = presence_from_counts(self._id_counts(visited), min_area, config.min_presence)
        if only is not None:
            frames_of = {i: frames for i, frames in frames_of.items() if i in only}
        return consolidation_merges(self.observed, frames_of, config, apart=apart)

    def _count_ids(self) -> None:
        """Mark the reports' id counts for a recount: the label images changed after the sequence. The count is made
        once, by the last ``object_map`` (which reads every frame's counts anyway)."""
        self._recount = True

    def _id_counts(self, frames: list[int]) -> list[np.ndarray]:
        """``np.bincount`` of the current label image of each of ``frames`` (stored ones), from the label store's
        counts."""
        out = []
        for t in frames:
            counts = self.labels.counts(t)
            assert counts is not None
            out.append(counts)
        return out

    def object_map(self, count_ids: bool = False) -> dict[int, int]:
        """Id -> object id of every present id grouped under an older one (see ``TrackResult.object_of``);
        ``count_ids``: also recount the reports' ids if ``_count_ids`` asked for it (in the same pass)."""
        recount = count_ids and self._recount
        present: set[int] = set()
        per_frame = []  # each frame's pixel count per id (kept by the label store: no image is read)
        shape = None
        visited = self._visited()
        for t, counts in zip(visited, self._id_counts(visited)):
            per_frame.append(counts)
            shape = self.labels.shape(t)
            present.update(np.flatnonzero(counts).tolist())
            report = self.reports[t]
            if recount and report is not None:
                report.num_ids = int(np.count_nonzero(counts[1:]))
        if count_ids:
            self._recount = False
        if shape is None:
            return {}
        h, w = shape
        min_area = max(1, int(round(self.cfg.min_area_fraction * h * w)))
        frames_of = presence_from_counts(per_frame, min_area)
        if self.cfg.hierarchy.frames > 0:
            # (tested on the finished labels: frames redrawn after the sequence show the parts the segment consensus
            # gave to one id while the frame was labelled; prompted masks, before the consensus, are not the
            # segmenter's view)
            self.groups.observe_frames(((t, self.labels[t], self.segments[t]) for t in visited), min_area)
        return self.groups.object_of(present - {0}, frames_of)

    # ------------------------------------------------------------------ step
    def step(
        self, t: int, frame: Frame, parent: Optional[int] = None, segmentation: Optional[SegmentationAhead] = None
    ) -> FrameReport:
        """Label frame ``t``, matched with the already-visited frame ``parent`` (``None``: the first frame), with
        its automatic segmentation taken from ``segmentation`` (made here when not given)."""
        cfg = self.cfg
        report = FrameReport(index=t, name=frame.name, parent=parent)
        clock = _Clock(report.seconds)
        h, w = frame.height, frame.width
        min_area = max(1, int(round(cfg.min_area_fraction * h * w)))
        seg = self.tracker.segmenter
        first_new = self.next_id

        with clock("prepare"):  # (when the frame was segmented ahead: the wait for it)
            segmented = segment_frame(seg, frame) if segmentation is None else segmentation.take(t)
            state = segmented.state
        report.segment_seconds = segmented.seconds
        matches: Optional[Matches] = None
        if parent is not None and (cfg.mode == "mastsam" or self.source in ("matches", "triangulated")):
            with clock("match"):
                matches = self.tracker.matcher.match(self.frames[parent], frame)
            report.num_matches = len(matches)
        with clock("points"):
            prev_points, points = self._pair_points(t, parent, frame, matches)
            if len(points):
                self._ensure_memory(points, frame)
                self._ensure_evidence(points, frame)
            elif parent is not None:
                self._ensure_memory(prev_points, self.frames[parent])
                self._ensure_evidence(prev_points, self.frames[parent])
            if parent is not None and len(prev_points):
                parent_labels = self.labels[parent]
                assert parent_labels is not None
                self._remember(prev_points, parent, parent_labels, first_pair=parent not in self.in_cloud)
            report.num_points3d = len(points)

        with clock("auto"):
            auto = auto_label_image(segmented.masks, (h, w), min_area)
            auto.flags.writeable = False  # (the frame's segments: read by every step, written by none)
        with clock("parts"):
            self._observe_parts(frame, points, auto)
        if cfg.mode == "mastsam" and parent is not None:
            assert matches is not None
            with clock("track"):
                tracked_labels = self._track(frame, parent, state, matches, auto, report, points)
            with clock("anchor"):
                tracked_labels = self._anchor(frame, tracked_labels, auto, report)
        else:
            tracked_labels = np.zeros((h, w), dtype=np.int64)
        with clock("regions"):
            if cfg.mode == "independent":
                labels = self._fresh_ids(auto, report)
            else:
                labels = self._new_regions(tracked_labels, auto, points, report, min_area)
                self._keep_segments(t, auto)
                labels = self._check_memory(labels, auto, points, report)
                labels = self._merge_fragments(labels, auto, report)
                labels = self._refine(labels, auto, points, report, min_area)
                labels = self._split_jumps(frame, labels, tracked_labels, first_new, points, report, auto)
                self._counted = None
        labels16 = labels.astype(np.uint16)
        self.labels[t] = labels16
        with clock("points"):
            if len(points):
                self._remember(points, t, labels16, first_pair=True)
        with clock("anchor"):
            self._merge_on_evidence(report)
        report.num_ids = int(np.count_nonzero(self._id_counts([t])[0][1:]))
        self.reports[t] = report
        return report

    def _observe_parts(self, frame: Frame, points: FramePoints, auto: np.ndarray) -> None:
        """Count which neighbouring voxels the frame's automatic segments keep together (see parts3d.py); ``points``:
        the frame's depth points, sampled again when the parts ask for another count."""
        config = self.cfg.parts
        if not (config.enabled and self.cfg.memory.enabled) or self.cfg.mode != "mastsam" or self.source != "depth":
            return
        if config.max_points != self.cfg.max_points_per_frame:
            points = depth_points(frame, config.max_points)
        if len(points) == 0:
            return
        if self.parts is None:
            viewpoint = frame.camera.center if frame.camera is not None else None
            size = auto_voxel_size(points.xyz, config.voxel_fraction, viewpoint)
            if size is None:
                return
            self.parts = SegmentCooccurrence(size)
        self.parts.add(points.voxel_keys(self.parts.voxel_size), point_labels(auto, points))

    def name_parts(self, object_of: dict[int, int]) -> tuple[dict[int, int], int]:
        """Name every id's segment in each frame after the 3D part it lies on (see parts3d.py); the point cloud's ids
        follow (each id to the name most of its pixels took). Returns the object map of the new names (each takes
        the object most of its pixels belonged to) and how many segments changed id."""
        config = self.cfg.parts
        if self.parts is None or self.parts.frames < 2:
            return object_of, 0
        voxels, a, b, together, seen = self.parts.graph(config.min_held_share)
        if len(voxels) == 0:
            return object_of, 0
        region = part_regions(len(voxels), a, b, together, seen, config.together_share, config.interior_seen)
        # (regions of min_voxels numbered 0, 1, ... in the order of their representatives, the others -1)
        large = np.bincount(region, minlength=len(voxels)) >= config.min_voxels
        named = np.where(large[region], (np.cumsum(large) - 1)[region], -1)
        found: dict[int, dict[int, tuple[int, int]]] = {}
        for t in self._visited():
            points = depth_points(self.frames[t], config.max_points)
            if len(points) == 0:
                continue
            keys = points.voxel_keys(self.parts.voxel_size)
            index = np.minimum(np.searchsorted(voxels, keys), len(voxels) - 1)
            at = np.where(voxels[index] == keys, named[index], -1)
            labels = self.labels[t]
            assert labels is not None
            found[t] = segment_regions(point_labels(labels, points), at, config.min_points, config.min_region_share)
        apart = regions_apart(found.values(), config.apart_frames)
        names = region_names(((r, i, n) for regions in found.values() for i, (r, n) in regions.items()), apart)
        moved: dict[tuple[int, int], int] = {}  # (id, its name) -> pixels
        renamed = 0
        for t in self._visited():
            counts = self.labels.counts(t)
            assert counts is not None
            present = np.flatnonzero(counts[1:]) + 1
            new_names = frame_names(found.get(t, {}), names, present.tolist(), apart)
            lut = np.arange(len(counts), dtype=np.int64)  # (the frame's ids to their names)
            for i, name in new_names.items():
                lut[i] = name or self._new_id()
            for i in present.tolist():
                key = (i, int(lut[i]))
                moved[key] = moved.get(key, 0) + int(counts[i])
            if new_names:
                labels = self.labels[t]
                assert labels is not None
                self.labels[t] = lut[labels].astype(np.uint16)
                renamed += len(new_names)
                report = self.reports[t]
                if report is not None:
                    report.num_ids = len(np.unique(lut[present]))  # (the frame's names: no image recounted)
        if not renamed:
            return object_of, 0
        cloud = np.arange(self.next_id, dtype=np.int64)  # (each id to the name most of its pixels took)
        for (i, n), pixels in sorted(moved.items(), key=lambda kv: kv[1]):
            cloud[i] = n
        self.cloud.relabel(cloud)
        return renamed_objects(moved, object_of), renamed

    def _anchor(self, frame: Frame, labels: np.ndarray, auto: np.ndarray, report: FrameReport) -> np.ndarray:
        """Let the 3D evidence of every id vote on the frame's automatic segments (see anchor.py)."""
        if self.evidence is None or frame.camera is None or len(self.evidence) == 0:
            return labels
        depth = depth_map(frame)
        evidence = self._evidence_image(report.index, labels.shape, depth)
        pure = None
        if self.cfg.anchor.reassign and depth is None:
            _, owners, _ = self.evidence.owners()
            decided = np.where(self.evidence.purity() >= self.cfg.anchor.reassign_purity, owners, 0)
            if self.source == "sfm":
                centres, decided = self._observed_evidence(report.index, decided)
            else:
                centres = self.evidence.points()[0]
            pure = project_evidence(
                centres, decided, frame.camera, labels.shape, self.evidence.voxel_size, self.cfg.anchor, depth
            )
        counted = self._segment_table(labels, auto)
        result = anchor_labels(labels, auto, evidence, self.cfg.anchor, pure, counted)
        present = set(counted.ids.tolist())  # (the ids the chain carried into the frame)
        recovered = [i for i in result.ids if i not in present]
        report.reidentified += len(set(recovered))
        report.anchored_segments = result.assigned
        report.overruled_segments = result.overruled
        report.split_segments = result.split
        return result.labels

    def _split_jumps(
        self,
        frame: Frame,
        labels: np.ndarray,
        tracked: np.ndarray,
        first_new: int,
        points: FramePoints,
        report: FrameReport,
        auto: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Give a new id to ids brought back onto 3D points they have barely seen, and the segments a carried id took
        on new surface to the absent id whose surface they lie on, else a new id (see jumps.py)."""
        if not self.cfg.jumps.enabled or self.evidence is None or depth_map(frame) is None:
            return labels
        carried = np.flatnonzero(np.bincount(tracked.ravel()))
        labels, jumped = split_jumps(labels, carried, first_new, points, self.evidence, self.cfg.jumps, self._new_id)
        report.jumped = len(jumped)
        if auto is not None:
            carried = carried[(carried > 0) & (carried < first_new)]
            labels, _ = split_new_surface(labels, auto, carried, points, self.evidence, self.cfg.jumps, self._new_id)
        return labels

    def _refine(
        self, labels: np.ndarray, auto: np.ndarray, points: FramePoints, report: FrameReport, min_area: int
    ) -> np.ndarray:
        """Split ids the automatic segments keep cutting into pieces (see refine.py)."""
        if self.evidence is None:
            return labels
        due = self.refiner.due(labels, auto, min_area, self._segment_table(labels, auto))
        keep = self.cfg.refine.keep != "none"
        for obj_id, segments in due.items():
            reused = self._reused_members(labels, auto, points, obj_id, segments)
            if self.cfg.refine.keep == "seen":
                segments = self._most_seen_first(labels, auto, points, obj_id, segments)
            elif self.cfg.refine.keep == "evidence":
                segments = self._most_evidence_first(labels, auto, points, obj_id, segments, self.frames[report.index])
            segments = [s for s in segments if s in reused] + [s for s in segments if s not in reused]
            kept = segments[len(reused) :][:1] if keep else []
            new_ids = [reused.get(s) or self._new_id() for s in segments if s not in kept]
            segments = kept + [s for s in segments if s not in kept]
            if keep and kept:
                labels = split_pieces(labels, auto, obj_id, segments, new_ids)
            else:
                labels = split_all(labels, auto, obj_id, segments, new_ids)
                self.refiner.retire(obj_id)
            point_ids = point_labels(labels, points) if len(points) else np.zeros(0, dtype=np.int64)
            for new in new_ids:
                if new not in reused.values():
                    self.refiner.record(obj_id, new)
                self.groups.join(obj_id, new)
                own = points.xyz[point_ids == new]
                self.evidence.transfer(own, obj_id, new)
                if self.memory is not None:
                    self.memory.transfer(own, obj_id, new)
            report.refined += 1
        return labels

    def _segment_table(self, labels: np.ndarray, auto: np.ndarray) -> SegmentTable:
        """``id_segment_table`` of the frame's labels, counted once while the steps of a frame leave the labels as
        they are (each step that changes them gives a new array; none writes into the one it was given)."""
        cached = self._counted
        if cached is not None and cached[0] is labels and cached[1] is auto:
            return cached[2]
        counted = id_segment_table(labels, auto, segment_count(auto))
        self._counted = (labels, auto, counted)
        return counted

    def _most_seen_first(
        self, labels: np.ndarray, auto: np.ndarray, points: FramePoints, obj_id: int, segments: list[int]
    ) -> list[int]:
        """The pieces of ``obj_id`` (largest first), the one the id's 3D evidence has seen most often moved first when
        the id has seen it ``seen_ratio`` times as often as the largest one."""
        assert self.evidence is not None
        if len(points) == 0 or len(self.evidence) == 0:
            return segments
        finite = points.finite
        segment = point_labels(np.where(labels == obj_id, auto, 0), points)[finite]
        keys = points.voxel_keys(self.evidence.voxel_size)[finite]
        strength = piece_strengths(self.evidence, obj_id, keys, segment, segments)
        seen = max(segments, key=lambda s: strength[s])
        if strength[seen] <= 0 or strength[seen] < self.cfg.refine.seen_ratio * strength[segments[0]]:
            return segments
        return [seen] + [s for s in segments if s != seen]

    def _most_evidence_first(
        self,
        labels: np.ndarray,
        auto: np.ndarray,
        points: FramePoints,
        obj_id: int,
        segments: list[int],
        frame: Frame,
    ) -> list[int]:
        """The pieces of ``obj_id`` (largest first), the one holding ``refine.evidence_ratio`` times the largest
        one's share of the id's 3D evidence moved first (see ``refine.evidence_holder``), unless the two meet along
        a convex edge in the frame's depth map (``creases.frame_edges``): faces of one solid, cut apart by their
        shading, are one part, and the face this view shows largest keeps the id, as the largest piece of any cut."""
        assert self.evidence is not None
        if len(points) == 0 or len(self.evidence) == 0:
            return segments
        keys, ids, counts = self.evidence.pairs()
        own = ids == obj_id
        finite = points.finite
        piece = point_labels(np.where(labels == obj_id, auto, 0), points)[finite]
        held = evidence_holder(
            voxel_centres(keys[own], self.evidence.voxel_size),
            counts[own],
            points.xyz[finite],
            piece,
            segments,
            self.cfg.refine.evidence_ratio,
        )
        if held is None:
            return segments
        depth = depth_map(frame)
        if depth is not None and frame.camera is not None and depth.shape == labels.shape:
            pieces = np.where((labels == obj_id) & np.isin(auto, [held, segments[0]]), auto, 0)
            edges = frame_edges(pieces, depth, frame.camera.K, self.cfg.creases)
            if edges.get((min(held, segments[0]), max(held, segments[0])), False):
                return segments
        return [held] + [s for s in segments if s != held]

    def _reused_members(
        self, labels: np.ndarray, auto: np.ndarray, points: FramePoints, obj_id: int, segments: list[int]
    ) -> dict[int, int]:
        """Pieces of a split whose 3D points lie on the evidence of a member of ``obj_id``'s family absent from the
        frame: segment -> that member (see ``refine.reused_members``)."""
        assert self.evidence is not None
        root = self.refiner.root(obj_id)
        members = {root, *(c for c in self.refiner.parent if self.refiner.root(c) == root)}
        others = members - self.refiner.retired - {obj_id}
        if not others or len(points) == 0 or len(self.evidence) == 0:
            return {}
        present = np.bincount(labels.ravel())
        candidates = sorted(i for i in others if i >= len(present) or present[i] == 0)
        if not candidates:
            return {}
        # Only the points on the pieces count (``reused_members`` reads no other): their owners are looked up alone
        # (with one point off them when none is on them, which counts for nothing but keeps the points non-empty).
        segment = point_labels(np.where(labels == obj_id, auto, 0), points)
        finite = points.finite
        on = np.flatnonzero(finite & (segment > 0))
        if len(on) == 0:
            on = np.flatnonzero(finite)[:1]
        owner = self.evidence.owner_at(points.xyz[on])
        return reused_members(segment[on], owner, segments, candidates, self.cfg.refine)

    def refine_families(self) -> None:
        """After the sequence: every frame's pixels of a split family go to the member with the nearest 3D
        evidence, so frames visited before a split show the pieces too."""
        families = self.refiner.families()
        if not self.cfg.refine.retroactive or not families or self.evidence is None or len(self.evidence) == 0:
            return
        centres, owners = self.evidence.points()
        for t in self._visited():
            frame = self.frames[t]
            if frame.camera is None:
                continue
            # A family absent from the frame leaves it unchanged (its pixels stay within the family): only the
            # families present are projected for and redrawn (the image is read only when one is).
            present = self._id_counts([t])[0]
            shown = [m for m in families.values() if any(i < len(present) and present[i] for i in m)]
            if not shown:
                continue
            labels = self.labels[t]
            assert labels is not None
            depth = depth_map(frame)
            evidence = project_evidence(
                centres, owners, frame.camera, labels.shape, self.evidence.voxel_size, self.cfg.anchor, depth
            )
            receiving = [(members, [i for i in members if i not in self.refiner.retired]) for members in shown]
            out = families_labels(labels, evidence, receiving)  # (the stored uint16 image: ids fit it)
            if out is not labels:  # (unchanged: the stored image stays)
                self.labels[t] = out
        self._count_ids()

    def _merge_on_evidence(self, report: FrameReport) -> None:
        """Merge ids whose 3D evidence lies on an older id's, in every frame so far."""
        if self.evidence is None:
            return
        merges = evidence_merges(self.evidence, self.cfg.anchor)
        if not merges:
            return
        self._relabel(self._merge_table(merges))
        report.merged += len(merges)
        self.anchor_merged += len(merges)

    def _remember(self, points: FramePoints, t: int, labels: np.ndarray, first_pair: bool) -> None:
        """Add a frame's 3D points to the memory and the evidence, and (once per frame) to the point cloud."""
        frame = self.frames[t]
        ids = point_labels(labels, points)
        # The points' voxels are computed once per voxel size (the memories share one; the evidence's is usually
        # the same).
        voxels: dict[float, tuple[np.ndarray, np.ndarray]] = {}

        def labelled(size: float) -> tuple[np.ndarray, np.ndarray]:
            # (``labelled_voxels`` from the points' own keys, shared with the frame's other steps)
            if size not in voxels:
                keep = (ids > 0) & points.finite
                voxels[size] = points.voxel_keys(size)[keep], ids[keep]
            return voxels[size]

        # The evidence counts each (voxel, id) pair; the memory takes the same distinct pairs when its voxels are
        # the evidence's (sorted once).
        counted: dict[float, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if self.evidence is not None:
            counted[self.evidence.voxel_size] = pair_counts(*labelled(self.evidence.voxel_size))
            self.evidence.add_pairs(*counted[self.evidence.voxel_size])
        if self.memory is not None:
            if self.memory.voxel_size in counted:
                keys, kept_ids, _ = counted[self.memory.voxel_size]
            else:
                keys, kept_ids = unique_pairs(*labelled(self.memory.voxel_size))
            self.memory.add_voxels(keys, kept_ids)
            if self.observed is None and self.cfg.consolidation.enabled and self.cfg.mode == "mastsam":
                self.observed = VoxelMemory(self.memory.voxel_size, neighborhood=self.cfg.memory.neighborhood)
            if self.observed is not None:
                # its own copies: a memory changes its stored arrays in place
                self.observed.add_voxels(keys.copy(), kept_ids.copy())
        if first_pair:
            self.cloud.add(points, frame.image, labels)
            self.in_cloud.add(t)

    def _check_memory(self, labels: np.ndarray, auto: np.ndarray, points: FramePoints, report: FrameReport) -> np.ndarray:
        """Give segments back to the id whose 3D voxels they lie in when their current id has none of them (with
        ``memory.check_split``, only the part of the segment its points in that id's voxels stand for)."""
        cfg = self.cfg.memory
        if self.memory is None or not cfg.check or len(points) == 0 or not self._visited():
            return labels
        num_segments = segment_count(auto)
        if num_segments == 0:
            return labels
        ids, by_id = self._segment_table(labels, auto)
        table = by_id.T  # [S + 1, I]
        segment_of_point = point_labels(auto, points)
        area = table.sum(axis=1)
        sampling = self._sampling_density(points, labels.shape)
        holder = ids[np.argmax(table, axis=1)]  # [S + 1] id holding most of each segment
        points_per_segment = np.bincount(segment_of_point, minlength=num_segments + 1)
        enough = points_per_segment >= np.maximum(cfg.reid_min_points, cfg.reid_min_coverage * sampling * area)
        enough[0] = False
        candidates = np.flatnonzero(enough & (holder > 0))
        if len(candidates) == 0:
            return labels
        # One memory query for (a sample of) the points of the candidate segments; shares per (segment, id).
        chosen = _sample_per_group(segment_of_point, candidates, MEMORY_SAMPLE, self.cfg.seed)
        points_per_segment = np.bincount(segment_of_point[chosen], minlength=num_segments + 1)
        # (``point_hits`` of those points, from their keys: the non-finite ones hit nothing)
        finite = np.flatnonzero(points.finite[chosen])
        point_index, hit_ids = self.memory.key_hits(points.voxel_keys(self.memory.voxel_size)[chosen[finite]])
        point_index = finite[point_index]
        hit_segments = segment_of_point[chosen][point_index]
        lut = check_targets(
            hit_segments, hit_ids, points_per_segment, holder, candidates, cfg.reid_min_fraction, cfg.check_ratio
        )
        if not np.any(lut > 0):
            return labels
        # (the pixels of the segments that go to another id only: ``np.where(change, lut[auto], labels)``)
        moving = np.flatnonzero((lut > 0)[auto])
        segment = np.ravel(auto).take(moving)
        change = np.ravel(labels).take(moving) == holder.take(segment)
        if cfg.check_split == "always" or (
            cfg.check_split == "sparse" and self.source != "depth" and sampling < cfg.split_max_density
        ):
            # Only the segment's pixels nearest to its points that lie on the other id's voxels move: a segment the
            # segmenter merged across two ids' surfaces goes back to the other id where its 3D points say so.
            vote = np.zeros(len(chosen), dtype=bool)
            vote[point_index[hit_ids == lut[hit_segments]]] = True
            cells = nearest_point_cells(auto, lut > 0, points.xy[chosen], segment_of_point[chosen], vote)
            change &= np.ravel(cells).take(moving)
        report.corrected = int(np.count_nonzero(lut > 0))
        out = labels.astype(np.result_type(lut.dtype, labels.dtype), order="C", copy=True)
        out.reshape(-1)[moving[change]] = lut.take(segment[change])
        return out

    def _rechecked(self, t: int) -> bool:
        """Whether frame ``t`` is checked against the evidence again after the sequence: a camera, no depth map
        (with the capture's SfM points, only with ``anchor.retroactive_sfm``)."""
        anchor = self.cfg.anchor
        frame = self.frames[t]
        if not (anchor.enabled and anchor.reassign and anchor.retroactive and self.cfg.memory.enabled):
            return False
        if self.source == "sfm" and not anchor.retroactive_sfm:
            return False
        return self.cfg.mode == "mastsam" and frame.camera is not None and depth_map(frame) is None

    def _keep_segments(self, t: int, auto: np.ndarray) -> None:
        """Keep frame ``t``'s automatic segments for the steps after the sequence: the object level's containment
        test (``hierarchy``) and the check of frames without a depth map (``_rechecked``)."""
        if self.cfg.hierarchy.frames > 0 or self._rechecked(t):
            self.segments[t] = auto  # (the store keeps uint16 runs: no copy here)

    def _reassign_visited(self) -> int:
        """After the sequence, every kept frame's segments held by one object go to the other object the completed
        evidence names, as the id of that object with most votes (see ``anchor.reassign_segments``): frames visited
        early were labelled before later views showed which id their surfaces belong to. Returns how many segments
        changed id."""
        rechecked = [t for t in self.segments.stored() if self._rechecked(t)]
        if self.evidence is None or len(self.evidence) == 0 or not rechecked:
            return 0
        centres, owners = self.evidence.points()
        decided = np.where(self.evidence.purity() >= self.cfg.anchor.reassign_purity, owners, 0)
        keep = decided > 0
        centres, decided = centres[keep], decided[keep]
        group = np.arange(max(self.next_id, int(decided.max(initial=0)) + 1), dtype=np.int64)
        for obj_id, root in self.object_map().items():
            group[obj_id] = root
        recheck = replace(self.cfg.anchor, share=self.cfg.anchor.retroactive_share)
        changed = 0
        for t in rechecked:
            labels, auto, camera = self.labels[t], self.segments[t], self.frames[t].camera
            if labels is None or auto is None or camera is None:
                continue
            labels, auto = labels.astype(np.int64), auto.astype(np.int64)
            step = max(1, int(np.sqrt(labels.size / RECHECK_PIXELS)))
            coarse_labels, coarse_auto = labels[::step, ::step], auto[::step, ::step]
            pure = project_evidence(
                centres, decided, camera.scaled(1.0 / step), coarse_labels.shape, self.evidence.voxel_size,
                self.cfg.anchor,
            )
            out, moved = reassign_segments(coarse_labels, coarse_auto, pure, recheck, group, relative=True)
            if moved:
                source, target = segment_changes(coarse_labels, out, coarse_auto, group)
                self.labels[t] = apply_segment_changes(labels, auto, group, source, target).astype(np.uint16)
                changed += len(moved)
        if changed:
            self._count_ids()
        return changed

    def _merge_fragments(self, labels: np.ndarray, auto: np.ndarray, report: FrameReport) -> np.ndarray:
        """Merge ids that keep lying inside one automatic segment (see ``FragmentMerger``)."""
        counted = self._segment_table(labels, auto)
        absent = self._absent_evidence(labels, report.index, counted.ids[counted.table.any(axis=1)])
        due = self.fragments.update(
            labels,
            auto,
            self.refiner.related,
            frame=report.index,
            parent=report.parent,
            absent=absent,
            counted=counted,
        )
        if not due:
            return labels
        lut = np.arange(self.next_id, dtype=np.int64)  # every id so far is below next_id
        for src, dst in due.items():
            lut[src] = dst
            if self.memory is not None:
                self.memory.merge(src, dst)
        report.merged += len(due)
        if self.evidence is not None:
            self.evidence.relabel(lut)
        self.refiner.relabel(lut)
        self.groups.relabel(lut)
        if self.cfg.consensus.retroactive_merge:
            self.labels.relabel(lut)
        return lut[labels]

    def _absent_evidence(self, labels: np.ndarray, t: int, present: Optional[np.ndarray] = None) -> Optional[DrawnIds]:
        """The 3D evidence of the ids absent from ``labels``, projected into frame ``t`` (its pixels), of the ids with at least ``consensus.fragment_evidence_points`` pixels of it; ``None`` without evidence or
        without a visibility the capture measured: a depth map, or the SfM points the frame observed (only their
        voxels are projected). The evidence's own z-buffer lets sparse, occluded voxels vote, and their merges add up
        to a catch-all id. ``present``: the ids ``labels`` holds, when the caller has them."""
        need = self.cfg.consensus.fragment_evidence_points
        frame = self.frames[t]
        if need <= 0 or self.evidence is None or len(self.evidence) == 0 or frame.camera is None:
            return None
        depth = depth_map(frame)
        if depth is None and self.source != "sfm":
            return None
        evidence = self._evidence_image(t, labels.shape, depth)
        # (the evidence's own pixels only: it covers a part of the frame)
        drawn = np.flatnonzero(evidence != 0)  # (a boolean image: cheaper to search than the int64 one)
        values = np.ravel(evidence).take(drawn)
        keep = np.bincount(values) >= need
        if present is None:
            present = np.flatnonzero(np.bincount(labels.ravel()))
        keep[present[present < len(keep)]] = False
        kept = np.flatnonzero(keep.take(values))
        return DrawnIds(drawn.take(kept), values.take(kept))

    def _observed_evidence(self, t: int, values: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """The SfM points frame ``t`` observed [N, 3] in voxels with evidence, and the voxels' owners [N] (or their
        ``values`` [V], in the order of ``evidence.points()``, where not 0): the reconstruction says which points the
        frame sees, so only their voxels vote, with no z-buffer guesses."""
        assert self.evidence is not None
        centres = observed_points(self.frames[t]).xyz
        owners = self.evidence.owner_at(centres) if values is None else self.evidence.value_at(centres, values)
        keep = owners > 0
        return centres[keep], owners[keep]

    def _evidence_image(self, t: int, shape: tuple[int, int], depth: Optional[np.ndarray]) -> np.ndarray:
        """[H, W] the evidence's owners projected into frame ``t`` (``project_evidence``, read-only), reused while
        the evidence is unchanged (its owners array is replaced whenever it changes)."""
        assert self.evidence is not None
        _, version, _ = self.evidence.owners()
        cached = self._projected
        if cached is not None and cached[0] == t and cached[1] is version and cached[2].shape == shape:
            return cached[2]
        if self.source == "sfm":
            centres, owners = self._observed_evidence(t)
        else:
            centres, owners = self.evidence.points()
        camera = self.frames[t].camera
        assert camera is not None
        image = project_evidence(centres, owners, camera, shape, self.evidence.voxel_size, self.cfg.anchor, depth)
        image.flags.writeable = False
        self._projected = (t, version, image)
        return image

    def _sampling_density(self, points: FramePoints, shape: tuple[int, int]) -> float:
        """3D points per pixel where the source samples: the depth grid's density, or the matches' overall density."""
        if self.source == "depth":
            h, w = shape
            step = depth_grid_step(w, h, self.cfg.max_points_per_frame)
            return 1.0 / (step * step)
        return len(points) / float(shape[0] * shape[1])

    def _fresh_ids(self, auto: np.ndarray, report: FrameReport) -> np.ndarray:
        """Independent mode: every automatic segment of the frame gets a new id."""
        n = segment_count(auto)
        if n == 0:
            return np.zeros_like(auto)
        first = self.next_id
        for _ in range(n):
            self._new_id()
        report.new = n
        return np.where(auto > 0, auto + first - 1, 0)

    def _track(
        self,
        frame: Frame,
        parent: int,
        state: Any,
        matches: Matches,
        auto: np.ndarray,
        report: FrameReport,
        frame_points: Optional[FramePoints] = None,
    ) -> np.ndarray:
        """Carry the parent frame's ids into this frame (steps 2-6); returns the tracked labels [H, W]
        (``frame_points``: the frame's 3D points, for the carry through geometry)."""
        cfg = self.cfg
        h, w = frame.height, frame.width
        prev = self.labels[parent]
        assert prev is not None
        min_area = max(1, int(round(cfg.min_area_fraction * (h * w))))
        counts = self.labels.counts(parent)  # (``np.bincount(prev.ravel())``, kept by the store for later reads)
        assert counts is not None
        reps = select_representatives(
            prev, matches, cfg.representatives, cfg.confidence_threshold, (w, h), cfg.seed, areas=counts
        )
        prev_area = {int(i): int(counts[i]) for i in np.flatnonzero(counts) if i > 0}  # id -> its pixels in the parent
        tracked = propagate_representatives(reps, matches, cfg.propagation, (w, h))
        for obj_id in prev_area:
            if obj_id not in tracked:
                report.rejected["no correspondences"] = report.rejected.get("no correspondences", 0) + 1
        prompts = build_prompts(tracked, cfg.prompting, (w, h))
        for obj_id, points in tracked.items():
            reason = lost_before_prompting(points, cfg.rejection)
            if reason is not None:
                report.rejected[reason] = report.rejected.get(reason, 0) + 1
                prompts.pop(obj_id, None)
        masks = prompt_masks(self.tracker.segmenter, state, prompts)
        for obj_id in list(masks):
            area = prev_area.get(obj_id, 0)
            reason = lost_after_prompting(masks[obj_id], prompts[obj_id].positive, cfg.rejection, min_area, area)
            if reason is not None:
                report.rejected[reason] = report.rejected.get(reason, 0) + 1
                del masks[obj_id]
        prompts = {i: prompts[i] for i in masks}
        found = len(masks)
        masks, prompts, merged = merge_duplicates(masks, prompts, cfg.overlap, apart=self._seen_apart)
        report.merged = len(merged)
        left_out = found - len(masks) - len(merged)  # (duplicates of ids seen apart: no merge, out of this frame)
        if left_out:
            reason = "duplicate of an id seen apart"
            report.rejected[reason] = report.rejected.get(reason, 0) + left_out
        if self.memory is not None:
            for src, dst in merged.items():
                self.memory.merge(src, dst)
        if merged:
            lut = self._merge_table(merged)
            if self.evidence is not None:
                self.evidence.relabel(lut)
            self.groups.relabel(lut)
        labels = resolve_overlaps(masks, prompts, (h, w))
        sure = matches.confidence >= cfg.confidence_threshold
        confident = matches if sure.all() else matches.subset(sure)  # (all confident: no copy of dense matches)
        if cfg.consensus.enabled:
            # (the prompted masks' table over the segments, read by the consensus' snapping)
            counted = id_segment_table(labels, auto, segment_count(auto)) if segment_count(auto) else None
            result = apply_consensus(labels, auto, prev, confident, cfg.consensus, alias=merged, counted=counted)
            labels = result.labels
            if counted is not None and result.target is not None:  # (its table, from the prompted masks' one)
                self._counted = (labels, auto, segments_given(counted, result.target))
            report.assigned_segments = result.assigned
            report.released_segments = result.released
        self.carried, self.carried_counted = None, None
        if cfg.propagation.carry_share <= 1.0 and len(confident) < cfg.consensus.dense_min_density * h * w:
            # Sparse correspondences: the consensus cannot tell a segment's split from a handful of votes, so the
            # previous frame's partition, carried by the correspondences, keeps it (dense votes already do).
            geometry = self._carry_geometry(frame, parent, frame_points)
            carried = carry_labels(prev, confident, (h, w), cfg.propagation, geometry)
            self.carried, report.unsupported_carried, report.carry_agreement = supported_carry(
                carried, prev, confident, cfg.propagation
            )
            if np.any(self.carried):  # (the carried partition's pairs with the segments, read again by the new regions)
                self.carried_counted = segment_codes(self.carried, auto, segment_count(auto))
            before = labels
            held = self._counted[2] if self._counted is not None and self._counted[0] is labels else None
            labels, taken = keep_carried(
                labels,
                auto,
                self.carried,
                cfg.propagation,
                min_area,
                self.carried_counted,
                labelled=None if held is None else held.table[1:].sum(axis=0),
            )
            report.carried_pixels = taken.changed
            if held is not None and labels is not before:  # (the table again, from the pixels taken back alone)
                self._counted = (labels, auto, pixels_changed(held, auto, taken.pixels, taken.old, taken.new))
        # (the ids present, off the labels' table, which the 3D vote or the new regions read next)
        report.tracked = int(np.count_nonzero(self._segment_table(labels, auto).ids))
        return labels

    def _carry_geometry(
        self, frame: Frame, parent: int, points: Optional[FramePoints]
    ) -> Optional[tuple[Camera, Camera, np.ndarray, np.ndarray]]:
        """What ``carry_labels`` carries the parent's labels into ``frame`` through (the cameras of both, the frame's
        3D points' pixels and positions), when ``propagation.carry_geometry`` asks for it and they exist; ``None``:
        through the correspondences."""
        mode = self.cfg.propagation.carry_geometry
        if not (mode == "always" or (mode == "sfm" and self.source == "sfm")):
            return None
        camera_a = self.frames[parent].camera
        if camera_a is None or frame.camera is None or points is None or not len(points):
            return None
        return camera_a, frame.camera, points.xy[points.finite], points.xyz[points.finite]

    def _seen_apart(self, older: int, younger: int) -> bool:
        """Whether ids ``older`` and ``younger`` were both present (``min_area`` pixels each) in ``overlap.apart_share``
        of the visited frames showing ``younger``, and in two or more: two objects side by side."""
        share = self.cfg.overlap.apart_share
        if share > 1.0:
            return False
        shown = together = 0
        for t in self._visited():
            counts = self.labels.counts(t)
            if counts is None or younger >= len(counts):
                continue
            min_area = max(1, int(round(self.cfg.min_area_fraction * self.frames[t].height * self.frames[t].width)))
            if counts[younger] >= min_area:
                shown += 1
                together += int(older < len(counts) and counts[older] >= min_area)
        return together >= 2 and together >= share * shown

    def _new_regions(
        self, tracked: np.ndarray, auto: np.ndarray, points: FramePoints, report: FrameReport, min_area: int
    ) -> np.ndarray:
        """Gap filling and new ids from uncovered automatic segments (step 7), with 3D re-identification."""
        cfg = self.cfg
        reid = cfg.memory
        carried, counted, self.carried, self.carried_counted = self.carried, self.carried_counted, None, None
        tracked_counted = self._segment_table(tracked, auto)
        split = split_regions(tracked, auto, cfg.new_regions, min_area, carried, counted, tracked_counted)
        report.filled_pixels = split.filled_pixels
        labels = split.labels
        carried_values = np.ravel(labels).take(split.carried_gaps)
        if not split.region_ids:
            self._count_gaps_given(labels, auto, tracked_counted, split.segment_fill, split, carried_values)
            return labels
        # (the regions lie in the gaps: the gaps' values alone are read for the regions' areas; the ids present are
        # the tracked ones and those the gaps took)
        gap_regions = split.gap_regions
        present = set(tracked_counted.ids.tolist()) | set(split.segment_fill.tolist())
        present = (present | set(np.flatnonzero(np.bincount(carried_values)).tolist())) - {0}
        region_of_point = split.regions_at(point_labels(auto, points), point_labels(tracked, points))
        region_area = np.bincount(gap_regions)
        sampling = self._sampling_density(points, tracked.shape)
        assign = np.zeros(int(gap_regions.max()) + 1, dtype=np.int64)
        # The covered regions' (samples of) points, looked up in the memory at once (it does not change in between).
        samples = []
        for region in split.region_ids:
            in_region = region_of_point == region
            covered = np.count_nonzero(in_region) >= reid.reid_min_coverage * sampling * region_area[region]
            if self.memory is not None and covered:
                samples.append((region, _sample(in_region, MEMORY_SAMPLE, cfg.seed)))
        identified = {}
        if self.memory is not None and samples:
            chosen = np.concatenate([sample for _, sample in samples])
            group = np.repeat(np.arange(len(samples)), [len(sample) for _, sample in samples])
            finite = np.flatnonzero(points.finite[chosen])  # (``identify`` of the points: the others hit nothing)
            found = self.memory.identify_groups(
                points.voxel_keys(self.memory.voxel_size)[chosen[finite]],
                group[finite],
                [len(sample) for _, sample in samples],
                reid.reid_min_fraction,
                reid.reid_min_points,
                () if reid.reid_extend_present else present,
            )
            identified = {region: match for (region, _), match in zip(samples, found)}
        for region in split.region_ids:
            obj_id = None
            found = identified.get(region)
            if found is not None:
                obj_id = found.obj_id
                if obj_id in present:
                    report.extended += 1
                else:
                    report.reidentified += 1
            if obj_id is None:
                obj_id = self._new_id()
                report.new += 1
            assign[region] = obj_id
        # (the regions' pixels only, written into the new labels ``split_regions`` made: ``np.where(split.regions > 0,
        # assign[split.regions], labels)``)
        in_region = np.flatnonzero(gap_regions)
        labels.reshape(-1)[split.gaps.take(in_region)] = assign.take(gap_regions.take(in_region))
        target = split.segment_fill.copy()
        regions = np.asarray(split.region_ids)
        target[regions] = assign.take(regions)
        self._count_gaps_given(labels, auto, tracked_counted, target, split, carried_values)
        return labels

    def _count_gaps_given(
        self,
        labels: np.ndarray,
        auto: np.ndarray,
        counted: SegmentTable,
        target: np.ndarray,
        split: RegionSplit,
        carried_values: np.ndarray,
    ) -> None:
        """Keep the ``id_segment_table`` of the new regions' ``labels`` for the steps after them, from the tracked
        labels' table ``counted``: the gaps of each segment ``s`` took ``target[s]`` whole (the gap filling's and the
        new ids), those of ``split.carried_gaps`` their ``carried_values`` one by one (only they are counted)."""
        self._counted = (labels, auto, gaps_given(counted, target, auto, split.carried_gaps, carried_values))
