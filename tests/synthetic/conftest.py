"""Shared fixture: one tiny synthetic scene per trajectory kind, generated once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.synthetic_scenes import FRAMES, HEIGHT, WIDTH

from mastsam_splat.synthetic import make_scene


@pytest.fixture(scope="session", params=["orbit", "forward"])
def scene_dir(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"synth_{request.param}") / "scene"
    return make_scene(out, frames=FRAMES, width=WIDTH, height=HEIGHT, seed=3, trajectory=request.param, progress=False)
