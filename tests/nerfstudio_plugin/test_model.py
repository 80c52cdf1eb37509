"""The instance-feature Splatfacto model on CPU: outputs, losses, densification alignment, reloading."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("nerfstudio")

from nerfstudio.cameras.cameras import Cameras  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402

from nerfstudio_plugin.model import (  # noqa: E402
    INSTANCE_KEYS,
    MastsamSplatModelConfig,
    downscale_labels,
    instance_palette,
    viewmat_from_c2w,
)
from nerfstudio_plugin.viewer import ObjectViewer  # noqa: E402

W, H = 40, 30


def _camera(distance: float = 3.0) -> Cameras:
    """A camera on +z looking at the origin (OpenGL camera-to-world, as Nerfstudio stores it)."""
    c2w = torch.eye(4)[:3][None].clone()
    c2w[0, 2, 3] = distance
    return Cameras(camera_to_worlds=c2w, fx=40.0, fy=40.0, cx=W / 2, cy=H / 2, width=W, height=H)


def _model(num_points: int = 400, num_ids: int = 3, seed: int = 0, **overrides):
    """A model seeded with two labelled blobs (ids 1 and 2) in front of the camera."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, num_ids, size=num_points)
    xyz = rng.normal(0.0, 0.15, size=(num_points, 3)).astype(np.float32)
    xyz[:, 0] += np.where(ids == 1, -0.5, 0.5)
    rgb = np.where(ids[:, None] == 1, [[220, 40, 40]], [[40, 40, 220]]).astype(np.uint8)
    config = MastsamSplatModelConfig(
        sh_degree=1, num_downscales=0, warmup_length=10_000, knn_samples=64, **overrides
    )
    model = config.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])),
        num_train_data=4,
        metadata={"num_instance_ids": num_ids - 1, "points3D_instance": torch.from_numpy(ids)},
        seed_points=(torch.from_numpy(xyz), torch.from_numpy(rgb)),
    )
    return model, ids


def test_gaussians_carry_instance_features_and_head_param_groups() -> None:
    model, _ = _model(num_ids=4)
    assert model.gauss_params["instance_features"].shape == (400, 16)
    groups = model.get_param_groups()
    assert groups["instance_features"][0] is model.gauss_params["instance_features"]
    assert {id(p) for p in groups["instance_head"]} == {id(p) for p in model.instance_head.parameters()}
    assert model.num_instance_classes == 4


def test_seeded_gaussians_start_with_their_point_ids() -> None:
    model, ids = _model()
    assert torch.equal(model.gaussian_instance_ids(min_confidence=0.0), torch.from_numpy(ids))


def test_seeds_on_a_plane_start_as_discs_in_the_plane() -> None:
    """surface_init flattens seeds along their neighbours' normal; Splatfacto's own seeds stay round."""
    plane = np.random.default_rng(1).uniform(-0.5, 0.5, (300, 3)).astype(np.float32)
    plane[:, 2] = 0.0  # seed points on the plane z = 0
    rgb = np.full((300, 3), 128, np.uint8)
    config = dict(sh_degree=1, num_downscales=0, warmup_length=10_000, knn_samples=64)
    box = SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    seeds = (torch.from_numpy(plane), torch.from_numpy(rgb))
    flat = MastsamSplatModelConfig(**config).setup(scene_box=box, num_train_data=4, metadata={}, seed_points=seeds)
    round_ = MastsamSplatModelConfig(surface_init=False, **config).setup(
        scene_box=box, num_train_data=4, metadata={}, seed_points=seeds
    )
    scales = flat.scales.exp()
    assert torch.all(scales[:, 2] <= 0.11 * scales[:, 0])  # thin along the disc's own third axis
    q = torch.nn.functional.normalize(flat.quats, dim=1)
    w, x, y, z = q.unbind(1)
    normal_z = 1 - 2 * (x * x + y * y)  # z component of the rotated third axis
    assert torch.all(normal_z.abs() > 0.99)  # that axis is the plane's normal
    assert torch.allclose(round_.scales[:, 0], round_.scales[:, 2])


