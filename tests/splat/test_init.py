"""Initial Gaussians from labelled point clouds, and parameter helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import rgb_to_sh, sh_to_rgb, to_gaussians
from mastsam_splat.io.ply import PointCloud
from mastsam_splat.splat.init import budget_subsample, gaussians_from_points, knn_log_scales, random_points
from mastsam_splat.splat.instance import InstanceHead, LabelSpace, assign_instances, class_embeddings
from mastsam_splat.splat.params import activated, make_optimizers, sh_degree_of, subset


def _cloud(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return PointCloud(
        xyz=rng.normal(size=(n, 3)).astype(np.float32),
        rgb=rng.integers(0, 256, size=(n, 3)).astype(np.uint8),
        instance_id=rng.integers(0, 4, size=n),
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points_are_rejected(bad):
    cloud = _cloud()
    cloud.xyz[7, 1] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        gaussians_from_points(cloud)


def test_empty_cloud_is_rejected():
    with pytest.raises(InputError, match="empty"):
        gaussians_from_points(PointCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)))


def test_initial_gaussians_from_labelled_points():
    cloud = _cloud(200)
    space = LabelSpace(cloud.instance_id)
    params = gaussians_from_points(cloud, sh_degree=2, feature_dim=16, space=space)
    n = 200
    assert params["means"].shape == (n, 3) and params["features_rest"].shape == (n, 8, 3)
    assert params["opacities"].shape == (n, 1) and params["instance_features"].shape == (n, 16)
    assert sh_degree_of(params) == 2
    torch.testing.assert_close(torch.sigmoid(params["opacities"]), torch.full((n, 1), 0.1))
    torch.testing.assert_close(sh_to_rgb(params["features_dc"].detach()), torch.from_numpy(cloud.rgb / 255.0).float())
    # scale = mean distance to the 3 nearest neighbours
    d = np.linalg.norm(cloud.xyz[:, None] - cloud.xyz[None], axis=-1)
    expected = np.log(np.sort(d, axis=1)[:, 1:4].mean(1))
    np.testing.assert_allclose(params["scales"][:, 0].detach().numpy(), expected, rtol=1e-4)
    # features start at their class embedding: the seeded head recovers every point's id
    head = InstanceHead(16, space.num_classes).seed(class_embeddings(space.num_classes, 16))
    ids, _ = assign_instances(params["instance_features"].detach(), head, space)
    np.testing.assert_array_equal(ids, cloud.instance_id)
    act = activated(params)
    assert act["sh"].shape == (n, 9, 3) and act["opacities"].shape == (n,)


def test_duplicate_points_random_init_and_subsampling():
    xyz = np.zeros((10, 3), np.float32)
    assert np.isfinite(knn_log_scales(xyz)).all()
    cloud = random_points(500, np.array([1.0, 2.0, 3.0]), 2.0, seed=1)
    assert cloud.xyz.shape == (500, 3) and np.abs(cloud.xyz - [1, 2, 3]).max() <= 2.0
    params = gaussians_from_points(cloud, max_points=100, feature_dim=0)
    assert params["means"].shape[0] == 100 and "instance_features" not in params
    with pytest.raises(InputError):
        random_points(0, np.zeros(3), 1.0)


def test_param_helpers_and_export_conversion():
    params = gaussians_from_points(_cloud(30), sh_degree=1, feature_dim=4)
    opts = make_optimizers(params, {"means": 1e-3})
    assert set(opts) == set(params.keys())
    assert opts["scales"].param_groups[0]["lr"] == 0.0
    keep = torch.arange(30) % 2 == 0
    half = subset(params, keep)
    assert all(v.shape[0] == 15 for v in half.values())
    torch.testing.assert_close(sh_to_rgb(rgb_to_sh(torch.tensor([0.2, 0.7]))), torch.tensor([0.2, 0.7]))
    g = to_gaussians(params, instance_ids=np.arange(30))
    assert len(g) == 30 and g.sh_rest.shape == (30, 3, 3) and g.features.shape == (30, 4)


def test_sh_degree_of_rejects_a_non_square_coefficient_count():
    params = gaussians_from_points(_cloud(5), sh_degree=1, feature_dim=0)
    params["features_rest"] = torch.nn.Parameter(torch.zeros(5, 4, 3))
    with pytest.raises(ValueError, match="features_rest holds 4"):
        sh_degree_of(params)


def test_budget_subsample_keeps_objects_and_thins_dense_ground() -> None:
    """A dense ground of 10,000 points and a small object of 300: the object keeps every point."""
    rng = np.random.default_rng(0)
    ground = np.c_[rng.uniform(-5, 5, (10_000, 2)), np.zeros(10_000)]
    obj = rng.normal(0, 0.1, (300, 3)) + [0, 0, 0.5]
    xyz = np.concatenate([ground, obj]).astype(np.float32)
    ids = np.r_[np.zeros(10_000, int), np.full(300, 3)]
    keep = budget_subsample(xyz, 1000, ids)
    assert len(keep) == 1000 and len(np.unique(keep)) == 1000 and (np.diff(keep) > 0).all()
    assert (ids[keep] == 3).sum() == 300
    # the ground is spread evenly: every quarter of it keeps a similar share
    kept = xyz[keep][ids[keep] == 0]
    counts = np.histogram2d(kept[:, 0], kept[:, 1], bins=2, range=[[-5, 5], [-5, 5]])[0]
    assert counts.min() > 0.8 * counts.max()
    # without ids the budget is spread evenly in space; below the cap nothing changes
    assert len(budget_subsample(xyz, 500)) == 500
    np.testing.assert_array_equal(budget_subsample(xyz, 20_000, ids), np.arange(len(xyz)))


def test_rotation_to_quaternion_matches_gsplat():
    from gsplat.cuda._torch_impl import _quat_to_rotmat
    from scipy.spatial.transform import Rotation

    from mastsam_splat.splat.init import rotation_to_quaternion

    rot = Rotation.random(500, random_state=3).as_matrix()
    q = rotation_to_quaternion(rot)
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(_quat_to_rotmat(torch.from_numpy(q)).numpy(), rot, atol=1e-9)


def test_surface_aligned_seeds_are_thin_along_the_normal():
    """Seeds on a tilted plane become discs across its normal; seeds in a noisy blob stay nearly round."""
    from gsplat.cuda._torch_impl import _quat_to_rotmat

    from mastsam_splat.splat.init import FLAT_RATIO

    rng = np.random.default_rng(0)
    normal = np.array([0.3, -0.2, 0.93])
    normal /= np.linalg.norm(normal)
    basis = np.linalg.svd(normal[None])[2][1:]  # two tangents
    plane = rng.uniform(-1, 1, (400, 2)) @ basis
    cloud = PointCloud(plane.astype(np.float32), np.full((400, 3), 128, np.uint8))
    flat = gaussians_from_points(cloud, feature_dim=0, surface_aligned=True)
    round_ = gaussians_from_points(cloud, feature_dim=0)
    scales = torch.exp(flat["scales"]).detach().numpy()
    axes = _quat_to_rotmat(flat["quats"].detach()).numpy()  # columns: scale axes
    np.testing.assert_allclose(scales[:, :2], torch.exp(round_["scales"]).detach().numpy()[:, :2], rtol=1e-5)
    np.testing.assert_allclose(scales[:, 2], FLAT_RATIO * scales[:, 0], rtol=1e-3)
    assert np.median(np.abs(axes[:, :, 2] @ normal)) > 0.99
    blob = PointCloud(rng.normal(size=(400, 3)).astype(np.float32), np.full((400, 3), 128, np.uint8))
    s = torch.exp(gaussians_from_points(blob, feature_dim=0, surface_aligned=True)["scales"]).detach().numpy()
    assert np.median(s[:, 2] / s[:, 0]) > 0.3
