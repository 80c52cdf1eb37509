"""Nerfstudio runs: Gaussians and ids from checkpoints, frames, export and lift from a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
import yaml
from support.gaussian_factories import random_gaussians

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import UNLABELLED, Gaussians
from mastsam_splat.io.ply import read_gaussians_ply
from mastsam_splat.cli.objects import ExportCommand, LiftCommand, run_export, run_lift
from mastsam_splat.objects.filters import ObjectFilter
from mastsam_splat.objects.lift import LiftConfig
from mastsam_splat.objects.run import RunFrame, dataset_to_run_frame, load_run_gaussians, read_run_config
from mastsam_splat.types import Camera


def _state(g: Gaussians, features: Optional[np.ndarray] = None, head: Optional[np.ndarray] = None) -> dict:
    """A pipeline state dict with Splatfacto's key names."""
    p = "_model.gauss_params."
    state = {
        p + "means": torch.from_numpy(g.means),
        p + "quats": torch.from_numpy(g.quats),
        p + "scales": torch.from_numpy(g.scales),
        p + "opacities": torch.from_numpy(g.opacities[:, None]),
        p + "features_dc": torch.from_numpy(g.sh_dc),
        p + "features_rest": torch.from_numpy(g.sh_rest),
        "_model.device_indicator_param": torch.zeros(0),
    }
    if features is not None:
        state[p + "instance_features"] = torch.from_numpy(features)
        state["_model.instance_head.weight"] = torch.from_numpy(head)
        state["_model.instance_head.bias"] = torch.zeros(head.shape[0])
    return state


def make_run(
    root: Path,
    data: Path,
    state: dict,
    method: str = "splatfacto",
    sh_degree: int = 3,
    frame: Optional[RunFrame] = None,
    step: int = 29,
) -> Path:
    """A run folder as ``ns-train`` writes it: config.yml (Nerfstudio's own config classes),
    dataparser_transforms.json and a checkpoint whose optimizer state holds numpy scalars."""
    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.models.splatfacto import SplatfactoModelConfig
    from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig

    config = TrainerConfig(
        method_name=method,
        experiment_name="scene",
        timestamp="2026-01-01_000000",
        output_dir=root / "outputs",
        pipeline=VanillaPipelineConfig(
            datamanager=FullImageDatamanagerConfig(data=data, dataparser=NerfstudioDataParserConfig()),
            model=SplatfactoModelConfig(sh_degree=sh_degree),
        ),
    )
    run_dir = config.get_base_dir()
    (run_dir / "nerfstudio_models").mkdir(parents=True)
    (run_dir / "config.yml").write_text(yaml.dump(config))
    frame = frame or RunFrame.identity()
    transform = np.concatenate([frame.rotation, frame.translation[:, None]], axis=1)
    (run_dir / "dataparser_transforms.json").write_text(
        json.dumps({"transform": transform.tolist(), "scale": frame.scale})
    )
    optimizer = {"state": {}, "param_groups": [{"lr": np.float64(1.6e-4), "eps": 1e-15, "params": [0]}]}
    checkpoint = {
        "step": step,
        "pipeline": state,
        "optimizers": {"means": optimizer},
        "schedulers": {"means": {"_last_lr": [np.float64(1.6e-4)]}},
        "scalers": {},
    }
    torch.save(checkpoint, run_dir / "nerfstudio_models" / f"step-{step:09d}.ckpt")
    return run_dir / "config.yml"


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_plain_splatfacto_run(tmp_path: Path) -> None:
    g = random_gaussians(40, sh_degree=3, with_ids=False)
    config = make_run(tmp_path, tmp_path / "data", _state(g))
    parsed = read_run_config(config)
    assert parsed["method_name"] == "splatfacto" and parsed["pipeline"]["model"]["sh_degree"] == 3
    loaded, run = load_run_gaussians(config)
    assert run.step == 29 and run.sh_degree == 3 and loaded.instance_ids is None and loaded.features is None
    for name in ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(g, name))

    with pytest.raises(InputError, match="no instance features.*mastsam lift --load-config"):
        run_export(ExportCommand(output_dir=tmp_path / "out", load_config=config, quiet=True))
    assert not (tmp_path / "out").exists()


