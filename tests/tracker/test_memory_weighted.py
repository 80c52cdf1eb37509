"""The weighted 3D memory: each voxel belongs to the id seen there in most frames."""

from __future__ import annotations

import numpy as np

from mastsam_splat.tracker.memory import (
    MemoryConfig,
    VoxelMemory,
    WeightedVoxelMemory,
    labelled_voxels,
    unique_pairs,
    voxel_coords,
    voxel_keys,
)


def _row(n: int) -> np.ndarray:
    """``n`` points, one per unit voxel along x."""
    return np.stack([np.arange(n) + 0.5, np.full(n, 0.5), np.full(n, 0.5)], axis=1)


def test_one_frames_mislabelling_does_not_take_over_a_surface_seen_more_often():
    # A table seen as id 2 in two frames; a third frame labels it and the voxels beyond as id 1 (a mat the
    # segmenter merged with it).
    table, wider = _row(6), _row(10)
    weighted, exclusive = WeightedVoxelMemory(1.0, neighborhood=0), VoxelMemory(1.0, neighborhood=0, exclusive=True)
    for memory in (weighted, exclusive):
        memory.add_labelled(np.full(6, 2), table)
        memory.add_labelled(np.full(6, 2), table)
        memory.add_labelled(np.full(10, 1), wider)
    assert weighted.pairs()[1].tolist() == [2] * 6 + [1] * 4
    # Later frames keep seeing the table as id 2 and the voxels beyond it as well: they go to id 2 once it has been
    # seen there more often than id 1, which a first-come memory never allows.
    for _ in range(2):
        weighted.add_labelled(np.full(10, 2), wider)
        exclusive.add_labelled(np.full(10, 2), wider)
    assert weighted.pairs()[1].tolist() == [2] * 10
    assert exclusive.pairs()[1].tolist() == [2] * 6 + [1] * 4
    assert weighted.identify(wider, 0.5, 1).obj_id == 2
    assert weighted.num_voxels(1) == 0 and weighted.ids == [2]


def test_ties_keep_the_id_seen_first():
    points = _row(3)
    memory = WeightedVoxelMemory(1.0, neighborhood=0)
    memory.add_labelled(np.full(3, 5), points)
    memory.add_labelled(np.full(3, 1), points)  # one frame each: the first id keeps the voxels
    assert memory.pairs()[1].tolist() == [5, 5, 5]
    memory.add_labelled(np.full(3, 1), points)
    assert memory.pairs()[1].tolist() == [1, 1, 1]


def _plain_owners(rows: dict[tuple[int, int], list[int]]) -> list[tuple[int, int]]:
    """Each voxel's owner from the (voxel, id) -> [frames seen, first sighting] table, written plainly."""
    best: dict[int, tuple[int, int, int]] = {}
    for (key, obj_id), (count, first) in rows.items():
        rank = (-count, first, obj_id)
        if key not in best or rank < best[key]:
            best[key] = rank
    return sorted((key, rank[2]) for key, rank in best.items())


def test_owners_follow_plain_counts_through_adds_merges_and_transfers():
    rng = np.random.default_rng(5)
    memory = WeightedVoxelMemory(voxel_size=1.0, neighborhood=0)
    rows: dict[tuple[int, int], list[int]] = {}
    frame = 0
    for step in range(40):
        kind = step % 3
        if kind == 0:
            points = rng.integers(0, 5, (60, 3)).astype(np.float64) + 0.5
            ids = rng.integers(0, 6, 60)
            memory.add_voxels(*unique_pairs(*labelled_voxels(ids, points, 1.0)))
            for key, obj_id in set(zip(*(a.tolist() for a in labelled_voxels(ids, points, 1.0)))):
                count, first = rows.get((key, obj_id), [0, frame])
                rows[(key, obj_id)] = [count + 1, min(first, frame)]
            frame += 1
            continue
        src, dst = (int(x) for x in rng.choice(np.arange(1, 8), 2, replace=False))
        if kind == 1:
            memory.merge(src, dst)
            moved_keys = {key for key, obj_id in rows if obj_id == src}
        else:
            moved = rng.integers(0, 5, (30, 3)).astype(np.float64) + 0.5
            memory.transfer(moved, src, dst)
            moved_keys = set(voxel_keys(voxel_coords(moved, 1.0)).tolist())
        for key in moved_keys:
            if (key, src) in rows:
                count, first = rows.pop((key, src))
                old = rows.get((key, dst), [0, first])
                rows[(key, dst)] = [old[0] + count, min(old[1], first)]
        keys, owners = memory.pairs()
        assert list(zip(keys.tolist(), owners.tolist())) == _plain_owners(rows)
    keys, ids, counts = memory.counts()
    assert {(k, i): c for k, i, c in zip(keys.tolist(), ids.tolist(), counts.tolist())} == {
        pair: value[0] for pair, value in rows.items()
    }


def test_point_hits_read_the_owners_only():
    points = _row(4)
    memory = WeightedVoxelMemory(1.0, neighborhood=1)
    plain = VoxelMemory(1.0, neighborhood=1)
    for ids in (np.full(4, 3), np.full(4, 3), np.array([3, 3, 4, 4])):
        memory.add_labelled(ids, points)
        plain.add_labelled(ids, points)
    keys, owners = memory.pairs()
    owner_memory = VoxelMemory(1.0, neighborhood=1)
    owner_memory.add_voxels(keys, owners)
    for got, expected in zip(memory.point_hits(points), owner_memory.point_hits(points)):
        np.testing.assert_array_equal(got, expected)
    assert set(memory.fractions(points)) == {3} and set(plain.fractions(points)) == {3, 4}


def test_the_option_is_off_by_default():
    assert not MemoryConfig().weighted
