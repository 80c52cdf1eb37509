"""Initial Gaussians: from a (labelled) point cloud, or random inside a box.

As Splatfacto: one isotropic Gaussian per point with log scale = log(mean distance to its 3
nearest neighbours), opacity 0.1, colour as the SH DC term. Here the point's instance id also
seeds the Gaussian's instance feature (the fixed embedding of its class), so training starts
from the tracker's 3D labels.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import num_sh_bases, rgb_to_sh
from mastsam_splat.io.ply import PointCloud
from mastsam_splat.splat.instance import LabelSpace, class_embeddings, seed_features
from mastsam_splat.splat.params import make_params


def knn_log_scales(xyz: np.ndarray, k: int = 3) -> np.ndarray:
    """[N] log of the mean distance of each point to its ``k`` nearest neighbours (floored above 0)."""
    from scipy.spatial import cKDTree

    n = len(xyz)
    if n < 2:
        return np.full(n, np.log(0.01), dtype=np.float32)
    kk = min(k, n - 1)
    dist, _ = cKDTree(xyz).query(xyz, k=kk + 1)
    mean = dist[:, 1:].mean(axis=1)
    extent = float(np.linalg.norm(xyz.max(0) - xyz.min(0)))
    floor = max(extent * 1e-5, 1e-7)
    return np.log(np.maximum(mean, floor)).astype(np.float32)


def gaussians_from_points(
    cloud: PointCloud,
    *,
    sh_degree: int = 3,
    feature_dim: int = 16,
    init_opacity: float = 0.1,
    space: Optional[LabelSpace] = None,
    feature_noise: float = 0.05,
    max_points: Optional[int] = None,
    seed: int = 0,
) -> torch.nn.ParameterDict:
    """Splatfacto-layout parameters from a point cloud (see ``params``).

    With ``space`` and point ids, features start at their class embeddings
    (``class_embeddings(space.num_classes, feature_dim)``); otherwise small random values.
    ``feature_dim = 0`` makes no feature. ``max_points`` randomly subsamples large clouds.
    """
    xyz = np.asarray(cloud.xyz, dtype=np.float32)
    if len(xyz) == 0:
        raise InputError("cannot initialise Gaussians from an empty point cloud")
    if not np.isfinite(xyz).all():
        raise InputError("cannot initialise Gaussians from points with NaN or infinite coordinates")
    rng = np.random.default_rng(seed)
    keep = np.arange(len(xyz))
    if max_points is not None and len(xyz) > max_points:
        keep = np.sort(rng.choice(len(xyz), size=max_points, replace=False))
    xyz = xyz[keep]
    rgb = np.asarray(cloud.rgb, dtype=np.float32)[keep] / 255.0
    n = len(xyz)
    g = torch.Generator().manual_seed(seed)

    scales = torch.from_numpy(knn_log_scales(xyz))[:, None].repeat(1, 3)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    opac = torch.logit(torch.full((n, 1), float(init_opacity)))
    dc = rgb_to_sh(torch.from_numpy(rgb))
    rest = torch.zeros(n, num_sh_bases(sh_degree) - 1, 3)
    feats = None
    if feature_dim > 0:
        ids = None if cloud.instance_id is None else np.asarray(cloud.instance_id)[keep]
        if space is not None and ids is not None:
            emb = class_embeddings(space.num_classes, feature_dim, seed=seed)
            feats = seed_features(ids, space, emb, noise=feature_noise, seed=seed)
        else:
            feats = feature_noise * torch.randn(n, feature_dim, generator=g)
    return make_params(torch.from_numpy(xyz), scales, quats, opac, dc, rest, feats)


def random_points(num: int, center: np.ndarray, half_extent: float, seed: int = 0) -> PointCloud:
    """``num`` uniform points in a cube (grey), for scenes without a point cloud."""
    if num <= 0:
        raise InputError(f"the number of random Gaussians must be positive, got {num}")
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-half_extent, half_extent, size=(num, 3))
    xyz = (np.asarray(center, dtype=np.float32) + offsets).astype(np.float32)
    rgb = rng.integers(64, 192, size=(num, 3)).astype(np.uint8)
    return PointCloud(xyz=xyz, rgb=rgb, instance_id=None)
