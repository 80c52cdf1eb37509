"""Sequence-level consolidation: ids on one 3D surface that never share a frame are merged, within split families
first."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.consolidate import (
    ConsolidationConfig,
    _hits_per_group,
    consolidation_merges,
    presence,
    voxel_centres,
)
from mastsam_splat.tracker.memory import _LIMIT, VoxelMemory, voxel_coords, voxel_keys
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
from mastsam_splat.tracker.view_order import ViewOrder
from mastsam_splat.types import Frame


def _cube(centre: tuple[float, float, float], seed: int, n: int = 300) -> np.ndarray:
    return np.asarray(centre) + (np.random.default_rng(seed).random((n, 3)) - 0.5)


def test_ids_kept_apart_are_never_merged() -> None:
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0))
    observed.add(2, _cube((0, 0, 0), 1))
    observed.add(3, _cube((0, 0, 0), 2))
    frames_of = {1: {0, 1}, 2: {2, 3}, 3: {4, 5}}
    config = ConsolidationConfig()
    assert consolidation_merges(observed, frames_of, config) == {2: 1, 3: 1}
    # 2 may not join 1; 3 may not join the group 1 leads (it holds 1), so it joins 2.
    apart = {(1, 2), (1, 3)}
    merges = consolidation_merges(observed, frames_of, config, apart=lambda a, b: (min(a, b), max(a, b)) in apart)
    assert merges == {3: 2}


def _bridged_surfaces(fragment_frames: set[int], bridge: bool = True) -> dict[int, int]:
    """Id 1 seen on one surface (frames 0-1), id 2 a fragment on a second surface, id 3 seen later on both (more of
    the second): sparse-point settings, so only the younger id's voxels are tested."""
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0))
    observed.add(2, _cube((3, 0, 0), 1))
    observed.add(3, np.concatenate([_cube((0, 0, 0), 2, n=150), _cube((3, 0, 0), 3, n=250)]))
    frames_of = {1: {0, 1}, 2: fragment_frames, 3: set(range(3, 9))}
    return consolidation_merges(observed, frames_of, ConsolidationConfig(symmetric=False, bridge=bridge))


def test_an_id_on_two_groups_joins_them_under_the_oldest() -> None:
    # 3 overlaps the fragment 2 most, but 1 enough too: all three are one object, under id 1.
    assert _bridged_surfaces({2}) == {2: 1, 3: 1}


def test_groups_sharing_frames_are_not_bridged() -> None:
    # the fragment shows in a frame of id 1: they are two objects, and 3 joins the one it overlaps most
    assert _bridged_surfaces({1}) == {3: 2}


def test_bridging_can_be_turned_off() -> None:
    assert _bridged_surfaces({2}, bridge=False) == {3: 2}


def _orbit_run() -> _Run:
    """An object (id 1) seen whole in frame 0 and split into two parts in both branches of the view graph:
    frames 1-2 (branch A) call the right part 2, frames 3-4 (branch B) call it 3. Part 1 (left) keeps id 1."""
    n = 5
    frames = [Frame(image=np.zeros((4, 8, 3), dtype=np.uint8), name=f"f{t}", index=t) for t in range(n)]
    order = ViewOrder([0, 1, 4, 2, 3], {0: None, 1: 0, 4: 0, 2: 1, 3: 4}, "cameras")
    run = _Run(MastSAMTracker(TrackerConfig(), None, None), frames, "none", order)
    whole = np.zeros((4, 8), dtype=np.uint16)
    whole[:, 1:7] = 1
    labels = [whole]
    for t in range(1, n):
        split = whole.copy()
        split[:, 4:7] = 2 if t <= 2 else 3
        labels.append(split)
    for t, x in enumerate(labels):
        run.labels[t] = x
    run.next_id = 4
    run.refiner.record(1, 2)
    run.refiner.record(1, 3)
    run.observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    run.observed.add(1, _cube((0, 0, 0), 0))
    run.observed.add(1, _cube((2, 0, 0), 1))
    run.observed.add(2, _cube((2, 0, 0), 2))
    run.observed.add(3, _cube((2, 0, 0), 3))
    return run


def test_one_part_split_off_in_both_branches_gets_one_id() -> None:
    run = _orbit_run()
    assert run.consolidate_families() == 1
    right = {int(np.unique(x[:, 4:7])[0]) for x in run.labels[1:]}
    assert right == {2}
    assert all((x[:, 1:4] == 1).all() for x in run.labels)
    assert run.refiner.families() == {1: [1, 2]}


