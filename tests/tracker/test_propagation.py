"""Propagation details: the median of the correspondences' votes, and the label image carried into the next frame."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.propagation import (
    CARRY_GRID_CELLS,
    PropagationConfig,
    TrackedPoints,
    _nanmedian_rows,
    carry_labels,
    displacement_field,
    keep_carried,
    propagate_points,
    propagate_representatives,
)
from mastsam_splat.tracker.representatives import Representatives
from mastsam_splat.types import Matches


def test_vote_median_ignores_missing_votes_like_nanmedian():
    rng = np.random.default_rng(0)
    for k in range(1, 7):
        votes = rng.normal(size=(50, k, 2))
        missing = rng.random((50, k)) < 0.5
        missing[:, 0] = False  # every row keeps a vote
        votes[missing] = np.nan
        np.testing.assert_array_equal(_nanmedian_rows(votes), np.nanmedian(votes, axis=1))


# ----------------------------------------------------------------------- carried partition
def _shifted_grid(shape, step, shift):
    h, w = shape
    xs, ys = np.meshgrid(np.arange(0.5, w, step), np.arange(0.5, h, step))
    xy_a = np.stack([xs.ravel(), ys.ravel()], axis=1)
    return Matches(xy_a=xy_a, xy_b=xy_a + np.asarray(shift, dtype=np.float64), confidence=np.ones(len(xy_a)))


def test_carried_labels_follow_a_known_shift():
    prev = np.zeros((40, 60), dtype=np.int64)
    prev[10:20, 10:30] = 3
    prev[25:35, 35:50] = 7
    matches = _shifted_grid(prev.shape, 3, (4.0, 2.0))
    carried = carry_labels(prev, matches, prev.shape, PropagationConfig())
    expected = np.zeros_like(prev)
    expected[12:22, 14:34] = 3
    expected[27:37, 39:54] = 7
    np.testing.assert_array_equal(carried, expected)


def test_carried_labels_are_unknown_far_from_every_correspondence():
    prev = np.ones((40, 60), dtype=np.int64)
    xy = np.array([[5.5, 5.5], [6.5, 5.5], [5.5, 6.5]])
    matches = Matches(xy_a=xy, xy_b=xy, confidence=np.ones(3))
    carried = carry_labels(prev, matches, prev.shape, PropagationConfig(carry_radius=0.1))  # 7.2 px
    assert carried[5, 5] == 1 and carried[39, 59] == 0
    assert np.all(carry_labels(prev, matches.subset(np.zeros(3, bool)), prev.shape, PropagationConfig()) == 0)


@pytest.mark.parametrize("seed", range(4))
def test_carried_labels_equal_a_look_up_of_every_pixels_source(seed):
    """``carry_labels`` (source rows and columns from per-cell tables) equals the plain per-pixel look-up of the
    displacement field's sources, with images of other sizes, sources outside frame a and cells out of reach."""
    rng = np.random.default_rng(seed)
    for _ in range(6):
        h, w = (int(v) for v in rng.integers(20, 260, 2))
        ha, wa = (int(v) for v in rng.integers(20, 260, 2))
        prev = rng.integers(0, 9, (ha, wa)).astype(np.uint16)
        n = int(rng.integers(1, 60))
        xy_b = rng.random((n, 2)) * [w, h]
        xy_a = xy_b + rng.normal(0, 15, (n, 2))
        matches = Matches(xy_a=xy_a, xy_b=xy_b, confidence=np.ones(n))
        config = PropagationConfig(carry_radius=float(rng.choice([0.05, 0.3])))
        diagonal = float(np.hypot(w, h))
        step = max(1, int(round(diagonal / CARRY_GRID_CELLS)))
        source, known = displacement_field(
            matches.xy_a, matches.xy_b, (h, w), config.carry_radius * diagonal, config.neighbors, step
        )
        cols = np.floor(source[..., 0]).astype(np.int64)
        rows = np.floor(source[..., 1]).astype(np.int64)
        inside = known & (cols >= 0) & (cols < wa) & (rows >= 0) & (rows < ha)
        expected = np.zeros((h, w), dtype=np.int64)
        expected[inside] = prev[rows[inside], cols[inside]]
        carried = carry_labels(prev, matches, (h, w), config)
        assert carried.dtype == prev.dtype
        np.testing.assert_array_equal(carried, expected)


