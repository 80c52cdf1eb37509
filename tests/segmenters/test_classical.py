"""The classical segmenter on generated shapes and on a real photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters import ClassicalSegmenterConfig, make_segmenter
from mastsam_splat.segmenters.classical import ClassicalSegmenter

FRUITS = Path("/usr/share/doc/opencv-doc/examples/data/fruits.jpg")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def shapes_scene(scale: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 320x240 (times ``scale``) image: coloured shapes on a textured, noisy beige background.

    ``near_a`` and ``near_b`` touch and differ only slightly in colour, so they form one object
    unless a prompt separates them.
    """
    h, w = 240 * scale, 320 * scale
    yy, xx = np.mgrid[0:h, 0:w] / scale
    rng = np.random.default_rng(7)
    texture = 10.0 * np.sin(xx / 2.5) * np.sin(yy / 3.0) + rng.normal(0, 4, (h, w))
    image = np.array([200.0, 188.0, 160.0])[None, None] + texture[..., None]
    shapes = {
        "disk": (xx - 70) ** 2 + (yy - 70) ** 2 < 40**2,
        "rect": (xx >= 140) & (xx < 215) & (yy >= 30) & (yy < 100),
        "triangle": (yy > 130) & (yy < 215) & (np.abs(xx - 75) < (yy - 130) * 0.6),
        "near_a": (xx >= 160) & (xx < 230) & (yy >= 140) & (yy < 210),
        "near_b": (xx >= 230) & (xx < 295) & (yy >= 140) & (yy < 210),
    }
    colours = {
        "disk": (200, 40, 40),
        "rect": (40, 70, 190),
        "triangle": (40, 150, 60),
        "near_a": (150, 70, 150),
        "near_b": (150, 80, 140),
    }
    for name, mask in shapes.items():
        image[mask] = np.array(colours[name], dtype=float) + rng.normal(0, 3, (int(mask.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), shapes


def centre(mask: np.ndarray) -> np.ndarray:
    """The pixel centre of the mask pixel farthest from its boundary, as [1, 2] (x, y)."""
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return np.array([[col + 0.5, row + 0.5]])


@pytest.fixture(scope="module")
def scene():
    image, shapes = shapes_scene()
    segmenter = make_segmenter("classical")
    return segmenter, segmenter.prepare(image), image, shapes


def test_auto_recovers_each_shape(scene):
    segmenter, state, image, shapes = scene
    masks = segmenter.auto(state)
    assert 4 <= len(masks) <= 20
    for m in masks:
        assert m.segmentation.shape == image.shape[:2] and m.segmentation.dtype == bool
        assert m.area == int(m.segmentation.sum()) > 0
        assert 0.0 <= m.score <= 1.0
    for name in ("disk", "rect", "triangle"):
        best = max(iou(m.segmentation, shapes[name]) for m in masks)
        assert best > 0.8, f"{name}: best IoU {best:.2f}"


def test_prompt_inside_a_shape_returns_it(scene):
    segmenter, state, _, shapes = scene
    for name in ("disk", "rect", "triangle"):
        mask = segmenter.prompt(state, centre(shapes[name]))
        assert iou(mask.segmentation, shapes[name]) > 0.8, name
        assert 0.0 <= mask.score <= 1.0
    # Several positives in one shape give the same shape.
    ys, xs = np.nonzero(shapes["rect"])
    pick = np.random.default_rng(0).choice(len(xs), 5, replace=False)
    mask = segmenter.prompt(state, np.stack([xs[pick] + 0.5, ys[pick] + 0.5], axis=1))
    assert iou(mask.segmentation, shapes["rect"]) > 0.8


def test_negative_point_excludes_neighbour(scene):
    segmenter, state, _, shapes = scene
    a, b = shapes["near_a"], shapes["near_b"]
    together = segmenter.prompt(state, centre(a))
    assert iou(together.segmentation, a | b) > 0.8, "similar touching shapes should form one region"
    apart = segmenter.prompt(state, centre(a), centre(b))
    assert iou(apart.segmentation, a) > 0.8
    assert (apart.segmentation & b).sum() < 0.05 * b.sum()
    # The boundary between the two is faint, so the split-off part scores lower than the whole.
    assert apart.score < together.score
    # Conflicting clicks: every positive pixel is kept, the negative pixel is not.
    pos = np.concatenate([centre(a), centre(b)])
    neg = centre(b) + [[6.0, 6.0]]
    mixed = segmenter.prompt(state, pos, neg).segmentation
    assert (mixed & a).sum() > 0.9 * a.sum()
    assert all(mixed[int(y), int(x)] for x, y in pos) and not mixed[int(neg[0, 1]), int(neg[0, 0])]


def test_positive_and_negative_in_one_superpixel_split_by_distance(scene):
    segmenter, state, _, shapes = scene
    rect = shapes["rect"]
    pos, neg = np.array([[150.5, 65.5]]), np.array([[205.5, 65.5]])
    mask = segmenter.prompt(state, pos, neg)
    assert mask.segmentation[65, 150] and not mask.segmentation[65, 205]
    assert mask.segmentation.sum() < rect.sum()


def test_prompt_without_positive_inside_the_image_is_empty(scene):
    segmenter, state, image, _ = scene
    for pos in (np.zeros((0, 2)), np.array([[-3.0, 10.0]]), np.array([[10.0, 240.0]]), None):
        mask = segmenter.prompt(state, pos, np.array([[5.0, 5.0]]))
        assert mask.area == 0 and mask.score == 0.0 and mask.segmentation.shape == image.shape[:2]


def test_deterministic(scene):
    segmenter, state, image, _ = scene
    again = segmenter.auto(segmenter.prepare(image))
    first = segmenter.auto(state)
    assert len(again) == len(first)
    for m1, m2 in zip(first, again):
        assert np.array_equal(m1.segmentation, m2.segmentation) and m1.score == m2.score


@pytest.mark.parametrize("superpixels", ["felzenszwalb", "slic"])
def test_large_image_segmented_at_max_side(superpixels):
    image, shapes = shapes_scene(scale=2)
    segmenter = ClassicalSegmenter(ClassicalSegmenterConfig(superpixels=superpixels, max_side=320))
    state = segmenter.prepare(image)
    assert state.superpixels.shape == image.shape[:2]
    masks = segmenter.auto(state)
    for name in ("disk", "rect", "triangle"):
        assert max(iou(m.segmentation, shapes[name]) for m in masks) > 0.8, name
    mask = segmenter.prompt(state, centre(shapes["disk"]))
    assert mask.segmentation.shape == image.shape[:2]
    assert iou(mask.segmentation, shapes["disk"]) > 0.8


def test_uniform_image_is_one_region():
    segmenter = make_segmenter("classical")
    state = segmenter.prepare(np.full((60, 80, 3), 128, dtype=np.uint8))
    masks = segmenter.auto(state)
    assert len(masks) == 1 and masks[0].segmentation.all() and masks[0].score == 0.0
    assert segmenter.prompt(state, np.array([[10.0, 10.0]])).segmentation.all()


@pytest.mark.parametrize(
    "image",
    [np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8), np.zeros((40, 40, 3), np.float32)],
)
def test_bad_image_is_an_input_error(image):
    with pytest.raises(InputError):
        make_segmenter("classical").prepare(image)


@pytest.mark.skipif(not FRUITS.is_file(), reason="opencv-doc example images are not installed")
def test_real_photo_fruits():
    image = cv2.cvtColor(cv2.imread(str(FRUITS)), cv2.COLOR_BGR2RGB)
    image = cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA)
    segmenter = make_segmenter("classical")
    state = segmenter.prepare(image)
    masks = segmenter.auto(state)
    assert 5 <= len(masks) <= 60
    covered = np.any([m.segmentation for m in masks], axis=0)
    assert covered.mean() > 0.9
    # Object-sized regions: no single mask takes most of the photo, and the largest few are big.
    areas = sorted((m.area for m in masks), reverse=True)
    assert areas[0] < 0.5 * covered.size
    assert sum(areas[:5]) > 0.4 * covered.size
    # Clicking inside an automatic mask gives that mask back.
    for m in masks[:5]:
        assert iou(segmenter.prompt(state, centre(m.segmentation)).segmentation, m.segmentation) > 0.9


