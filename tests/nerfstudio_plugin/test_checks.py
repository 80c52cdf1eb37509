"""Plugin input checks: the dataset's fields and images and the tracker's cache folder, before any work."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from mastsam_splat.errors import InputError
from nerfstudio_plugin.checks import check_nerfstudio_dataset, check_tracking_cache

from support.destinations import unwritable


@pytest.fixture()
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    frames = []
    for i in range(4):
        image = np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        assert cv2.imwrite(str(root / "images" / f"f{i}.jpg"), image)
        frames.append({"file_path": f"images/f{i}.jpg", "transform_matrix": np.eye(4).tolist()})
    meta = {"fl_x": 30, "fl_y": 30, "cx": 16, "cy": 12, "w": 32, "h": 24, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def _edit(root: Path, change) -> None:
    meta = json.loads((root / "transforms.json").read_text())
    change(meta)
    (root / "transforms.json").write_text(json.dumps(meta))


def test_valid_dataset_passes(dataset: Path) -> None:
    check_nerfstudio_dataset(dataset)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["frames"][2]["transform_matrix"][0].__setitem__(3, math.nan), r"frame 2: 'transform_matrix'"),
        (lambda m: m.update(fl_x="thirty"), r"'fl_x' must be a number, got 'thirty'"),
        (lambda m: m["frames"][1].update(file_path=12), r"frame 1: 'file_path' must be a string"),
        (lambda m: m["frames"][3].update(cy=math.inf), r"frame 3: 'cy' must be a finite number"),
        (lambda m: m.pop("cx"), r"frame 0 has no cx \(neither in the frame nor at the top level\)"),
        (lambda m: m["frames"][2].update(depth_file_path="d.png"), r"frame 0 has no 'depth_file_path' but other"),
    ],
)
def test_bad_fields_are_refused(dataset: Path, change, expected: str) -> None:
    _edit(dataset, change)
    with pytest.raises(InputError, match=expected):
        check_nerfstudio_dataset(dataset)


def test_truncated_image_is_refused_by_name(dataset: Path) -> None:
    bad = dataset / "images" / "f1.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(InputError, match="truncated") as info:
        check_nerfstudio_dataset(dataset)
    assert info.value.path == bad


def test_tracker_cache_location(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    check_tracking_cache(dataset / "mastsam" / "training-views", False, [dataset / "images"])
    with unwritable(dataset, monkeypatch):
        with pytest.raises(InputError, match=r"dataset is read-only: pass --pipeline.datamanager.tracking.cache-dir"):
            check_tracking_cache(dataset / "mastsam" / "training-views", False, [dataset / "images"])
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"--pipeline.datamanager.tracking.cache-dir cannot be created"):
        check_tracking_cache(tmp_path / "f" / "cache", True, [])
    with pytest.raises(InputError, match="folder of the input images"):
        check_tracking_cache(dataset / "images", True, [dataset / "images"])


def test_errors_are_printed_literally(capsys) -> None:
    pytest.importorskip("nerfstudio")
    from nerfstudio_plugin.checks import user_errors

    with pytest.raises(SystemExit) as info:
        with user_errors():
            raise InputError("no such file", Path("/data/scan[old]/[bold]x"))
    assert info.value.code == 2
    assert "/data/scan[old]/[bold]x: no such file" in capsys.readouterr().out


def test_datamanager_stops_before_the_tracker_on_a_read_only_dataset(dataset: Path, monkeypatch) -> None:
    pytest.importorskip("nerfstudio")
    from nerfstudio_plugin import datamanager as dm

    monkeypatch.setattr(dm, "track_training_images", lambda *a, **k: pytest.fail("the tracker ran"))
    config = dm.MastsamDatamanagerConfig(data=dataset)
    with unwritable(dataset, monkeypatch):
        with pytest.raises(InputError, match="dataset is read-only"):
            dm.MastsamDatamanager(config, device="cpu", test_mode="val")



def test_dataset_names_an_image_pil_cannot_read(dataset: Path) -> None:
    pytest.importorskip("nerfstudio")
    import torch
    from nerfstudio.cameras.cameras import Cameras
    from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs

    from nerfstudio_plugin.dataset import InstanceLabelDataset

    bad = dataset / "images" / "f1.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    one = lambda v: torch.tensor([[v]], dtype=torch.float32)  # noqa: E731
    cameras = Cameras(
        camera_to_worlds=torch.eye(4)[None, :3], fx=one(30), fy=one(30), cx=one(16), cy=one(12), width=32, height=24
    )
    outputs = DataparserOutputs(image_filenames=[bad], cameras=cameras)
    with pytest.raises(InputError, match="image could not be read") as info:
        InstanceLabelDataset(outputs).get_numpy_image(0)
    assert info.value.path == bad
