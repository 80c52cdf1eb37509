"""Shared fixtures: tiny synthetic Nerfstudio scenes with ground-truth instances."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory) -> Path:
    """12 views of 64x48 with depth, ground-truth instances and a sparse point cloud."""
    from mastsam_splat.synthetic import make_scene

    out = tmp_path_factory.mktemp("plugin_scene") / "scene"
    return make_scene(out, frames=12, width=64, height=48, seed=3, max_points=3000, progress=False)
