"""Each tracker step on small generated arrays."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.tracker.consensus import ConsensusConfig, FragmentMerger, apply_consensus
from mastsam_splat.tracker.new_regions import NewRegionsConfig, split_regions
from mastsam_splat.tracker.segment_table import compact_ids
from mastsam_splat.tracker.overlap import (
    OverlapConfig,
    auto_label_image,
    merge_duplicates,
    pairwise_iou,
    resolve_overlaps,
)
from mastsam_splat.tracker.prompting import Prompt, PromptingConfig, build_prompts, prompt_masks
from mastsam_splat.tracker.propagation import (
    PropagationConfig,
    TrackedPoints,
    propagate_points,
    propagate_representatives,
)
from mastsam_splat.tracker.rejection import (
    RejectionConfig,
    lost_after_prompting,
    lost_before_prompting,
    prompt_support,
)
from mastsam_splat.tracker.representatives import (
    Representatives,
    RepresentativesConfig,
    kmeans_points,
    num_representatives,
    select_representatives,
)
from mastsam_splat.types import Mask, Matches


def grid_matches(labels: np.ndarray, shift=(0.0, 0.0), confidence: float = 1.0, step: int = 1) -> Matches:
    """Correspondences from every ``step``-th pixel centre to the same point moved by ``shift``."""
    h, w = labels.shape
    cols, rows = np.meshgrid(np.arange(0, w, step) + 0.5, np.arange(0, h, step) + 0.5)
    xy_a = np.stack([cols.ravel(), rows.ravel()], axis=1)
    return Matches(xy_a, xy_a + np.asarray(shift), np.full(len(xy_a), confidence))


def representatives_config(labels: np.ndarray, pixels_per_point: float, k_min: int, k_max: int) -> RepresentativesConfig:
    """Representatives config giving ``pixels_per_point`` on an image the size of ``labels``."""
    return RepresentativesConfig(area_per_point=pixels_per_point / labels.size, min_points=k_min, max_points=k_max)


def image_size(labels: np.ndarray) -> tuple[int, int]:
    return labels.shape[1], labels.shape[0]


def square(shape, r0, r1, c0, c1) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


# ------------------------------------------------------------------ representatives
def test_num_representatives_follows_area_within_bounds():
    assert num_representatives(100, 50, 2, 8) == 2
    assert num_representatives(400, 50, 2, 8) == 8
    assert num_representatives(10_000, 50, 2, 8) == 8
    assert num_representatives(0, 50, 3, 8) == 3
    with pytest.raises(ValueError):
        num_representatives(100, 50, 5, 2)


@pytest.mark.parametrize("backend", ["opencv", "sklearn"])
def test_kmeans_points_are_spread_members(backend):
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 1.0, (50, 2)) for c in ((10, 10), (40, 10), (25, 40))])
    points = kmeans_points(blobs, 3, seed=1, backend=backend)
    assert points.shape == (3, 2)
    # Every point is one of the inputs (snapped), one per blob.
    assert all(np.any(np.all(blobs == p, axis=1)) for p in points)
    centres = np.array([[10, 10], [40, 10], [25, 40]])
    nearest = np.argmin(np.linalg.norm(points[:, None] - centres[None], axis=2), axis=1)
    assert sorted(nearest.tolist()) == [0, 1, 2]
    # Fewer candidates than k: all of them.
    np.testing.assert_array_equal(kmeans_points(blobs[:2], 5), blobs[:2])


def test_representatives_lie_in_their_mask_and_skip_unconfident_matches():
    labels = np.zeros((40, 60), dtype=np.uint16)
    labels[5:20, 5:25] = 1
    labels[22:38, 30:58] = 2
    matches = grid_matches(labels, step=2)
    conf = np.ones(len(matches), dtype=np.float32)
    # Id 2's correspondences are all unconfident: it gets no representatives.
    in_two = labels[np.floor(matches.xy_a[:, 1]).astype(int), np.floor(matches.xy_a[:, 0]).astype(int)] == 2
    conf[in_two] = 0.1
    matches = Matches(matches.xy_a, matches.xy_b, conf)
    config = representatives_config(labels, pixels_per_point=50, k_min=2, k_max=6)
    reps = select_representatives(labels, matches, config, 0.5, image_size(labels))
    assert set(reps) == {1}
    pts = reps[1].points
    assert 2 <= len(pts) <= 6
    assert np.all(labels[np.floor(pts[:, 1]).astype(int), np.floor(pts[:, 0]).astype(int)] == 1)
    assert select_representatives(labels, Matches.empty(), config, 0.5, image_size(labels)) == {}


# --------------------------------------------------------------------- propagation
def test_mask_moved_by_known_shift_moves_its_points_exactly():
    labels = np.zeros((40, 60), dtype=np.uint16)
    labels[10:25, 10:30] = 7
    shift = np.array([6.0, -3.0])
    matches = grid_matches(labels, shift=shift)
    config = representatives_config(labels, pixels_per_point=30, k_min=3, k_max=8)
    reps = select_representatives(labels, matches, config, 0.5, image_size(labels))
    radius = 3.0 / np.hypot(60, 40)  # 3 pixels
    tracked = propagate_representatives(reps, matches, PropagationConfig(radius=radius, neighbors=4), size_b=(60, 40))
    np.testing.assert_allclose(tracked[7].points, reps[7].points + shift)
    assert tracked[7].survival == 1.0


def test_points_without_nearby_correspondence_or_leaving_the_image_are_dropped():
    xy_a = np.array([[10.5, 10.5], [50.5, 10.5]])
    xy_b = xy_a + [[2.0, 0.0], [30.0, 0.0]]  # the second lands outside a 60-wide image
    points = np.array([[10.5, 10.5], [50.5, 10.5], [30.5, 30.5]])
    moved, keep = propagate_points(points, xy_a, xy_b, radius=2.0, neighbors=1, size_b=(60, 40))
    assert keep.tolist() == [True, False, False]
    np.testing.assert_allclose(moved, [[12.5, 10.5]])


def test_ids_only_follow_their_own_correspondences():
    # Two ids side by side move in opposite directions; a point near the border must not follow the neighbour.
    xy_a = np.array([[9.5, 5.5], [10.5, 5.5]])
    xy_b = xy_a + [[-5.0, 0.0], [5.0, 0.0]]
    matches = Matches(xy_a, xy_b, np.ones(2))
    reps = {1: Representatives(np.array([[9.5, 5.5]]), np.array([0])), 2: Representatives(np.array([[10.5, 5.5]]), np.array([1]))}
    radius = 5.0 / np.hypot(40, 20)  # 5 pixels
    tracked = propagate_representatives(reps, matches, PropagationConfig(radius=radius, neighbors=2), size_b=(40, 20))
    np.testing.assert_allclose(tracked[1].points, [[4.5, 5.5]])
    np.testing.assert_allclose(tracked[2].points, [[15.5, 5.5]])


# ----------------------------------------------------------------------- prompting
def test_negatives_are_nearby_points_of_other_ids():
    tracked = {
        1: TrackedPoints(np.array([[10.0, 10.0], [12.0, 10.0]]), 2),
        2: TrackedPoints(np.array([[15.0, 10.0]]), 1),
        3: TrackedPoints(np.array([[90.0, 90.0]]), 1),
    }
    size = (60, 80)  # diagonal 100 pixels
    prompts = build_prompts(tracked, PromptingConfig(negative_radius=0.1, max_negatives=5), size)
    np.testing.assert_allclose(prompts[1].negative, [[15.0, 10.0]])
    np.testing.assert_allclose(prompts[2].negative, [[12.0, 10.0], [10.0, 10.0]])
    assert len(prompts[3].negative) == 0
    assert len(build_prompts(tracked, PromptingConfig(negative_radius=0.1, max_negatives=1), size)[2].negative) == 1


def test_prompt_masks_calls_the_segmenter_per_id():
    calls = []

    class Recorder:
        def prompt(self, state, positive_xy, negative_xy):
            calls.append((state, len(positive_xy), len(negative_xy)))
            return Mask(np.ones((4, 4), dtype=bool))

    prompts = {2: Prompt(np.zeros((3, 2)), np.zeros((1, 2))), 1: Prompt(np.zeros((1, 2)), np.zeros((0, 2)))}
    masks = prompt_masks(Recorder(), "state", prompts)
    assert list(masks) == [1, 2]
    assert calls == [("state", 1, 0), ("state", 3, 1)]


# ----------------------------------------------------------------------- rejection
def test_rejection_when_points_or_prompts_are_lost():
    rule = RejectionConfig(min_tracked_points=2, min_survival=0.5, min_prompt_support=0.5)
    assert lost_before_prompting(TrackedPoints(np.zeros((1, 2)), 4), rule) == "too few points"
    assert lost_before_prompting(TrackedPoints(np.zeros((2, 2)), 8), rule) == "too few points"
    assert lost_before_prompting(TrackedPoints(np.zeros((3, 2)), 4), rule) is None
    mask = square((20, 20), 0, 10, 0, 10)
    inside = np.array([[2.5, 2.5], [5.5, 5.5]])
    outside = np.array([[15.5, 15.5], [18.5, 2.5], [12.5, 12.5]])
    assert prompt_support(mask, np.concatenate([inside, outside])) == pytest.approx(0.4)
    assert lost_after_prompting(Mask(mask), inside, rule, min_area=4) is None
    assert lost_after_prompting(Mask(mask), np.concatenate([inside, outside]), rule, min_area=4) == "prompts outside mask"
    assert lost_after_prompting(Mask(np.zeros((20, 20), bool)), inside, rule, min_area=4) == "empty mask"
    assert lost_after_prompting(Mask(square((20, 20), 0, 1, 0, 3)), inside[:0], rule, min_area=4) == "empty mask"


def test_rejection_of_a_mask_many_times_larger_than_its_id_was():
    rule = RejectionConfig(max_growth=4.0)
    mask = Mask(square((20, 20), 0, 10, 0, 10))  # 100 pixels
    inside = np.array([[2.5, 2.5]])
    assert lost_after_prompting(mask, inside, rule, min_area=4, previous_area=20) == "mask leaked"
    assert lost_after_prompting(mask, inside, rule, min_area=4, previous_area=25) is None
    assert lost_after_prompting(mask, inside, rule, min_area=4) is None  # area in the parent frame unknown
    assert lost_after_prompting(mask, inside, rule, min_area=30, previous_area=20) is None  # small ids grow to min_area
    assert lost_after_prompting(mask, inside, RejectionConfig(max_growth=0), min_area=4, previous_area=1) is None
    with pytest.raises(InputError):
        RejectionConfig(max_growth=0.5)


# ------------------------------------------------------------------------- overlap
def test_overlap_resolution_gives_contested_pixels_to_the_nearest_prompt():
    shape = (20, 40)
    a = square(shape, 0, 20, 0, 25)  # leaks to column 25
    b = square(shape, 0, 20, 15, 40)
    masks = {1: Mask(a, score=0.9), 2: Mask(b, score=0.9)}
    prompts = {1: Prompt(np.array([[5.0, 10.0]]), np.zeros((0, 2))), 2: Prompt(np.array([[35.0, 10.0]]), np.zeros((0, 2)))}
    labels = resolve_overlaps(masks, prompts, shape)
    assert set(np.unique(labels)) == {1, 2}
    assert np.all(labels[:, :15] == 1) and np.all(labels[:, 25:] == 2)
    # The contested band [15, 25) is split at the midpoint between the prompts (x = 20).
    assert np.all(labels[:, 15:20] == 1) and np.all(labels[:, 20:25] == 2)


def test_near_duplicates_merge_into_the_older_id():
    shape = (20, 20)
    a = square(shape, 0, 10, 0, 10)
    b = square(shape, 0, 10, 0, 11)  # IoU 10/11
    c = square(shape, 12, 20, 12, 20)
    masks = {5: Mask(b), 3: Mask(a), 9: Mask(c)}
    prompts = {i: Prompt(np.array([[1.0, 1.0]]) * i, np.zeros((0, 2))) for i in masks}
    out_masks, out_prompts, merged = merge_duplicates(masks, prompts, OverlapConfig(merge_iou=0.8))
    assert merged == {5: 3}
    assert set(out_masks) == {3, 9}
    assert out_masks[3].area == 110 and len(out_prompts[3].positive) == 2
    assert pairwise_iou([a, b, c])[0, 1] == pytest.approx(10 / 11)


def test_auto_masks_become_disjoint_with_finer_segments_on_top():
    shape = (20, 20)
    whole = Mask(square(shape, 0, 20, 0, 20), score=0.9)
    part = Mask(square(shape, 0, 10, 0, 10), score=0.8)
    speck = Mask(square(shape, 15, 16, 15, 16), score=0.99)
    labels = auto_label_image([part, whole, speck], shape, min_area=4)
    assert labels[0, 0] == 2 and labels[19, 19] == 1  # larger visible area gets the smaller number
    assert np.count_nonzero(labels == 2) == 100
    assert labels[15, 15] == 1  # the speck is below min_area and leaves its pixel to the whole
    assert auto_label_image([], shape, 4).max() == 0


# --------------------------------------------------------------------- new regions
def test_split_regions_finds_uncovered_segments_and_fills_small_gaps():
    auto = np.zeros((20, 30), dtype=np.int64)
    auto[:, :10] = 1
    auto[:, 10:20] = 2
    auto[:, 20:] = 3
    tracked = np.zeros_like(auto)
    tracked[:, :9] = 4  # segment 1 is 90 % covered by id 4: its last column joins id 4
    tracked[:3, 10:20] = 6  # segment 2 is 15 % covered: uncovered part is a new region
    config = NewRegionsConfig(min_uncovered_fraction=0.6, fill_min_dominance=0.6)
    split = split_regions(tracked, auto, config, min_area=5)
    assert np.all(split.labels[:, :10] == 4)
    assert split.filled_pixels == 20
    assert split.region_ids == [3, 2]  # segment 3 (fully uncovered, larger) first
    assert np.all(split.regions[3:, 10:20] == 2) and np.all(split.regions[:3, 10:20] == 0)
    ids, index = compact_ids(np.array([[0, 5], [9, 5]]))
    assert ids.tolist() == [0, 5, 9] and index.tolist() == [[0, 1], [2, 1]]


# ----------------------------------------------------------------------- consensus
def test_consensus_follows_agreeing_votes_and_releases_new_content():
    shape = (20, 40)
    prev = np.zeros(shape, dtype=np.uint16)
    prev[:, :20] = 1
    prev[:, 20:] = 2
    auto = np.zeros(shape, dtype=np.int64)
    auto[:, :20] = 1
    auto[:, 20:30] = 2
    auto[:, 30:] = 3
    tracked = np.zeros(shape, dtype=np.int64)
    tracked[:, :25] = 1  # id 1's prompt leaked into segment 2
    tracked[:, 25:] = 2
    # Dense identity correspondences, except that segment 3's pixels were not visible before.
    matches = grid_matches(prev)
    keep = matches.xy_b[:, 0] < 30
    result = apply_consensus(tracked, auto, prev, matches.subset(keep), ConsensusConfig(min_votes=5, share=0.75))
    assert np.all(result.labels[:, :20] == 1)
    assert np.all(result.labels[:, 20:30] == 2)  # votes say segment 2 came from id 2
    assert np.all(result.labels[:, 30:] == 0)  # no votes at all: new content, released
    assert (result.assigned, result.released) == (2, 1)


def test_fragments_inside_one_segment_merge_after_a_few_frames():
    auto = np.zeros((10, 20), dtype=np.int64)
    auto[:, :10] = 1
    auto[:, 10:] = 2
    labels = np.zeros((10, 20), dtype=np.int64)
    labels[:, :5] = 3
    labels[:, 5:10] = 8
    labels[:, 10:] = 4
    merger = FragmentMerger(ConsensusConfig(fragment_merge_frames=3, fragment_containment=0.9))
    assert merger.update(labels, auto) == {}
    assert merger.update(labels, auto) == {}
    assert merger.update(labels, auto) == {8: 3}
    # A streak is broken by a frame where the two are apart.
    merger = FragmentMerger(ConsensusConfig(fragment_merge_frames=2, fragment_containment=0.9))
    merger.update(labels, auto)
    apart = labels.copy()
    apart[:, 5:10] = 0
    merger.update(apart, auto)
    assert merger.update(labels, auto) == {}


def test_one_group_sample_equals_the_grouped_sample():
    from mastsam_splat.tracker.tracker import _sample, _sample_per_group

    rng = np.random.default_rng(0)
    for n, cap, share in ((0, 5, 0.5), (10, 50, 0.0), (10, 50, 1.0), (500, 64, 0.3), (5000, 256, 0.7)):
        mask = rng.random(n) < share
        got = _sample(mask, cap, seed=3)
        np.testing.assert_array_equal(got, _sample_per_group(mask.astype(np.int64), np.array([1]), cap, seed=3))
        assert got.dtype == np.int64


def test_prompt_support_equals_a_lookup_in_the_integer_mask():
    from mastsam_splat.tracker.representatives import match_labels

    rng = np.random.default_rng(2)
    mask = rng.random((30, 40)) < 0.4
    positive = rng.uniform(-5.0, 45.0, (200, 2))  # some outside the image
    expected = float(np.mean(match_labels(mask.astype(np.int64), positive) > 0))
    assert prompt_support(mask, positive) == expected


def test_sample_per_group_of_16_bit_labels_matches_wider_ones() -> None:
    from mastsam_splat.tracker.tracker import _sample_per_group

    rng = np.random.default_rng(2)
    group = rng.integers(0, 30, 5000)
    wanted = np.array([0, 3, 4, 17, 29])
    narrow = _sample_per_group(group, wanted, 40, seed=5)  # table look-up, radix sort
    wide = _sample_per_group(group + 70_000, wanted + 70_000, 40, seed=5)  # np.isin, general sort
    np.testing.assert_array_equal(narrow, wide)
    counts = np.bincount(group[narrow], minlength=30)
    assert (counts[wanted] == 40).all() and counts.sum() == 200


@pytest.mark.parametrize("big_ids", [False, True])
def test_representatives_group_each_ids_matches_in_their_order(big_ids):
    """Every id's candidates, gathered by one sort of the matches' ids (as uint16 when they fit), are its confident
    matches in their order, and its points those of K-Means on them: a plain pass per id gives the same."""
    from mastsam_splat.tracker.representatives import kmeans_points, num_representatives

    rng = np.random.default_rng(2)
    labels = np.kron(rng.integers(0, 30, (8, 12)), np.ones((6, 6), dtype=np.int64))
    if big_ids:
        labels = np.where(labels > 0, labels + 70_000, 0)  # ids beyond uint16: sorted as they are
    else:
        labels = labels.astype(np.uint16)
    h, w = labels.shape
    xy = rng.uniform(0.0, 1.0, (3000, 2)) * [w, h]
    matches = Matches(xy, xy, rng.uniform(0.0, 1.0, len(xy)))
    config = representatives_config(labels, pixels_per_point=20, k_min=2, k_max=5)
    reps = select_representatives(labels, matches, config, 0.5, (w, h), seed=3)
    confident = matches.confidence >= 0.5
    ids = labels[np.floor(matches.xy_a[:, 1]).astype(int), np.floor(matches.xy_a[:, 0]).astype(int)]
    areas = np.bincount(labels.ravel())
    expected = set(np.unique(ids[confident]).tolist()) - {0}
    assert set(reps) == expected and len(expected) > 20
    for obj_id in expected:
        index = np.flatnonzero(confident & (ids == obj_id))
        np.testing.assert_array_equal(reps[obj_id].match_index, index)
        k = num_representatives(int(areas[obj_id]), config.area_per_point * h * w, config.min_points, config.max_points)
        np.testing.assert_array_equal(reps[obj_id].points, kmeans_points(matches.xy_a[index], k, seed=3 + obj_id))