def test_segment_merging_two_carried_ids_keeps_their_split():
    auto = np.ones((20, 40), dtype=np.int64)  # one segment over two tracked regions
    carried = np.zeros_like(auto)
    carried[:, :25] = 1
    carried[:, 25:] = 2
    labels = np.ones_like(auto)  # tracking gave the whole segment to id 1
    labels[:2, :] = 0  # unlabelled pixels: the prompted masks missed them
    out, taken = keep_carried(labels, auto, carried, PropagationConfig(carry_share=0.2), min_area=5)
    assert np.all(out[:, 25:] == 2) and np.all(out[:, :25] == 1)
    assert taken.changed == 20 * 15 + 2 * 25


def test_unlabelled_pixels_take_their_carried_id_but_new_content_stays_unlabelled():
    auto = np.ones((20, 40), dtype=np.int64)
    carried = np.zeros_like(auto)
    carried[:, :20] = 1
    carried[:, 20:32] = 2
    labels = np.where(np.arange(40)[None, :] < 15, 1, 0) * np.ones_like(auto)  # the prompts covered id 1's part
    out, _ = keep_carried(labels, auto, carried, PropagationConfig(carry_share=0.2), min_area=5)
    # Gap filling would give the whole segment to its dominant id 1: id 2's carried pixels are kept from it.
    assert np.all(out[:, :20] == 1) and np.all(out[:, 20:32] == 2)
    assert np.all(out[:, 32:] == 0)  # no id was carried there: new content, left to the new regions
    # A segment tracking did not reach at all is left to the new regions too.
    out, taken = keep_carried(np.zeros_like(auto), auto, carried, PropagationConfig(carry_share=0.2), min_area=5)
    assert taken.changed == 0 and not out.any()


def test_minor_carried_pieces_follow_the_segment_but_small_ids_inside_it_stay():
    auto = np.ones((20, 40), dtype=np.int64)
    carried = np.ones_like(auto)
    carried[:, 38:] = 2  # 5 % of the segment, and a sliver of id 2 that mostly lies elsewhere
    carried_elsewhere = np.pad(carried, ((0, 0), (0, 20)), constant_values=2)
    auto_elsewhere = np.pad(auto, ((0, 0), (0, 20)), constant_values=2)
    labels = np.where(auto_elsewhere == 1, 1, 2)
    config = PropagationConfig(carry_share=0.2, carry_extent=0.5)
    out, taken = keep_carried(labels, auto_elsewhere, carried_elsewhere, config, min_area=5)
    assert taken.changed == 0 and np.array_equal(out, labels)
    # The same sliver as a whole small id (all of its carried pixels inside the segment) keeps them.
    out, taken = keep_carried(np.ones_like(auto), auto, carried, config, min_area=5)
    assert np.all(out[:, 38:] == 2) and taken.changed == 40


def _reference_propagate(representatives, matches, config, size_b):
    """``propagate_representatives`` written plainly: per-id shifted arrays, and each id's kept points found by mask."""
    ids = sorted(representatives)
    width, height = size_b
    radius = config.radius * float(np.hypot(width, height))
    spacing = 4.0 * (max(width, 1) + radius + 1.0)
    points, xy_a, xy_b = [], [], []
    for n, obj_id in enumerate(ids):
        reps = representatives[obj_id]
        shift = np.array([n * spacing, 0.0])
        points.append(reps.points + shift)
        xy_a.append(matches.xy_a[reps.match_index].astype(np.float64) + shift)
        xy_b.append(matches.xy_b[reps.match_index].astype(np.float64) + shift)
    counts = [len(representatives[i].points) for i in ids]
    moved, keep = propagate_points(
        np.concatenate(points), np.concatenate(xy_a), np.concatenate(xy_b), radius, config.neighbors, (10**12, 10**12)
    )
    owner = np.repeat(np.arange(len(ids)), counts)[keep]
    out = {}
    for n, obj_id in enumerate(ids):
        pts = moved[owner == n] - np.array([n * spacing, 0.0])
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
        out[obj_id] = TrackedPoints(points=pts[inside], num_representatives=counts[n])
    return out


