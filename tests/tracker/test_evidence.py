"""The 3D evidence store (evidence.py): rows, owners, purity, renames and thinning against plain counts."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.consolidate import voxel_centres
from mastsam_splat.tracker.evidence import AnchorEvidence, _insert_sorted, pair_counts
from mastsam_splat.tracker.memory import voxel_keys


def test_evidence_owner_is_the_id_seen_most_often_and_relabel_moves_it():
    evidence = AnchorEvidence(voxel_size=1.0)
    point = np.array([[0.5, 0.5, 0.5]])
    evidence.add(np.array([2]), point)
    evidence.add(np.array([3]), point)
    evidence.add(np.array([3]), point)
    evidence.add(np.array([0]), point)  # unlabelled: skipped
    keys, owners, counts = evidence.owners()
    assert owners.tolist() == [3] and counts.tolist() == [2]
    lut = np.arange(5)
    lut[3] = 2
    evidence.relabel(lut)
    _, owners, counts = evidence.owners()
    assert owners.tolist() == [2] and counts.tolist() == [3]
    centres, ids = evidence.points()
    np.testing.assert_allclose(centres, [[0.5, 0.5, 0.5]])
    np.testing.assert_array_equal(centres, voxel_centres(keys, 1.0))


def test_evidence_rows_equal_a_plain_count_of_every_observation():
    """Observations merged frame by frame (and moved by relabels and transfers) give the rows and owners a plain
    count of every (voxel, id) observation gives."""
    rng = np.random.default_rng(3)
    evidence = AnchorEvidence(voxel_size=0.5)
    seen: dict[tuple[int, int], int] = {}
    for frame in range(14):
        points = rng.uniform(-3, 3, size=(int(rng.integers(0, 200)), 3))
        ids = rng.integers(0, 7, size=len(points))
        if frame == 5:
            ids[:] = 0  # a frame of unlabelled points adds nothing
        evidence.add(ids, points)
        for key, i in zip(voxel_keys(np.floor(points / 0.5).astype(np.int64)).tolist(), ids.tolist()):
            if i > 0:
                seen[key, i] = seen.get((key, i), 0) + 1
        if frame == 8:
            lut = np.arange(7)
            lut[[2, 4]] = [1, 6]
            evidence.relabel(lut)
            moved: dict[tuple[int, int], int] = {}
            for (key, i), n in seen.items():
                moved[key, int(lut[i])] = moved.get((key, int(lut[i])), 0) + n
            seen = moved
        if frame == 10:
            given = points[:50]
            evidence.transfer(given, 3, 9)
            keys = set(voxel_keys(np.floor(given / 0.5).astype(np.int64)).tolist())
            moved = {}
            for (key, i), n in seen.items():
                j = 9 if (i == 3 and key in keys) else i
                moved[key, j] = moved.get((key, j), 0) + n
            seen = moved
    rows = sorted(seen.items())
    keys, ids, counts = evidence.pairs()
    assert keys.dtype == ids.dtype == counts.dtype == np.int64
    assert list(zip(zip(keys.tolist(), ids.tolist()), counts.tolist())) == rows
    owner: dict[int, tuple[int, int]] = {}
    for (key, i), n in rows:  # ties: the older (smaller) id, met first
        if key not in owner or n > owner[key][1]:
            owner[key] = (i, n)
    owner_keys, owner_ids, owner_counts = evidence.owners()
    assert owner_keys.tolist() == sorted(owner)
    assert owner_ids.tolist() == [owner[k][0] for k in sorted(owner)]
    assert owner_counts.tolist() == [owner[k][1] for k in sorted(owner)]


def test_transfer_moves_voxels_to_the_split_off_id():
    from mastsam_splat.tracker.memory import VoxelMemory

    points = np.stack([np.arange(10) + 0.5, np.full(10, 0.5), np.full(10, 0.5)], axis=1)
    evidence = AnchorEvidence(voxel_size=1.0)
    evidence.add(np.full(10, 3), points)
    evidence.transfer(points[5:], 3, 8)
    _, owners, _ = evidence.owners()
    assert owners.tolist() == [3] * 5 + [8] * 5
    memory = VoxelMemory(1.0, neighborhood=0, exclusive=True)
    memory.add_labelled(np.full(10, 3), points)
    memory.transfer(points[5:], 3, 8)
    assert memory.num_voxels(3) == 5 and memory.num_voxels(8) == 5


def test_row_owners_equal_a_search_of_every_rows_voxel_and_add_voxels_equals_add():
    rng = np.random.default_rng(3)
    evidence, plain = AnchorEvidence(voxel_size=0.5), AnchorEvidence(voxel_size=0.5)
    from mastsam_splat.tracker.memory import labelled_voxels

    for _ in range(4):
        points = rng.uniform(0.0, 3.0, (200, 3))
        ids = rng.integers(0, 6, 200)
        evidence.add_voxels(*labelled_voxels(ids, points, 0.5))
        plain.add(ids, points)
        keys, row_ids, counts = evidence.pairs()
        for mine, theirs in zip((keys, row_ids, counts), plain.pairs()):
            np.testing.assert_array_equal(mine, theirs)
        owner_keys, owners, _ = evidence.owners()
        np.testing.assert_array_equal(evidence.row_owners(), owners[np.searchsorted(owner_keys, keys)])


@pytest.mark.parametrize("span", [10, 1 << 61])
def test_pair_counts_equal_a_sort_by_key_then_id(span):
    """Coded in one integer (a small key span) or sorted by key then id (a span too wide for that): the same pairs."""
    rng = np.random.default_rng(11)
    keys = rng.integers(0, 10, 500) * (span // 10) + (1 << 60)
    ids = rng.integers(1, 9, 500)
    pair_keys, pair_ids, counts = pair_counts(keys, ids)
    expected, expected_counts = np.unique(np.stack([keys, ids], axis=1), axis=0, return_counts=True)
    np.testing.assert_array_equal(pair_keys, expected[:, 0])
    np.testing.assert_array_equal(pair_ids, expected[:, 1])
    np.testing.assert_array_equal(counts, expected_counts)
    assert pair_keys.dtype == pair_ids.dtype == counts.dtype == np.int64


def test_insert_sorted_equals_np_insert():
    rng = np.random.default_rng(2)
    for n, m in ((0, 0), (0, 3), (5, 0), (40, 25), (1000, 300)):
        keys, counts = np.sort(rng.integers(0, 100, n)), rng.integers(0, 9, n).astype(np.int32)
        positions = np.sort(rng.integers(0, n + 1, m))  # repeated positions and both ends included
        new_keys, new_counts = rng.integers(0, 100, m), rng.integers(0, 9, m)
        got = _insert_sorted((keys, counts), positions, (new_keys, new_counts))
        for mine, array, values in zip(got, (keys, counts), (new_keys, new_counts)):
            expected = np.insert(array, positions, values)
            np.testing.assert_array_equal(mine, expected)
            assert mine.dtype == expected.dtype


def test_voxels_per_id_and_shared_rows_follow_additions_relabels_and_thinning():
    rng = np.random.default_rng(7)
    evidence = AnchorEvidence(voxel_size=0.5)
    for step in range(6):
        evidence.add(rng.integers(0, 9, 300), rng.uniform(0.0, 4.0, (300, 3)))
        evidence.voxels_per_id()
        if step == 2:
            evidence.relabel(np.array([0, 1, 2, 3, 2, 5, 6, 7, 8]))
        if step == 4:
            evidence.thin(len(evidence) - 20)
        keys, row_ids, _ = evidence.pairs()
        np.testing.assert_array_equal(evidence.voxels_per_id(), np.bincount(row_ids))
        owner_keys, owners, _ = evidence.owners()
        shared = np.isin(keys, keys[np.r_[False, keys[1:] == keys[:-1]]])
        ids, shared_owners = evidence.shared_rows()
        np.testing.assert_array_equal(ids, row_ids[shared])
        np.testing.assert_array_equal(shared_owners, owners[np.searchsorted(owner_keys, keys[shared])])


def test_thinned_evidence_is_bounded_and_keeps_every_voxels_owner():
    """Thinning drops the weakest non-owner rows: every voxel keeps its owner and the owner's count, and the rows
    kept are rows of the evidence with their counts; past ``max_rows`` the evidence thins itself."""
    from mastsam_splat.tracker.memory import labelled_voxels

    rng = np.random.default_rng(11)
    capped, plain = AnchorEvidence(voxel_size=0.5, max_rows=150), AnchorEvidence(voxel_size=0.5)
    for _ in range(8):
        points = rng.uniform(0.0, 2.0, (150, 3))  # 64 voxels
        ids = rng.integers(0, 12, 150)
        capped.add_voxels(*labelled_voxels(ids, points, 0.5))
        plain.add_voxels(*labelled_voxels(ids, points, 0.5))
        assert len(capped) <= 150
    all_keys, all_ids, all_counts = (x.copy() for x in plain.pairs())
    owners = [x.copy() for x in plain.owners()]
    assert plain.thin(len(all_keys)) == 0 and len(plain) == len(all_keys)  # room for every row: nothing dropped
    dropped = plain.thin(100)
    assert dropped == len(all_keys) - 100 and len(plain) == 100
    for mine, theirs in zip(plain.owners(), owners):
        np.testing.assert_array_equal(mine, theirs)
    keys, row_ids, counts = plain.pairs()
    row = np.searchsorted(all_keys * 16 + all_ids, keys * 16 + row_ids)
    np.testing.assert_array_equal(all_keys[row], keys)
    np.testing.assert_array_equal(all_ids[row], row_ids)
    np.testing.assert_array_equal(all_counts[row], counts)
    with pytest.raises(ValueError, match="max_rows"):
        AnchorEvidence(voxel_size=0.5, max_rows=0)


def _check_owners(evidence: AnchorEvidence) -> None:
    """The evidence's owners equal a plain count per voxel: the most seen id, the older one on a tie."""
    keys, row_ids, counts = evidence.pairs()
    voxels = np.unique(keys)
    expected_owner, expected_count = [], []
    for key in voxels.tolist():
        held = keys == key
        best = np.flatnonzero(held & (counts == counts[held].max()))[0]
        expected_owner.append(row_ids[best])
        expected_count.append(counts[best])
    owner_keys, owners, owner_counts = evidence.owners()
    np.testing.assert_array_equal(owner_keys, voxels)
    np.testing.assert_array_equal(owners, expected_owner)
    np.testing.assert_array_equal(owner_counts, expected_count)
    assert owners.dtype == np.int64 and owner_counts.dtype == np.int64


@pytest.mark.parametrize("seed", range(4))
def test_owners_between_additions_merges_transfers_and_thinning_equal_a_count_per_voxel(seed: int) -> None:
    """Owners read between additions, with merges, transfers (after which they are counted again at the moved rows'
    voxels only) and thinning in between, equal a plain count per voxel."""
    rng = np.random.default_rng(seed)
    evidence = AnchorEvidence(voxel_size=1.0, max_rows=10_000)
    updated = 0
    for step in range(30):
        points = rng.integers(0, 6, (int(rng.integers(1, 120)), 3)) + 0.5  # few voxels, seen again and again
        ids = rng.integers(0, 7, len(points))
        known = evidence._owners is not None
        if step % 7 == 3:
            evidence.relabel(np.array([0, 1, 2, 3, 2, 5, 6, 7]))
        elif step % 7 == 5:
            evidence.transfer(points[:10], 1, 6)
        elif step % 11 == 10:
            evidence.thin(len(evidence) // 2)
        if step % 7 in (3, 5) and known and evidence._owners is not None:
            updated += 1
            _check_owners(evidence)
        evidence.add(ids, points)
        _check_owners(evidence)
    assert updated >= 6
