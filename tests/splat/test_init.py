"""Initial Gaussians from labelled point clouds, and parameter helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import rgb_to_sh, sh_to_rgb, to_gaussians
from mastsam_splat.io.ply import PointCloud
from mastsam_splat.splat.init import gaussians_from_points, knn_log_scales, random_points
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
