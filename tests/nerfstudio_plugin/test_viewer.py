"""Viewer selection on CPU: click picking, highlight / isolate / hide in renders, export of the selection."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("nerfstudio")

from nerfstudio.cameras.cameras import Cameras  # noqa: E402
from nerfstudio.data.scene_box import SceneBox  # noqa: E402
from nerfstudio.viewer.viewer_elements import ViewerClick, ViewerControl, ViewerElement  # noqa: E402

from mastsam_splat.errors import InputError  # noqa: E402
from nerfstudio_plugin.model import INSTANCE_KEYS, MastsamSplatModelConfig  # noqa: E402
from nerfstudio_plugin.viewer import (  # noqa: E402
    EXPORT_DIR,
    PICK_RADIUS,
    SELECTION_FILE,
    TINT_COLOUR,
    TINT_STRENGTH,
    ObjectViewer,
    patch_camera,
)

W, H = 40, 30
LEFT, RIGHT, CORNER = (0.25, 0.5), (0.75, 0.5), (0.02, 0.03)
"""Normalised screen positions on the red blob (id 1), the blue blob (id 2) and the empty background."""


def _camera(height: int = H) -> Cameras:
    """A camera on +z looking at the origin, ``height`` pixels high (4:3), like the viewer's get_camera."""
    width = height * W / H
    c2w = torch.eye(4)[:3][None].clone()
    c2w[0, 2, 3] = 3.0
    f = 40.0 * height / H
    return Cameras(camera_to_worlds=c2w, fx=f, fy=f, cx=width / 2, cy=height / 2, width=int(width), height=height)


@pytest.fixture()
def model():
    """Two labelled blobs in front of the camera: id 1 left (red), id 2 right (blue); head classes 0..3."""
    rng = np.random.default_rng(0)
    n = 400
    ids = rng.integers(1, 3, size=n)
    xyz = rng.normal(0.0, 0.15, size=(n, 3)).astype(np.float32)
    xyz[:, 0] += np.where(ids == 1, -0.5, 0.5)
    rgb = np.where(ids[:, None] == 1, [[220, 40, 40]], [[40, 40, 220]]).astype(np.uint8)
    config = MastsamSplatModelConfig(sh_degree=1, num_downscales=0, warmup_length=10_000, num_instance_classes=4)
    m = config.setup(
        scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])),
        num_train_data=4,
        metadata={"num_instance_ids": 3, "points3D_instance": torch.from_numpy(ids)},
        seed_points=(torch.from_numpy(xyz), torch.from_numpy(rgb)),
    )
    ObjectViewer.attach(m)
    m.eval()
    return m


class FakeViewer:
    """What ObjectViewer uses of Nerfstudio's Viewer: its train lock, run folder, re-render trigger."""

    def __init__(self, run_dir: Path) -> None:
        self.train_lock = threading.Lock()
        self.log_filename = run_dir / "viewer_log_filename.txt"
        self.control_panel = SimpleNamespace(crop_viewport=False)
        self.rerenders = 0

    def _trigger_rerender(self) -> None:
        self.rerenders += 1


def _connect(viewer: ObjectViewer, run_dir: Path) -> FakeViewer:
    """Attach a fake Nerfstudio viewer with one browser whose camera is ``_camera``."""
    fake = FakeViewer(run_dir)
    viewer.viewer_control.viewer = fake
    viewer.viewer_control.get_camera = lambda img_height, img_width=None, client_id=None: _camera(img_height)
    return fake


def _click(screen_pos) -> ViewerClick:
    return ViewerClick(origin=(0.0, 0.0, 3.0), direction=(0.0, 0.0, -1.0), screen_pos=screen_pos)


def test_elements_and_control_are_discovered_without_recursing_into_the_model(model) -> None:
    from nerfstudio.viewer.utils import parse_object

    pipeline_like = SimpleNamespace(model=model)
    elements = dict(parse_object(pipeline_like, ViewerElement, "Custom Elements"))
    names = {e.name for e in elements.values()}
    assert {"Select object (click)", "Selected object id", "Isolate selection", "Hide selection"} <= names
    assert {"Clear selection", "Export selection (.ply)"} <= names
    assert all(path.startswith("Custom Elements/model/object_viewer/") for path in elements)
    controls = parse_object(pipeline_like, ViewerControl, "Custom Elements")
    assert [c for _, c in controls] == [model.object_viewer.viewer_control]
    assert not any("object_viewer" in key for key in model.state_dict())  # checkpoints unchanged


