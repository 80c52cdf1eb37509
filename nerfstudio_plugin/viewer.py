"""Click-to-select objects in Nerfstudio's viewer: pick, highlight, isolate, hide, export.

:class:`ObjectViewer` holds the selection and is attached to the model as ``object_viewer``
(by the pipeline, :meth:`ObjectViewer.attach`), so Nerfstudio's viewer finds its GUI elements and
its ``ViewerControl`` (it only walks ``nn.Module`` attributes); it holds no parameters, so
checkpoints are unchanged. GUI order follows the attribute names (``a_`` ... ``h_``). The model
calls it back through ``nerfstudio_plugin.model.SelectionHook`` while rendering.

- *Select object (click)* puts the viewer in pointer mode for one click. The object under the
  cursor is the rendered object id at that pixel: the model renders a small patch of the
  viewer's camera centred on the click (same projection, a few pixels wide), so a pick costs
  one projection of the Gaussians, not a full frame.
- The selection is an object id (not a per-Gaussian mask, since densification changes the
  Gaussians); each render recomputes which Gaussians carry it.
- Viewer renders tint the selected object and dim the rest, or render only the selection
  (*Isolate*) or everything but it (*Hide*). Renders for evaluation metrics are left alone:
  the effects apply only on the viewer's render threads and inside :meth:`rendering_for_viewer`.
- Every change is written to ``viewer_selection.json`` in the run folder; *Export selection*
  writes ``selections/object_<id>.ply`` there (3DGS layout + ``instance_id``) and sends it to
  the browser as a download.

Pointer callbacks are not run under the viewer's ``train_lock`` (GUI callbacks are), so
:meth:`ObjectViewer.handle_click` takes it itself; GUI callbacks here never take it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple

import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.viewer.viewer_elements import (
    ViewerButton,
    ViewerCheckbox,
    ViewerClick,
    ViewerControl,
    ViewerNumber,
    ViewerSlider,
    ViewerText,
)
from torch import Tensor, nn

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_write_text
from mastsam_splat.objects.export import object_file_name
from mastsam_splat.io.gaussians import Gaussians
from mastsam_splat.io.ply import write_gaussians_ply

if TYPE_CHECKING:
    from nerfstudio_plugin.model import MastsamSplatModel

SELECTION_FILE = "viewer_selection.json"
"""Selection state written into the run folder on every change."""
EXPORT_DIR = "selections"
"""Run subfolder for PLY files exported from the viewer."""
PICK_HEIGHT = 512
"""Image height the click is resolved at (the viewer's default static resolution)."""
PICK_RADIUS = 4
"""The pick renders a (2 r + 1)^2 patch centred on the click and reads its centre pixel."""
TINT_COLOUR = (1.0, 0.83, 0.41)
"""Colour blended into the selected object (the viewer's accent colour)."""
TINT_STRENGTH = 0.35
"""Weight of the tint colour on the selected object."""

_viewer_render = threading.local()


def _on_viewer_render_thread() -> bool:
    """True inside Nerfstudio's per-client render thread (it renders what the browser shows)."""
    module = sys.modules.get("nerfstudio.viewer.render_state_machine")
    return module is not None and isinstance(threading.current_thread(), module.RenderStateMachine)


def patch_camera(camera: Cameras, x: float, y: float, radius: int = PICK_RADIUS) -> Cameras:
    """A (2 r + 1)^2-pixel camera whose centre pixel is centred on image point (x, y) of ``camera``.

    Same pose and focal length; only the principal point moves, so every patch pixel sees
    exactly what the full image shows there (pixel (col, row) covers [col, col + 1) x [row, row + 1)).
    """
    size = 2 * radius + 1
    offset = radius + 0.5
    return Cameras(
        camera_to_worlds=camera.camera_to_worlds[:1],
        fx=camera.fx[:1],
        fy=camera.fy[:1],
        cx=camera.cx[:1] - (x - offset),
        cy=camera.cy[:1] - (y - offset),
        width=size,
        height=size,
        camera_type=CameraType.PERSPECTIVE,
    )


@dataclass
class Pick:
    """Where a click landed and what it hit."""

    instance_id: int
    """Object id under the cursor (0: background / nothing)."""
    screen_pos: Tuple[float, float]
    """Normalised image coordinates of the click (0, 0 top-left; 1, 1 bottom-right)."""
    pixel: Tuple[float, float]
    """Image coordinates (x, y) of the click at ``image_size``."""
    image_size: Tuple[int, int]
    """(width, height) the click was resolved at."""
    seconds: float
    """Time spent resolving the click (patch render + id lookup)."""


class ObjectViewer(nn.Module):
    """Selection state and viewer controls of a :class:`MastsamSplatModel` (see module docstring)."""

    def __init__(self, model: "MastsamSplatModel", output_dir: Optional[Path] = None) -> None:
        super().__init__()
        self._model_ref = weakref.ref(model)  # a weak reference: a submodule must not own its parent
        self._selected: Optional[int] = None
        self.output_dir: Optional[Path] = Path(output_dir) if output_dir is not None else None
        """Folder for the selection file and exports (default: the viewer's run folder)."""
        self.last_pick: Optional[Pick] = None
        self.last_export: Optional[Path] = None

        self.viewer_control = ViewerControl()
        self.a_click = ViewerButton("Select object (click)", cb_hook=self._on_click_button)
        self.b_selected_id = ViewerNumber(
            "Selected object id", 0, cb_hook=self._on_id_typed, hint="0 = nothing selected; type an id to select it"
        )
        self.c_status = ViewerText("Selection", "nothing selected", disabled=True)
        self.d_isolate = ViewerCheckbox(
            "Isolate selection", False, cb_hook=self._on_isolate, hint="Render only the selected object"
        )
        self.e_hide = ViewerCheckbox(
            "Hide selection", False, cb_hook=self._on_hide, hint="Render all but the selection"
        )
        self.f_dim = ViewerSlider(
            "Dim others", 0.6, 0.0, 1.0, 0.05, hint="How much the rest of the scene darkens around the selection"
        )
        self.g_clear = ViewerButton("Clear selection", cb_hook=lambda _: self.clear())
        self.h_export = ViewerButton("Export selection (.ply)", cb_hook=lambda _: self._on_export_button())

    @classmethod
    def attach(cls, model: "MastsamSplatModel", output_dir: Optional[Path] = None) -> "ObjectViewer":
        """A viewer for ``model``, set as its ``object_viewer`` (where Nerfstudio's viewer finds the controls)."""
        viewer = cls(model, output_dir)
        model.object_viewer = viewer
        return viewer

    # ------------------------------------------------------------------ state

    def _owner(self) -> "MastsamSplatModel":
        """The model (private: the viewer walks public attributes, and must not loop back to it)."""
        model = self._model_ref()
        if model is None:
            raise RuntimeError("the model of this object viewer no longer exists")
        return model

    @property
    def selected_id(self) -> Optional[int]:
        """Selected object id, or None."""
        return self._selected

    def select(self, instance_id: Optional[int], pick: Optional[Pick] = None) -> Optional[int]:
        """Select an object id (None or 0: clear); updates the GUI and the selection file.

        Ids the instance head cannot produce are refused (selection unchanged, status says so).
        """
        model = self._owner()
        if instance_id is not None and instance_id <= 0:
            instance_id = None
        if instance_id is not None and instance_id >= model.num_instance_classes:
            self.c_status.value = f"no object {instance_id} (ids 1..{model.num_instance_classes - 1})"
            self._set_id_field(self.selected_id)
            return self.selected_id
        self._selected = instance_id
        self.last_pick = pick
        self._set_id_field(instance_id)
        if instance_id is None:
            self.c_status.value = "nothing selected" if pick is None else "clicked the background: nothing selected"
        else:
            self.c_status.value = f"object {instance_id}: {self.selected_count()} Gaussians"
        self.write_state()
        return instance_id

    def selected_count(self) -> int:
        """Number of Gaussians of the selected object (0 when nothing is selected)."""
        model, selected = self._model_ref(), self.selected_id
        if model is None or selected is None:
            return 0
        return int((model.gaussian_instance_ids() == selected).sum())

    def clear(self) -> None:
        """Drop the selection (and leave isolate / hide mode)."""
        self.d_isolate.value = False
        self.e_hide.value = False
        self.select(None)

    def _set_id_field(self, instance_id: Optional[int]) -> None:
        if int(self.b_selected_id.value) != (instance_id or 0):
            self.b_selected_id.value = instance_id or 0

    def selection_record(self) -> Dict[str, Any]:
        """What ``viewer_selection.json`` holds."""
        selected = self.selected_id
        return {
            "instance_id": selected,
            "num_gaussians": None if selected is None else self.selected_count(),
            "isolate": bool(self.d_isolate.value),
            "hide": bool(self.e_hide.value),
            "click": None if self.last_pick is None else asdict(self.last_pick),
            "export": None if self.last_export is None else str(self.last_export),
            "updated": time.time(),
        }

    def run_dir(self) -> Optional[Path]:
        """Folder the selection file and exports go to: ``output_dir``, else the viewer's run folder."""
        if self.output_dir is not None:
            return self.output_dir
        viewer = getattr(self.viewer_control, "viewer", None)
        log_filename = getattr(viewer, "log_filename", None)
        return Path(log_filename).parent if log_filename is not None else None

    def write_state(self) -> Optional[Path]:
        """Write ``viewer_selection.json`` (atomically) when there is a run folder."""
        folder = self.run_dir()
        if folder is None:
            return None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return atomic_write_text(folder / SELECTION_FILE, json.dumps(self.selection_record(), indent=1) + "\n")
        except OSError as exc:
            self.c_status.value = f"cannot write {SELECTION_FILE}: {exc.strerror or exc}"
            return None

    # ------------------------------------------------------------------ clicks

    def _on_click_button(self, button: ViewerButton) -> None:
        """Listen for one click on the scene (pointer mode); the button stays disabled meanwhile."""
        if getattr(self.viewer_control, "viewer", None) is None:
            return
        button.set_disabled(True)
        self.c_status.value = "click on an object in the scene"

        def on_click(click: ViewerClick) -> None:
            try:
                self.handle_click(click)
            finally:
                self.viewer_control.unregister_pointer_cb()

        self.viewer_control.register_pointer_cb("click", on_click, removed_cb=lambda: button.set_disabled(False))

    def handle_click(self, click: ViewerClick) -> Optional[Pick]:
        """Select the object under a click of the viewer (takes the viewer's train lock)."""
        camera = self.viewer_control.get_camera(PICK_HEIGHT, None)
        if camera is None:
            return None
        viewer = getattr(self.viewer_control, "viewer", None)
        lock = getattr(viewer, "train_lock", None)
        with lock if lock is not None else contextlib.nullcontext():
            pick = self.pick(camera, (float(click.screen_pos[0]), float(click.screen_pos[1])))
            self.select(pick.instance_id, pick)
        rerender = getattr(viewer, "_trigger_rerender", None)
        if rerender is not None:
            rerender()
        return pick

    def pick(self, camera: Cameras, screen_pos: Tuple[float, float]) -> Pick:
        """Object id rendered at normalised image position ``screen_pos`` of ``camera``.

        Hidden objects (isolate / hide) are not pickable, as in the view. The caller holds
        the train lock when a trainer may be running.
        """
        started = time.perf_counter()
        model = self._owner()
        width, height = float(2 * camera.cx[0, 0]), float(2 * camera.cy[0, 0])
        x = min(max(screen_pos[0], 0.0), 1.0) * width
        y = min(max(screen_pos[1], 0.0), 1.0) * height
        patch = patch_camera(camera, x, y).to(model.device)
        was_training = model.training
        model.eval()
        try:
            with self.rendering_for_viewer(), torch.no_grad():
                outputs = model.get_outputs_for_camera(patch, obb_box=self._viewer_crop())
        finally:
            if was_training:
                model.train()
        instance_id = int(outputs["instance_id"][PICK_RADIUS, PICK_RADIUS, 0].item())
        return Pick(
            instance_id=instance_id,
            screen_pos=(float(screen_pos[0]), float(screen_pos[1])),
            pixel=(round(x, 2), round(y, 2)),
            image_size=(round(width), round(height)),
            seconds=round(time.perf_counter() - started, 4),
        )

    def _viewer_crop(self) -> Any:
        """The viewer's crop box when cropping is on (so a pick sees what the view shows)."""
        panel = getattr(getattr(self.viewer_control, "viewer", None), "control_panel", None)
        if panel is not None and getattr(panel, "crop_viewport", False):
            return panel.crop_obb
        return None

    # ------------------------------------------------------------------ rendering hooks

    @contextlib.contextmanager
    def rendering_for_viewer(self) -> Iterator[None]:
        """Within this block, renders on this thread show the selection effects (as viewer renders do)."""
        previous = getattr(_viewer_render, "active", False)
        _viewer_render.active = True
        try:
            yield
        finally:
            _viewer_render.active = previous

    def applies(self) -> bool:
        """Whether the current render gets selection effects: a viewer render with an object selected."""
        if self.selected_id is None:
            return False
        return bool(getattr(_viewer_render, "active", False)) or _on_viewer_render_thread()

    def visible_mask(self, crop: Optional[Tensor]) -> Optional[Tensor]:
        """Gaussians to render [N] bool (None: all): the crop, narrowed by isolate / hide.

        Called by the model's eval render before rasterizing; ``crop`` is the crop box mask.
        """
        isolate, hide = bool(self.d_isolate.value), bool(self.e_hide.value)
        if not (isolate or hide) or not self.applies():
            return crop
        selected = self._owner().gaussian_instance_ids() == self.selected_id  # [N]
        keep = selected if isolate else ~selected
        return keep if crop is None else keep & crop

    def highlight(self, outputs: Dict[str, Any]) -> Dict[str, Any]:
        """Tint the selected object and dim the rest in ``rgb`` and ``instance`` (viewer renders only).

        The highlighted pixels are those whose rendered id is the selection, i.e. exactly where
        a click would select it. In isolate / hide mode the view already shows the selection,
        so colours are left as rendered.
        """
        if not self.applies() or self.d_isolate.value or self.e_hide.value:
            return outputs
        weight = (outputs["instance_id"] == float(self.selected_id)).to(outputs["rgb"].dtype)  # [H, W, 1]
        tint = torch.tensor(TINT_COLOUR, device=weight.device, dtype=weight.dtype)
        keep = 1.0 - float(self.f_dim.value)
        for key in ("rgb", "instance"):
            image = outputs.get(key)
            if image is None:
                continue
            selected = (1.0 - TINT_STRENGTH) * image + TINT_STRENGTH * tint
            outputs[key] = weight * selected + (1.0 - weight) * keep * image
        return outputs

    # ------------------------------------------------------------------ isolate / hide

    def _on_isolate(self, checkbox: ViewerCheckbox) -> None:
        if checkbox.value and self.e_hide.value:
            self.e_hide.value = False
        self.write_state()

    def _on_hide(self, checkbox: ViewerCheckbox) -> None:
        if checkbox.value and self.d_isolate.value:
            self.d_isolate.value = False
        self.write_state()

    def _on_id_typed(self, number: ViewerNumber) -> None:
        typed = int(number.value)
        if typed != (self.selected_id or 0):
            self.select(typed)

    # ------------------------------------------------------------------ export

    def selected_gaussians(self) -> Gaussians:
        """The selected object's Gaussians (3DGS PLY layout, with their ids: the ones isolate / hide use)."""
        selected = self.selected_id
        if selected is None:
            raise InputError("no object is selected")
        gaussians = self._owner().gaussians(source=self.run_dir() or Path("viewer"))
        subset = gaussians.subset(gaussians.instance_ids == selected)
        if len(subset) == 0:
            raise InputError(f"object {selected} has no Gaussians (none decodes to that id)")
        return subset

    def export_selection(self, path: Optional[Path] = None) -> Path:
        """Write the selected object's Gaussians to a PLY (default: ``<run>/selections/object_<id>.ply``)."""
        gaussians = self.selected_gaussians()
        gaussians.check_finite()
        if path is None:
            folder = self.run_dir()
            if folder is None:
                raise InputError("no run folder to export into (pass a path)")
            path = folder / EXPORT_DIR / object_file_name(int(self.selected_id or 0))
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_gaussians_ply(path, gaussians)
        except OSError as exc:
            raise InputError(f"cannot write the PLY ({exc.strerror or exc})", path) from None
        self.last_export = path
        self.write_state()
        return path

    def _on_export_button(self) -> None:
        """Export, report in the GUI, and send the file to the browser."""
        try:
            path = self.export_selection()
        except InputError as exc:
            self.c_status.value = f"export failed: {exc}"
            return
        self.c_status.value = f"exported {path.name} ({path.parent})"
        server = getattr(self.viewer_control, "viser_server", None)
        if server is not None:
            server.send_file_download(path.name, path.read_bytes())
