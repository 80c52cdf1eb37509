"""Initial Gaussians: from a (labelled) point cloud, or random inside a box.

As Splatfacto: one Gaussian per point with log scale = log(mean distance to its 3 nearest
neighbours), opacity 0.1, colour as the SH DC term. Optionally (``surface_aligned``) each Gaussian
is flattened along the normal of its neighbourhood (:func:`surface_aligned_frames`): seeds lie
on surfaces, and an isotropic seed as wide as the seed spacing, once split, scatters its
children that far off the surface. Here the point's instance id also
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


FLAT_RATIO = 0.1
"""Thickness of a surface-aligned seed along its normal, as a share of its width (at least)."""

NORMAL_NEIGHBOURS = 8
"""Neighbours whose covariance gives a seed's normal."""


def surface_aligned_frames(
    xyz: np.ndarray, log_scales: np.ndarray, k: int = NORMAL_NEIGHBOURS, flat_ratio: float = FLAT_RATIO
) -> tuple[np.ndarray, np.ndarray]:
    """[N, 3] log scales and [N, 4] quaternions (w, x, y, z) of seeds flattened along their local normal.

    The normal is the least-variance axis of each point and its ``k`` nearest neighbours (PCA).
    Along the two tangent axes a seed keeps its isotropic width (``exp(log_scales)``); along the
    normal it gets the neighbourhood's own thickness (the square root of the least eigenvalue),
    at least ``flat_ratio`` times and at most once the width. A flat patch gives a thin disc, a
    noisy or volumetric neighbourhood (SfM noise) keeps a nearly round Gaussian.
    """
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float64)
    n = len(xyz)
    width = np.exp(np.asarray(log_scales, dtype=np.float64))
    scales = np.repeat(width[:, None], 3, axis=1)
    quats = np.zeros((n, 4))
    quats[:, 0] = 1.0
    if n < 4:
        return np.log(scales).astype(np.float32), quats.astype(np.float32)
    kk = min(k, n - 1)
    _, nbr = cKDTree(xyz).query(xyz, k=kk + 1)
    patch = xyz[nbr] - xyz[nbr].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", patch, patch) / (kk + 1)
    eigval, eigvec = np.linalg.eigh(cov)  # ascending: column 0 is the normal
    rot = eigvec[:, :, ::-1].copy()  # tangent, tangent, normal
    rot[np.linalg.det(rot) < 0, :, 2] *= -1.0
    thickness = np.sqrt(np.clip(eigval[:, 0], 0.0, None))
    scales[:, 2] = np.clip(thickness, flat_ratio * width, width)
    return np.log(scales).astype(np.float32), rotation_to_quaternion(rot).astype(np.float32)


def rotation_to_quaternion(rot: np.ndarray) -> np.ndarray:
    """[N, 4] unit quaternions (w, x, y, z) of rotation matrices [N, 3, 3] (Shepperd's method)."""
    r = np.asarray(rot, dtype=np.float64)
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    candidates = np.stack(
        [
            np.stack([1 + m00 + m11 + m22, r[:, 2, 1] - r[:, 1, 2], r[:, 0, 2] - r[:, 2, 0], r[:, 1, 0] - r[:, 0, 1]], 1),
            np.stack([r[:, 2, 1] - r[:, 1, 2], 1 + m00 - m11 - m22, r[:, 0, 1] + r[:, 1, 0], r[:, 0, 2] + r[:, 2, 0]], 1),
            np.stack([r[:, 0, 2] - r[:, 2, 0], r[:, 0, 1] + r[:, 1, 0], 1 - m00 + m11 - m22, r[:, 1, 2] + r[:, 2, 1]], 1),
            np.stack([r[:, 1, 0] - r[:, 0, 1], r[:, 0, 2] + r[:, 2, 0], r[:, 1, 2] + r[:, 2, 1], 1 - m00 - m11 + m22], 1),
        ],
        axis=1,
    )  # [N, 4 candidates, 4]
    best = np.argmax(np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], 1), 1)
    q = candidates[np.arange(len(r)), best]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


LABELLED_SHARE = 0.5
"""Share of a capped seed budget first offered to points with an object id (the rest: spatially even)."""


