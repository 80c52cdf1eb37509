"""``--sfm mast3r``: clear errors without MASt3R, the alignment -> COLMAP model mapping (exact, no MASt3R
needed), and (with the mast3r clone importable) a tiny random MASt3R through ``prepare`` end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.capture import PrepareOptions, prepare
from mastsam_splat.capture.mast3r_sfm import (
    Alignment,
    Mast3rSfmOptions,
    alignment_cameras,
    chain_tracks,
    check_mast3r,
    original_intrinsics,
    pair_graphs,
    reconstruction,
)
from mastsam_splat.capture.writer import write_model_files
from mastsam_splat.errors import InputError
from mastsam_splat.io.colmap import read_sparse_model
from mastsam_splat.io.mast3r import Mast3rInputTransform
from mastsam_splat.io.ply import read_point_cloud
from mastsam_splat.types import OPENGL_TO_OPENCV

HAS_MAST3R = importlib.util.find_spec("mast3r") is not None


def _photos(folder: Path, count: int = 4, size: tuple[int, int] = (160, 120)) -> Path:
    """Overlapping crops of one smooth random texture."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), (400, 300), interpolation=cv2.INTER_CUBIC)
    width, height = size
    for k in range(count):
        top, left = 40 + 5 * k, 30 + 12 * k
        cv2.imwrite(str(folder / f"frame_{k}.png"), texture[top : top + height, left : left + width])
    return folder


# --- clear errors, before any work (no MASt3R needed) -----------------------------------------------


def test_no_checkpoint_is_a_clear_error(tmp_path):
    photos = _photos(tmp_path / "photos")
    with pytest.raises(InputError, match="--sfm mast3r needs --mast3r-checkpoint.*naverlabs.*git clone --recursive"):
        prepare(tmp_path / "out", PrepareOptions(images=photos, sfm="mast3r"), progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "name, message",
    [("missing.pth", "MASt3R checkpoint not found"), (".", "is a folder, not a checkpoint file")],
)
def test_bad_checkpoint_path_is_named(tmp_path, name, message):
    photos = _photos(tmp_path / "photos")
    checkpoint = tmp_path / name
    with pytest.raises(InputError, match=message) as err:
        prepare(tmp_path / "out", PrepareOptions(images=photos, sfm="mast3r", mast3r_checkpoint=checkpoint))
    assert Path(err.value.path).resolve() == checkpoint.resolve()
    assert not (tmp_path / "out").exists()


def test_missing_mast3r_code_or_bad_clone(tmp_path):
    checkpoint = tmp_path / "m.pth"
    checkpoint.write_bytes(b"x")
    with pytest.raises(InputError, match="not a clone of github.com/naver/mast3r"):
        check_mast3r(checkpoint, Mast3rSfmOptions(repo=str(tmp_path)))
    if not HAS_MAST3R:
        with pytest.raises(InputError, match="could not be imported.*git clone --recursive"):
            check_mast3r(checkpoint, Mast3rSfmOptions())


@pytest.mark.parametrize(
    "options, message",
    [
        (Mast3rSfmOptions(scene_graph="retrieval-20-5"), "unknown MASt3R scene graph"),
        (Mast3rSfmOptions(image_size=8), "at least one 16-pixel patch"),
    ],
)
def test_bad_settings(tmp_path, options, message):
    checkpoint = tmp_path / "m.pth"
    checkpoint.write_bytes(b"x")
    with pytest.raises(InputError, match=message):
        check_mast3r(checkpoint, options)


def test_pair_graphs():
    options = Mast3rSfmOptions()
    assert pair_graphs(20, options) == ["complete"]
    assert pair_graphs(100, options) == ["swin-5-noncyclic", "logwin-7-noncyclic"]
    assert pair_graphs(100, Mast3rSfmOptions(scene_graph="swin-3")) == ["swin-3"]


# --- alignment -> COLMAP model, exactly (no MASt3R needed) -------------------------------------------