@pytest.mark.parametrize("seed", range(6))
def test_propagated_representatives_equal_the_plain_reference(seed):
    rng = np.random.default_rng(seed)
    width, height = 80, 60
    num = 400
    xy_a = np.floor(rng.uniform(0, [width, height], (num, 2))).astype(np.float32)  # pixel grid: distance ties
    xy_b = xy_a + rng.normal(0.0, 3.0, (num, 2)).astype(np.float32)
    xy_b[:20] += 200.0  # carried out of the next image
    matches = Matches(xy_a=xy_a, xy_b=xy_b, confidence=np.ones(num))
    owner = rng.integers(0, 7, num)
    representatives = {}
    for obj_id in range(1, 7):
        index = np.flatnonzero(owner == obj_id)
        if len(index) == 0:
            continue
        points = xy_a[rng.choice(index, min(len(index), 5), replace=False)].astype(np.float64)
        points[-1] += 30.0  # far from its own correspondences: dropped
        representatives[obj_id * 3] = Representatives(points=points, match_index=index)
    config = PropagationConfig(radius=0.1, neighbors=4)
    got = propagate_representatives(representatives, matches, config, (width, height))
    expected = _reference_propagate(representatives, matches, config, (width, height))
    assert list(got) == list(expected)
    for obj_id in expected:
        np.testing.assert_array_equal(got[obj_id].points, expected[obj_id].points)
        assert got[obj_id].num_representatives == expected[obj_id].num_representatives
    assert any(len(t.points) < t.num_representatives for t in got.values())
    assert any(len(t.points) for t in got.values())


def _keep_carried_reference(labels, auto_labels, carried, config, min_area):
    """``keep_carried`` written plainly (its own bincount of the segments' areas, 2-D look-ups)."""
    num_segments = int(auto_labels.max()) if auto_labels.size else 0
    if num_segments == 0 or not np.any(carried):
        return labels, 0
    ids = np.unique(np.r_[0, carried.ravel()])
    index = np.searchsorted(ids, carried)
    table = np.zeros((num_segments + 1, len(ids)), dtype=np.int64)
    np.add.at(table, (auto_labels, index), 1)
    table[0] = 0
    table[:, 0] = 0
    area = np.bincount(auto_labels.ravel(), minlength=num_segments + 1)
    carried_area = np.maximum(table.sum(axis=0), 1)
    large = (table >= config.carry_share * np.maximum(area, 1)[:, None]) | (
        table >= config.carry_extent * carried_area[None, :]
    )
    strong = large & (table >= min_area)
    strong &= (np.count_nonzero(strong, axis=1) >= 2)[:, None]
    tracked = np.bincount(auto_labels.ravel(), weights=(labels > 0).ravel(), minlength=num_segments + 1) >= min_area
    take = strong[auto_labels, index] & ((labels > 0) | tracked[auto_labels])
    out = np.where(take, carried, labels)
    return out, int(np.count_nonzero(out != labels))