def test_viewer_module_does_not_import_the_model_module() -> None:
    code = "import sys, nerfstudio_plugin.viewer; assert 'nerfstudio_plugin.model' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_patch_camera_sees_exactly_the_full_image_pixels(model) -> None:
    full = model.get_outputs_for_camera(_camera())
    for x, y in [(5, 7), (12, 15), (31, 20), (0, 0), (39, 29)]:
        patch = model.get_outputs_for_camera(patch_camera(_camera(), x + 0.5, y + 0.5))
        assert patch["rgb"].shape == (2 * PICK_RADIUS + 1, 2 * PICK_RADIUS + 1, 3)
        centre = patch["rgb"][PICK_RADIUS, PICK_RADIUS]
        torch.testing.assert_close(centre, full["rgb"][y, x], atol=1e-4, rtol=0)
        assert patch["instance_id"][PICK_RADIUS, PICK_RADIUS, 0] == full["instance_id"][y, x, 0]


def test_click_selects_the_object_under_the_cursor_and_records_it(model, tmp_path: Path) -> None:
    viewer = model.object_viewer
    fake = _connect(viewer, tmp_path)
    held = []
    render = model.get_outputs_for_camera

    def recording_render(*args, **kwargs):
        held.append(fake.train_lock.locked())
        return render(*args, **kwargs)

    model.get_outputs_for_camera = recording_render
    pick = viewer.handle_click(_click(RIGHT))
    assert pick is not None and pick.instance_id == 2
    assert held == [True] and not fake.train_lock.locked()  # picked under the train lock, released after
    assert viewer.selected_id == 2
    assert viewer.b_selected_id.value == 2
    assert viewer.c_status.value.startswith("object 2:")
    assert fake.rerenders == 1
    assert pick.image_size == (round(512 * W / H), 512)
    assert pick.pixel == (pytest.approx(0.75 * 512 * W / H, abs=0.01), pytest.approx(256.0, abs=0.01))
    record = json.loads((tmp_path / SELECTION_FILE).read_text())
    assert record["instance_id"] == 2
    assert record["num_gaussians"] == int((model.gaussian_instance_ids() == 2).sum())
    assert record["click"]["screen_pos"] == list(RIGHT)

    assert viewer.handle_click(_click(LEFT)).instance_id == 1
    assert viewer.selected_id == 1
    assert viewer.handle_click(_click(CORNER)).instance_id == 0  # background: nothing selected
    assert viewer.selected_id is None
    assert json.loads((tmp_path / SELECTION_FILE).read_text())["instance_id"] is None


def test_click_mode_listens_for_one_click(model, tmp_path: Path) -> None:
    viewer = model.object_viewer
    _connect(viewer, tmp_path)
    registered = {}
    viewer.a_click.gui_handle = SimpleNamespace(disabled=False)

    def register(event_type, cb, removed_cb=None):
        registered.update(event_type=event_type, cb=cb, removed_cb=removed_cb)

    def unregister():
        registered["removed_cb"]()
        registered["cb"] = None

    viewer.viewer_control.register_pointer_cb = register
    viewer.viewer_control.unregister_pointer_cb = unregister
    viewer.a_click.cb_hook(viewer.a_click)
    assert registered["event_type"] == "click" and viewer.a_click.gui_handle.disabled
    registered["cb"](_click(LEFT))
    assert viewer.selected_id == 1
    assert registered["cb"] is None and not viewer.a_click.gui_handle.disabled


def test_typed_ids_select_and_unknown_ids_are_refused(model) -> None:
    viewer = model.object_viewer
    viewer.b_selected_id.value = 2
    viewer.b_selected_id.cb_hook(viewer.b_selected_id)
    assert viewer.selected_id == 2
    assert viewer.select(7) == 2  # the head has classes 0..3 only
    assert "no object 7" in viewer.c_status.value and viewer.b_selected_id.value == 2
    viewer.select(0)
    assert viewer.selected_id is None and viewer.b_selected_id.value == 0


def _render(model, for_viewer: bool):
    if for_viewer:
        with model.object_viewer.rendering_for_viewer():
            return model.get_outputs_for_camera(_camera())
    return model.get_outputs_for_camera(_camera())


