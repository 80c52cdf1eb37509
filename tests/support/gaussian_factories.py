"""Test data: random Gaussians, and Gaussians seeded on a synthetic scene's ground-truth surfaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mastsam_splat.io.gaussians import Gaussians, rgb_to_sh
from mastsam_splat.io.ply import read_point_cloud

FRAMES, WIDTH, HEIGHT = 10, 64, 48


def random_gaussians(n: int, sh_degree: int = 0, seed: int = 0, with_ids: bool = True) -> Gaussians:
    """Random but valid Gaussians (ids 0..4 and some -1) for I/O tests."""
    rng = np.random.default_rng(seed)
    k1 = (sh_degree + 1) ** 2 - 1
    return Gaussians(
        means=rng.normal(size=(n, 3)),
        quats=rng.normal(size=(n, 4)),
        scales=rng.normal(-3.0, 0.5, size=(n, 3)),
        opacities=rng.normal(size=n),
        sh_dc=rng.normal(size=(n, 3)),
        sh_rest=rng.normal(size=(n, k1, 3)) * 0.1,
        instance_ids=rng.integers(-1, 5, size=n) if with_ids else None,
    )


def seeded_gaussians(points_file: Path, scale: float = 0.5, opacity_logit: float = 3.0) -> tuple[Gaussians, np.ndarray]:
    """Isotropic Gaussians on the points of a synthetic ``sparse_pc.ply`` and the points' true ids."""
    from scipy.spatial import cKDTree

    cloud = read_point_cloud(points_file, require_instances=True)
    xyz = cloud.xyz.astype(np.float64)
    rgb = cloud.rgb / 255.0
    dist, _ = cKDTree(xyz).query(xyz, k=4)
    radius = scale * dist[:, 1:].mean(axis=1)
    n = len(xyz)
    gaussians = Gaussians(
        means=xyz,
        quats=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
        scales=np.log(np.repeat(radius[:, None], 3, axis=1)),
        opacities=np.full(n, opacity_logit),
        sh_dc=rgb_to_sh(rgb),
        sh_rest=np.zeros((n, 0, 3)),
    )
    return gaussians, cloud.instance_id.astype(np.int32)
