"""Random but valid Gaussians for the I/O tests."""

from __future__ import annotations

import numpy as np

from mastsam_splat.io.gaussians import Gaussians


def random_gaussians(n: int, sh_degree: int = 0, seed: int = 0, with_ids: bool = True) -> Gaussians:
    """Gaussians with normal-distributed parameters and ids -1..4."""
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
