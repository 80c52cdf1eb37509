"""Gaussians of a Nerfstudio run (``mastsam-splat`` or plain ``splatfacto``), and its world frame.

A run folder holds ``config.yml``, ``dataparser_transforms.json`` and
``nerfstudio_models/step-*.ckpt``. The Gaussians are read straight from the checkpoint's
``pipeline`` state (``_model.gauss_params.*``), so no dataset, model construction, GPU or
network access is needed (stock Splatfacto's constructor needs all of them). The config is
parsed as plain data (YAML's Python tags become dicts), so no code runs while reading it.

Frames: the run's Gaussians live in Nerfstudio's normalised frame. A point ``x`` of the
dataset's ``transforms.json`` frame maps to ``s * (R x + t)`` there (``RunFrame``), which is
how Nerfstudio's dataparser moves the camera poses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import yaml

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import Gaussians, rgb_to_sh
from mastsam_splat.types import Camera

PathLike = Union[str, Path]

MODEL_PREFIX = "_model."
GAUSS_KEYS = ("means", "quats", "scales", "opacities", "features_dc", "features_rest")
COLMAP_APPLIED_TRANSFORM = [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]]
"""What Nerfstudio's dataparser assumes for a COLMAP dataset whose transforms.json has no applied_transform."""
_CKPT = re.compile(r"^step-(\d+)\.ckpt$")


# ---------------------------------------------------------------------------------------------
# config.yml as data


class _DataLoader(yaml.SafeLoader):
    """Safe YAML loader that reads Nerfstudio's Python-tagged config as plain data."""


def _object(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    value = loader.construct_mapping(node, deep=True) if isinstance(node, yaml.MappingNode) else None
    return {"__class__": suffix, **(value or {})}


def _apply(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        args = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        args = loader.construct_mapping(node, deep=True).get("args", [])
    else:
        args = [loader.construct_scalar(node)]
    if suffix.startswith("pathlib."):
        return Path(*[str(a) for a in args]) if args else Path(".")
    return args[0] if len(args) == 1 else list(args)


_DataLoader.add_multi_constructor("tag:yaml.org,2002:python/object:", _object)
_DataLoader.add_multi_constructor("tag:yaml.org,2002:python/object/apply:", _apply)
_DataLoader.add_multi_constructor("tag:yaml.org,2002:python/object/new:", _apply)
_DataLoader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda loader, suffix, node: suffix)
_DataLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))