SIZE = (700, 500)  # network input: resized to 512x366, cropped to 512x352 from row 7
FOCAL, DEPTH = 400.0, 5.0
SHIFTS = [(0, 0), (6, -3), (11, 4), (-7, 9)]
"""Network pixels the plane's texture moves by in each view."""


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def plane_alignment(conf: float = 2.0) -> Alignment:
    """Cameras translated parallel to a plane so that the plane moves by whole network pixels between
    views: MASt3R-like dense maps that agree exactly at corresponding pixels, under a random world frame."""
    tf = Mast3rInputTransform.for_image(*SIZE)
    net_w, net_h = tf.network_size
    K = np.array([[FOCAL, 0, net_w / 2 - 0.7], [0, FOCAL, net_h / 2 + 0.3], [0, 0, 1]])
    rng = np.random.default_rng(3)
    world = np.eye(4)
    world[:3, :3], world[:3, 3] = _rotation(rng), rng.normal(size=3)
    x, y = np.meshgrid(np.arange(net_w), np.arange(net_h))
    rays = np.stack([(x.ravel() - K[0, 2]) / FOCAL, (y.ravel() - K[1, 2]) / FOCAL, np.ones(x.size)], axis=1)
    cam_to_world, points = [], []
    for n, m in SHIFTS:
        c2w = np.eye(4)
        c2w[:3, 3] = [-n * DEPTH / FOCAL, -m * DEPTH / FOCAL, 0.0]
        c2w = world @ c2w
        cam_to_world.append(c2w)
        points.append((DEPTH * rays) @ c2w[:3, :3].T + c2w[:3, 3])
    matches = []
    grid = np.stack(np.meshgrid(np.arange(4, net_w, 8), np.arange(4, net_h, 8)), axis=-1).reshape(-1, 2)
    for i, j in [(0, 1), (1, 2), (2, 3), (0, 2)]:  # view 3 only through a chain of pairs
        px_i, px_j = grid + SHIFTS[i], grid + SHIFTS[j]  # the same points of the plane in every pair
        inside = np.all([(px >= 0).all(axis=1) & (px[:, 0] < net_w) & (px[:, 1] < net_h) for px in (px_i, px_j)], 0)
        matches.append((i, j, px_i[inside], px_j[inside]))
    colors = [np.full((net_w * net_h, 3), 40 * (k + 1), np.uint8) for k in range(len(SHIFTS))]
    confidence = [np.full(net_w * net_h, conf) for _ in SHIFTS]
    return Alignment(tf, np.stack([K] * len(SHIFTS)), np.stack(cam_to_world), points, confidence, colors, matches)


def test_intrinsics_map_to_the_written_images():
    tf = Mast3rInputTransform.for_image(*SIZE)
    assert tf.resized_size == (512, 366) and tf.crop_box == (0, 7, 512, 359)
    K = np.array([[400.0, 0, 250.0], [0, 410.0, 170.0], [0, 0, 1]])
    s = 512 / 700, 366 / 500
    expected = [[400 / s[0], 0, (250 + 0.5) / s[0]], [0, 410 / s[1], (170 + 0.5 + 7) / s[1]], [0, 0, 1]]
    np.testing.assert_allclose(original_intrinsics(K, tf), expected, rtol=1e-12)


