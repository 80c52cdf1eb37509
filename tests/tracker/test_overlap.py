"""Overlap resolution of tracked ids' masks against a direct per-pixel reference."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from mastsam_splat.tracker.overlap import mask_iou, merge_duplicates, nearest_distance, pairwise_iou, resolve_overlaps
from mastsam_splat.tracker.prompting import Prompt
from mastsam_splat.tracker.overlap import OverlapConfig
from mastsam_splat.types import Mask


def reference_labels(masks: dict[int, Mask], prompts: dict[int, Prompt], shape: tuple[int, int]) -> np.ndarray:
    """Each pixel: its only claimant, or the claimant with the smallest score-weighted prompt distance."""
    labels = np.zeros(shape, dtype=np.int64)
    ids = sorted(masks)
    for r in range(shape[0]):
        for c in range(shape[1]):
            claimants = [i for i in ids if masks[i].segmentation[r, c]]
            if len(claimants) == 1:
                labels[r, c] = claimants[0]
            elif claimants:
                costs = []
                for i in claimants:
                    positive = prompts[i].positive if i in prompts else np.zeros((0, 2))
                    d = cKDTree(positive).query([[c + 0.5, r + 0.5]])[0][0] if len(positive) else 1e9
                    costs.append(d / (0.5 + 0.5 * float(np.clip(masks[i].score, 0.0, 1.0))))
                labels[r, c] = claimants[int(np.argmin(costs))]
    return labels


def test_resolve_overlaps_matches_the_per_pixel_reference():
    rng = np.random.default_rng(0)
    shape = (24, 31)
    for trial in range(8):
        masks, prompts = {}, {}
        for obj_id in rng.choice(np.arange(1, 40), size=int(rng.integers(1, 6)), replace=False).tolist():
            r0, c0 = rng.integers(0, 18), rng.integers(0, 25)
            seg = np.zeros(shape, dtype=bool)
            seg[r0 : r0 + int(rng.integers(3, 12)), c0 : c0 + int(rng.integers(3, 12))] = True
            if trial % 2:
                seg &= rng.random(shape) < 0.8  # ragged masks
            masks[obj_id] = Mask(seg, score=float(rng.random()))
            if obj_id % 5:  # some ids without prompts
                prompts[obj_id] = Prompt(rng.uniform(0, 31, (int(rng.integers(0, 4)), 2)), np.zeros((0, 2)))
        labels = resolve_overlaps(masks, prompts, shape)
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, reference_labels(masks, prompts, shape))
        # masks whose maker gives a (loose) box around their pixels: painted inside it, the same labels
        boxed = {i: Mask(m.segmentation, m.score, box=_loose_box(m.segmentation, rng)) for i, m in masks.items()}
        np.testing.assert_array_equal(resolve_overlaps(boxed, prompts, shape), labels)
    assert not resolve_overlaps({}, {}, shape).any()


def _loose_box(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box holding every pixel of ``mask``, grown by a random margin (an empty box for an empty mask)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (mask.shape[0], 0, mask.shape[1], 0)
    grow = rng.integers(0, 3, 4)
    return (
        max(0, int(rows[0] - grow[0])),
        int(rows[-1] + 1 + grow[1]),
        max(0, int(cols[0] - grow[2])),
        int(cols[-1] + 1 + grow[3]),
    )


def test_nearest_distance_equals_the_k_d_tree_and_cdist_bit_for_bit():
    rng = np.random.default_rng(4)
    for sites_count in (1, 3, 12, 27):
        sites = rng.uniform(-50.0, 400.0, (sites_count, 2))
        for points in (rng.integers(0, 320, (500, 2)) + 0.5, rng.uniform(-1e3, 1e3, (500, 2))):
            got = nearest_distance(sites, points)
            np.testing.assert_array_equal(got, cKDTree(sites).query(points)[0])
            np.testing.assert_array_equal(got, cdist(points, sites).min(axis=1))
    assert nearest_distance(sites, np.zeros((0, 2))).shape == (0,)


def _random_masks(rng: np.random.Generator, shape: tuple[int, int], count: int) -> list[np.ndarray]:
    """Boxes, ragged boxes, exact and near copies of earlier masks, and an empty mask."""
    masks = []
    for n in range(count):
        if n and n % 4 == 0:
            seg = masks[int(rng.integers(0, n))].copy()
            seg[int(rng.integers(0, shape[0])), :] ^= n % 8 == 0  # a near copy, or an exact one
        else:
            seg = np.zeros(shape, dtype=bool)
            r0, c0 = int(rng.integers(0, shape[0] - 2)), int(rng.integers(0, shape[1] - 2))
            seg[r0 : r0 + int(rng.integers(1, 14)), c0 : c0 + int(rng.integers(1, 18))] = True
            if n % 3 == 1:
                seg &= rng.random(shape) < 0.7
        masks.append(seg)
    masks.append(np.zeros(shape, dtype=bool))
    return masks


def test_pairwise_iou_equals_each_pairs_iou_and_above_a_bound_keeps_the_pairs_beyond_it():
    rng = np.random.default_rng(3)
    for _ in range(6):
        masks = _random_masks(rng, (22, 30), 14)
        n = len(masks)
        full = np.array([[mask_iou(a, b) if i != j else 0.0 for j, b in enumerate(masks)] for i, a in enumerate(masks)])
        np.testing.assert_array_equal(pairwise_iou(masks), full)
        skipped = 0
        for above in (0.0, 0.5, 0.8, 0.95):
            got = pairwise_iou(masks, above=above)
            beyond = full > above
            np.testing.assert_array_equal(got[beyond], full[beyond])
            assert np.all((got == full) | (got == 0))  # a pair not compared reads 0
            skipped += int(np.count_nonzero((got == 0) & (full > 0)))
        assert (full > 0.8).any() and skipped > 0 and n == 15
        boxes = [_loose_box(m, rng) for m in masks]  # (given boxes: the pixels are counted inside them)
        np.testing.assert_array_equal(pairwise_iou(masks, boxes=boxes), full)
        got = pairwise_iou(masks, above=0.8, boxes=boxes)
        np.testing.assert_array_equal(got[full > 0.8], full[full > 0.8])
        assert np.all((got == full) | (got == 0))


def test_merged_duplicates_equal_merging_every_pair_beyond_the_threshold():
    """Chains of near copies join the oldest id of their chain, as merging pair by pair in id order does."""
    rng = np.random.default_rng(5)
    for _ in range(4):
        segs = _random_masks(rng, (22, 30), 14)
        ids = sorted(rng.choice(np.arange(1, 100), size=len(segs), replace=False).tolist())
        masks = {i: Mask(seg, score=float(rng.random())) for i, seg in zip(ids, segs)}
        prompts = {i: Prompt(rng.uniform(0, 30, (2, 2)), np.zeros((0, 2))) for i in ids}
        parent = {i: i for i in ids}

        def root(i: int) -> int:
            while parent[i] != i:
                i = parent[i]
            return i

        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                if mask_iou(segs[a], segs[b]) > 0.8 and root(ids[a]) != root(ids[b]):
                    ra, rb = root(ids[a]), root(ids[b])
                    parent[max(ra, rb)] = min(ra, rb)
        _, out_prompts, merged = merge_duplicates(masks, prompts, OverlapConfig(merge_iou=0.8))
        assert merged == {i: root(i) for i in ids if root(i) != i} and merged
        assert set(out_prompts) == {i for i in ids if root(i) == i}


def test_ids_seen_apart_are_not_merged_on_duplicate_masks():
    """Near-duplicate masks of two ids seen side by side before: no merge, the younger id is left out of the frame
    (the older keeps its own mask and prompts); a third id duplicating the older one still merges into it."""
    a = np.zeros((20, 20), dtype=bool)
    a[2:12, 2:12] = True
    b = a.copy()
    b[12, 2:12] = True  # IoU 10 / 11 with ``a``
    masks = {3: Mask(a), 7: Mask(b), 9: Mask(a.copy())}
    prompts = {i: Prompt(np.array([[float(i), 5.0]]), np.zeros((0, 2))) for i in masks}
    out_masks, out_prompts, merged = merge_duplicates(
        masks, prompts, OverlapConfig(merge_iou=0.8), apart=lambda older, younger: (older, younger) == (3, 7)
    )
    assert merged == {9: 3} and set(out_masks) == {3}
    assert np.array_equal(out_masks[3].segmentation, a) and len(out_prompts[3].positive) == 2
    _, _, merged = merge_duplicates(masks, prompts, OverlapConfig(merge_iou=0.8))
    assert merged == {7: 3, 9: 3}


def test_ids_present_together_in_most_frames_of_the_younger_are_seen_apart():
    """``_Run._seen_apart``: ids 1 and 2 side by side in 2 of the 3 frames showing 2; id 3 with 1 in 1 of 3; id 4
    with 1 in its only frame (one frame is not enough); ``apart_share`` above 1 turns it off."""
    from mastsam_splat.tracker.config import TrackerConfig
    from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
    from mastsam_splat.tracker.view_order import sequence_order
    from mastsam_splat.types import Frame

    def image(*ids: int) -> np.ndarray:
        out = np.zeros((10, 40), dtype=np.uint16)
        for k, i in enumerate(ids):
            out[:, 10 * k : 10 * k + 10] = i
        return out

    stored = [image(1, 2), image(1, 2, 3), image(2, 3), image(3), image(1, 4)]
    frames = [Frame(image=np.zeros((10, 40, 3), dtype=np.uint8), name=f"f{i}", index=i) for i in range(6)]

    def run_with(config: TrackerConfig) -> _Run:
        run = _Run(MastSAMTracker(config, None, None), frames, "depth", sequence_order(len(frames)))
        for t, labels in enumerate(stored):
            run.labels[t] = labels
        return run

    run = run_with(TrackerConfig())
    assert run._seen_apart(1, 2) and not run._seen_apart(1, 3) and not run._seen_apart(1, 4)
    off = TrackerConfig(overlap=OverlapConfig(apart_share=1.5))
    assert not run_with(off)._seen_apart(1, 2)