def test_sh_degree_zero_run_stores_logit_colours(tmp_path: Path) -> None:
    g = random_gaussians(10, sh_degree=0, with_ids=False)
    config = make_run(tmp_path, tmp_path / "data", _state(g), sh_degree=0)
    loaded, _ = load_run_gaussians(config)
    rgb = 1.0 / (1.0 + np.exp(-g.sh_dc))  # Splatfacto without SH renders sigmoid(features_dc)
    np.testing.assert_allclose(loaded.colors, rgb, atol=1e-5)


def test_instance_feature_run_exports_head_ids(tmp_path: Path) -> None:
    g = random_gaussians(60, with_ids=False)
    rng = np.random.default_rng(0)
    head = np.eye(4, 8, dtype=np.float32) * 10.0  # class k reads feature k
    truth = rng.integers(0, 4, size=60)
    features = np.zeros((60, 8), np.float32)
    features[np.arange(60), truth] = 1.0
    features[:5] = 0.0  # uniform logits: below the confidence threshold -> background
    config = make_run(tmp_path, tmp_path / "data", _state(g, features, head), method="mastsam-splat")
    loaded, _ = load_run_gaussians(config)
    expected = truth.copy()
    expected[:5] = 0
    np.testing.assert_array_equal(loaded.instance_ids, expected)

    result = run_export(
        ExportCommand(output_dir=tmp_path / "out", load_config=config, objects="1,3", points=True, quiet=True)
    )
    assert set(result.object_files) == {1, 3}
    scene = read_gaussians_ply(result.scene_file)
    np.testing.assert_array_equal(scene.instance_ids, expected)
    assert scene.means.tobytes() == g.means.tobytes()
    with pytest.raises(InputError, match="no object with id 7"):
        run_export(ExportCommand(output_dir=tmp_path / "out2", load_config=config, objects="7", quiet=True))
    assert not (tmp_path / "out2").exists()


def test_bad_runs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="run config not found"):
        load_run_gaussians(tmp_path / "nope.yml")
    (tmp_path / "x.yml").write_text("just: text\n")
    with pytest.raises(InputError, match="not a Nerfstudio run config"):
        load_run_gaussians(tmp_path / "x.yml")
    config = make_run(tmp_path / "a", tmp_path / "data", _state(random_gaussians(3, with_ids=False)))
    with pytest.raises(InputError, match="no checkpoint for step 5"):
        load_run_gaussians(config, step=5)
    (config.parent / "nerfstudio_models" / "step-000000029.ckpt").write_bytes(b"garbage")
    with pytest.raises(InputError, match="checkpoint could not be read"):
        load_run_gaussians(config)
    state = _state(random_gaussians(3, with_ids=False))
    del state["_model.gauss_params.means"]
    config = make_run(tmp_path / "b", tmp_path / "data", state)
    with pytest.raises(InputError, match="holds no Gaussians"):
        load_run_gaussians(config)