@pytest.mark.parametrize(
    "settings", [dict(superpixels="watershed"), dict(merge_threshold=0.0), dict(colour_weight=1.5)]
)
def test_bad_settings_are_input_errors(settings):
    with pytest.raises(InputError):
        make_segmenter("classical", ClassicalSegmenterConfig(**settings))


@pytest.mark.parametrize("max_side", [0, 160])
def test_member_pixels_equal_a_full_image_lookup(max_side):
    """The prompt's mask, read inside the box of its superpixels, equals ``members[superpixels]`` everywhere (also
    for images segmented at a lower resolution, where a superpixel may have no pixel at full size)."""
    from mastsam_splat.segmenters.classical import _member_pixels

    image, _ = shapes_scene()
    segmenter = ClassicalSegmenter(ClassicalSegmenterConfig(max_side=max_side))
    state = segmenter.prepare(image)
    n = state.num_superpixels
    rng = np.random.default_rng(0)
    choices = [np.zeros(n, dtype=bool), np.ones(n, dtype=bool)]
    for size in (1, 2, 5, n // 3):
        members = np.zeros(n, dtype=bool)
        members[rng.choice(n, size, replace=False)] = True
        choices.append(members)
    for node in (n, n + 7, len(state.tree.parent) - 1):  # regions of the merge tree
        members = np.zeros(n, dtype=bool)
        members[state.tree.leaves(node)] = True
        choices.append(members)
    for members in choices:
        got = _member_pixels(state, members)
        assert got.dtype == bool and got.shape == image.shape[:2]
        np.testing.assert_array_equal(got, np.take(members, state.superpixels))
    parent, level = state.tree.lists()
    assert parent == state.tree.parent.tolist() and level == state.tree.level.tolist()


@pytest.mark.parametrize("max_side", [0, 160])
def test_prompt_box_and_score_equal_the_general_ones(max_side):
    """The prompt's box around whole tree nodes and its score tables give ``_member_pixels`` and ``_contrast_score``
    exactly (also where a superpixel has no pixel at full size)."""
    from mastsam_splat.segmenters.classical import (
        _contrast_score,
        _member_pixels,
        _prompt_contrast_score,
        _regions_box,
    )

    image, _ = shapes_scene()
    state = ClassicalSegmenter(ClassicalSegmenterConfig(max_side=max_side)).prepare(image)
    n, size = state.num_superpixels, len(state.tree.parent)
    rng = np.random.default_rng(1)
    for regions in [[], [0], [n], [size - 1], sorted(rng.choice(n, 3, replace=False).tolist())]:
        members = np.zeros(n, dtype=bool)
        for node in regions:
            members[state.tree.leaves(node)] = True
        np.testing.assert_array_equal(
            _member_pixels(state, members, _regions_box(state, regions)), np.take(members, state.superpixels)
        )
        assert _prompt_contrast_score(state, members) == _contrast_score(state, members)


def test_prompted_mask_box_holds_every_pixel_and_its_area(scene):
    """The box a prompted mask comes with holds all of its pixels (also where a negative point shares a superpixel
    with a positive one and that superpixel is split), and the area is the mask's pixel count."""
    seg, state, image, _ = scene
    h, w = image.shape[:2]
    rng = np.random.default_rng(4)
    shared = 0
    for trial in range(40):
        positive = rng.uniform(0, (w, h), (int(rng.integers(1, 4)), 2))
        negative = rng.uniform(0, (w, h), (int(rng.integers(0, 3)), 2))
        if trial % 4 == 0:  # a negative point next to a positive one: often in its superpixel
            negative = np.concatenate([negative, positive[:1] + rng.uniform(-2, 2, (1, 2))])
        mask = seg.prompt(state, positive, negative)
        assert mask.box is not None
        r0, r1, c0, c1 = mask.box
        outside = mask.segmentation.copy()
        outside[r0:r1, c0:c1] = False
        assert not outside.any()
        assert mask.area == int(mask.segmentation.sum())
        leaves = state.superpixels[negative.astype(int)[:, 1].clip(0, h - 1), negative.astype(int)[:, 0].clip(0, w - 1)]
        shared += int(np.isin(state.superpixels[positive.astype(int)[:, 1], positive.astype(int)[:, 0]], leaves).any())
    assert shared > 0


def test_automatic_mask_box_is_the_tight_box_of_its_pixels(scene):
    """Every automatic mask comes with the tight box of its pixels (the tracker paints and reads masks inside it)."""
    seg, state, _, _ = scene
    masks = seg.auto(state)
    assert masks
    for mask in masks:
        rows = np.flatnonzero(mask.segmentation.any(axis=1))
        cols = np.flatnonzero(mask.segmentation.any(axis=0))
        assert mask.box == (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)


def test_nearer_to_positive_splits_by_the_nearest_point():
    """Each pixel of the region goes to the side of its nearest point (squared distances in float32)."""
    from mastsam_splat.segmenters.classical import _nearer_to_positive

    rng = np.random.default_rng(2)
    region = rng.random((9, 13)) > 0.2
    for p, q in [(1, 1), (1, 3), (3, 2)]:
        positive, negative = rng.random((p, 2)) * (13, 9), rng.random((q, 2)) * (13, 9)
        ys, xs = np.mgrid[0:9, 0:13].astype(np.float32) + np.float32(0.5)

        def nearest(points):
            pts = points.astype(np.float32)
            return np.min([(xs - x) ** 2 + (ys - y) ** 2 for x, y in pts], axis=0)

        expected = region & (nearest(positive) < nearest(negative))
        np.testing.assert_array_equal(_nearer_to_positive(region, positive, negative), expected)