def read_run_config(path: PathLike) -> dict:
    """``config.yml`` of a Nerfstudio run as nested dicts (class names under ``__class__``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("run config not found (pass the config.yml of a Nerfstudio run)", path)
    try:
        config = yaml.load(path.read_text(), Loader=_DataLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"not a readable YAML file ({exc})", path) from None
    if not isinstance(config, dict) or "pipeline" not in config or "method_name" not in config:
        raise InputError("not a Nerfstudio run config (no 'pipeline' / 'method_name')", path)
    return config


def _get(config: dict, *keys: str, default: Any = None) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


# ---------------------------------------------------------------------------------------------
# frames


@dataclass
class RunFrame:
    """Similarity from the dataset's transforms.json frame to a run's frame: ``x -> scale * (R x + t)``."""

    rotation: np.ndarray
    """[3, 3]"""
    translation: np.ndarray
    """[3]"""
    scale: float

    def points_to_run(self, points: np.ndarray) -> np.ndarray:
        """[P, 3] transforms.json-frame points -> run frame."""
        return self.scale * (np.asarray(points, np.float64) @ self.rotation.T + self.translation)

    def camera_to_run(self, camera: Camera) -> Camera:
        """The same camera (same pixels) expressed in the run frame.

        A camera point ``x_c = R_c x + t_c`` becomes ``scale * x_c`` with the world point
        ``x' = s (R x + t)``: world-to-camera ``[R_c R^T | s (t_c - R_c R^T t)]``; depths scale by ``s``.
        """
        rc, tc = camera.world_to_cam[:3, :3], camera.world_to_cam[:3, 3]
        w2c = np.eye(4)
        w2c[:3, :3] = rc @ self.rotation.T
        w2c[:3, 3] = self.scale * (tc - rc @ self.rotation.T @ self.translation)
        return Camera(K=camera.K.copy(), world_to_cam=w2c, width=camera.width, height=camera.height)

    @classmethod
    def identity(cls) -> "RunFrame":
        return cls(np.eye(3), np.zeros(3), 1.0)


def read_dataparser_transform(run_dir: Path) -> tuple[np.ndarray, float]:
    """``dataparser_transforms.json`` of a run: the [4, 4] transform and the scale."""
    path = run_dir / "dataparser_transforms.json"
    try:
        data = json.loads(path.read_text())
        matrix = np.asarray(data["transform"], dtype=np.float64)
        scale = float(data["scale"])
    except FileNotFoundError:
        raise InputError("the run has no dataparser_transforms.json (written when training starts)", path) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"malformed dataparser transform ({exc})", path) from None
    if matrix.shape != (3, 4) or not np.isfinite(matrix).all() or not np.isfinite(scale) or scale <= 0:
        raise InputError("dataparser transform must be a finite 3x4 matrix with a positive scale", path)
    full = np.eye(4)
    full[:3] = matrix
    return full, scale


def dataset_to_run_frame(run_dir: Path, data: Path) -> RunFrame:
    """The transforms.json frame of dataset ``data`` -> the frame of the run in ``run_dir``.

    Nerfstudio saves the transform from the *original* data frame (before the dataset's
    ``applied_transform``, e.g. COLMAP's) and a scale that includes ``applied_scale``; undo both.
    """
    transform, scale = read_dataparser_transform(run_dir)
    data = Path(data)
    meta_file = data if data.suffix == ".json" else data / "transforms.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        meta = {}
    root = meta_file.parent
    applied = meta.get("applied_transform")
    if applied is None and (root / "colmap" / "sparse" / "0").exists():
        applied = COLMAP_APPLIED_TRANSFORM
    if applied is not None:
        a4 = np.eye(4)
        a4[:3] = np.asarray(applied, dtype=np.float64).reshape(3, 4)
        transform = transform @ np.linalg.inv(a4)
    if "applied_scale" in meta:
        scale /= float(meta["applied_scale"])
    rotation = transform[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4):
        raise InputError("the run's dataparser transform is not a rotation; cannot map the dataset's cameras", run_dir)
    return RunFrame(rotation=rotation, translation=transform[:3, 3], scale=scale)


# ---------------------------------------------------------------------------------------------
# runs


@dataclass
class NerfstudioRun:
    """What a Nerfstudio run holds that the object tools need."""

    config_path: Path
    run_dir: Path
    method_name: str
    checkpoint: Path
    step: int
    data: Optional[Path]
    """Dataset the run was trained on (as written in the config; may be relative to the training cwd)."""
    sh_degree: int
    min_instance_confidence: float

    def resolve_data(self) -> Optional[Path]:
        """The dataset folder, trying the path as written, then relative to the run's output root."""
        if self.data is None:
            return None
        candidates = [self.data]
        if not self.data.is_absolute():
            # outputs/<experiment>/<method>/<timestamp>/config.yml -> the cwd of training is above outputs/
            candidates += [parent / self.data for parent in self.run_dir.parents]
        for candidate in candidates:
            if (candidate / "transforms.json").is_file() or (candidate.suffix == ".json" and candidate.is_file()):
                return candidate
        return None


def find_checkpoint(config: dict, config_path: Path, step: Optional[int] = None) -> tuple[Path, int]:
    """Latest (or the given ``step``'s) checkpoint of the run."""
    relative = _get(config, "relative_model_dir") or Path("nerfstudio_models")
    folders = [config_path.parent / Path(relative)]
    load_dir = _get(config, "load_dir")
    if isinstance(load_dir, Path):
        folders.append(load_dir)
    for folder in folders:
        if not folder.is_dir():
            continue
        steps = {
            int(m.group(1)): folder / name for name in (p.name for p in folder.iterdir()) if (m := _CKPT.match(name))
        }
        if not steps:
            continue
        if step is None:
            best = max(steps)
            return steps[best], best
        if step in steps:
            return steps[step], step
        raise InputError(f"no checkpoint for step {step}; available: {sorted(steps)}", folder)
    raise InputError(f"no checkpoint (step-*.ckpt) found in {folders[0]}", config_path)


def load_checkpoint(path: Path) -> dict:
    """``torch.load`` a Nerfstudio checkpoint safely (weights only), accepting its numpy scalars."""
    import pickle

    import torch

    from mastsam_splat.io.checkpoints import allow_numpy_scalars_in_checkpoints

    allow_numpy_scalars_in_checkpoints()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise InputError(f"checkpoint could not be read ({str(exc).splitlines()[0]})", path) from None
    if not isinstance(state, dict) or not isinstance(state.get("pipeline"), dict):
        raise InputError("not a Nerfstudio checkpoint (no 'pipeline' state)", path)
    return state


def open_run(config_path: PathLike, step: Optional[int] = None) -> tuple[NerfstudioRun, dict]:
    """Describe the run of ``config_path``; also returns its parsed config."""
    config_path = Path(config_path)
    config = read_run_config(config_path)
    checkpoint, found_step = find_checkpoint(config, config_path, step)
    datamanager = _get(config, "pipeline", "datamanager", default={})
    data = _get(datamanager, "data") or _get(datamanager, "dataparser", "data")
    if isinstance(data, Path) and str(data) in ("", "."):
        data = None
    model = _get(config, "pipeline", "model", default={})
    run = NerfstudioRun(
        config_path=config_path,
        run_dir=config_path.parent,
        method_name=str(config.get("method_name")),
        checkpoint=checkpoint,
        step=found_step,
        data=data if isinstance(data, Path) else None,
        sh_degree=int(_get(model, "sh_degree", default=3)),
        min_instance_confidence=float(_get(model, "min_instance_confidence", default=0.5)),
    )
    return run, config


def gaussians_from_params(
    params: Mapping[str, Any],
    sh_degree: int,
    source: Optional[Path],
    instance_ids: Optional[np.ndarray] = None,
) -> Gaussians:
    """Gaussians from Splatfacto's parameter tensors (``gauss_params`` names; ``instance_features`` optional)."""
    import torch

    p = {k: params[k].detach().float().cpu() for k in GAUSS_KEYS}
    dc = p["features_dc"]
    if sh_degree == 0:
        # Splatfacto stores logit colours when it trains without SH; the PLY layout wants the DC coefficient.
        dc = rgb_to_sh(torch.sigmoid(dc))
    features = params.get("instance_features")
    return Gaussians(
        means=p["means"].numpy(),
        quats=p["quats"].numpy(),
        scales=p["scales"].numpy(),
        opacities=p["opacities"].reshape(-1).numpy(),
        sh_dc=dc.numpy(),
        sh_rest=p["features_rest"].reshape(len(p["means"]), -1, 3).numpy(),
        instance_ids=instance_ids,
        features=None if features is None else features.detach().float().cpu().numpy(),
        source=source,
    )


def gaussians_from_state(pipeline_state: dict, sh_degree: int, min_confidence: float, source: Path) -> Gaussians:
    """Gaussians (and, for instance-feature runs, their object ids) from a pipeline state dict."""
    import torch

    prefix = MODEL_PREFIX + "gauss_params."
    missing = [k for k in GAUSS_KEYS if prefix + k not in pipeline_state]
    if missing:
        raise InputError(f"checkpoint holds no Gaussians (missing {', '.join(prefix + k for k in missing)})", source)
    params = {k[len(prefix) :]: v for k, v in pipeline_state.items() if k.startswith(prefix)}
    features = params.get("instance_features")
    ids = None
    if features is not None:
        weight = pipeline_state.get(MODEL_PREFIX + "instance_head.weight")
        bias = pipeline_state.get(MODEL_PREFIX + "instance_head.bias")
        if weight is None:
            raise InputError("checkpoint has instance features but no instance_head weights", source)
        logits = features.detach().float().cpu() @ weight.float().T + (0.0 if bias is None else bias.float())
        confidence, best = torch.softmax(logits, dim=-1).max(dim=-1)
        ids = torch.where(confidence >= min_confidence, best, torch.zeros_like(best)).numpy()
    return gaussians_from_params(params, sh_degree, source, instance_ids=ids)


def load_run_gaussians(config_path: PathLike, step: Optional[int] = None) -> tuple[Gaussians, NerfstudioRun]:
    """Gaussians of a Nerfstudio run (object ids when the run trained an instance feature), in the run's frame."""
    run, _ = open_run(config_path, step)
    state = load_checkpoint(run.checkpoint)
    gaussians = gaussians_from_state(state["pipeline"], run.sh_degree, run.min_instance_confidence, run.checkpoint)
    return gaussians, run
