"""A ``mastsam-splat`` run built from any Nerfstudio Gaussian run and per-Gaussian ids (no training).

Lifting labels a run's Gaussians; to click objects in Nerfstudio's viewer, the Gaussians must
live in a ``mastsam-splat`` model, which decodes a per-Gaussian instance feature with a linear
head. This writes such a run: the source run's Gaussians unchanged, each Gaussian's feature
set to a code of its id and the head set to read those codes back, so the model's per-pixel
and per-Gaussian ids are exactly the lifted ones. ``ns-viewer --load-config <run>/config.yml``
then opens it like a trained ``mastsam-splat`` run.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from mastsam_splat.errors import InputError
from mastsam_splat.objects.run import MODEL_PREFIX, load_checkpoint, open_run
from nerfstudio_plugin.config import make_trainer_config
from nerfstudio_plugin.dataparser import MastsamDataParserConfig

METHOD = "mastsam-splat"
MAX_ONE_HOT = 64
"""Up to this many classes the codes are one-hot (feature size = classes); beyond, random unit codes."""
CODE_SCALE = 30.0
"""Logit of a Gaussian's own class: softmax confidence ~1, far above the viewer's threshold."""


def id_codes(instance_ids: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, D] and head weight [K, D] whose argmax decodes each Gaussian's id (-1 -> 0)."""
    ids = np.maximum(np.asarray(instance_ids, dtype=np.int64), 0)
    num_classes = max(2, int(ids.max(initial=0)) + 1)
    if num_classes <= MAX_ONE_HOT:
        codes = np.eye(num_classes, dtype=np.float32)
    else:
        codes = np.random.default_rng(seed).normal(size=(num_classes, MAX_ONE_HOT)).astype(np.float32)
        codes /= np.linalg.norm(codes, axis=1, keepdims=True)
    return codes[ids], codes * CODE_SCALE


def _copy_fields(source: Any, target: Any, skip: tuple[str, ...] = ("_target",)) -> None:
    """Copy the dataclass fields ``target`` also has (Splatfacto's options into mastsam-splat's)."""
    names = {f.name for f in dataclasses.fields(target)}
    for field in dataclasses.fields(source):
        if field.name in names and field.name not in skip:
            setattr(target, field.name, getattr(source, field.name))


def build_viewer_config(source_config: Path, output_dir: Path, feature_dim: int, num_classes: int) -> Any:
    """The ``mastsam-splat`` TrainerConfig for the source run's data and Gaussian settings."""
    source = yaml.load(Path(source_config).read_text(), Loader=yaml.Loader)
    config = make_trainer_config()
    config.method_name = METHOD
    config.experiment_name = source.experiment_name
    config.timestamp = source.timestamp
    config.output_dir = output_dir.resolve()
    config.machine = source.machine
    datamanager = source.pipeline.datamanager
    data = datamanager.data if datamanager.data is not None else datamanager.dataparser.data
    dataparser = MastsamDataParserConfig()
    if isinstance(datamanager.dataparser, NerfstudioDataParserConfig):
        _copy_fields(datamanager.dataparser, dataparser)
    data = Path(data).resolve() if data is not None else None
    config.data = data
    config.pipeline.datamanager.data = data
    config.pipeline.datamanager.dataparser = dataparser
    config.pipeline.datamanager.camera_res_scale_factor = datamanager.camera_res_scale_factor
    _copy_fields(source.pipeline.model, config.pipeline.model)
    config.pipeline.model.instance_feature_dim = feature_dim
    config.pipeline.model.num_instance_classes = num_classes
    config.vis = "viewer"
    return config


def write_viewer_run(
    source_config: Path,
    instance_ids: np.ndarray,
    output_dir: Path,
    final_dir: Optional[Path] = None,
    step: Optional[int] = None,
) -> Path:
    """Write a ``mastsam-splat`` run under ``output_dir`` and return its ``config.yml``.

    ``final_dir`` is where ``output_dir`` will end up (when it is a staging folder renamed
    afterwards); the config records that location.
    """
    final_dir = Path(final_dir) if final_dir is not None else Path(output_dir)
    run, _ = open_run(source_config, step)
    state = load_checkpoint(run.checkpoint)["pipeline"]
    means_key = MODEL_PREFIX + "gauss_params.means"
    if means_key not in state or len(state[means_key]) != len(instance_ids):
        raise InputError(f"the run's checkpoint does not hold {len(instance_ids)} Gaussians", run.checkpoint)
    features, head = id_codes(instance_ids)
    config = build_viewer_config(source_config, final_dir, features.shape[1], head.shape[0])

    state = {k: v for k, v in state.items() if not k.startswith(MODEL_PREFIX + "instance_head.")}
    state[MODEL_PREFIX + "gauss_params.instance_features"] = torch.from_numpy(features)
    state[MODEL_PREFIX + "instance_head.weight"] = torch.from_numpy(head)
    state[MODEL_PREFIX + "instance_head.bias"] = torch.zeros(head.shape[0])

    relative = config.get_base_dir().relative_to(final_dir.resolve())
    run_dir = Path(output_dir) / relative
    (run_dir / "nerfstudio_models").mkdir(parents=True)
    (run_dir / "config.yml").write_text(yaml.dump(config), "utf8")
    shutil.copyfile(run.run_dir / "dataparser_transforms.json", run_dir / "dataparser_transforms.json")
    torch.save({"step": run.step, "pipeline": state}, run_dir / "nerfstudio_models" / f"step-{run.step:09d}.ckpt")
    return final_dir / relative / "config.yml"
