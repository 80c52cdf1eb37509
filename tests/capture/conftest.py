"""Fixtures: a synthetic orbit and the dataset prepared from its photos (plus two unreadable files)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from support.capture_scenes import CAPTURE_HEIGHT, CAPTURE_WIDTH, ORBIT_FRAMES, photo_folder

from mastsam_splat.capture import CaptureWarning, PrepareOptions, prepare
from mastsam_splat.synthetic import make_scene


@pytest.fixture(scope="session")
def orbit_scene(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("capture_orbit") / "scene"
    return make_scene(out, ORBIT_FRAMES, CAPTURE_WIDTH, CAPTURE_HEIGHT, seed=0, trajectory="orbit", progress=False)


@pytest.fixture(scope="session")
def prepared(orbit_scene, tmp_path_factory):
    """(dataset folder, report, warning messages) of ``prepare`` on the orbit's photos."""
    root = tmp_path_factory.mktemp("capture_prepared")
    photos = photo_folder(orbit_scene, root / "photos", extra_bad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CaptureWarning)
        report = prepare(root / "dataset", PrepareOptions(images=photos), progress=False)
    return root / "dataset", report, [str(w.message) for w in caught if issubclass(w.category, CaptureWarning)]
