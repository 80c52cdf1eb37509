"""The standalone trainer on a small synthetic orbit: quality bars, outputs, one training step and bad input."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import read_label_image, write_label_image
from mastsam_splat.splat.trainer import SplatTrainConfig, train


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from mastsam_splat.synthetic import make_scene

    return make_scene(tmp_path_factory.mktemp("splat") / "scene", frames=16, width=96, height=72, seed=1, max_points=3000, progress=False)


def test_trains_to_a_measured_quality_bar(scene, tmp_path):
    """CI-sized run (about 25 s on one core): 3000 Gaussians, 200 steps, 12 training / 4 held-out views.

    Measured: held-out PSNR 21.2 dB, instance mIoU 0.75 (consistent and per-view).
    """
    out = tmp_path / "run"
    cfg = SplatTrainConfig(
        data=scene, steps=200, eval_every=4, max_init_points=3000, densify=False, threads=1, progress=False, output_dir=out
    )
    result = train(cfg)
    m = result.metrics
    assert m["num_train_views"] == 12 and m["num_eval_views"] == 4
    assert m["psnr"] > 19.5
    assert m["miou"] > 0.65 and m["miou_per_view"] >= m["miou"] - 1e-9
    assert m["init_ply"].endswith("sparse_pc.ply") and m["seeded_features"]
    # every object of the scene keeps Gaussians, and the ground mostly goes to "no object"
    assert set(np.unique(result.instance_ids)) - {0} == set(m["object_ids"])
    assert 0.3 < float((result.instance_ids == 0).mean()) < 0.9

    from mastsam_splat.io.ply import read_gaussians_ply

    g = read_gaussians_ply(out / "gaussians.ply")
    assert len(g) == m["num_gaussians"] and g.sh_degree == cfg.sh_degree
    np.testing.assert_array_equal(g.instance_ids, result.instance_ids)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["miou"] == pytest.approx(m["miou"]) and saved["config"]["steps"] == 200
    labels = read_label_image(out / "eval" / "frame_00000_labels.png")
    assert labels.shape == (72, 96)
    assert (out / "checkpoint.pt").is_file() and (out / "eval" / "frame_00004_rgb.png").is_file()


def test_tracker_style_labels_and_densification(scene, tmp_path):
    """Labels from a masks/ folder with the tracker's points.ply next to it; densification keeps features aligned."""
    from mastsam_splat.io.ply import read_point_cloud, write_point_cloud

    track = tmp_path / "track"
    shutil.copytree(scene / "instances", track / "masks")
    cloud = read_point_cloud(scene / "sparse_pc.ply")
    keep = np.arange(len(cloud)) % 3 == 0
    cloud.xyz, cloud.rgb, cloud.instance_id = cloud.xyz[keep], cloud.rgb[keep], cloud.instance_id[keep]
    write_point_cloud(track / "points.ply", cloud)
    cfg = SplatTrainConfig(
        data=scene, labels=track / "masks", steps=40, eval_every=8, threads=1, progress=False,
        densify=True, refine_start=10, refine_every=10, grow_grad2d=1e-6,
    )  # fmt: skip
    result = train(cfg)
    assert result.metrics["init_ply"].endswith("points.ply") and result.metrics["seeded_features"]
    sizes = {k: v.shape[0] for k, v in result.params.items()}
    assert len(set(sizes.values())) == 1 and sizes["means"] != len(cloud)  # grown or pruned
    assert len(result.instance_ids) == sizes["means"]


def test_foreign_ids_do_not_seed_features(scene, tmp_path):
    """Labels from elsewhere with the dataset's point cloud: its ids belong to another labelling, so no seeding."""
    other = tmp_path / "other" / "masks"
    shutil.copytree(scene / "instances", other)
    cfg = SplatTrainConfig(data=scene, labels=other, steps=3, eval_every=0, downscale=2, densify=False, threads=1, progress=False)
    result = train(cfg)
    assert result.metrics["init_ply"].endswith("sparse_pc.ply") and not result.metrics["seeded_features"]
    assert result.metrics["psnr"] is None and result.metrics["miou"] is None