def test_highlight_tints_the_selection_and_dims_the_rest_in_viewer_renders_only(model) -> None:
    plain = _render(model, for_viewer=False)
    model.object_viewer.select(2)
    assert torch.equal(_render(model, for_viewer=False)["rgb"], plain["rgb"])  # evaluation renders untouched
    lit = _render(model, for_viewer=True)
    assert set(lit) == set(plain)
    selected = plain["instance_id"][..., 0] == 2  # [H, W]
    assert selected.any() and (~selected).any()
    keep = 1.0 - model.object_viewer.f_dim.value
    tint = torch.tensor(TINT_COLOUR)
    for key in ("rgb", "instance"):
        expected_selected = (1 - TINT_STRENGTH) * plain[key][selected] + TINT_STRENGTH * tint
        torch.testing.assert_close(lit[key][selected], expected_selected)
        torch.testing.assert_close(lit[key][~selected], keep * plain[key][~selected])
    assert lit["selection"][selected].mean() > lit["selection"][~selected].mean()


def test_isolate_and_hide_change_which_gaussians_render(model) -> None:
    viewer = model.object_viewer
    plain = _render(model, for_viewer=True)
    left, right = plain["accumulation"][:, : W // 3], plain["accumulation"][:, 2 * W // 3 :]
    assert left.max() > 0.5 and right.max() > 0.5
    viewer.select(2)

    viewer.d_isolate.value = True
    isolated = _render(model, for_viewer=True)
    assert isolated["accumulation"][:, : W // 3].max() < 0.05  # the left object (id 1) is gone
    torch.testing.assert_close(isolated["accumulation"][:, 2 * W // 3 :], right, atol=0.05, rtol=0)

    viewer.e_hide.cb_hook(viewer.e_hide)  # unchanged value: hide stays off while isolate is on
    viewer.e_hide.value = True
    viewer.e_hide.cb_hook(viewer.e_hide)
    assert viewer.d_isolate.value is False  # the two modes exclude each other
    hidden = _render(model, for_viewer=True)
    assert hidden["accumulation"][:, 2 * W // 3 :].max() < 0.05  # the selection is gone
    torch.testing.assert_close(hidden["accumulation"][:, : W // 3], left, atol=0.05, rtol=0)
    assert torch.equal(_render(model, for_viewer=False)["accumulation"], plain["accumulation"])

    viewer.clear()
    assert viewer.selected_id is None and not viewer.e_hide.value
    torch.testing.assert_close(_render(model, for_viewer=True)["accumulation"], plain["accumulation"])


def test_isolating_an_object_without_gaussians_keeps_every_output_key(model) -> None:
    viewer = model.object_viewer
    viewer.select(3)  # a class of the head that no Gaussian decodes to
    viewer.d_isolate.value = True
    out = _render(model, for_viewer=True)
    assert set(INSTANCE_KEYS) <= set(out)
    assert out["rgb"].shape == (H, W, 3) and float(out["accumulation"].max()) == 0.0


def test_export_writes_exactly_the_selected_objects_gaussians(model, tmp_path: Path) -> None:
    from mastsam_splat.io.ply import read_gaussians_ply

    viewer = model.object_viewer
    _connect(viewer, tmp_path)
    with pytest.raises(InputError, match="no object is selected"):
        viewer.export_selection()
    viewer.select(2)
    path = viewer.export_selection()
    assert path == tmp_path / EXPORT_DIR / "object_0002.ply"
    exported = read_gaussians_ply(path)
    rows = (model.gaussian_instance_ids() == 2).numpy()
    assert len(exported) == int(rows.sum()) > 0
    assert set(np.unique(exported.instance_ids)) == {2}
    np.testing.assert_array_equal(exported.means, model.means.detach().numpy()[rows])
    np.testing.assert_array_equal(exported.opacities, model.opacities.detach().numpy()[rows, 0])
    np.testing.assert_array_equal(exported.sh_dc, model.features_dc.detach().numpy()[rows])
    assert json.loads((tmp_path / SELECTION_FILE).read_text())["export"] == str(path)

    viewer.e_hide.value = True  # isolate / hide never change what is exported
    assert (
        read_gaussians_ply(viewer.export_selection(tmp_path / "again.ply")).means.tobytes() == exported.means.tobytes()
    )


def test_export_button_reports_errors_in_the_gui(model, tmp_path: Path) -> None:
    viewer = model.object_viewer
    viewer.h_export.cb_hook(viewer.h_export)
    assert viewer.c_status.value.startswith("export failed: no object is selected")
    viewer.select(3)
    viewer.output_dir = tmp_path
    viewer.h_export.cb_hook(viewer.h_export)
    assert "has no Gaussians" in viewer.c_status.value
    assert not (tmp_path / EXPORT_DIR).exists()


def test_export_into_an_unwritable_place_is_a_clear_error(model, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder would go")
    viewer = model.object_viewer
    viewer.select(1)
    with pytest.raises(InputError, match="cannot write the PLY"):
        viewer.export_selection(blocker / "object.ply")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]
