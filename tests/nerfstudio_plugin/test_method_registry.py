"""Method registration: Nerfstudio discovers ``mastsam-splat`` through the installed entry point."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest.importorskip("nerfstudio")


def test_entry_point_is_installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="nerfstudio.method_configs")}
    assert names.get("mastsam-splat") == "nerfstudio_plugin.config:mastsam_splat_method", (
        "entry point missing: reinstall the package (pip install -e .)"
    )


def test_nerfstudio_discovers_the_method() -> None:
    from nerfstudio.plugins.registry import discover_methods

    from nerfstudio_plugin.pipeline import MastsamPipelineConfig
    from nerfstudio_plugin.trainer import MastsamTrainerConfig

    methods, descriptions = discover_methods()
    assert "mastsam-splat" in methods
    config = methods["mastsam-splat"]
    assert isinstance(config, MastsamTrainerConfig)
    assert config.method_name == "mastsam-splat"
    assert isinstance(config.pipeline, MastsamPipelineConfig)
    assert "instance" in descriptions["mastsam-splat"]


def test_every_model_param_group_has_an_optimizer() -> None:
    from nerfstudio_plugin.config import mastsam_splat_method

    optimizers = mastsam_splat_method.config.optimizers
    groups = ("means", "scales", "quats", "features_dc", "features_rest", "opacities")
    for group in groups + ("instance_features", "instance_head"):
        assert group in optimizers, group


def test_checkpoints_with_numpy_scalars_load(tmp_path) -> None:
    import numpy as np
    import torch

    import nerfstudio_plugin  # noqa: F401  (registers the safe globals)

    path = tmp_path / "step-000000001.ckpt"
    torch.save({"schedulers": {"means": {"_last_lr": [np.float64(1.6e-4)], "base_lrs": [np.float64(1e-3)]}}}, path)
    loaded = torch.load(path, map_location="cpu")
    assert loaded["schedulers"]["means"]["_last_lr"][0] == pytest.approx(1.6e-4)
