"""Gaussian parameters in Splatfacto's layout, as an ``nn.ParameterDict``.

Keys (raw, pre-activation values, as Splatfacto's ``gauss_params``):

- ``means [N, 3]``, ``scales [N, 3]`` (log), ``quats [N, 4]`` (w, x, y, z; unnormalised),
- ``features_dc [N, 3]`` and ``features_rest [N, K - 1, 3]`` (SH coefficients; colour terms in
  ``mastsam_splat.io.gaussians``),
- ``opacities [N, 1]`` (logit),
- ``instance_features [N, D]`` (optional): the per-Gaussian instance feature.

Every per-Gaussian tensor lives in the same dict, so gsplat's densification ops
(duplicate / split / remove) keep all of them aligned.
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional

import torch
from torch import Tensor

from mastsam_splat.io.gaussians import sh_degree_from_bases

GEOMETRY_KEYS = ("means", "scales", "quats", "opacities")
COLOR_KEYS = ("features_dc", "features_rest")
FEATURE_KEY = "instance_features"


def sh_degree_of(params: Mapping[str, Tensor]) -> int:
    """SH degree that ``features_rest`` has room for."""
    k = params["features_rest"].shape[1] + 1
    degree = sh_degree_from_bases(k)
    if degree < 0:
        raise ValueError(f"features_rest holds {k - 1} coefficients, not (degree + 1)^2 - 1 for any degree")
    return degree


def make_params(
    means: Tensor,
    scales: Tensor,
    quats: Tensor,
    opacities: Tensor,
    features_dc: Tensor,
    features_rest: Tensor,
    instance_features: Optional[Tensor] = None,
) -> torch.nn.ParameterDict:
    """Wrap raw per-Gaussian tensors into a ParameterDict (see module docstring for shapes)."""
    n = means.shape[0]
    tensors = {
        "means": means,
        "scales": scales,
        "quats": quats,
        "features_dc": features_dc,
        "features_rest": features_rest,
        "opacities": opacities.reshape(n, 1),
    }
    if instance_features is not None:
        tensors[FEATURE_KEY] = instance_features
    for key, value in tensors.items():
        if value.shape[0] != n:
            raise ValueError(f"{key} has {value.shape[0]} rows, means has {n}")
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone().contiguous()) for k, v in tensors.items()})


def num_gaussians(params: Mapping[str, Tensor]) -> int:
    return int(params["means"].shape[0])


def sh_coefficients(params: Mapping[str, Tensor]) -> Tensor:
    """[N, K, 3] SH coefficients (DC first)."""
    return torch.cat([params["features_dc"][:, None, :], params["features_rest"]], dim=1)


def activated(params: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Rasterizer inputs: ``means, quats``, ``scales`` (exp), ``opacities [N]`` (sigmoid), ``sh [N, K, 3]``,
    and ``features`` when present."""
    out = {
        "means": params["means"],
        "quats": params["quats"],
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]).squeeze(-1),
        "sh": sh_coefficients(params),
    }
    if FEATURE_KEY in params:
        out["features"] = params[FEATURE_KEY]
    return out


def subset(params: Mapping[str, Tensor], keep: Tensor) -> torch.nn.ParameterDict:
    """New ParameterDict with the Gaussians selected by a boolean mask or index tensor."""
    return torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach()[keep].clone()) for k, v in params.items()})


def make_optimizers(
    params: torch.nn.ParameterDict, lrs: Mapping[str, float], eps: float = 1e-15
) -> Dict[str, torch.optim.Optimizer]:
    """One Adam per parameter, the layout gsplat's strategies expect (every key needs one); a key
    without a learning rate gets rate 0 and stays fixed."""
    return {
        key: torch.optim.Adam([{"params": [param], "lr": float(lrs.get(key, 0.0)), "name": key}], eps=eps)
        for key, param in params.items()
    }


def check_finite(params: Mapping[str, Tensor], keys: Optional[Iterable[str]] = None) -> list[str]:
    """Names of parameters holding NaN or infinite values."""
    bad = []
    for key in keys if keys is not None else params.keys():
        if key in params and not bool(torch.isfinite(params[key]).all()):
            bad.append(key)
    return bad
