"""Fixtures of the object and CLI tests: a tiny synthetic scene and Gaussians seeded on its ground-truth surfaces.

Imported by the ``conftest.py`` of the test folders that use them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gaussian_factories import FRAMES, HEIGHT, WIDTH, seeded_gaussians

from mastsam_splat.io.gaussians import Gaussians


@pytest.fixture(scope="session")
def synthetic_scene(tmp_path_factory) -> Path:
    from mastsam_splat.synthetic import make_scene

    out = tmp_path_factory.mktemp("objects_scene") / "scene"
    return make_scene(out, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=1, max_points=2500, progress=False)


@pytest.fixture(scope="session")
def scene_gaussians(synthetic_scene) -> tuple[Gaussians, np.ndarray]:
    """Gaussians on the scene's surfaces, shuffled, with their true ids (kept out of the Gaussians)."""
    gaussians, ids = seeded_gaussians(synthetic_scene / "sparse_pc.ply")
    order = np.random.default_rng(7).permutation(len(gaussians))
    return gaussians.subset(order), ids[order]
