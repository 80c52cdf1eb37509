"""Ids meeting along a convex edge of one solid (its faces, cut apart by the segmenter) are merged."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.creases import CreaseConfig, CreaseTally, crease_merges, frame_creases, surface_normals
from mastsam_splat.tracker.creases import camera_points, normals_at
from mastsam_splat.tracker.tracker import MastSAMTracker, _Run
from mastsam_splat.tracker.view_order import ViewOrder
from mastsam_splat.types import Camera, Frame

K = np.array([[50.0, 0.0, 20.0], [0.0, 50.0, 15.0], [0.0, 0.0, 1.0]])
H, W = 30, 40


def _depth_of(surface: str) -> np.ndarray:
    """A z-depth map [H, W] with a vertical boundary at column 20: ``convex`` a box edge pointing at the camera,
    ``concave`` the inside of a corner, ``flat`` a plane, ``step`` a plane in front of a farther one."""
    u = (np.arange(W) + 0.5 - K[0, 2]) / K[0, 0]
    ray = np.broadcast_to(u, (H, W))
    # planes z = z0 + slope * x, intersected with the rays x = u z
    slope = {"convex": np.where(ray < 0, -1.0, 1.0), "concave": np.where(ray < 0, 1.0, -1.0)}.get(surface, np.zeros((H, W)))
    z0 = np.where((ray >= 0) & (surface == "step"), 6.0, 4.0)
    return z0 / (1 - slope * ray)


def _halves() -> np.ndarray:
    labels = np.ones((H, W), dtype=np.int64)
    labels[:, 20:] = 2
    return labels


def test_normals_of_a_plane_face_the_camera() -> None:
    normals = surface_normals(camera_points(_depth_of("flat"), K))
    assert np.allclose(normals[1:-1, 1:-1], [0.0, 0.0, -1.0])
    assert np.isnan(normals[0]).all() and np.isnan(normals[:, -1]).all()


@pytest.mark.parametrize("surface, convex", [("convex", True), ("concave", False), ("flat", False), ("step", False)])
def test_only_a_convex_edge_of_continuous_depth_counts(surface: str, convex: bool) -> None:
    pairs, samples, on_edge = frame_creases(_halves(), _depth_of(surface), K, CreaseConfig(), offset=3)
    assert pairs.tolist() == [[1, 2]] and samples[0] >= H - 2
    assert (on_edge[0] == samples[0]) if convex else (on_edge[0] == 0)


def test_pairs_merge_after_min_frames_of_convex_edges_and_share_of_their_meetings() -> None:
    config = CreaseConfig(min_frames=2, share=0.5)
    labels, convex, flat = _halves(), _depth_of("convex"), _depth_of("flat")
    assert crease_merges([labels], [convex], [K], config) == {}
    assert crease_merges([labels, labels], [convex, convex], [K, K], config) == {2: 1}
    assert crease_merges([labels] * 5, [convex, convex, flat, flat, flat], [K] * 5, config) == {}
    # chains of faces join the oldest id
    three = labels.copy()
    three[:, 20:] = 3
    tally = CreaseTally(config)
    for lab in (labels, labels, three, three):
        tally.observe(lab, convex, K)
    relabelled = labels.copy()
    relabelled[:, :20] = 2
    relabelled[:, 20:] = 3
    for _ in range(2):
        tally.observe(relabelled, convex, K)
    assert tally.merges() == {2: 1, 3: 1}


def _camera() -> Camera:
    return Camera(K=K, world_to_cam=np.eye(4), width=W, height=H)


def test_run_merges_faces_after_the_sequence_unless_turned_off() -> None:
    frames = [
        Frame(image=np.zeros((H, W, 3), dtype=np.uint8), name=f"f{i}", index=i, depth=_depth_of("convex"), camera=_camera())
        for i in range(3)
    ]
    for enabled, expected in ((True, {1}), (False, {1, 2})):
        config = TrackerConfig()
        config.creases.enabled = enabled
        run = _Run(MastSAMTracker(config, None, None), frames, "depth", ViewOrder([0, 1, 2], {0: None, 1: 0, 2: 1}, "cameras"))
        for t in range(3):
            run.labels[t] = _halves().astype(np.uint16)
        run.next_id = 3
        assert run.merge_creases() == (1 if enabled else 0)
        assert set(np.unique(np.concatenate([x.ravel() for x in run.finished_labels()]))) == expected


def _normals_reference(points: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``normals_at`` written plainly, on rows of three: ``np.cross``, ``np.linalg.norm`` and ``np.sum``."""
    h, w = points.shape[:2]
    out = np.full((len(rows), 3), np.nan)
    inner = (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
    r, c = rows[inner], cols[inner]
    around = [points[r, c], points[r, c + 1], points[r, c - 1], points[r + 1, c], points[r - 1, c]]
    known = np.logical_and.reduce([(p[:, 2] > 0) & np.isfinite(p[:, 2]) for p in around])
    n = np.cross(around[1] - around[2], around[3] - around[4])
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    n *= -np.sign(np.sum(n * around[0], axis=-1, keepdims=True) + 1e-12)
    out[np.flatnonzero(inner)] = np.where(known[:, None], n, np.nan)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normals_equal_the_row_wise_computation_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 37, 53
    depth = np.exp(rng.normal(1.0, 0.5, (h, w)))
    depth[rng.random((h, w)) < 0.05] = 0.0
    depth[rng.random((h, w)) < 0.02] = np.nan
    k = np.array([[70.0, 0.0, 26.0], [0.0, 66.0, 18.0], [0.0, 0.0, 1.0]])
    points = camera_points(depth, k)
    rows, cols = rng.integers(0, h, 500), rng.integers(0, w, 500)
    got, want = normals_at(points, rows, cols), _normals_reference(points, rows, cols)
    assert np.isfinite(want).any() and np.isnan(want).any()
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def _frame_creases_reference(
    labels: np.ndarray, depth: np.ndarray, K: np.ndarray, config: CreaseConfig, offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``frame_creases`` written plainly: the whole image's camera points, transposed for the vertical pass, and the
    pairs found as unique rows."""
    points = camera_points(depth, K)
    z = points[..., 2]
    cos_min = np.cos(np.deg2rad(config.min_angle))
    found_a, found_b, found_convex = [], [], []
    for axis in (0, 1):
        lab = labels if axis == 1 else labels.T
        pts = points if axis == 1 else points.transpose(1, 0, 2)
        zz = z if axis == 1 else z.T
        a, b = lab[:, :-1], lab[:, 1:]
        rows, cols = np.nonzero((a != b) & (a > 0) & (b > 0))
        left, right = cols - offset, cols + 1 + offset
        inside = (left >= 0) & (right < lab.shape[1])
        rows, cols, left, right = rows[inside], cols[inside], left[inside], right[inside]
        ida, idb = lab[rows, cols], lab[rows, cols + 1]
        same = (lab[rows, left] == ida) & (lab[rows, right] == idb)
        rows, cols, left, right, ida, idb = rows[same], cols[same], left[same], right[same], ida[same], idb[same]
        za, zb = zz[rows, cols], zz[rows, cols + 1]
        continuous = (za > 0) & (zb > 0) & (np.abs(za - zb) <= config.max_depth_step * np.minimum(za, zb))
        pa, pb = pts[rows, left], pts[rows, right]
        na, nb = _normals_reference(pts, rows, left), _normals_reference(pts, rows, right)
        measured = np.isfinite(na).all(axis=1) & np.isfinite(nb).all(axis=1)
        d = pb[measured] - pa[measured]
        na, nb = na[measured], nb[measured]
        convex = continuous[measured] & (np.sum(na * nb, axis=1) <= cos_min)
        convex &= (np.sum(d * na, axis=1) < 0) & (np.sum(d * nb, axis=1) > 0)
        found_a.append(np.minimum(ida, idb)[measured])
        found_b.append(np.maximum(ida, idb)[measured])
        found_convex.append(convex)
    a, b = np.concatenate(found_a).astype(np.int64), np.concatenate(found_b).astype(np.int64)
    convex = np.concatenate(found_convex)
    pairs, inverse = np.unique(np.stack([a, b], 1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    samples = np.bincount(inverse, minlength=len(pairs))
    return pairs, samples, np.bincount(inverse, weights=convex, minlength=len(pairs)).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frame_creases_equal_the_plain_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    # blocky labels (some unlabelled), a bumpy depth with holes and steps, on a non-square image
    labels = np.kron(rng.integers(0, 7, size=(6, 8)), np.ones((8, 8), dtype=np.int64))
    rows, cols = np.mgrid[0:h, 0:w]
    depth = (3.0 + 0.4 * np.sin(cols / 5.0) * np.cos(rows / 7.0) + 0.3 * (cols > 30)).astype(np.float32)
    depth[rng.random((h, w)) < 0.03] = 0.0
    depth[rng.random((h, w)) < 0.01] = np.nan
    depth[rng.random((h, w)) < 0.01] = np.inf
    k = np.array([[60.0, 0.0, 31.0], [0.0, 58.0, 25.0], [0.0, 0.0, 1.0]])
    config = CreaseConfig(min_angle=10.0, max_depth_step=0.05)
    for offset in (1, 2, 3):
        fast = frame_creases(labels, depth, k, config, offset)
        with np.errstate(invalid="ignore"):  # (the plain computation's NaN normals of infinite depths)
            plain = _frame_creases_reference(labels, depth, k, config, offset)
        assert len(plain[0]) > 3 and plain[2].sum() > 0  # some samples lie on convex edges, some do not
        for got, want in zip(fast, plain):
            assert got.dtype == want.dtype and np.array_equal(got, want)


def _split_with_evidence(surface: str, evidence_ratio: float = 2.0) -> np.ndarray:
    """Id 1 over the whole frame, cut by the segmenter into its two halves (the left one counted first on the tie),
    its 3D evidence ten times as often on the right half; ``keep="evidence"``. Returns the labels after the split."""
    from mastsam_splat.tracker.evidence import AnchorEvidence
    from mastsam_splat.tracker.points3d import FramePoints
    from mastsam_splat.tracker.results import FrameReport

    depth = _depth_of(surface)
    frame = Frame(image=np.zeros((H, W, 3), dtype=np.uint8), name="f0", index=0, depth=depth, camera=_camera())
    config = TrackerConfig()
    config.refine.keep = "evidence"
    config.refine.evidence_ratio = evidence_ratio
    run = _Run(MastSAMTracker(config, None, None), [frame], "depth", ViewOrder([0], {0: None}, "cameras"))
    run.next_id = 2
    rows, cols = np.mgrid[0:H, 0:W]
    xy = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=1)
    xyz = camera_points(depth, K).reshape(-1, 3)
    right = cols.ravel() >= 20
    run.evidence = AnchorEvidence(voxel_size=0.1)
    run.evidence.add(np.ones(len(xyz), dtype=np.int64), xyz)
    for _ in range(9):
        run.evidence.add(np.ones(int(right.sum()), dtype=np.int64), xyz[right])
    labels = np.ones((H, W), dtype=np.int64)
    out = labels
    for _ in range(run.cfg.refine.frames):
        out = run._refine(labels, _halves(), FramePoints(xy, xyz), FrameReport(index=0, name="f0"), min_area=1)
    return out


@pytest.mark.parametrize("surface, ratio, kept_side", [("flat", 2.0, "right"), ("convex", 2.0, "left"), ("flat", 20.0, "left")])
def test_the_piece_with_most_evidence_keeps_the_id_unless_it_is_a_face_of_the_same_solid(
    surface: str, ratio: float, kept_side: str
) -> None:
    """The half holding most of the id's evidence keeps it when it holds ``evidence_ratio`` times the other's share
    and the halves are not faces of one solid meeting along a convex edge (there the piece counted first keeps
    it)."""
    out = _split_with_evidence(surface, ratio)
    left, right = out[:, :20], out[:, 20:]
    kept, other = (right, left) if kept_side == "right" else (left, right)
    assert (kept == 1).all() and (other == 2).all()