def test_run_frame_maps_cameras_and_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = RunFrame(rotation=_rotation_z(0.7), translation=np.array([0.3, -1.0, 2.0]), scale=0.25)
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    c2w = np.eye(4)
    c2w[:3, 3] = [0.5, -4.0, 1.0]
    c2w[:3, :3] = _rotation_z(0.2) @ np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    camera = Camera.from_opengl_c2w(c2w, K, 64, 48)
    points = rng.normal([0.5, 0.0, 1.0], 0.5, size=(20, 3))
    xy, z = camera.project(points)
    xy_run, z_run = frame.camera_to_run(camera).project(frame.points_to_run(points))
    np.testing.assert_allclose(xy_run, xy, atol=1e-9)
    np.testing.assert_allclose(z_run, frame.scale * z, atol=1e-9)

    # transforms.json with an applied_transform: Nerfstudio saved original -> normalised
    data = tmp_path / "data"
    data.mkdir()
    applied = np.array([[0.0, 1, 0, 0.5], [1, 0, 0, 0], [0, 0, -1, 2]])
    (data / "transforms.json").write_text(
        json.dumps({"frames": [], "applied_transform": applied.tolist(), "applied_scale": 2.0})
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    saved = np.concatenate([_rotation_z(0.3), [[1.0], [2.0], [3.0]]], axis=1)
    (run_dir / "dataparser_transforms.json").write_text(json.dumps({"transform": saved.tolist(), "scale": 0.8}))
    mapping = dataset_to_run_frame(run_dir, data)
    original = rng.normal(size=(5, 3))
    in_dataset = original @ applied[:, :3].T + applied[:, 3]
    expected = (0.8 / 2.0) * (original @ saved[:, :3].T + saved[:, 3])  # poses are scaled without applied_scale
    np.testing.assert_allclose(mapping.points_to_run(in_dataset), expected, atol=1e-9)


def test_lift_from_a_run_uses_its_frame(tmp_path: Path, synthetic_scene, scene_gaussians, monkeypatch) -> None:
    gaussians, truth = scene_gaussians
    frame = RunFrame(rotation=_rotation_z(0.9), translation=np.array([-0.2, 0.4, 0.1]), scale=0.3)
    in_run = Gaussians(
        **{
            **gaussians.__dict__,
            "means": frame.points_to_run(gaussians.means),
            "scales": gaussians.scales + np.log(frame.scale),
        }
    )
    config = make_run(tmp_path, synthetic_scene.resolve(), _state(in_run), sh_degree=0, frame=frame)
    cmd = LiftCommand(
        output_dir=tmp_path / "lifted",
        load_config=config,
        masks=synthetic_scene / "instances",
        stride=2,
        quiet=True,
        lift=LiftConfig(rasterizer="torch", check_views=0),
        object_filter=ObjectFilter(keep_transparent=True, keep_outliers=True),
    )
    summary = run_lift(cmd)
    result = summary["result"]
    labelled = result.instance_ids != UNLABELLED
    assert labelled.mean() > 0.95
    assert (result.instance_ids[labelled] == truth[labelled]).mean() > 0.9
    scene = read_gaussians_ply(tmp_path / "lifted" / "scene.ply")
    assert scene.means.tobytes() == in_run.means.tobytes()  # exported in the run's frame
    np.testing.assert_array_equal(scene.instance_ids, result.instance_ids)
    index = json.loads((tmp_path / "lifted" / "objects.json").read_text())
    assert index["method"] == "splatfacto" and index["lift"]["views"] == 5 and index["complete_partition"]

    # the plain splatfacto run now opens as a mastsam-splat run whose ids are the lifted ones
    from nerfstudio.utils.eval_utils import eval_setup

    import nerfstudio_plugin  # noqa: F401  (registers the method, lets torch.load read Nerfstudio checkpoints)

    monkeypatch.chdir(tmp_path)
    _, pipeline, _, _ = eval_setup(Path(index["viewer_config"]), test_mode="inference")
    assert type(pipeline.model).__name__ == "MastsamSplatModel"
    assert type(pipeline.model.object_viewer).__name__ == "ObjectViewer"  # attached by the pipeline
    np.testing.assert_array_equal(pipeline.model.gaussian_instance_ids().numpy(), np.maximum(result.instance_ids, 0))
    np.testing.assert_array_equal(pipeline.model.means.detach().numpy(), in_run.means)

    # the run-frame Gaussians with the dataset's cameras (no transform): the views disagree, a warning says so
    wrong = run_lift(
        LiftCommand(
            output_dir=tmp_path / "wrong",
            ply=tmp_path / "lifted" / "scene.ply",
            data=synthetic_scene,
            masks=synthetic_scene / "instances",
            stride=3,
            quiet=True,
            lift=LiftConfig(rasterizer="torch", check_views=0),
        )
    )
    assert wrong["result"].agreement < 0.7 < result.agreement
    assert any("disagree" in w for w in wrong["result"].warnings)
    assert json.loads((tmp_path / "wrong" / "objects.json").read_text())["lift"]["warnings"]