def test_bad_labels_fail_before_training(scene, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(scene / "instances", wrong)
    write_label_image(wrong / "frame_00003.png", np.zeros((10, 10), np.uint16))
    with pytest.raises(InputError, match="frame_00003.png.*10x10 but its frame is 96x72"):
        train(SplatTrainConfig(data=scene, labels=wrong, steps=1, progress=False))
    with pytest.raises(InputError, match="label folder not found"):
        train(SplatTrainConfig(data=scene, labels=tmp_path / "nope", steps=1, progress=False))
    empty = tmp_path / "zeros"
    empty.mkdir()
    for png in (scene / "instances").glob("*.png"):
        write_label_image(empty / png.name, np.zeros((72, 96), np.uint16))
    with pytest.raises(InputError, match="no object ids"):
        train(SplatTrainConfig(data=scene, labels=empty, steps=1, progress=False))
    with pytest.raises(InputError, match="steps"):
        train(SplatTrainConfig(data=scene, steps=0, progress=False))


def test_train_step_updates_the_state(scene):
    """One step moves the Gaussians (not the higher SH bands at degree 0, nor the rotations of the
    initial isotropic Gaussians), the head, the learned background and the means' schedule, and
    reports detached losses."""
    import torch

    from mastsam_splat.io import load_scene
    from mastsam_splat.splat.init import gaussians_from_points
    from mastsam_splat.splat.instance import LabelSpace
    from mastsam_splat.io.ply import read_point_cloud
    from mastsam_splat.splat.train_step import make_train_state, train_step, view_of_frame

    frames = load_scene(scene, max_frames=4).frames
    labels = [read_label_image(scene / "instances" / f"{f.name}.png") for f in frames]
    space = LabelSpace.from_label_maps(labels)
    views = [view_of_frame(f, space, lab, downscale=2) for f, lab in zip(frames, labels)]
    assert views[0].image.shape == (36, 48, 3) and views[0].classes.shape == (36, 48)
    cfg = SplatTrainConfig(data=scene, steps=10, densify=False, progress=False)
    params = gaussians_from_points(
        read_point_cloud(scene / "sparse_pc.ply"), sh_degree=cfg.sh_degree, feature_dim=cfg.instance.feature_dim,
        space=space, max_points=500,
    )  # fmt: skip
    state = make_train_state(cfg, params, space, views, seed_head=True, backend="torch")
    before = {k: v.detach().clone() for k, v in params.items()}
    head_before = state.head.linear.weight.detach().clone()
    lr_before = state.optimizers["means"].param_groups[0]["lr"]

    losses = train_step(state, views[0], 0)
    assert set(losses) == {"loss", "l1", "instance", "knn", "psnr"}
    assert all(not v.requires_grad and torch.isfinite(v) for v in losses.values())
    assert float(losses["loss"]) > 0 and float(losses["instance"]) > 0 and float(losses["psnr"]) > 5
    moved = {key for key, value in params.items() if not torch.equal(value, before[key])}
    assert moved == set(params) - {"features_rest", "quats"}
    assert not torch.equal(state.head.linear.weight, head_before)
    assert not torch.equal(state.eval_background(), torch.full((3,), 0.5))
    assert state.optimizers["means"].param_groups[0]["lr"] < lr_before


def test_budget_schedule_beats_splatfactos_schedule_on_a_short_run(scene) -> None:
    """At 100 steps Splatfacto's own schedule never densifies and keeps SH degree 0; the scaled one densifies
    from step 10 and raises the degree, and reaches a better held-out PSNR at the same budget (about 20 s).
    Measured with Splatfacto's round seeds; from surface-aligned seeds both reach about 18.5 dB here."""
    base = SplatTrainConfig(
        data=scene, steps=100, eval_every=4, max_init_points=1000, max_gaussians=2500, threads=1, progress=False,
        surface_init=False,
    )  # fmt: skip
    unscaled = replace(base, refine_every=100, refine_start=500, refine_stop_fraction=0.5, sh_degree_interval=1000)
    scaled_run, unscaled_run = train(base).metrics, train(unscaled).metrics
    assert unscaled_run["num_gaussians"] == 1000 < scaled_run["num_gaussians"] <= 2500 * 3
    assert scaled_run["psnr"] > unscaled_run["psnr"] + 0.3, (scaled_run["psnr"], unscaled_run["psnr"])


def test_short_run_keeps_gaussians_on_the_true_surfaces(scene) -> None:
    """150 steps with densification (about 30 s): the opacity-weighted share of Gaussians within 5 cm of
    the scene's true surfaces (ground-truth depth). Measured: 0.83 with surface-aligned seeds, held-out
    PSNR 22.2 dB; 0.44 (PSNR 21.2 dB) with Splatfacto's round seeds, whose splits scatter children off
    the surface by up to a seed spacing."""
    import torch

    from mastsam_splat.io import load_scene
    from mastsam_splat.metrics.surface import depth_surface_points, near_surface_fraction

    config = SplatTrainConfig(data=scene, steps=150, eval_every=4, max_init_points=3000, threads=1, progress=False)
    result = train(config)
    means = result.params["means"].detach().numpy()
    opacity = torch.sigmoid(result.params["opacities"].detach()).reshape(-1).numpy()
    surface = depth_surface_points(load_scene(scene), spacing=0.05, max_points=None)
    assert near_surface_fraction(means, surface, 0.05, opacity) > 0.7
    assert result.metrics["psnr"] > 21.5


def test_flatten_weight_thins_the_gaussians(scene) -> None:
    """With a flatten weight the smallest scale of (almost) every Gaussian shrinks in one step."""
    from mastsam_splat.io import load_scene
    from mastsam_splat.io.ply import read_point_cloud
    from mastsam_splat.splat.init import gaussians_from_points
    from mastsam_splat.splat.instance import LabelSpace
    from mastsam_splat.splat.train_step import make_train_state, train_step, view_of_frame

    frames = load_scene(scene, max_frames=2).frames
    labels = [read_label_image(scene / "instances" / f"{f.name}.png") for f in frames]
    space = LabelSpace.from_label_maps(labels)
    views = [view_of_frame(f, space, lab, downscale=2) for f, lab in zip(frames, labels)]
    cfg = SplatTrainConfig(data=scene, steps=10, densify=False, progress=False, flatten_weight=10.0)
    cloud = read_point_cloud(scene / "sparse_pc.ply")
    params = gaussians_from_points(cloud, sh_degree=1, space=space, max_points=300, surface_aligned=True)
    before = params["scales"].detach().clone()
    train_step(make_train_state(cfg, params, space, views, seed_head=False, backend="torch"), views[0], 0)
    thinnest = before.argmin(dim=1, keepdim=True)
    change = (params["scales"].detach() - before).gather(1, thinnest)
    assert float((change < 0).float().mean()) > 0.95
    with pytest.raises(InputError, match="flatten-weight"):
        SplatTrainConfig(data=scene, flatten_weight=-1.0)
