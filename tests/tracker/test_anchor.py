"""3D-anchored association (anchor.py) and view order (view_order.py): step functions and the tracker with them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from mastsam_splat.matchers import make_matcher
from mastsam_splat.segmenters import make_segmenter
from mastsam_splat.tracker import MastSAMTracker, MemoryConfig, TrackerConfig
from mastsam_splat.tracker.anchor import (
    AnchorConfig,
    AnchorResult,
    _evidence_density,
    _evidence_ids,
    _assign_near_evidence,
    _vote_table,
    anchor_labels,
    evidence_merges,
    reassign_segments,
)
from mastsam_splat.tracker import tracker as tracker_module
from mastsam_splat.tracker.evidence import AnchorEvidence
from mastsam_splat.tracker.evidence_image import project_evidence
from mastsam_splat.tracker.results import FrameReport
from mastsam_splat.tracker.segment_table import compact_ids, compact_ids_areas
from mastsam_splat.tracker.tracker import _Run
from mastsam_splat.tracker.view_order import ViewOrder, ViewOrderConfig, spanning_order, view_order
from mastsam_splat.types import Frame, Matches, ObservedPoints

from support.altered_segmenters import CuttingSegmenter
from support.planar_scene import DEPTH, camera_at, id_of, render, sequence

SLIDE = [0.0, 0.15, 0.3, 0.45, 0.6]


# ----------------------------------------------------------------------------- evidence


def test_evidence_merges_a_younger_id_lying_on_an_older_ids_voxels():
    evidence = AnchorEvidence(voxel_size=1.0)
    surface = np.stack([np.arange(20) + 0.5, np.full(20, 0.5), np.full(20, 0.5)], axis=1)
    elsewhere = surface + np.array([0.0, 10.0, 0.0])
    for _ in range(3):
        evidence.add(np.full(20, 1), surface)
    evidence.add(np.full(15, 4), surface[:15])  # id 4: the same object seen again under a new id
    evidence.add(np.full(20, 5), elsewhere)  # id 5: another object
    config = AnchorConfig(merge_overlap=0.6, merge_min_voxels=8)
    assert evidence_merges(evidence, config) == {4: 1}


# ----------------------------------------------------------------------------- projection


@pytest.mark.parametrize("seed", range(4))
def test_unlabelled_pixels_near_their_evidence_equal_the_whole_images_transform(seed):
    """``_assign_near_evidence`` (a transform of the wanted pixels' box) equals the plain rule over the whole image."""
    rng = np.random.default_rng(seed)
    for _ in range(15):
        h, w = (int(v) for v in rng.integers(10, 120, 2))
        evidence = np.where(rng.random((h, w)) < rng.choice([0.01, 0.05, 0.3]), rng.integers(1, 4, (h, w)), 0)
        labels = np.where(rng.random((h, w)) < 0.5, rng.integers(1, 4, (h, w)), 0)
        wanted = np.zeros((h, w), dtype=np.int64)
        r0, c0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        wanted[r0 : r0 + int(rng.integers(1, h)), c0 : c0 + int(rng.integers(1, w))] = int(rng.integers(0, 4))
        seen = labels > 0
        reach = float(rng.choice([2.0, 3.5, 8.0]))
        if (evidence > 0).any():
            distance, (rows, cols) = distance_transform_edt(evidence == 0, return_indices=True)
            nearest = evidence[rows, cols]
            expected = np.where((wanted > 0) & ~seen & (nearest == wanted) & (distance <= reach), wanted, labels)
        else:
            expected = labels
        np.testing.assert_array_equal(_assign_near_evidence(labels, wanted, seen, evidence, evidence > 0, reach), expected)


# ----------------------------------------------------------------------------- votes
def test_votes_rename_a_drifted_id_and_label_unlabelled_segments():
    auto = np.zeros((20, 20), dtype=np.int64)
    auto[:, :10] = 1
    auto[:, 10:] = 2
    labels = np.zeros((20, 20), dtype=np.int64)
    labels[:, :10] = 9  # the chain carried the wrong id onto segment 1
    evidence = np.zeros((20, 20), dtype=np.int64)
    evidence[::2, :10] = 4
    evidence[::2, 10:] = 6
    result = anchor_labels(labels, auto, evidence, AnchorConfig())
    assert (result.labels[:, :10] == 4).all()
    assert (result.labels[:, 10:] == 6).all()  # unlabelled segment: the evidence names it
    assert result.overruled == 1 and result.assigned == 1


def test_votes_split_a_segment_holding_two_known_ids():
    auto = np.ones((10, 20), dtype=np.int64)
    labels = np.full((10, 20), 3, dtype=np.int64)
    evidence = np.zeros((10, 20), dtype=np.int64)
    evidence[::2, :8:2] = 3
    evidence[::2, 12::2] = 5
    result = anchor_labels(labels, auto, evidence, AnchorConfig(split=True))
    assert result.split == 1
    assert (result.labels[:, :6] == 3).all() and (result.labels[:, 14:] == 5).all()


def test_sparse_evidence_gives_an_unlabelled_segment_back_to_its_absent_id():
    """A handful of triangulated points per segment decides when the whole frame's evidence is that sparse."""
    auto = np.zeros((200, 200), dtype=np.int64)
    auto[:, :100] = 1
    auto[:, 100:] = 2
    labels = np.where(auto == 1, 5, 0)  # the chain lost id 4 on segment 2
    evidence = np.zeros((200, 200), dtype=np.int64)
    spots = np.arange(8) * 20 + 10
    evidence[spots, 50] = 5
    evidence[spots, 150] = 4
    result = anchor_labels(labels, auto, evidence, AnchorConfig())
    assert result.assigned == 1 and (result.labels[spots, 150] == 4).all() and (result.labels[spots, 152] == 4).all()
    assert (result.labels[:, :100] == 5).all() and (result.labels[:, 100:] != 5).all()
    # The same few points are too little where the rest of the frame carries dense evidence.
    evidence[::2, :100] = 5
    result = anchor_labels(labels, auto, evidence, AnchorConfig())
    assert result.assigned == 0 and (result.labels == labels).all()


def test_votes_give_one_segment_of_an_id_to_the_id_its_evidence_names():
    """The chain carried id 3 onto segment 2 as well as its own segment 1; id 5 (present on segment 3) is named by
    segment 2's evidence: that segment alone goes to 5, and id 3 keeps segment 1."""
    auto = np.zeros((20, 30), dtype=np.int64)
    auto[:, :10], auto[:, 10:20], auto[:, 20:] = 1, 2, 3
    labels = np.where(auto == 3, 5, 3)
    evidence = np.zeros((20, 30), dtype=np.int64)
    evidence[::2, :10:2] = 3
    evidence[::2, 10:20:2] = 5
    result = anchor_labels(labels, auto, evidence, AnchorConfig(), evidence)
    assert (result.labels[:, :10] == 3).all() and (result.labels[:, 10:] == 5).all()
    assert result.overruled == 1 and result.ids == [5]
    kept = anchor_labels(labels, auto, evidence, AnchorConfig(reassign=False), evidence)
    assert (kept.labels == labels).all()
    assert (anchor_labels(labels, auto, evidence, AnchorConfig()).labels == labels).all()  # no pure evidence


def test_only_pure_voxels_reassign_a_segment():
    """Voxels the chain labelled both ways (a border two ids keep trading) do not give a segment to either id."""
    evidence = AnchorEvidence(voxel_size=1.0)
    clean, contested = np.array([[0.5, 0.5, 0.5]]), np.array([[3.5, 0.5, 0.5]])
    for obj_id in (5, 5, 5):
        evidence.add(np.array([obj_id]), clean)
    for obj_id in (5, 5, 3):
        evidence.add(np.array([obj_id]), contested)
    np.testing.assert_allclose(evidence.purity(), [1.0, 2 / 3])
    auto = np.zeros((20, 30), dtype=np.int64)
    auto[:, :10], auto[:, 10:20], auto[:, 20:] = 1, 2, 3
    labels = np.where(auto == 3, 5, 3)
    evidence_image = np.zeros((20, 30), dtype=np.int64)
    evidence_image[::2, :10:2] = 3
    evidence_image[::2, 10:20:2] = 5
    pure = np.where(evidence_image == 5, 0, evidence_image)  # segment 2's voxels are contested
    result = anchor_labels(labels, auto, evidence_image, AnchorConfig(), pure)
    assert (result.labels == labels).all() and result.overruled == 0


def test_sparse_points_seen_from_a_known_pose_decide_a_segments_id():
    """A few labelled 3D points on two objects, projected into a posed frame with their footprints, give back the
    segment the chain labelled with its neighbour's id; one pixel per point is too little to decide."""
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    auto = np.zeros(shape, dtype=np.int64)
    auto[:, :48], auto[:, 48:] = 1, 2
    labels = np.full(shape, 4, dtype=np.int64)  # the chain carried id 4 over both segments
    labels[:, 90:] = 6  # id 6 is present, on a sliver of its segment
    pixels = np.array([[x + 0.5, y + 0.5] for x in (12, 24, 36, 60, 72, 84) for y in (12, 36, 60)])
    points = camera.unproject(pixels, np.full(len(pixels), DEPTH))
    ids = np.where(pixels[:, 0] < 48, 4, 6)
    evidence = AnchorEvidence(voxel_size=0.4)
    evidence.add(ids, points)
    centres, owners = evidence.points()
    wide = AnchorConfig(max_footprint_fraction=0.2)  # the test image is small
    image = project_evidence(centres, owners, camera, shape, evidence.voxel_size, wide)
    result = anchor_labels(labels, auto, image, wide, image)
    assert (result.labels[:, :48] == 4).all() and (result.labels[:, 48:] == 6).all()
    dots = project_evidence(centres, owners, camera, shape, evidence.voxel_size, AnchorConfig(footprint=False))
    assert (anchor_labels(labels, auto, dots, AnchorConfig(), dots).labels == labels).all()


def test_votes_of_one_objects_ids_are_pooled_to_reassign_a_segment():
    """Segment 2, held by id 3, lies on the evidence of ids 5 and 6, which no single id holds enough of; both belong
    to object 5, so the segment goes to that object's id with the most votes (5). Segment 3, held by 6, on 5's
    evidence, is already that object's: it keeps its id (each id alone, it would go to 5 and segment 2 would stay
    with 3)."""
    auto = np.zeros((20, 30), dtype=np.int64)
    auto[:, :10], auto[:, 10:20], auto[:, 20:] = 1, 2, 3
    labels = np.where(auto == 3, 6, 3)
    pure = np.zeros((20, 30), dtype=np.int64)
    pure[::2, :10:2] = 3
    pure[::2, 10:20:2] = 5
    pure[::4, 10:20:2] = 6  # half of segment 2's votes name 6
    pure[1::2, 20::2] = 5
    config = AnchorConfig()
    alone, moved = reassign_segments(labels, auto, pure, config)  # ids alone: 6's segment goes to 5, 3's stays
    assert moved == [5] and (alone[auto == 2] == 3).all() and (alone[auto == 3] == 5).all()
    group = np.arange(7)
    group[6] = 5
    pooled, moved = reassign_segments(labels, auto, pure, config, group)
    assert moved == [5] and (pooled[auto == 2] == 5).all()
    assert (pooled[auto == 1] == 3).all() and (pooled[auto == 3] == 6).all()


def test_sparse_evidence_decides_relative_to_the_frames_evidence_density():
    """A few points on a segment held by the wrong id fall short of ``min_coverage`` of its area; where the whole
    frame's evidence is that sparse (``relative``), they are enough."""
    auto = np.zeros((100, 100), dtype=np.int64)
    auto[:, :50], auto[:, 50:] = 1, 2
    labels = np.where(auto == 1, 3, 3)
    labels[:, 90:] = 5
    pure = np.zeros((100, 100), dtype=np.int64)
    pure[5:100:10, 5:50:10] = 3
    pure[5:100:10, 55:90:10] = 5
    config = AnchorConfig()
    plain, moved = reassign_segments(labels, auto, pure, config)
    assert moved == [] and (plain == labels).all()
    relative, moved = reassign_segments(labels, auto, pure, config, relative=True)
    assert moved == [5] and (relative[auto == 2] == 5).all() and (relative[auto == 1] == 3).all()


def _early_frame_run(config: TrackerConfig) -> tuple[_Run, np.ndarray]:
    """Frame 0 (posed, no depth map), visited first, carries id 4 over two segments; the evidence of the whole
    sequence (later frames) shows the right segment's surface as id 6."""
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    frames = [Frame(image=np.zeros((*shape, 3), dtype=np.uint8), name=f"f{t}", index=t, camera=camera_at(0.3 * t))
              for t in range(2)]
    run = _Run(MastSAMTracker(config, None, None), frames, "triangulated", ViewOrder([0, 1], {0: None, 1: 0}, "cameras"))
    auto = np.zeros(shape, dtype=np.int64)
    auto[:, :48], auto[:, 48:] = 1, 2
    pixels = np.array([[x + 0.5, y + 0.5] for x in range(3, 96, 6) for y in range(3, 72, 6)])
    points = camera.unproject(pixels, np.full(len(pixels), DEPTH))
    run.evidence = AnchorEvidence(voxel_size=0.4)
    for _ in range(3):
        run.evidence.add(np.where(pixels[:, 0] < 48, 4, 6), points)
    run.labels[0] = np.full(shape, 4, dtype=np.uint16)
    run.labels[1] = np.full(shape, 6, dtype=np.uint16)
    run.next_id = 7
    run._keep_segments(0, auto)
    return run, auto


@pytest.mark.parametrize("pixels", [400_000, 1_000])
def test_segments_of_early_frames_take_the_id_the_completed_evidence_names(pixels, monkeypatch):
    """After the sequence, a frame labelled before later views told its segments apart is checked again: the
    segment the chain gave id 4 whose surface the evidence knows as id 6 takes id 6; id 4 keeps its own segment
    (also where the votes are counted on a subsample of the frame's pixels)."""
    monkeypatch.setattr(tracker_module, "RECHECK_PIXELS", pixels)
    config = TrackerConfig(anchor=AnchorConfig(max_footprint_fraction=0.2))
    run, auto = _early_frame_run(config)
    run.consolidate()
    labels = run.labels[0]
    assert (labels[auto == 1] == 4).all() and (labels[auto == 2] == 6).all()
    config = TrackerConfig(anchor=AnchorConfig(max_footprint_fraction=0.2, retroactive=False))
    run, _ = _early_frame_run(config)
    run.consolidate()
    assert (run.labels[0] == 4).all()


def test_too_few_votes_leave_the_labels():
    auto = np.ones((10, 10), dtype=np.int64)
    labels = np.full((10, 10), 2, dtype=np.int64)
    evidence = np.zeros((10, 10), dtype=np.int64)
    evidence[0, :3] = 7
    result = anchor_labels(labels, auto, evidence, AnchorConfig(min_votes=6))
    assert (result.labels == 2).all() and result.overruled == 0


# ----------------------------------------------------------------------------- view order
def test_spanning_order_follows_overlap_and_parents_are_visited_first():
    positions = np.array([0.0, 3.0, 1.0, 2.0, 4.0])
    distance = np.abs(positions[:, None] - positions[None])
    order = spanning_order(distance, [f"f{i}" for i in range(5)], "test")
    assert order.order == [0, 2, 3, 1, 4]
    assert order.parent == {0: None, 2: 0, 3: 2, 1: 3, 4: 1}


def test_view_order_from_cameras_and_sequence_switch():
    frames = sequence([0.0, 0.6, 0.15, 0.45, 0.3])
    graph = view_order(frames, ViewOrderConfig(order="view_graph"))
    assert graph.source == "cameras"
    assert graph.order == [0, 2, 4, 3, 1]
    assert graph.parent[1] == 3
    plain = view_order(frames, ViewOrderConfig(order="sequence"))
    assert plain.order == [0, 1, 2, 3, 4] and plain.parent[1] == 0


def test_view_order_without_cameras_uses_match_counts():
    frames = sequence([0.0, 0.6, 0.15, 0.45, 0.3])
    for f in frames:
        f.camera = None
        f.depth = None
    order = view_order(frames, ViewOrderConfig(order="view_graph", match_max_side=96), make_matcher("sift"))
    assert order.source == "matches" and sorted(order.order) == list(range(5)) and order.order[0] == 0
    assert all(order.order.index(p) < order.order.index(t) for t, p in order.parent.items() if p is not None)


# ----------------------------------------------------------------------------- tracker
def track(frames, matcher=None, **options):
    return MastSAMTracker(
        TrackerConfig(**options), make_segmenter("classical"), matcher or make_matcher("geometric"), "geometric"
    ).run(frames)


class SwappingMatcher:
    """The geometric matcher, except that from the third frame on it sends the first two objects' pixels onto each
    other (a propagation chain that swaps their ids)."""

    def __init__(self, frames):
        self.inner = make_matcher("geometric")
        self.frames = frames

    def match(self, frame_a, frame_b):
        matches = self.inner.match(frame_a, frame_b)
        if frame_b.index < 2:
            return matches
        gt_a = frame_a.gt
        cols = np.clip(matches.xy_a[:, 0].astype(int), 0, gt_a.shape[1] - 1)
        rows = np.clip(matches.xy_a[:, 1].astype(int), 0, gt_a.shape[0] - 1)
        src = gt_a[rows, cols]
        xy_b = matches.xy_b.copy()
        centre = {k: np.argwhere(frame_b.gt == k).mean(axis=0)[::-1] + 0.5 for k in (1, 2)}
        for k, other in ((1, 2), (2, 1)):
            moved = src == k
            xy_b[moved] = xy_b[moved] - centre[k] + centre[other]
        return Matches(
            xy_a=matches.xy_a, xy_b=xy_b.astype(matches.xy_b.dtype), confidence=matches.confidence
        )


def test_the_3d_vote_repairs_ids_the_chain_swaps():
    frames = sequence(SLIDE)
    order = ViewOrderConfig(order="sequence")
    no_check = MemoryConfig(check=False)  # the memory's own segment check would also undo the swap
    result = track(frames, SwappingMatcher(frames), view_order=order, memory=no_check)
    for obj in (1, 2):
        ids = {id_of(labels, f.gt, obj) for labels, f in zip(result.labels, frames)}
        assert len(ids) == 1, f"object {obj} got ids {ids}"
    assert sum(r.overruled_segments for r in result.reports) >= 1
    # Without the 3D vote (nor the naming after 3D parts, which repairs it too) the swapped chain keeps the swap.
    config = TrackerConfig(view_order=order, memory=MemoryConfig(check=False))
    config.anchor.enabled = False
    config.parts.enabled = False
    plain = MastSAMTracker(config, make_segmenter("classical"), SwappingMatcher(frames), "geometric").run(frames)
    before = id_of(plain.labels[0], frames[0].gt, 1)
    assert any(id_of(labels, f.gt, 1) != before for labels, f in zip(plain.labels, frames))


def partition(labels_list, frames):
    """Per object, the set of predicted ids over all frames, up to renumbering (ids replaced by first-seen rank)."""
    rank: dict[int, int] = {}
    out = []
    for labels, f in zip(labels_list, frames):
        row = []
        for obj in (1, 2, 3):
            obj_id = id_of(labels, f.gt, obj)
            row.append(rank.setdefault(obj_id, len(rank)) if obj_id else 0)
        out.append(tuple(row))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_shuffled_frames_get_the_same_ids_up_to_renumbering(seed):
    positions = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    frames = sequence(positions)
    ordered = track(frames)
    permutation = np.random.default_rng(seed).permutation(len(frames))
    shuffled_frames = [render(positions[i], index=int(i)) for i in permutation]
    shuffled = track(shuffled_frames)
    back = [None] * len(frames)
    for k, i in enumerate(permutation):
        back[i] = shuffled.labels[k]
    assert partition(ordered.labels, frames) == partition(back, frames)
    # Each object keeps one id over the whole sequence in both runs.
    for run_labels in (ordered.labels, back):
        for obj in (1, 2, 3):
            assert len({id_of(labels, f.gt, obj) for labels, f in zip(run_labels, frames)}) == 1
    # The labels come back in the order the frames were given in, with the visit recorded in the reports.
    assert [r.name for r in shuffled.reports] == [f.name for f in shuffled_frames]
    assert sum(r.parent is None for r in shuffled.reports) == 1


# ----------------------------------------------------------------------------- refinement
def test_pieces_and_the_refiner_wait_for_a_repeated_cut():
    from mastsam_splat.tracker.refine import RefineConfig, Refiner, pieces, split_pieces

    labels = np.zeros((10, 20), dtype=np.int64)
    labels[:, 2:18] = 5
    auto = np.zeros((10, 20), dtype=np.int64)
    auto[:, 2:12] = 1
    auto[:, 12:18] = 2
    config = RefineConfig(enabled=True, frames=2)
    assert pieces(labels, auto, config, min_area=4) == {5: [1, 2]}
    whole = np.where(labels > 0, 1, 0)
    assert pieces(labels, whole, config, min_area=4) == {}
    refiner = Refiner(config)
    assert refiner.due(labels, auto, 4) == {}
    assert refiner.due(labels, auto, 4) == {5: [1, 2]}
    split = split_pieces(labels, auto, 5, [1, 2], [9])
    assert (split[:, 2:12] == 5).all() and (split[:, 12:18] == 9).all()
    refiner.record(5, 9)
    assert refiner.related(5, 9) and not refiner.related(5, 6)
    assert refiner.families() == {5: [5, 9]}
    lut = np.arange(12)
    lut[9] = 11
    refiner.relabel(lut)
    assert refiner.families() == {5: [5, 11]}
    assert Refiner(RefineConfig(enabled=False)).due(labels, auto, 4) == {}


def test_family_pixels_follow_the_nearest_evidence():
    from mastsam_splat.tracker.refine import family_labels

    labels = np.zeros((6, 12), dtype=np.int64)
    labels[:, :10] = 5
    labels[:, 10:] = 7
    evidence = np.zeros((6, 12), dtype=np.int64)
    evidence[2, 1] = 5
    evidence[2, 8] = 9
    evidence[2, 11] = 7
    out = family_labels(labels, evidence, [5, 9])
    assert (out[:, :4] == 5).all() and (out[:, 6:10] == 9).all() and (out[:, 10:] == 7).all()


def test_refinement_splits_an_object_the_segmenter_cuts_and_relabels_earlier_frames():
    frames = sequence(SLIDE)

    config = TrackerConfig(view_order=ViewOrderConfig(order="sequence"))
    config.refine.enabled = True
    result = MastSAMTracker(config, CuttingSegmenter(frames, cut=lambda index: index > 0), make_matcher("geometric"), "geometric").run(frames)
    assert sum(r.refined for r in result.reports) >= 1
    # Every frame, the first (whole) one included, shows object 2 as two ids.
    for labels, f in zip(result.labels, frames):
        ids = set(np.unique(labels[f.gt == 2]).tolist()) - {0}
        assert len(ids) == 2, f"{f.name}: {ids}"


def test_absent_evidence_counts_in_fragment_merging_only_where_a_depth_map_shows_visibility() -> None:
    """Without depth (and without SfM observations), occluded voxels of an absent id would vote; its evidence is
    used only in frames with depth."""
    run, _ = _early_frame_run(TrackerConfig())
    labels = np.full((run.frames[0].height, run.frames[0].width), 4, dtype=np.int64)  # id 6 absent from frame 0
    assert run._absent_evidence(labels, 0) is None
    run.frames[0] = Frame(
        image=run.frames[0].image, name="f0", index=0, camera=run.frames[0].camera,
        depth=np.full(labels.shape, DEPTH, dtype=np.float32),
    )
    absent = run._absent_evidence(labels, 0)
    assert absent is not None and (absent.ids == 6).any() and not (absent.ids == 4).any()


def test_owners_purity_and_merges_equal_a_count_per_voxel():
    """Owners, purity and evidence merges, read off the voxels several ids share, equal a plain count per voxel."""
    rng = np.random.default_rng(5)
    evidence = AnchorEvidence(voxel_size=0.5)
    config = AnchorConfig(merge_min_voxels=2, merge_overlap=0.15)  # (merges in most steps)
    merged = 0
    for step in range(6):
        points = rng.uniform(0.0, 4.0, (300, 3))
        ids = rng.integers(0, 8, 300)
        evidence.add(ids, points)
        if step == 3:
            evidence.relabel(np.array([0, 1, 2, 3, 2, 5, 6, 7]))
        keys, row_ids, counts = evidence.pairs()
        voxels = np.unique(keys)
        expected_owner, expected_count, expected_purity = [], [], []
        for key in voxels.tolist():
            held = keys == key
            best = np.flatnonzero(held & (counts == counts[held].max()))[0]  # ties: the smaller (older) id
            expected_owner.append(row_ids[best])
            expected_count.append(counts[best])
            expected_purity.append(counts[best] / counts[held].sum())
        owner_keys, owners, owner_counts = evidence.owners()
        np.testing.assert_array_equal(owner_keys, voxels)
        np.testing.assert_array_equal(owners, expected_owner)
        np.testing.assert_array_equal(owner_counts, expected_count)
        np.testing.assert_array_equal(evidence.purity(), expected_purity)
        expected_merges = _plain_merges(evidence, config)
        assert evidence_merges(evidence, config) == expected_merges
        merged += len(expected_merges)
    assert merged > 0


def _plain_merges(evidence: AnchorEvidence, config: AnchorConfig) -> dict[int, int]:
    """``evidence_merges`` by a plain count of every (id, older owner) pair over every row."""
    keys, row_ids, _ = evidence.pairs()
    owner_keys, owners, _ = evidence.owners()
    row_owner = owners[np.searchsorted(owner_keys, keys)]
    expected_merges: dict[int, int] = {}
    per_id = np.bincount(row_ids)
    for young in np.unique(row_ids).tolist():
        mine = row_ids == young
        olds, shared = np.unique(row_owner[mine & (row_owner < young)], return_counts=True)
        for old, count in zip(olds.tolist(), shared.tolist()):
            if per_id[young] >= config.merge_min_voxels and count >= config.merge_overlap * per_id[young]:
                expected_merges[young] = old
    for young in list(expected_merges):
        while expected_merges[young] in expected_merges:
            expected_merges[young] = expected_merges[expected_merges[young]]
    return expected_merges


def test_evidence_merges_at_the_default_overlap_equal_a_plain_count():
    """Ids lying mostly (or only in part) on older ids' voxels, and ids spread over several older ids: at the default
    overlap only the first merge, as a plain count of every pair finds."""
    rng = np.random.default_rng(11)
    evidence = AnchorEvidence(voxel_size=0.5)
    config = AnchorConfig()
    surfaces = [rng.uniform(0.0, 8.0, (200, 3)) for _ in range(4)]
    for _ in range(3):
        for obj_id, surface in enumerate(surfaces, start=1):
            evidence.add(np.full(len(surface), obj_id), surface)
    evidence.add(np.full(120, 7), surfaces[1][:120])  # id 7: id 2 seen again
    evidence.add(np.full(100, 8), np.concatenate([surfaces[0][:60], rng.uniform(20.0, 24.0, (40, 3))]))  # in part
    evidence.add(np.full(100, 9), np.concatenate([surfaces[2][:50], surfaces[3][:50]]))  # over two ids
    expected = _plain_merges(evidence, config)
    assert expected == {7: 2}
    assert evidence_merges(evidence, config) == expected


def _observed_left_runs() -> dict[str, _Run]:
    """Runs over two frames that observe (SfM) only the left surface, id 4; id 6's surface on the right projects into
    the image too, hidden from the frames: one run per 3D point source, ``sfm`` and ``triangulated``."""
    camera = camera_at(0.0)
    shape = (camera.height, camera.width)
    left = np.array([[x + 0.5, y + 0.5] for x in range(3, 40, 6) for y in range(3, 72, 6)])
    right = np.array([[x + 0.5, y + 0.5] for x in range(60, 96, 6) for y in range(3, 72, 6)])
    left_xyz = camera.unproject(left, np.full(len(left), DEPTH))
    right_xyz = camera.unproject(right, np.full(len(right), DEPTH))
    observed = ObservedPoints(xy=left, xyz=left_xyz, point=np.arange(len(left)))
    frames = [
        Frame(image=np.zeros((*shape, 3), dtype=np.uint8), name=f"f{t}", index=t, camera=camera, observed=observed)
        for t in range(2)
    ]
    evidence = AnchorEvidence(voxel_size=0.4)
    evidence.add(np.full(len(left), 4), left_xyz)
    evidence.add(np.full(len(right), 6), right_xyz)
    runs = {}
    for source in ("sfm", "triangulated"):
        run = _Run(MastSAMTracker(TrackerConfig(), None, None), frames, source, ViewOrder([0, 1], {0: None, 1: 0}, "cameras"))
        run.evidence = evidence
        runs[source] = run
    return runs


def test_with_sfm_points_only_the_voxels_the_frame_observed_vote():
    """With the capture's SfM points (source ``sfm``), the evidence drawn into a frame is that of the points the
    reconstruction says the frame observed: an id whose voxels project into the image but which the frame does
    not observe (hidden behind another surface) draws nothing there."""
    runs = _observed_left_runs()
    shape = (runs["sfm"].frames[1].height, runs["sfm"].frames[1].width)
    images = {source: run._evidence_image(1, shape, None) for source, run in runs.items()}
    assert set(np.unique(images["triangulated"]).tolist()) == {0, 4, 6}
    assert set(np.unique(images["sfm"]).tolist()) == {0, 4}
    assert (images["sfm"][:, :40] == 4).any()


def test_with_sfm_points_segments_are_reassigned_by_the_voxels_the_frame_observed_only(monkeypatch):
    """Reassigning a segment (frames without a depth map) weighs the pure voxels the frame sees: with the capture's
    SfM points, those of the points it observed; otherwise (triangulated points) the z-buffer's guess."""
    runs = _observed_left_runs()
    given = {}

    def keep_pure(labels, auto, evidence, config, pure=None, counted=None):
        given[source] = pure
        return AnchorResult(labels)

    monkeypatch.setattr(tracker_module, "anchor_labels", keep_pure)
    for source, run in runs.items():
        frame = run.frames[1]
        shape = (frame.height, frame.width)
        run._anchor(frame, np.full(shape, 5, dtype=np.int64), np.ones(shape, dtype=np.int64), FrameReport(1, "f1"))
    assert set(np.unique(given["sfm"]).tolist()) == {0, 4}
    assert set(np.unique(given["triangulated"]).tolist()) == {0, 4, 6}


def test_absent_evidence_counts_in_fragment_merging_with_sfm_points_where_the_frame_observed_them():
    """The frame's SfM observations say which surfaces it sees, as a depth map does: without a depth map, the
    evidence of ids absent from the frame counts in fragment merging with the SfM points (only that of the points
    the frame observed), and not with points whose visibility nothing measured."""
    runs = _observed_left_runs()
    frame = runs["sfm"].frames[1]
    labels = np.full((frame.height, frame.width), 5, dtype=np.int64)  # ids 4 and 6 absent
    absent = runs["sfm"]._absent_evidence(labels, 1)
    assert absent is not None and set(np.unique(absent.ids).tolist()) == {4}
    assert runs["triangulated"]._absent_evidence(labels, 1) is None


@pytest.mark.parametrize("retroactive_sfm", [False, True])
def test_frames_with_sfm_points_are_checked_again_only_when_asked(retroactive_sfm):
    camera = camera_at(0.0)
    frames = [Frame(image=np.zeros((camera.height, camera.width, 3), dtype=np.uint8), name="f0", camera=camera)]
    config = TrackerConfig(anchor=AnchorConfig(retroactive_sfm=retroactive_sfm))
    order = ViewOrder([0], {0: None}, "cameras")
    assert _Run(MastSAMTracker(config, None, None), frames, "sfm", order)._rechecked(0) == retroactive_sfm
    assert _Run(MastSAMTracker(config, None, None), frames, "triangulated", order)._rechecked(0)


def _evidence_ids_reference(evidence):
    voted = evidence > 0
    ids, index = compact_ids(np.where(voted, evidence, 0))
    return voted, ids, index[voted]


def _vote_table_reference(groups, evidence, num_groups, indexed=None):
    voted, ids, voted_index = _evidence_ids_reference(evidence) if indexed is None else indexed
    table = np.bincount(groups[voted] * len(ids) + voted_index, minlength=num_groups * len(ids))
    table = table.reshape(num_groups, len(ids))
    table[:, 0] = 0
    return table, ids


@pytest.mark.parametrize("seed", range(6))
def test_vote_tables_equal_the_plain_computation(seed):
    """The votes the 3D vote counts (evidence ids over the voting pixels only, ids and areas from one count, the
    density of the evidence) equal the plain computation from ``compact_ids`` of the whole image."""
    rng = np.random.default_rng(seed)
    h, w = 40, 56
    auto = np.kron(rng.integers(1, 9, size=(5, 7)), np.ones((8, 8), dtype=np.int64))
    labels = np.kron(rng.integers(0, 6, size=(5, 7)), np.ones((8, 8), dtype=np.int64))
    labels[rng.random((h, w)) < 0.1] = 0
    blocks = np.kron(rng.integers(1, 12, size=(10, 14)), np.ones((4, 4), dtype=np.int64))
    evidence = np.where(rng.random((h, w)) < 0.4, blocks, 0)
    evidence[:, : 8 * (seed % 3)] = 0

    voted, ids, voted_index = _evidence_ids(evidence)
    want_voted, want_ids, want_index = _evidence_ids_reference(evidence)
    np.testing.assert_array_equal(voted, want_voted)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(voted_index, want_index)

    chain_ids, chain_index, area = compact_ids_areas(labels)
    want_chain_ids = np.unique(np.r_[0, labels.ravel()])
    want_chain_index = np.searchsorted(want_chain_ids, labels)
    np.testing.assert_array_equal(chain_ids, want_chain_ids)
    np.testing.assert_array_equal(chain_index, want_chain_index)
    np.testing.assert_array_equal(area, np.bincount(want_chain_index.ravel(), minlength=len(want_chain_ids)))

    for groups, num_groups in ((chain_index, len(chain_ids)), (auto, int(auto.max()) + 1)):
        got_table, got_ids = _vote_table(groups, evidence, num_groups, (voted, ids, voted_index))
        want_table, want_table_ids = _vote_table_reference(groups, evidence, num_groups)
        np.testing.assert_array_equal(got_table, want_table)
        np.testing.assert_array_equal(got_ids, want_table_ids)

    seen = labels > 0
    want_density = float(np.count_nonzero(seen & (evidence > 0))) / max(int(np.count_nonzero(seen)), 1)
    assert _evidence_density(seen, evidence, voted) == want_density


def test_anchor_labels_leave_their_inputs_alone():
    """Without votes that change anything the labels come back as they are (as int64); when the votes rename an
    id, the result is a new array and the given labels are not written into."""
    auto = np.ones((12, 12), dtype=np.int64)
    labels = np.full((12, 12), 3, dtype=np.int64)
    unchanged = anchor_labels(labels, auto, np.zeros_like(labels), AnchorConfig())
    assert unchanged.labels is labels and unchanged.overruled == 0
    given = labels.copy()
    renamed = anchor_labels(given, auto, np.full_like(labels, 5), AnchorConfig())
    assert renamed.overruled == 1 and (renamed.labels == 5).all()
    assert (given == 3).all()


@pytest.mark.parametrize("mode", ["sfm", "always", "never"])
def test_labels_are_carried_through_geometry_with_the_captures_sfm_points(mode):
    """The parent's labels are carried through the frame's 3D points and the two cameras where the points are the
    capture's SfM points (``sfm``, the default) or always when asked; triangulated matches' points carry through the
    correspondences unless ``always`` (they are the correspondences, with their noise)."""
    from mastsam_splat.tracker.points3d import FramePoints

    runs = _observed_left_runs()
    for source, run in runs.items():
        run.cfg = replace(run.cfg, propagation=replace(run.cfg.propagation, carry_geometry=mode))
        frame = run.frames[1]
        points = FramePoints(frame.observed.xy, frame.observed.xyz)
        geometry = run._carry_geometry(frame, 0, points)
        wanted = mode == "always" or (mode == "sfm" and source == "sfm")
        assert (geometry is not None) == wanted
        if wanted:
            assert geometry[0] is run.frames[0].camera and geometry[1] is frame.camera
            np.testing.assert_array_equal(geometry[3], points.xyz)
        assert run._carry_geometry(frame, 0, FramePoints.empty()) is None