def test_family_consolidation_leaves_other_ids_to_the_sequence_pass() -> None:
    run = _orbit_run()
    run.observed.add(7, _cube((2, 0, 0), 4))  # another object's id on the same voxels, never in these frames
    first = run.labels[0]
    first[:2, 0] = 7
    run.labels[0] = first
    run.next_id = 8
    assert run.consolidate_families() == 1
    assert any((x == 7).any() for x in run.labels)


def test_a_split_reuses_the_id_the_other_branch_gave_the_same_part() -> None:
    from mastsam_splat.tracker.evidence import AnchorEvidence
    from mastsam_splat.tracker.points3d import FramePoints
    from mastsam_splat.tracker.results import FrameReport

    run = _orbit_run()
    # One point per pixel of columns 1-6, at x = column: the left part (1-3) and the right part (4-6).
    rows, cols = np.mgrid[0:4, 1:7]
    xy = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    xyz = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5, np.full(cols.size, 0.5)], axis=1)
    points = FramePoints(np.repeat(xy, 3, axis=0), np.repeat(xyz, 3, axis=0))
    run.evidence = AnchorEvidence(voxel_size=1.0)
    run.evidence.add(np.repeat(np.where(cols.ravel() <= 3, 1, 2), 3), np.repeat(xyz, 3, axis=0))
    run.labels = [run.labels[0], run.labels[1], None, None, None]  # branch A split the object into 1 and 2
    run.refiner.parent = {2: 1}
    labels = run.labels[0].astype(np.int64)  # branch B still sees the whole object 1, cut in two by the segmenter
    auto = np.zeros_like(labels)
    auto[:, 1:4] = 1
    auto[:, 4:7] = 2
    for _ in range(run.cfg.refine.frames):
        out = run._refine(labels, auto, points, FrameReport(index=3, name="f3"), min_area=1)
    assert (out[:, 1:4] == 1).all() and (out[:, 4:7] == 2).all()
    assert run.next_id == 4 and run.refiner.families() == {1: [1, 2]}


def test_a_small_old_id_inside_a_large_young_id_is_merged() -> None:
    """Id 1 saw one corner of a surface early; id 2 covers the whole surface later: most of 2's voxels are new to
    1, but 1's lie inside 2's."""
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0, n=60) * 0.3)
    whole = np.concatenate([_cube((0, 0, 0), 1, n=60) * 0.3, _cube((1.5, 0, 0), 2, n=2000) * 3.0])
    observed.add(2, whole)
    frames_of = {1: {0, 1, 2}, 2: {5, 6, 7, 8}}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig(symmetric=False)) == {}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig()) == {2: 1}


def test_a_sliver_left_on_a_neighbour_is_no_cooccurrence() -> None:
    """Id 1 covers a part in frames 0-3 and leaves a sliver on a neighbour in frames 4-7, where id 2 carries the
    part: the sliver frames do not show id 1."""
    full = np.zeros((10, 10), dtype=np.uint16)
    full[:, :5] = 1
    sliver = np.zeros((10, 10), dtype=np.uint16)
    sliver[:, :5] = 2
    sliver[0, 5:8] = 1
    maps = [full] * 4 + [sliver] * 4
    assert presence(maps, 1)[1] == set(range(8))
    assert presence(maps, 1, 0.25)[1] == {0, 1, 2, 3}
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0))
    observed.add(2, _cube((0, 0, 0), 1))
    config = ConsolidationConfig()
    assert consolidation_merges(observed, presence(maps, 1), config) == {}
    assert consolidation_merges(observed, presence(maps, 1, config.min_presence), config) == {2: 1}


def test_sparse_points_keep_the_one_way_test_and_every_frame() -> None:
    config = ConsolidationConfig()
    assert config.for_points("dense") == config
    sparse = config.for_points("sparse")
    assert not sparse.symmetric and sparse.min_presence == 0.0 and not sparse.rank_forward
    assert sparse.min_overlap == config.min_overlap and sparse.max_cooccurrence == config.max_cooccurrence
    tracks = config.for_points("tracks")
    assert tracks.symmetric and tracks.min_presence == 0.0 and tracks.rank_forward