def test_eval_outputs_have_stable_instance_keys_and_shapes() -> None:
    model, _ = _model()
    model.eval()
    out = model.get_outputs_for_camera(_camera())
    for key in INSTANCE_KEYS + ("rgb", "depth", "accumulation"):
        assert key in out, key
    assert out["rgb"].shape == (H, W, 3)
    assert out["instance"].shape == (H, W, 3) and out["instance"].dtype == torch.float32
    assert out["instance_id"].shape == (H, W, 1) and out["instance_id"].dtype == torch.float32
    assert out["instance_features"].shape == (H, W, 16)
    assert torch.all(out["selection"] == 0)
    ids = out["instance_id"][..., 0].long()
    # The red blob (id 1) is left of centre, the blue one (id 2) right of it.
    assert (ids[:, : W // 2] == 1).sum() > (ids[:, : W // 2] == 2).sum()
    assert (ids[:, W // 2 :] == 2).sum() > (ids[:, W // 2 :] == 1).sum()
    palette = instance_palette(model.num_instance_classes)
    assert torch.allclose(out["instance"], palette[ids])

    ObjectViewer.attach(model).select(2)
    selected = model.get_outputs_for_camera(_camera())["selection"][..., 0]
    assert selected[:, W // 2 :].mean() > selected[:, : W // 2].mean()


def test_empty_crop_keeps_every_output_key() -> None:
    from nerfstudio.data.scene_box import OrientedBox

    model, _ = _model()
    model.eval()
    far_box = OrientedBox(R=torch.eye(3), T=torch.tensor([50.0, 50.0, 50.0]), S=torch.ones(3) * 0.1)
    out = model.get_outputs_for_camera(_camera(), obb_box=far_box)
    assert set(INSTANCE_KEYS) <= set(out)
    assert out["instance"].shape == (H, W, 3)


def test_training_losses_backpropagate_into_features_and_head() -> None:
    model, _ = _model(instance_background_weight=0.0)  # score the labelled pixels only
    model.train()
    model.step_cb(SimpleNamespace(optimizers=_optimizers(model)), step=0)
    out = model(_camera())
    covered = out["accumulation"][..., 0].detach() > 0.5  # label the blobs, leave empty space at 0
    labels = torch.zeros(H, W, dtype=torch.int16)
    labels[:, : W // 2][covered[:, : W // 2]] = 1
    labels[:, W // 2 :][covered[:, W // 2 :]] = 2
    assert (labels > 0).sum() > 50
    batch = {"image": torch.full((H, W, 3), 128, dtype=torch.uint8), "instance_labels": labels}
    losses = model.get_loss_dict(out, batch, model.get_metrics_dict(out, batch))
    assert {"main_loss", "instance_loss", "instance_knn_loss"} <= set(losses)
    ce = float(losses["instance_loss"].detach()) / model.config.instance_loss_weight
    assert 0 < ce < 0.5 * math.log(model.num_instance_classes)  # seeded features already agree with the labels
    sum(losses.values()).backward()
    assert model.gauss_params["instance_features"].grad.abs().sum() > 0
    assert model.instance_head.weight.grad.abs().sum() > 0
    assert model.gauss_params["means"].grad.abs().sum() > 0


def _optimizers(model) -> dict:
    return {name: torch.optim.Adam(params, lr=1e-3) for name, params in model.get_gaussian_param_groups().items()}


def test_densify_and_prune_keep_features_aligned() -> None:
    from gsplat.strategy import ops

    model, _ = _model(num_points=50)
    params = model.gauss_params
    with torch.no_grad():  # make each row's feature a function of its position
        params["instance_features"][:, :3] = params["means"]
    optimizers = _optimizers(model)
    state: dict = {}
    ops.duplicate(params, optimizers, state, torch.arange(50) % 3 == 0)
    ops.split(params, optimizers, state, torch.arange(params["means"].shape[0]) % 4 == 0)
    ops.remove(params, optimizers, state, torch.arange(params["means"].shape[0]) % 5 == 0)
    n = params["means"].shape[0]
    assert params["instance_features"].shape == (n, 16)
    # Duplicates and removals move rows together; split samples new positions around the parent.
    parent_distance = (params["instance_features"][:, :3] - params["means"]).norm(dim=-1)
    assert torch.quantile(parent_distance, 0.5) < 1e-6
    assert optimizers["instance_features"].param_groups[0]["params"][0] is params["instance_features"]


def test_load_state_dict_resizes_in_place_and_restores_head() -> None:
    source, _ = _model(num_points=300, num_ids=5, seed=1)
    target, _ = _model(num_points=120, num_ids=3, seed=2)
    before = {name: p for name, p in target.gauss_params.items()}
    head_weight = target.instance_head.weight
    target.load_state_dict(source.state_dict())
    for name, param in target.gauss_params.items():
        assert param is before[name], f"{name} was replaced: optimizers would keep the old tensor"
        assert torch.equal(param, source.gauss_params[name])
    assert target.instance_head.weight is head_weight
    assert target.num_instance_classes == 5
    assert torch.equal(target.gaussian_instance_ids(0.0), source.gaussian_instance_ids(0.0))


def test_downscale_labels_matches_splatfacto_image_size() -> None:
    from nerfstudio.models.splatfacto import resize_image

    labels = torch.arange(61 * 83).reshape(61, 83)
    for d in (1, 2, 4):
        image = resize_image(torch.zeros(61, 83, 3), d) if d > 1 else torch.zeros(61, 83, 3)
        assert downscale_labels(labels, d).shape == image.shape[:2]


def test_viewmat_is_the_inverse_of_the_opencv_camera_to_world() -> None:
    c2w = torch.zeros(2, 3, 4)
    for i in range(2):
        c2w[i, :3, :3] = torch.linalg.qr(torch.randn(3, 3))[0]
        c2w[i, :3, 3] = torch.randn(3)
    full = torch.eye(4).repeat(2, 1, 1)
    full[:, :3, :4] = c2w
    full[:, :3, 1:3] *= -1  # OpenGL (y up, z back) -> OpenCV (y down, z forward) camera axes
    assert torch.allclose(viewmat_from_c2w(c2w), torch.linalg.inv(full), atol=1e-5)


def test_palette_is_the_tracker_overlay_palette() -> None:
    from mastsam_splat.tracker.outputs import id_colours

    palette = instance_palette(7)
    assert torch.all(palette[0] == 0)
    assert np.allclose(palette.numpy() * 255, id_colours(np.arange(7)), atol=1e-3)
    assert not math.isnan(float(palette.sum()))