def test_written_model_reprojects_exactly(tmp_path):
    alignment = plane_alignment()
    cameras = alignment_cameras(alignment)
    tracks = chain_tracks(alignment, cameras, Mast3rSfmOptions())
    names = [f"frame_{k}.png" for k in range(len(SHIFTS))]
    recon = reconstruction(names, cameras, tracks, tmp_path / "work")
    write_model_files(tmp_path, recon, [f"images/{n}" for n in names])

    model = read_sparse_model(tmp_path / "sparse" / "0")
    assert model.image_names == names and model.num_points == len(tracks.points) > 1000
    errors = []
    for o in range(len(model.track_point)):
        cam = model.cameras[model.track_image[o]]
        local = cam.world_to_cam[:3, :3] @ model.points[model.track_point[o]] + cam.world_to_cam[:3, 3]
        uv = (cam.K @ local)[:2] / local[2]
        errors.append(np.linalg.norm(uv - model.track_xy[o]))
    assert max(errors) < 1e-3
    # Chains through pairs: points seen in 3 and 4 views; one observation per point and view.
    lengths = np.bincount(model.track_point)
    assert lengths.max() == 4 and (lengths >= 3).sum() > 100
    pairs = model.track_point * len(names) + model.track_image
    assert len(np.unique(pairs)) == len(pairs)
    # Keypoints are network pixel centres mapped back to the written images.
    net = alignment.tf.to_network(model.track_xy)
    np.testing.assert_allclose(net - np.floor(net), 0.5, atol=1e-9)

    meta = json.loads((tmp_path / "transforms.json").read_text())
    K = original_intrinsics(alignment.K[0], alignment.tf)
    assert (meta["w"], meta["h"]) == SIZE and meta["k1"] == meta["p1"] == 0.0
    np.testing.assert_allclose([meta["fl_x"], meta["fl_y"], meta["cx"], meta["cy"]], K[[0, 1, 0, 1], [0, 1, 2, 2]])
    for frame, c2w in zip(meta["frames"], alignment.cam_to_world):
        np.testing.assert_allclose(np.array(frame["transform_matrix"]) @ OPENGL_TO_OPENCV, c2w, atol=1e-9)
    cloud = read_point_cloud(tmp_path / "sparse_pc.ply")
    assert len(cloud.xyz) == model.num_points and cloud.rgb.min() >= 40


def test_unsure_and_off_projection_observations_are_left_out():
    alignment = plane_alignment()
    cameras = alignment_cameras(alignment)
    everything = chain_tracks(alignment, cameras, Mast3rSfmOptions())
    # View 3 unsure everywhere: its observations go; its points stay, seen in views 0 and 2.
    alignment.confidence[3][:] = 1.2
    unsure = chain_tracks(alignment, cameras, Mast3rSfmOptions())
    assert 3 not in unsure.track_image and 3 in everything.track_image
    assert len(unsure.track_image) == len(everything.track_image) - np.count_nonzero(everything.track_image == 3)
    assert np.bincount(unsure.track_point).min() >= 2
    assert len(chain_tracks(alignment, cameras, Mast3rSfmOptions(min_conf=1.0)).points) == len(everything.points)
    # One point matched to a wrong pixel of view 1, 6 network pixels off: that observation alone is
    # dropped (the merged point moves 1.5 pixels towards it, leaving 4.5 there and 1.5 in the other views).
    alignment.confidence[3][:] = 2.0
    right = np.add((4 + 8 * 12, 4 + 8 * 12), SHIFTS[1])
    for i, j, px_i, px_j in alignment.matches:
        for view, px in ((i, px_i), (j, px_j)):
            if view == 1:
                px[(px == right).all(axis=1)] += [6, 0]
    filtered = chain_tracks(alignment, cameras, Mast3rSfmOptions())
    kept = chain_tracks(alignment, cameras, Mast3rSfmOptions(max_reprojection_error=None))
    assert len(kept.track_image) == len(everything.track_image)
    assert len(filtered.track_image) == len(everything.track_image) - 1
    wrong = alignment.tf.to_original(right + [6.5, 0.5])
    for tracks, count in ((kept, 1), (filtered, 0)):
        assert np.count_nonzero(np.abs(tracks.track_xy[tracks.track_image == 1] - wrong).max(axis=1) < 1e-9) == count


# --- a tiny random MASt3R through prepare (needs the mast3r clone) ----------------------------------