@pytest.mark.parametrize("seed", range(4))
def test_kept_carried_pixels_equal_the_plain_computation(seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        h, w = (int(v) for v in rng.integers(10, 80, 2))
        auto = np.kron(rng.integers(0, 6, (h // 8 + 1, w // 8 + 1)), np.ones((8, 8), dtype=np.int64))[:h, :w]
        carried = np.kron(rng.integers(0, 5, (h // 5 + 1, w // 5 + 1)), np.ones((5, 5), dtype=np.int64))[:h, :w] * 3
        labels = np.where(rng.random((h, w)) < 0.8, rng.integers(0, 15, (h, w)), 0)
        config = PropagationConfig(carry_share=float(rng.choice([0.1, 0.2, 0.5])))
        min_area = int(rng.integers(1, 20))
        out, taken = keep_carried(labels, auto, carried, config, min_area)
        expected, expected_changed = _keep_carried_reference(labels, auto, carried, config, min_area)
        np.testing.assert_array_equal(out, expected)
        assert taken.changed == expected_changed
        # the pixels it reports are those that differ, with their ids before and after
        np.testing.assert_array_equal(np.sort(taken.pixels), np.flatnonzero(out.ravel() != labels.ravel()))
        np.testing.assert_array_equal(labels.reshape(-1)[taken.pixels], taken.old)
        np.testing.assert_array_equal(out.reshape(-1)[taken.pixels], taken.new)


def _looking_at_origin(angle: float, width: int = 120, height: int = 90):
    """A camera 4 units from the origin at ``angle`` (radians) around the y axis, looking at it."""
    from mastsam_splat.types import Camera

    centre = np.array([4.0 * np.sin(angle), -1.0, -4.0 * np.cos(angle)])
    forward = -centre / np.linalg.norm(centre)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in the world (OpenCV)
    world_to_cam = np.eye(4)
    world_to_cam[:3, :3] = rotation
    world_to_cam[:3, 3] = -rotation @ centre
    K = np.array([[100.0, 0.0, width / 2], [0.0, 100.0, height / 2], [0.0, 0.0, 1.0]])
    return Camera(K=K, world_to_cam=world_to_cam, width=width, height=height)


def test_carry_through_geometry_lands_on_each_pixels_own_surface_across_a_wide_step():
    """Across a wide step (cameras 50 degrees apart around a table) the correspondences' interpolated motion
    misplaces the half of the frame without correspondences of its own, while the depth of the table's points the
    new frame sees and the two cameras send each pixel near where its surface is in the previous frame."""
    camera_a, camera_b = _looking_at_origin(0.0), _looking_at_origin(np.radians(50))
    h, w = camera_a.height, camera_a.width
    pixels = np.stack(np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5), axis=-1).reshape(-1, 2)

    def on_table(camera, xy):  # where the rays of pixels ``xy`` meet the table (the plane y = 0)
        origin = camera.center
        direction = camera.unproject(xy, np.ones(len(xy))) - origin
        t = -origin[1] / direction[:, 1]
        hit = origin + t[:, None] * direction
        return hit, (t > 0) & (np.abs(hit[:, [0, 2]]) < 2).all(axis=1)

    # frame a: the 4 x 4 table's quarters, ids 1-4
    world_a, on_a = on_table(camera_a, pixels)
    prev = np.where(on_a, 1 + (world_a[:, 0] > 0) + 2 * (world_a[:, 2] > 0), 0).reshape(h, w).astype(np.uint16)
    # frame b sees table points on a sparse grid of its pixels; only those in its left half are matched into frame a
    grid = np.stack(np.meshgrid(np.arange(4.5, w, 9.0), np.arange(4.5, h, 9.0)), axis=-1).reshape(-1, 2)
    xyz, seen = on_table(camera_b, grid)
    xy_a, _ = camera_a.project(xyz)
    matched = seen & (grid[:, 0] < w / 2) & (xy_a[:, 0] >= 0) & (xy_a[:, 0] < w) & (xy_a[:, 1] >= 0) & (xy_a[:, 1] < h)
    matches = Matches(xy_a=xy_a[matched], xy_b=grid[matched], confidence=np.ones(int(matched.sum())))
    # where each pixel of frame b truly comes from in frame a
    world_b, on_b = on_table(camera_b, pixels)
    source, _ = camera_a.project(world_b)
    cols, rows = np.floor(source[:, 0]).astype(int), np.floor(source[:, 1]).astype(int)
    inside = on_b & (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    truth = np.zeros(h * w, dtype=np.int64)
    truth[inside] = prev[rows[inside], cols[inside]]
    check = inside & (truth > 0) & (pixels[:, 0] >= w / 2)  # the half without correspondences
    config = PropagationConfig(carry_geometry="always")
    geometric = carry_labels(prev, matches, (h, w), config, (camera_a, camera_b, grid[seen], xyz[seen])).ravel()
    interpolated = carry_labels(prev, matches, (h, w), config).ravel()
    geometric_right = np.mean(geometric[check] == truth[check])
    assert geometric_right > 0.85
    assert geometric_right > np.mean(interpolated[check] == truth[check]) + 0.2
