"""Per-object export filters: transparent Gaussians and 3D outliers leave the object files, never scene.ply."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.gaussian_factories import random_gaussians

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import Gaussians
from mastsam_splat.io.ply import read_gaussians_ply
from mastsam_splat.objects.export import export_objects, object_file_name
from mastsam_splat.objects.filters import ObjectFilter, inlier_mask, select_object_rows


def _object_with_floaters() -> tuple[Gaussians, np.ndarray, np.ndarray]:
    """Object 2: a blob of 400 opaque Gaussians, 20 transparent ones in it, 5 isolated floaters and a
    far cluster of 6; background 0 around it."""
    rng = np.random.default_rng(0)
    g = random_gaussians(600, with_ids=False)
    means = rng.normal(0.0, 0.05, size=(600, 3))
    means[:100] = rng.uniform(-2, 2, size=(100, 3))  # background
    floaters = np.arange(500, 505)
    means[floaters] = rng.uniform(-1, 1, size=(5, 3)) + np.sign(rng.normal(size=(5, 3))) * 0.6
    far = np.arange(505, 511)
    means[far] = np.array([3.0, 3.0, 3.0]) + rng.normal(0, 0.01, size=(6, 3))
    ids = np.r_[np.zeros(100, int), np.full(500, 2)]
    opac = np.full(600, 4.0)
    transparent = np.arange(100, 120)
    opac[transparent] = -6.0  # opacity 0.0025
    g = Gaussians(**{**g.__dict__, "means": means, "opacities": opac, "instance_ids": ids})
    return g, transparent, np.r_[floaters, far]


def test_filters_leave_out_transparent_gaussians_and_outliers() -> None:
    g, transparent, outliers = _object_with_floaters()
    rows = np.flatnonzero(g.instance_ids == 2)
    kept, dropped = select_object_rows(g, rows, ObjectFilter())
    assert not set(transparent) & set(kept)
    assert not set(outliers) & set(kept)
    assert dropped["transparent"] == 20 and dropped["outliers"] >= len(outliers)
    assert len(kept) >= 0.95 * (500 - 20 - len(outliers))  # the bulk stays
    # off switches
    everything, none = select_object_rows(g, rows, ObjectFilter(keep_transparent=True, keep_outliers=True))
    np.testing.assert_array_equal(everything, rows)
    assert none == {"transparent": 0, "outliers": 0}


def test_inlier_mask_keeps_a_clean_cloud() -> None:
    xyz = np.random.default_rng(1).uniform(-1, 1, size=(2000, 3))
    assert inlier_mask(xyz).mean() > 0.95
    assert inlier_mask(xyz[:5]).all()  # too few to judge


def test_export_filters_objects_but_keeps_the_scene_complete(tmp_path: Path) -> None:
    g, transparent, outliers = _object_with_floaters()
    result = export_objects(g, tmp_path / "out", object_filter=ObjectFilter())
    scene = read_gaussians_ply(result.scene_file)
    assert len(scene) == len(g)
    obj = read_gaussians_ply(tmp_path / "out" / "objects" / object_file_name(2))
    background = read_gaussians_ply(tmp_path / "out" / "objects" / object_file_name(0))
    assert len(background) == 100  # background stays complete
    assert (1 / (1 + np.exp(-obj.opacities)) >= 0.05).all()
    assert obj.means.max() < 2.0  # the far cluster is gone
    index = json.loads(result.index_file.read_text())
    entry = next(e for e in index["objects"] if e["id"] == 2)
    assert entry["num_gaussians"] == len(obj)
    assert entry["left_out"]["transparent"] == 20 and entry["left_out"]["outliers"] >= len(outliers)
    assert not index["complete_partition"] and index["object_filter"]["min_opacity"] == 0.05


@pytest.mark.parametrize("bad", [{"min_opacity": 1.0}, {"outlier_neighbours": 0}, {"outlier_std_ratio": 0.0}])
def test_bad_filter_settings(tmp_path: Path, bad: dict) -> None:
    g, _, _ = _object_with_floaters()
    with pytest.raises(InputError):
        export_objects(g, tmp_path / "out", object_filter=ObjectFilter(**bad))