def test_prepare_with_a_tiny_random_mast3r(tmp_path):
    pytest.importorskip("mast3r.model")
    from support.tiny_mast3r import save_tiny_mast3r

    checkpoint = save_tiny_mast3r(tmp_path / "tiny_mast3r.pth", in_front=True)
    photos = _photos(tmp_path / "photos")
    # Random weights give meaningless geometry: keep every correspondence, check the dataset's structure.
    settings = Mast3rSfmOptions(
        image_size=128, niter1=20, niter2=20, min_conf=0.0, max_reprojection_error=None, device="cpu"
    )
    options = PrepareOptions(images=photos, sfm="mast3r", mast3r_checkpoint=checkpoint, mast3r=settings)
    report = prepare(tmp_path / "dataset", options, progress=False)
    names = [f"frame_{k}.png" for k in range(4)]
    assert report.registered == names and report.unregistered == [] and report.num_points > 20

    root = tmp_path / "dataset"
    meta = json.loads((root / "transforms.json").read_text())
    assert (meta["w"], meta["h"]) == (160, 120) and meta["camera_model"] == "OPENCV" and meta["fl_x"] > 0
    assert [f["file_path"] for f in meta["frames"]] == [f"images/{n}" for n in names]
    for frame in meta["frames"]:
        c2w = np.array(frame["transform_matrix"])
        assert np.isfinite(c2w).all()
        np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-5)
    model = read_sparse_model(root / "sparse" / "0")
    assert model.num_points == report.num_points == len(read_point_cloud(root / "sparse_pc.ply").xyz)
    assert np.bincount(model.track_point).min() >= 2 and np.isfinite(model.points).all()
    assert (model.track_xy >= 0).all() and (model.track_xy < [160, 120]).all()
    for folder in ("images", "images_2", "images_4", "images_8"):
        assert sorted(p.name for p in (root / folder).iterdir()) == names
    record = json.loads((root / "capture.json").read_text())
    assert record["settings"]["sfm"] == "mast3r" and record["settings"]["mast3r"]["image_size"] == 128
    assert not (root / ".sfm").exists()


class ExactPointmaps:
    """Stands in for the MASt3R network inside MASt3R's own alignment code: exact pointmaps of the
    analytic wall-and-box scene and descriptors that encode each pixel's world point (Fourier features,
    so reciprocal nearest neighbours are true correspondences). It has the methods
    ``mast3r.cloud_opt.sparse_ga`` calls; the views are recognised by their input pixels."""

    patch_size = 16
    square_ok = False

    def __init__(self, frames, tf: Mast3rInputTransform):
        import torch

        from mastsam_splat.io.mast3r import network_view

        net_w, net_h = tf.network_size
        sx, sy = np.divide(tf.resized_size, tf.original_size)
        x, y = np.meshgrid(np.arange(net_w) + 0.5, np.arange(net_h) + 0.5)  # network pixel centres
        original = tf.to_original(np.stack([x.ravel(), y.ravel()], axis=1))
        freqs = np.random.default_rng(0).normal(size=(12, 3))
        freqs *= np.geomspace(0.5, 8.0, 12)[:, None] / np.linalg.norm(freqs, axis=1, keepdims=True)
        self.keys, self.world, self.w2c, self.desc = [], [], [], []
        for frame in frames:
            from support.analytic_views import cast

            points = cast(frame.camera, original)[1]
            phase = points @ freqs.T
            desc = np.concatenate([np.cos(phase), np.sin(phase)], axis=1) / np.sqrt(12)
            self.keys.append(float(network_view(frame.image, tf, 0)["img"].sum()))
            self.world.append(points)
            self.w2c.append(frame.camera.world_to_cam)
            self.desc.append(torch.from_numpy(desc.reshape(net_h, net_w, -1)).float())
        self.shape = net_h, net_w
        self.scale = sx, sy

    def to(self, device):
        return self

    def _view(self, img) -> int:
        return int(np.argmin(np.abs(np.array(self.keys) - float(img.sum()))))

    def _encode_image_pairs(self, img1, img2, shape1, shape2):
        import torch

        one, two = torch.tensor([self._view(img1)]), torch.tensor([self._view(img2)])
        return one, two, None, None

    def _decoder(self, feat1, pos1, feat2, pos2):
        import torch

        return [torch.cat([feat1, feat2])], [torch.cat([feat2, feat1])]

    def _downstream_head(self, head, tokens, shape):
        import torch

        own, ref = (int(v) for v in tokens[-1])
        w2c = self.w2c[ref]
        local = self.world[own] @ w2c[:3, :3].T + w2c[:3, 3]
        h, w = self.shape
        ones = torch.full((1, h, w), 10.0)
        return {
            "pts3d": torch.from_numpy(local.reshape(1, h, w, 3)).float(),
            "conf": ones,
            "desc": self.desc[own][None],
            "desc_conf": ones,
        }


