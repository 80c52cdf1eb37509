"""The 3D re-identification memory, the 3D point sources and the labelled point cloud."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData

from mastsam_splat.geometry.similarity import umeyama
from mastsam_splat.io.ply import PointCloud, write_point_cloud
from mastsam_splat.tracker.consolidate import ConsolidationConfig, consolidation_merges, presence
from mastsam_splat.tracker import memory as memory_module
from mastsam_splat.tracker.memory import (
    VoxelMemory,
    auto_voxel_size,
    labelled_voxels,
    merge_pairs,
    neighbour_keys,
    unique_pairs,
    voxel_coords,
    voxel_keys,
)
from mastsam_splat.tracker.pointcloud import LabelledPointCloud, voxel_downsample
from mastsam_splat.tracker.points3d import (
    FramePoints,
    PairChain,
    choose_source,
    depth_points,
    matched_points,
    observed_points,
    triangulated_points,
)
from mastsam_splat.types import Matches, ObservedPoints

from support.planar_scene import DEPTH, render


def cube_points(centre, size=1.0, n=400, seed=0) -> np.ndarray:
    return np.asarray(centre) + (np.random.default_rng(seed).random((n, 3)) - 0.5) * size


def test_memory_identifies_the_id_whose_voxels_hold_the_points():
    memory = VoxelMemory(voxel_size=0.1, neighborhood=1)
    memory.add(1, cube_points((0, 0, 0)))
    memory.add(2, cube_points((5, 0, 0)))
    again = cube_points((5, 0, 0), seed=1)  # same object, other samples
    found = memory.identify(again, min_fraction=0.5, min_points=10)
    assert found is not None and found.obj_id == 2 and found.fraction > 0.9
    assert memory.identify(cube_points((20, 0, 0)), 0.5, 10) is None  # nowhere seen before
    assert memory.identify(again, 0.5, 10, exclude=[2]) is None
    assert memory.identify(again[:5], 0.5, 10) is None  # too few points to decide
    fractions = memory.fractions(np.concatenate([cube_points((0, 0, 0), seed=3), cube_points((5, 0, 0), seed=4)]))
    assert fractions[1] == pytest.approx(0.5, abs=0.05) and fractions[2] == pytest.approx(0.5, abs=0.05)


def test_memory_merge_and_labelled_add():
    memory = VoxelMemory(voxel_size=0.5, neighborhood=0)
    pts = np.array([[0.1, 0.1, 0.1], [3.1, 0.1, 0.1], [3.2, 0.2, 0.2], [np.nan, 0, 0]])
    memory.add_labelled(np.array([4, 7, 0, 4]), pts)
    assert memory.ids == [4, 7]
    assert memory.num_voxels(4) == 1 and memory.num_voxels(7) == 1
    memory.merge(7, 4)
    assert memory.ids == [4] and memory.num_voxels(4) == 2
    with pytest.raises(ValueError):
        VoxelMemory(0.0)
    keys, ids = unique_pairs(np.array([3, 1, 3, 1]), np.array([2, 2, 2, 5]))
    assert keys.tolist() == [1, 1, 3] and ids.tolist() == [2, 5, 2]


def test_auto_voxel_size_scales_with_viewing_distance():
    pts = np.array([[0, 0, 10.0]] * 20) + np.random.default_rng(0).normal(0, 0.01, (20, 3))
    assert auto_voxel_size(pts, 0.01) == pytest.approx(0.1, rel=0.01)
    assert auto_voxel_size(pts, 0.01, viewpoint=np.array([0, 0, 5.0])) == pytest.approx(0.05, rel=0.02)
    assert auto_voxel_size(pts[:3], 0.01) is None


def test_depth_points_unproject_onto_the_plane():
    frame = render(0.7)
    pts = depth_points(frame, max_points=500)
    assert 300 <= len(pts) <= 2000
    np.testing.assert_allclose(pts.xyz[:, 2], DEPTH, atol=1e-6)
    # Pixel (x, y) of a camera at tx = 0.7 sees world x = (x - cx) / f * z + 0.7.
    np.testing.assert_allclose(pts.xyz[:, 0], (pts.xy[:, 0] - 48) / 80 * DEPTH + 0.7, atol=1e-6)


def test_triangulated_points_of_a_posed_pair():
    a, b = render(0.0), render(0.5)
    world = np.array([[0.3, 0.2, DEPTH], [-1.0, 0.5, DEPTH], [1.0, -0.7, DEPTH]])
    xy_a, _ = a.camera.project(world)
    xy_b, _ = b.camera.project(world)
    xy_b[2] += 10.0  # a wrong correspondence: large reprojection error, dropped
    pa, pb = triangulated_points(a, b, Matches(xy_a, xy_b, np.ones(3)), max_reprojection_error=2.0)
    assert len(pa) == len(pb) == 2
    np.testing.assert_allclose(pa.xyz, world[:2], atol=1e-3)


def test_pair_chain_aligns_per_pair_frames():
    rng = np.random.default_rng(0)
    world = rng.random((200, 3)) * 4
    xy = rng.random((200, 2)) * 90
    # Pair 1 gives world points; pair 2 gives the same points of the shared frame in another (scaled, moved) frame.
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    other = 2.0 * world @ rot.T + [1.0, -2.0, 0.5]
    chain = PairChain()
    chain.add_pair(FramePoints(xy + 5, world), FramePoints(xy, world))
    a2, b2 = chain.add_pair(FramePoints(xy, other), FramePoints(xy - 3, other))
    np.testing.assert_allclose(a2.xyz, world, atol=1e-6)
    np.testing.assert_allclose(b2.xyz, world, atol=1e-6)
    assert chain.aligned_pairs == 1
    transform = umeyama(world, other)
    np.testing.assert_allclose(world @ transform[:3, :3].T + transform[:3, 3], other, atol=1e-9)


def test_matched_points_and_source_choice():
    m = Matches(np.zeros((2, 2)), np.ones((2, 2)), np.ones(2), pts3d_a=np.array([[0, 0, 1.0], [np.nan, 0, 0]]))
    pa, pb = matched_points(m)
    assert len(pa) == len(pb) == 1
    assert matched_points(Matches.empty())[0].xy.shape == (0, 2)
    posed = [render(0.0), render(0.3)]
    unposed = [render(0.0), render(0.3)]
    for f in unposed:
        f.camera, f.depth = None, None
    assert choose_source(posed, "auto", "geometric") == "depth"
    assert choose_source(unposed, "auto", "sift") == "none"
    assert choose_source(unposed, "auto", "mast3r") == "matches"
    assert choose_source(unposed, "depth", "sift") == "none"
    no_depth = [render(0.0)]
    no_depth[0].depth = None
    assert choose_source(no_depth, "auto", "sift") == "matches"
    assert choose_source(no_depth, "auto", "geometric") == "triangulated"
    assert choose_source(no_depth, "sfm", "sift") == "none"
    observed = ObservedPoints(xy=np.ones((3, 2)), xyz=np.ones((3, 3)), point=np.arange(3))
    no_depth[0].observed = observed
    assert choose_source(no_depth, "auto", "sift") == "sfm"
    assert choose_source(no_depth, "matches", "sift") == "matches"
    posed[0].observed = observed
    assert choose_source(posed, "auto", "geometric") == "depth"
    assert len(observed_points(no_depth[0])) == 3 and len(observed_points(posed[1])) == 0


def test_point_cloud_labels_colours_and_downsampling(tmp_path):
    frame = render(0.0)
    labels = frame.gt
    cloud = LabelledPointCloud()
    pts = depth_points(frame, max_points=5000)
    cloud.add(pts, frame.image, labels)
    xyz, rgb, ids = cloud.arrays()
    assert len(xyz) == len(pts)
    red = ids == 1
    assert red.any() and np.all(rgb[red] == [220, 40, 40])
    down_xyz, down_rgb, down_ids = voxel_downsample(xyz, rgb, ids, voxel_size=0.25)
    assert 0 < len(down_xyz) < len(xyz)
    assert set(np.unique(down_ids)) <= set(np.unique(ids))
    path = write_point_cloud(tmp_path / "points.ply", PointCloud(down_xyz, down_rgb, down_ids))
    vertex = PlyData.read(str(path))["vertex"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue", "instance_id"]
    assert len(vertex.data) == len(down_xyz)
    empty = write_point_cloud(
        tmp_path / "empty.ply", PointCloud(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0, np.int32))
    )
    assert len(PlyData.read(str(empty))["vertex"].data) == 0


def test_consolidation_merges_ids_on_one_surface_that_never_share_a_frame():

    observed = VoxelMemory(voxel_size=0.1, neighborhood=1)
    observed.add(1, cube_points((0, 0, 0)))
    observed.add(2, cube_points((0.05, 0, 0), seed=1))  # the same object, after an id switch
    observed.add(3, cube_points((4, 0, 0), seed=2))  # elsewhere
    observed.add(4, cube_points((0, 0, 0), seed=3))  # same place but seen together with 1: a different object
    frames_of = {1: {0, 1, 2}, 2: {3, 4, 5}, 3: {3, 4, 5}, 4: {1, 2, 3}}
    config = ConsolidationConfig(min_overlap=0.5, max_cooccurrence=0.1)
    assert consolidation_merges(observed, frames_of, config) == {2: 1}
    labels = [np.array([[1, 1], [0, 3]], dtype=np.uint16), np.array([[3, 0], [0, 0]], dtype=np.uint16)]
    assert presence(labels, min_area=2) == {1: {0}}


def test_point_cloud_memory_stays_bounded_and_matches_the_raw_cloud():
    frame = render(0.0)
    pts = depth_points(frame, max_points=5000)
    exact = LabelledPointCloud()
    bounded = LabelledPointCloud(compact_points=2000, batch_points=2000)
    sizes = []
    for _ in range(12):  # the same surface seen again and again
        exact.add(pts, frame.image, frame.gt)
        bounded.add(pts, frame.image, frame.gt)
        sizes.append(len(bounded.arrays()[0]))
    assert bounded.summarised and not exact.summarised
    assert len(bounded) == len(exact) == 12 * len(pts)
    assert max(sizes[4:]) <= sizes[3] + len(pts)  # held points stop growing with the frame count
    lut = np.arange(int(frame.gt.max()) + 1)
    lut[2] = 1
    exact.relabel(lut)
    bounded.relabel(lut)
    xa, ra, ia = exact.downsampled(0.02)
    xb, rb, ib = bounded.downsampled(0.02)
    assert abs(len(xa) - len(xb)) <= 0.05 * len(xa)
    assert 2 not in set(ib.tolist())
    nearest = np.argmin(np.linalg.norm(xa[None, :, :] - xb[:, None, :], axis=-1), axis=1)
    assert np.mean(ia[nearest] == ib) > 0.95
    assert np.median(np.abs(ra[nearest].astype(int) - rb)) <= 2


def test_merge_pairs_is_the_sorted_union():
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = unique_pairs(rng.integers(0, 30, 60) + (1 << 60), rng.integers(0, 5, 60))
        b = unique_pairs(rng.integers(0, 30, 40) + (1 << 60), rng.integers(0, 5, 40))
        keys, ids = merge_pairs(*a, *b)
        expected = unique_pairs(np.r_[a[0], b[0]], np.r_[a[1], b[1]])
        np.testing.assert_array_equal(keys, expected[0])
        np.testing.assert_array_equal(ids, expected[1])


@pytest.mark.parametrize("exclusive", [False, True])
def test_point_hits_match_a_direct_neighbourhood_search(exclusive):
    rng = np.random.default_rng(1)
    memory = VoxelMemory(voxel_size=0.1, neighborhood=1, exclusive=exclusive)
    for _ in range(4):
        memory.add_labelled(rng.integers(0, 5, 300), rng.uniform(-0.5, 0.5, (300, 3)))
    memory.merge(2, 1)
    query = np.repeat(rng.uniform(-0.6, 0.6, (40, 3)), 2, axis=0)  # pairs of points in one voxel
    query[5] = np.nan
    point_index, hit_ids = memory.point_hits(query)
    keys, ids = memory.pairs()
    held: dict[tuple, set] = {}
    for key, obj_id in zip(keys.tolist(), ids.tolist()):
        held.setdefault(key, set()).add(obj_id)
    expected = []
    for n in range(len(query)):
        if not np.isfinite(query[n]).all():
            continue
        c = voxel_coords(query[n : n + 1], 0.1)[0]
        found: set = set()
        for offset in np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3):
            found |= held.get(int(voxel_keys((c + offset)[None])[0]), set())
        expected += [(n, i) for i in sorted(found)]
    assert list(zip(point_index.tolist(), hit_ids.tolist())) == expected


@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_neighbour_keys_are_the_keys_of_the_neighbouring_coordinates(radius):
    rng = np.random.default_rng(radius)
    limit = (1 << 20) - 2
    coords = np.r_[rng.integers(-50, 50, (30, 3)), [[limit, -limit, 0], [-limit, limit, limit]]]
    offsets = np.stack(np.meshgrid(*[np.arange(-radius, radius + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    expected = voxel_keys((coords[:, None, :] + offsets[None]).reshape(-1, 3)).reshape(len(coords), -1)
    np.testing.assert_array_equal(neighbour_keys(voxel_keys(coords), radius), expected)


@pytest.mark.parametrize("exclusive", [False, True])
def test_queued_batches_merge_into_the_same_pairs(monkeypatch, exclusive):
    rng = np.random.default_rng(2)
    batches = [(rng.integers(0, 6, 200), rng.uniform(-0.5, 0.5, (200, 3))) for _ in range(6)]
    stored = {}
    for min_queue in (1, 1 << 30):  # merged at every batch / only when read
        monkeypatch.setattr(memory_module, "_MIN_QUEUE", min_queue)
        memory = VoxelMemory(voxel_size=0.1, exclusive=exclusive)
        for ids, points in batches:
            memory.add_labelled(ids, points)
            memory.add(7, points[:10])
        stored[min_queue] = memory.pairs()
    for a, b in zip(stored[1], stored[1 << 30]):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.int64


def test_ids_are_stored_compactly_and_widen_when_needed():
    memory = VoxelMemory(voxel_size=0.1)
    memory.add(3, cube_points((0, 0, 0)))
    memory.add(4, cube_points((5, 0, 0)))
    assert memory._ids.dtype == np.int32 and memory.pairs()[1].dtype == np.int64
    big = 1 << 40
    memory.merge(4, big)
    assert memory.ids == [3, big]
    memory.add(big + 1, cube_points((10, 0, 0)))
    assert memory.ids == [3, big, big + 1]
    found = memory.identify(cube_points((10, 0, 0), seed=1), 0.5, 10)
    assert found is not None and found.obj_id == big + 1


def test_unique_pairs_of_sorted_runs_equal_the_general_case():
    rng = np.random.default_rng(3)
    first = np.concatenate([np.sort(rng.integers(0, 50, 80)) for _ in range(4)])
    second = rng.integers(0, 7, len(first))
    for a, b in zip(unique_pairs(first, second, runs=True), unique_pairs(first, second)):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.int64


@pytest.mark.parametrize("exclusive", [False, True])
def test_add_voxels_equals_add_labelled(exclusive):
    from mastsam_splat.tracker.memory import labelled_voxels, unique_pairs

    rng = np.random.default_rng(1)
    given, plain = VoxelMemory(0.5, exclusive=exclusive), VoxelMemory(0.5, exclusive=exclusive)
    for _ in range(3):
        points = rng.uniform(0.0, 4.0, (300, 3))
        ids = rng.integers(0, 5, 300)
        given.add_voxels(*unique_pairs(*labelled_voxels(ids, points, 0.5)))
        plain.add_labelled(ids, points)
    for mine, theirs in zip(given.pairs(), plain.pairs()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_point_hits_equal_a_brute_force_search_of_the_neighbourhood(radius):
    from mastsam_splat.tracker.memory import voxel_coords

    rng = np.random.default_rng(radius)
    memory = VoxelMemory(0.5, neighborhood=radius)
    stored = rng.uniform(-3.0, 3.0, (400, 3))
    stored_ids = rng.integers(1, 7, 400)
    memory.add_labelled(stored_ids, stored)
    queries = np.concatenate([rng.uniform(-4.0, 4.0, (150, 3)), [[np.nan, 0.0, 0.0]]])
    point_index, hit_ids = memory.point_hits(queries)
    stored_coords = voxel_coords(stored, 0.5)
    expected = []
    for p, coords in enumerate(voxel_coords(queries[:-1], 0.5)):
        near = np.abs(stored_coords - coords).max(axis=1) <= radius
        expected += [(p, i) for i in sorted(set(stored_ids[near].tolist()))]
    assert list(zip(point_index.tolist(), hit_ids.tolist())) == expected
    assert point_index.dtype == np.int64 and hit_ids.dtype == np.int64
    all_finite = memory.point_hits(queries[:-1])  # (no point dropped)
    assert list(zip(*(a.tolist() for a in all_finite))) == expected


def test_pair_positions_equal_a_search_in_key_then_id_order():
    from mastsam_splat.tracker.memory import pair_positions

    rng = np.random.default_rng(2)
    a = np.unique(rng.integers(0, 40, 300) * 100 + rng.integers(0, 9, 300))  # distinct (key, id) codes, sorted
    b = rng.integers(0, 45, 200) * 100 + rng.integers(0, 12, 200)
    position, held = pair_positions(a // 100, a % 100, b // 100, b % 100)
    np.testing.assert_array_equal(position, np.searchsorted(a, b))
    np.testing.assert_array_equal(held, np.isin(b, a))
    assert held.any() and not held.all()


def test_merges_and_transfers_keep_the_pairs_of_a_plain_set():
    rng = np.random.default_rng(3)
    memory = VoxelMemory(voxel_size=1.0, neighborhood=0)
    points = rng.integers(0, 6, (300, 3)).astype(np.float64) + 0.5
    ids = rng.integers(1, 6, 300)
    memory.add_labelled(ids, points)
    plain = {(int(k), int(i)) for k, i in zip(*labelled_voxels(ids, points, 1.0))}
    for step in range(30):
        src, dst = (int(x) for x in rng.choice(np.arange(1, 9), 2, replace=False))
        if step % 2:
            memory.merge(src, dst)
            plain = {(k, dst if i == src else i) for k, i in plain}
        else:
            moved = points[rng.random(len(points)) < 0.3]
            keys = set(voxel_keys(voxel_coords(moved, 1.0)).tolist())
            memory.transfer(moved, src, dst)
            plain = {(k, dst if i == src and k in keys else i) for k, i in plain}
        keys, held = memory.pairs()
        assert list(zip(keys.tolist(), held.tolist())) == sorted(plain)


def test_key_hits_are_the_point_hits_of_the_voxel_centres():
    from mastsam_splat.tracker.consolidate import voxel_centres

    rng = np.random.default_rng(4)
    memory = VoxelMemory(voxel_size=0.25, neighborhood=1)
    points = rng.normal(0, 1.0, (500, 3))
    memory.add_labelled(rng.integers(1, 9, 500), points)
    keys = voxel_keys(voxel_coords(rng.normal(0, 1.2, (200, 3)), 0.25))
    index, hit = memory.key_hits(keys)
    expected_index, expected_hit = memory.point_hits(voxel_centres(keys, 0.25))
    assert len(index) > 0
    np.testing.assert_array_equal(index, expected_index)
    np.testing.assert_array_equal(hit, expected_hit)
    assert [len(a) for a in VoxelMemory(0.25).key_hits(keys)] == [0, 0]


@pytest.mark.parametrize("weighted", [False, True])
def test_identify_groups_equals_identify_of_each_group(weighted: bool) -> None:
    from mastsam_splat.tracker.memory import WeightedVoxelMemory

    rng = np.random.default_rng(11)
    memory = WeightedVoxelMemory(0.5) if weighted else VoxelMemory(0.5, exclusive=True)
    for obj_id in range(1, 6):
        memory.add(obj_id, rng.normal(obj_id, 0.8, (200, 3)))
    groups = [rng.normal(rng.integers(1, 6), 0.8, (n, 3)) for n in (40, 3, 0, 25, 60)]
    groups[3][:5] = np.nan  # non-finite points count in the share, and hit nothing
    finite = [g[np.isfinite(g).all(axis=1)] for g in groups]
    keys = np.concatenate([voxel_keys(voxel_coords(g, 0.5)) for g in finite])
    group = np.repeat(np.arange(len(groups)), [len(g) for g in finite])
    for exclude in ((), (2, 3)):
        got = memory.identify_groups(keys, group, [len(g) for g in groups], 0.3, 5, exclude)
        want = [memory.identify(g, 0.3, 5, exclude) for g in groups]
        assert got == want
        assert any(w is not None for w in want) and any(w is None for w in want)


@pytest.mark.parametrize("high", [8, 1 << 40])
def test_unique_pairs_by_table_or_sort_equal_numpy_unique(high):
    """Few possible codes (a table of the present ones) or many (a sort): the distinct pairs, sorted, as int64."""
    rng = np.random.default_rng(3)
    first, second = rng.integers(0, high, 500), rng.integers(0, 6, 500)
    expected = np.unique(np.stack([first, second], axis=1), axis=0)
    got = unique_pairs(first, second, runs=True)
    assert got[0].dtype == got[1].dtype == np.int64
    np.testing.assert_array_equal(np.stack(got, axis=1), expected)