def test_sfm_tracks_rank_groups_by_the_share_of_the_id_s_own_voxels() -> None:
    """Id 1 covers a surface, id 2 (seen with 1) a few points of its corner; id 3, seen later, covers most of the
    surface: nearly all of 2's voxels lie among 3's, but far more of 3's lie among 1's."""
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0, n=600) * 2.0)
    observed.add(2, _cube((0.8, 0.8, 0.8), 1, n=40) * 0.2)
    observed.add(3, np.concatenate([_cube((0, 0, 0), 2, n=600) * 2.0, _cube((0.8, 0.8, 0.8), 3, n=40) * 0.2]))
    frames_of = {1: {0, 1, 2}, 2: {0, 1, 2}, 3: {5, 6, 7, 8}}
    config = ConsolidationConfig()
    assert consolidation_merges(observed, frames_of, config) == {3: 2}
    assert consolidation_merges(observed, frames_of, config.for_points("tracks")) == {3: 1}


def test_an_id_with_too_few_voxels_is_merged_with_nothing() -> None:
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, _cube((0, 0, 0), 0))
    observed.add(2, np.zeros((1, 3)))  # a sky segment: one 3D point
    observed.add(3, _cube((0, 0, 0), 2))
    frames_of = {1: {0, 1}, 2: {2}, 3: {4}}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig(min_voxels=0)) == {2: 1, 3: 1}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig()) == {3: 1}
    # nothing joins a group led by such an id either
    frames_of = {2: {0}, 1: {1}}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig()) == {}


def test_merges_follow_the_ids_not_the_input_order_of_the_frames() -> None:
    """Ids are numbered in visiting order, so the merges (younger id into older) are the same whatever order the
    frames were given in: a shuffled input keeps every id."""
    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    for obj_id in (1, 2, 3):
        observed.add(obj_id, _cube((0, 0, 0), obj_id))
    frames_of = {1: {5}, 2: {0}, 3: {9}}
    shuffled = {1: {2}, 2: {7}, 3: {4}}
    assert consolidation_merges(observed, frames_of, ConsolidationConfig()) == {2: 1, 3: 1}
    assert consolidation_merges(observed, shuffled, ConsolidationConfig()) == {2: 1, 3: 1}


def test_hits_per_group_counts_distinct_voxels_in_order_of_first_appearance():
    """The vectorised count equals the plain loop: per group (an id's leader), the distinct voxels of ``b`` falling
    into its ids, groups in the order they first appear, ``b``'s own group, unknown and small groups left out."""
    rng = np.random.default_rng(3)
    point_index = rng.integers(0, 40, 300)
    hit_ids = rng.integers(1, 12, 300)
    leader = {4: 2, 6: 2, 9: 3}
    groups = {1: set(), 2: set(), 3: set(), 5: set(), 7: set(), 8: set(), 10: set()}
    small = {8}
    expected: dict[int, set[int]] = {}
    for p, i in zip(point_index.tolist(), hit_ids.tolist()):
        root = leader.get(i, i)
        if root != 5 and root in groups and root not in small:
            expected.setdefault(root, set()).add(p)
    got = _hits_per_group(point_index, hit_ids, leader, groups, small, b=5)
    assert got == [(root, len(points)) for root, points in expected.items()]
    assert _hits_per_group(point_index[:0], hit_ids[:0], leader, groups, small, b=5) == []


def test_voxel_centres_equal_the_integer_coordinates_converted_and_scaled() -> None:
    """``voxel_centres`` (coordinates shifted in float64) equals ``(coords + 0.5) * size`` of the integer coordinates,
    and inverts ``voxel_keys``."""
    rng = np.random.default_rng(3)
    coords = rng.integers(-_LIMIT, _LIMIT, (500, 3))
    coords[:10] = [-_LIMIT, 0, _LIMIT]
    keys = voxel_keys(coords)
    for size in (0.0123, 0.1, 1 / 3, 7.0):
        expected = (coords.astype(np.float64) + 0.5) * size
        centres = voxel_centres(keys, size)
        np.testing.assert_array_equal(centres, expected)
        np.testing.assert_array_equal(voxel_coords(centres, size), coords)
    assert voxel_centres(keys[:0], 0.1).shape == (0, 3)


def test_voxel_centres_by_coordinate_hold_the_same_values_one_coordinate_per_row() -> None:
    """``by_coordinate`` gives the same centres, each coordinate contiguous (the transpose of a [3, K] array)."""
    keys = voxel_keys(np.random.default_rng(4).integers(-_LIMIT, _LIMIT, (300, 3)))
    rows = voxel_centres(keys, 0.0123)
    columns = voxel_centres(keys, 0.0123, by_coordinate=True)
    np.testing.assert_array_equal(columns, rows)
    assert columns.T.flags.c_contiguous and not rows.T.flags.c_contiguous
    assert voxel_centres(keys[:0], 0.1, by_coordinate=True).shape == (0, 3)
