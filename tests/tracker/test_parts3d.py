"""3D parts: co-occurrence counts of neighbouring voxels, regions merged on their pooled borders, segments named
after their region, and the object map carried over to the new names."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.tracker import parts3d
from mastsam_splat.tracker.memory import voxel_keys
from mastsam_splat.tracker.parts3d import (
    PartsConfig,
    SegmentCooccurrence,
    majority_segment,
    part_regions,
    frame_names,
    region_names,
    regions_apart,
    renamed_objects,
    segment_regions,
)


def keys_of(*coords: tuple[int, int, int]) -> np.ndarray:
    return voxel_keys(np.array(coords, dtype=np.int64).reshape(-1, 3))


def test_majority_segment_per_voxel_leaves_out_points_without_voxel() -> None:
    k = keys_of((0, 0, 0), (1, 0, 0), (5, 5, 5))
    keys = np.array([k[0], k[0], k[0], k[1], k[1], 0, k[2], k[2]])
    segments = np.array([2, 2, 1, 3, 4, 7, 0, 0])
    voxels, segment = majority_segment(keys, segments)
    assert voxels.tolist() == sorted(int(x) for x in k)
    by_voxel = dict(zip(voxels.tolist(), segment.tolist()))
    assert by_voxel[int(k[0])] == 2  # two points of 2 against one of 1
    assert by_voxel[int(k[1])] == 3  # a tie goes to the smaller segment
    assert by_voxel[int(k[2])] == 0  # seen, in no segment


def test_cooccurrence_counts_each_neighbouring_pair_per_frame() -> None:
    a, b, far = keys_of((0, 0, 0), (1, 1, 0), (4, 0, 0))  # (a and b touch diagonally; far touches neither)
    counts = SegmentCooccurrence(voxel_size=0.1)
    counts.add(np.array([a, b, far]), np.array([1, 1, 1]))
    counts.add(np.array([a, b]), np.array([1, 2]))
    counts.add(np.array([a, b]), np.array([5, 5]))
    counts.add(np.array([a]), np.array([1]))  # (b unseen: the pair is not observed)
    voxels, first, second, together, seen = counts.graph()
    assert counts.frames == 4 and len(counts) == 1
    assert sorted([voxels[first[0]], voxels[second[0]]]) == sorted([a, b])
    assert (together.tolist(), seen.tolist()) == ([2], [3])


def test_cooccurrence_sums_across_consolidations(monkeypatch) -> None:
    import mastsam_splat.tracker.parts3d as parts3d

    monkeypatch.setattr(parts3d, "_CONSOLIDATE_ROWS", 1)  # (summed into the table after every frame)
    a, b = keys_of((0, 0, 0), (0, 0, 1))
    counts = SegmentCooccurrence(voxel_size=0.1)
    for together in (True, True, False, True):
        counts.add(np.array([a, b]), np.array([1, 1 if together else 2]))
    _, _, _, together_counts, seen = counts.graph()
    assert (together_counts.tolist(), seen.tolist()) == ([3], [4])


def grid_graph(border_together: int, leaky: int = 0):
    """A 6 x 4 grid of voxels (z = 0): columns 0-2 one part, 3-5 another. Pairs inside a part were held together
    in all 10 frames seeing them; pairs across the border in ``border_together`` of 10; ``leaky`` border pairs were
    seen 3 times, always together (the masks' jitter)."""
    coords = [(x, y, 0) for x in range(6) for y in range(4)]
    index = {c: i for i, c in enumerate(coords)}
    a, b, together, seen = [], [], [], []
    leaks = leaky
    for (x, y, _), i in index.items():
        for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
            j = index.get((x + dx, y + dy, 0))
            if j is None:
                continue
            a.append(i)
            b.append(j)
            across = (x <= 2) != (x + dx <= 2)
            if across and leaks:
                together.append(3)
                seen.append(3)
                leaks -= 1
            else:
                together.append(border_together if across else 10)
                seen.append(10)
    return len(coords), np.array(a), np.array(b), np.array(together), np.array(seen), coords


def test_regions_split_parts_the_segments_merge_in_some_views_only() -> None:
    n, a, b, together, seen, coords = grid_graph(border_together=5)
    region = part_regions(n, a, b, together, seen, share=0.75)
    left = {region[i] for i, c in enumerate(coords) if c[0] <= 2}
    right = {region[i] for i, c in enumerate(coords) if c[0] > 2}
    assert len(left) == 1 and len(right) == 1 and left != right


def test_a_few_jittered_border_pairs_do_not_join_two_parts() -> None:
    n, a, b, together, seen, coords = grid_graph(border_together=2, leaky=2)
    region = part_regions(n, a, b, together, seen, share=0.75)
    assert len(set(region.tolist())) == 2
    assert region[coords.index((0, 0, 0))] != region[coords.index((5, 3, 0))]


def test_parts_the_segments_always_hold_together_are_one_region() -> None:
    n, a, b, together, seen, _ = grid_graph(border_together=10)
    assert len(set(part_regions(n, a, b, together, seen, share=0.75).tolist())) == 1


@pytest.mark.parametrize("offset", [0, 50_000])  # (large ids and regions: counted by sorting, not in a histogram)
def test_segment_regions_takes_each_ids_majority_region(offset) -> None:
    ids = np.array([1, 1, 1, 2, 2, 2, 2, 3, 0, 4])
    ids = np.where(ids > 0, ids + offset, 0)
    regions = np.array([7, 7, 8, 9, 9, -1, -1, 7, 7, 5])
    regions = np.where(regions >= 0, regions + offset, -1)
    found = segment_regions(ids, regions, min_points=2)
    # (id 3 and id 4: one point each on a region; id 0: none)
    assert found == {1 + offset: (7 + offset, 2), 2 + offset: (9 + offset, 2)}


def test_segment_regions_can_ask_for_a_share_of_the_points() -> None:
    ids = np.array([1, 1, 1, 1, 2, 2, 2])
    regions = np.array([7, 7, -1, -1, 9, 9, 9])
    assert segment_regions(ids, regions, min_points=1, min_share=0.6) == {2: (9, 3)}  # (id 1: 2 of 4 points)


def test_regions_apart_counts_frames_where_different_ids_held_them() -> None:
    frames = [
        {1: (10, 50), 2: (20, 40)},  # (10 and 20 under two ids)
        {1: (10, 50), 3: (10, 5), 2: (20, 40)},
        {1: (10, 50), 2: (10, 40)},  # (two ids on region 10 alone: no pair)
        {4: (10, 30), 5: (30, 20)},  # (30 apart from 10 once)
    ]
    assert regions_apart(frames, min_frames=2) == {(10, 20)}
    assert regions_apart(frames, min_frames=1) == {(10, 20), (10, 30)}


def test_region_names_give_an_id_to_regions_never_seen_apart_only() -> None:
    votes = [(100, 5, 30), (101, 5, 20), (101, 6, 10), (102, 6, 40), (103, 7, 1), (104, 5, 8)]
    apart = {(100, 101), (102, 104)}
    # 102 takes 6 (40), 100 takes 5 (30); 101 wants 5 but lies apart from 100, so takes 6 (102 is not apart from it);
    # 104 takes 5 (never apart from 100); 103 takes 7.
    assert region_names(votes, apart) == {102: 6, 100: 5, 101: 6, 104: 5, 103: 7}
    assert region_names(votes, {(100, 101), (101, 102)}).get(101) is None


def test_frame_names_rename_switched_ids_without_merging_parts_seen_apart() -> None:
    names = {10: 6, 20: 10, 30: 8}
    apart = {(10, 20), (10, 30), (20, 30)}
    # id 6 lies on its sibling's region (named 10) and id 10 on region 10 (named 6): the two swap; id 9 lies on
    # region 20 as well (a piece of the same part) and joins 10; id 8 keeps its name.
    found = {6: (20, 100), 10: (10, 80), 9: (20, 10), 8: (30, 50)}
    assert frame_names(found, names, [6, 8, 9, 10], apart) == {6: 10, 10: 6, 9: 10}
    # id 6 lies on region 30 as well (a piece of the part named 8) and joins 8; id 7 on region 10 takes 6, which no
    # other id of the frame holds now.
    found = {8: (30, 50), 6: (30, 40), 7: (10, 30)}
    assert frame_names(found, names, [6, 7, 8], apart) == {6: 8, 7: 6}
    # a name held on a region seen apart: the id keeps its own name, or gets 0 when that is held too
    found = {6: (10, 50), 5: (20, 40), 10: (10, 30)}
    names = {10: 6, 20: 6}
    assert frame_names(found, names, [5, 6, 10], apart) == {10: 6}  # (5 keeps 5: 6 is held on region 10)


def test_renamed_objects_follow_the_majority_of_pixels() -> None:
    object_of = {3: 2, 4: 2}  # (ids 2, 3, 4 one object; 9 its own)
    moved = {(2, 20): 50, (3, 21): 40, (9, 21): 10, (4, 22): 5, (9, 22): 30}
    # 20 and 21 are mostly object 2 (smallest name 20); 22 mostly object 9.
    assert renamed_objects(moved, object_of) == {21: 20}


@pytest.mark.parametrize(
    "option",
    [
        "voxel_fraction",
        "max_points",
        "together_share",
        "min_voxels",
        "min_points",
        "min_region_share",
        "apart_frames",
        "interior_seen",
        "min_held_share",
    ],
)
def test_config_refuses_values_out_of_range(option) -> None:
    with pytest.raises(InputError, match=option.replace("_", "-")):
        PartsConfig(**{option: -1})


def test_voxels_a_segment_holds_only_now_and_then_join_no_region() -> None:
    a, b, c = keys_of((0, 0, 0), (1, 0, 0), (2, 0, 0))
    counts = SegmentCooccurrence(voxel_size=0.1)
    for _ in range(4):
        counts.add(np.array([a, b, c]), np.array([1, 1, 0]))  # (c: seen, in no segment)
    counts.add(np.array([a, b, c]), np.array([1, 1, 1]))  # (once a mask spills onto c)
    voxels, first, second, _, _ = counts.graph(min_held_share=0.5)
    assert sorted(voxels.tolist()) == sorted([int(a), int(b)]) and len(first) == 1
    voxels, _, _, _, _ = counts.graph(min_held_share=0.0)
    assert len(voxels) == 3


def test_an_id_on_a_piece_of_its_own_part_keeps_it() -> None:
    names = {10: 6, 11: 9, 20: 10}
    apart = {(10, 20), (11, 20)}
    # id 6 names region 10; region 11 (named 9) was never seen apart from 10: a piece of the same part.
    assert frame_names({6: (11, 40)}, names, [6], apart) == {}
    # on region 20, seen apart from its own, it takes that region's name
    assert frame_names({6: (20, 40)}, names, [6], apart) == {6: 10}


@pytest.fixture(scope="module")
def simulated_orbit(tmp_path_factory):
    from mastsam_splat.io import load_scene, read_label_dir
    from mastsam_splat.segmenters.simulated import SimulatedSamConfig
    from mastsam_splat.synthetic import make_scene

    folder = make_scene(
        tmp_path_factory.mktemp("parts3d") / "scene", frames=20, width=160, height=120, seed=3, progress=False
    )
    frames = load_scene(folder).frames
    parts = read_label_dir(folder / "parts", [f.name for f in frames])
    return frames, parts, SimulatedSamConfig(data=folder, seed=0, split_probability=0.5, merge_probability=0.2)


def test_naming_segments_after_3d_parts_removes_the_simulated_sams_id_switches(simulated_orbit) -> None:
    from mastsam_splat.matchers import make_matcher
    from mastsam_splat.metrics import consistent_miou, id_switches, overlap_table
    from mastsam_splat.segmenters import make_segmenter
    from mastsam_splat.tracker import MastSAMTracker, TrackerConfig

    frames, parts, segmenter_config = simulated_orbit
    scores = {}
    for enabled in (False, True):
        config = TrackerConfig(parts=PartsConfig(enabled=enabled))
        tracker = MastSAMTracker(config, make_segmenter("simulated", segmenter_config), make_matcher("geometric"), "geometric")
        result = tracker.run(frames)
        table = overlap_table(list(result.labels), parts)
        scores[enabled] = (id_switches(table).total, consistent_miou(table).miou, result)
    assert scores[False][0] >= 3  # (the chain switches parts' ids where merged masks come apart)
    assert scores[True][0] < scores[False][0]
    assert scores[True][1] >= scores[False][1] - 0.01
    renamed = scores[True][2]
    assert any("named again after the 3D part" in note for note in renamed.notes)
    present = {int(i) for labels in renamed.labels for i in np.unique(labels)} - {0}
    assert set(renamed.object_of) <= present and set(renamed.object_of.values()) <= present
    # the same point cloud, its ids mapped to the names (each id to the one most of its pixels took)
    before = scores[False][2].cloud_ids
    assert np.array_equal(renamed.cloud_xyz, scores[False][2].cloud_xyz)
    assert not np.array_equal(renamed.cloud_ids, before)
    assert set(np.unique(renamed.cloud_ids).tolist()) <= present | set(np.unique(before).tolist())
    # the steps after the sequence are timed; the naming takes time only where it runs
    timing = renamed.timing()
    assert {"finish_consolidate_s", "finish_objects_s", "finish_cloud_s"} <= set(timing)
    assert timing["finish_parts_s"] > 0.0 and timing["total_s"] > 0.0
    assert scores[False][2].timing()["finish_parts_s"] < timing["finish_parts_s"]


def same_partition(first: np.ndarray, second: np.ndarray) -> bool:
    pairs = np.unique(np.stack([first, second], axis=1), axis=0)
    return len(pairs) == len(np.unique(first)) == len(np.unique(second))


@pytest.mark.parametrize("border_together", [2, 10])
def test_joining_never_cut_pairs_first_gives_the_greedy_regions(border_together) -> None:
    n, a, b, together, seen, _ = grid_graph(border_together=border_together, leaky=2)
    plain = part_regions(n, a, b, together, seen, share=0.75)
    assert same_partition(part_regions(n, a, b, together, seen, share=0.75, interior_seen=2), plain)


def test_the_greedy_runs_on_the_pieces_no_segment_boundary_crosses(monkeypatch) -> None:
    n, a, b, together, seen, coords = grid_graph(border_together=2, leaky=2)
    pieces = []
    greedy = parts3d._greedy_regions
    monkeypatch.setattr(parts3d, "_greedy_regions", lambda num, *rest: pieces.append(num) or greedy(num, *rest))
    region = part_regions(n, a, b, together, seen, share=0.75, interior_seen=2)
    # columns 0-1 and 4-5 were never cut from a neighbour: one piece each, with the one voxel of the border columns
    # whose every pair across the border was a jittered one; the 7 others stay apart (the jittered pairs, always
    # together, are not joined: the voxel across was cut from another neighbour)
    assert pieces == [2 + 7]
    assert region[coords.index((0, 0, 0))] != region[coords.index((5, 3, 0))]
    part_regions(n, a, b, together, seen, share=0.75, interior_seen=20)  # (no pair seen that often: none joined)
    assert pieces[-1] == n


def plain_greedy(n, a, b, together, seen, share):
    """The greedy merging written plainly: pool every border again after each merge, merge the best one."""
    region = np.arange(n)
    while True:
        borders: dict = {}
        for i, j, t, s in zip(region[a], region[b], together, seen):
            if i != j:
                key = (min(i, j), max(i, j))
                held, counted = borders.get(key, (0.0, 0.0))
                borders[key] = (held + t, counted + s)
        scores = {key: (t + 1) / (s + 2) for key, (t, s) in borders.items()}
        if not scores or max(scores.values()) < share:
            return region
        i, j = max(scores, key=scores.get)
        region[region == j] = i


@pytest.mark.parametrize("seed", range(6))
def test_greedy_regions_match_the_plain_greedy_on_random_graphs(seed) -> None:
    rng = np.random.default_rng(seed)
    n = 40
    a = rng.integers(0, n, 160)
    b = rng.integers(0, n, 160)
    seen = rng.uniform(1, 10, 160)  # (non-integer counts: no two borders tie)
    together = seen * np.where(rng.random(160) < 0.6, rng.uniform(0.9, 1.0, 160), rng.uniform(0.0, 0.8, 160))
    regions = part_regions(n, a, b, together, seen, share=0.75)
    assert same_partition(regions, plain_greedy(n, a, b, together, seen, 0.75))
    assert 1 < len(np.unique(regions)) < n  # (the graphs merge some regions, not all)


def test_many_voxels_after_joining_never_cut_pairs() -> None:
    n = 60_000  # (more pieces than an int32 code of two of them holds)
    a = np.arange(n - 1)
    b = a + 1
    seen = np.full(n - 1, 4)
    together = np.where(a % 1000 == 999, 0, 4)  # (a chain cut every 1,000 voxels)
    regions = part_regions(n, a, b, together, seen, share=0.75, interior_seen=2)
    assert len(np.unique(regions)) == 60 and same_partition(regions, part_regions(n, a, b, together, seen, share=0.75))