def budget_subsample(
    xyz: np.ndarray, max_points: int, ids: Optional[np.ndarray] = None, seed: int = 0
) -> np.ndarray:
    """Sorted indices of at most ``max_points`` points that spend the budget where the scene's detail is.

    A uniform random subsample keeps the cloud's density, so a large, densely sampled ground takes
    most of the budget and the objects the cameras look at get few seeds. Here points with an
    object id (``ids > 0``) get up to :data:`LABELLED_SHARE` of the budget first; the rest is spread
    evenly in space (one random point per occupied voxel of a grid sized to the remaining budget),
    so dense regions are thinned more than sparse ones.
    """
    n = len(xyz)
    if max_points <= 0 or n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    rest = np.arange(n)
    if ids is not None:
        labelled = np.flatnonzero(np.asarray(ids) > 0)
        quota = min(len(labelled), int(max_points * LABELLED_SHARE))
        if quota < len(labelled):
            labelled = rng.choice(labelled, size=quota, replace=False)
        chosen.append(labelled)
        rest = np.setdiff1d(rest, labelled, assume_unique=True)
    budget = max_points - sum(len(c) for c in chosen)
    chosen.append(_even_in_space(xyz, rest, budget, rng))
    return np.sort(np.concatenate(chosen))


def _even_in_space(xyz: np.ndarray, candidates: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``budget`` of ``candidates``: one random point per voxel, the voxel size found by bisection."""
    if budget <= 0 or len(candidates) == 0:
        return candidates[:0]
    if len(candidates) <= budget:
        return candidates
    pts = xyz[candidates].astype(np.float64)
    lo, extent = pts.min(0), float(np.ptp(pts, axis=0).max()) or 1.0
    order = rng.permutation(len(candidates))

    def one_per_voxel(size: float) -> np.ndarray:
        cells = np.floor((pts[order] - lo) / size).astype(np.int64)
        _, first = np.unique(cells, axis=0, return_index=True)
        return order[first]

    small, large = extent / 4096.0, extent
    picked = one_per_voxel(large)
    for _ in range(24):
        middle = np.sqrt(small * large)
        trial = one_per_voxel(middle)
        if len(trial) > budget:
            small = middle
        else:
            large, picked = middle, trial
    if len(picked) < budget:
        others = np.setdiff1d(np.arange(len(candidates)), picked, assume_unique=True)
        picked = np.concatenate([picked, rng.choice(others, size=budget - len(picked), replace=False)])
    return candidates[picked]


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
    surface_aligned: bool = False,
) -> torch.nn.ParameterDict:
    """Splatfacto-layout parameters from a point cloud (see ``params``).

    With ``space`` and point ids, features start at their class embeddings
    (``class_embeddings(space.num_classes, feature_dim)``); otherwise small random values.
    ``feature_dim = 0`` makes no feature. ``max_points`` subsamples large clouds (``budget_subsample``).
    ``surface_aligned`` flattens each seed along its neighbourhood's normal (``surface_aligned_frames``).
    """
    xyz = np.asarray(cloud.xyz, dtype=np.float32)
    if len(xyz) == 0:
        raise InputError("cannot initialise Gaussians from an empty point cloud")
    if not np.isfinite(xyz).all():
        raise InputError("cannot initialise Gaussians from points with NaN or infinite coordinates")
    rng = np.random.default_rng(seed)
    keep = np.arange(len(xyz))
    if max_points is not None and len(xyz) > max_points:
        keep = budget_subsample(xyz, max_points, cloud.instance_id, seed)
    xyz = xyz[keep]
    rgb = np.asarray(cloud.rgb, dtype=np.float32)[keep] / 255.0
    n = len(xyz)
    g = torch.Generator().manual_seed(seed)

    log_width = knn_log_scales(xyz)
    if surface_aligned:
        log_scales, rotations = surface_aligned_frames(xyz, log_width)
        scales, quats = torch.from_numpy(log_scales), torch.from_numpy(rotations)
    else:
        scales = torch.from_numpy(log_width)[:, None].repeat(1, 3)
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