@pytest.mark.slow
def test_mast3r_alignment_of_exact_pointmaps_recovers_the_cameras(tmp_path, monkeypatch):
    """MASt3R's real alignment code, fed exact pointmaps: the dataset's cameras match the true ones."""
    pytest.importorskip("mast3r.cloud_opt.sparse_ga")
    from support.analytic_views import WALL_Z, look_at, render

    from mastsam_splat.capture import mast3r_sfm
    from mastsam_splat.geometry.similarity import pose_errors

    width, height = 320, 240
    target = np.array([0.0, 0.0, WALL_Z])
    eyes = [[-0.6, -0.1, 0.0], [0.0, 0.2, 0.2], [0.6, -0.2, 0.1], [0.2, -0.4, -0.3]]
    frames = [render(look_at(eye, target + [0.1 * k, 0.0, 0.0], width, height), f"view_{k}", index=k)
              for k, eye in enumerate(eyes)]  # fmt: skip
    photos = tmp_path / "photos"
    photos.mkdir()
    for frame in frames:
        cv2.imwrite(str(photos / f"{frame.name}.png"), frame.image[:, :, ::-1])
    tf = Mast3rInputTransform.for_image(width, height, 256)
    oracle = ExactPointmaps(frames, tf)
    monkeypatch.setattr(mast3r_sfm, "load_mast3r_model", lambda checkpoint, repo=None: oracle)
    checkpoint = tmp_path / "stand-in.pth"
    checkpoint.write_bytes(b"x")
    options = PrepareOptions(images=photos, sfm="mast3r", mast3r_checkpoint=checkpoint,
                             mast3r=Mast3rSfmOptions(image_size=256, device="cpu"))  # fmt: skip
    report = prepare(tmp_path / "dataset", options, progress=False)
    assert report.registered == [f"{f.name}.png" for f in frames] and report.num_points > 500

    model = read_sparse_model(tmp_path / "dataset" / "sparse" / "0")
    errors = pose_errors(model.cameras, [f.camera for f in frames])
    assert errors.rotation_deg.max() < 1.0 and errors.median_centre_fraction < 0.02
    for camera, frame in zip(model.cameras, frames):
        np.testing.assert_allclose(camera.K, frame.camera.K, rtol=0.03, atol=2.0)
    reprojection = []
    for o in range(len(model.track_point)):
        cam = model.cameras[model.track_image[o]]
        local = cam.world_to_cam[:3, :3] @ model.points[model.track_point[o]] + cam.world_to_cam[:3, 3]
        reprojection.append(np.linalg.norm((cam.K @ local)[:2] / local[2] - model.track_xy[o]))
    print(f"rotation error max {errors.rotation_deg.max():.3f} deg, centre error median "
          f"{errors.median_centre_fraction:.4f} of the scene, focal {model.cameras[0].K[0, 0]:.2f} px "
          f"(true {frames[0].camera.K[0, 0]:.2f}), reprojection median {np.median(reprojection):.3f} px, "
          f"{model.num_points} points")  # fmt: skip
    assert np.median(reprojection) < 1.0
