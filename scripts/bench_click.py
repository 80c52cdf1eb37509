"""Click -> highlighted frame latency of the viewer's object selection, on CPU, for a trained scene.

What a click costs on the server (the browser's transfer and decode excluded):

- ``click``: ``ObjectViewer.handle_click`` as the viewer's pointer callback runs it: the
  viewer camera, the train lock, the pick (a few-pixel patch render centred on the click),
  selecting the id (Gaussian count, ``viewer_selection.json``) and the re-render trigger.
- ``frame@H``: the re-rendered frame with the selection highlighted at H pixels high, as the
  viewer's render thread makes it (model render, colour map, uint8 image). Nerfstudio first
  renders a low-resolution preview after an interaction, then the static frame at "Max res"
  (512 by default). ``plain_frame@H`` is the same frame without selection effects: the
  difference is what highlighting costs.

Clicks land on random pixels that show an object, in the run's training views; each pick is
checked against the id of a full render at that pixel.

Usage: python scripts/bench_click.py [--load-config RUN/config.yml] [--work-dir /tmp/bench_click] [--clicks 20]
Without --load-config a small synthetic scene is trained once with ``ns-train mastsam-splat``
(kept in the work folder and reused).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Tuple

import numpy as np
import tyro


@dataclass
class BenchClick:
    """Measure click -> highlighted frame latency (see module docstring)."""

    load_config: Optional[Path] = None
    """config.yml of a trained mastsam-splat run (default: train a small synthetic scene)."""
    work_dir: Path = Path("/tmp/bench_click")
    """Scene, run and results folder (the trained run is reused across invocations)."""
    clicks: int = 20
    """Timed clicks (medians are reported)."""
    frame_heights: Tuple[int, ...] = (128, 512)
    """Heights of the highlighted frame to time (a preview and the viewer's default Max res)."""
    frames: int = 16
    """Views of the synthetic scene (when training one)."""
    width: int = 128
    height: int = 96
    max_points: int = 8000
    """Seed points of the synthetic scene."""
    iterations: int = 100
    """Training iterations (when training one)."""
    threads: Optional[int] = None
    """torch CPU threads (default: torch's choice)."""
    seed: int = 0


def train_scene(cfg: BenchClick) -> Path:
    """config.yml of the small synthetic run, trained with ns-train on CPU unless it already exists."""
    from mastsam_splat.synthetic import make_scene

    outputs = cfg.work_dir / "outputs"
    tag = f"f{cfg.frames}_{cfg.width}x{cfg.height}_p{cfg.max_points}_it{cfg.iterations}"
    for config in sorted(outputs.glob(f"{tag}/mastsam-splat/*/config.yml")):
        if list((config.parent / "nerfstudio_models").glob(f"step-{cfg.iterations - 1:09d}.ckpt")):
            return config
    scene = cfg.work_dir / tag
    if not (scene / "transforms.json").is_file():
        make_scene(
            scene,
            frames=cfg.frames,
            width=cfg.width,
            height=cfg.height,
            seed=cfg.seed,
            max_points=cfg.max_points,
            progress=False,
        )
    command = [
        str(Path(sys.executable).parent / "ns-train"), "mastsam-splat", "--data", str(scene),
        "--output-dir", str(outputs), "--experiment-name", tag,
        "--max-num-iterations", str(cfg.iterations), "--steps-per-save", str(cfg.iterations),
        "--steps-per-eval-image", "1000000", "--steps-per-eval-all-images", "1000000",
        "--vis", "tensorboard", "--machine.device-type", "cpu", "--pipeline.final-eval", "False",
    ]  # fmt: skip
    print("training:", " ".join(command), file=sys.stderr)
    subprocess.run(command, check=True, cwd=cfg.work_dir)
    return max(outputs.glob(f"{tag}/mastsam-splat/*/config.yml"))


def viewer_camera(cameras, index: int, height: int):
    """Training camera ``index`` at ``height`` pixels (same field of view), as the viewer's get_camera gives it."""
    from nerfstudio.cameras.cameras import Cameras, CameraType

    cam = cameras[index : index + 1]
    scale = height / float(cam.height[0, 0])
    return Cameras(
        camera_to_worlds=cam.camera_to_worlds.clone(),
        fx=cam.fx * scale,
        fy=cam.fy * scale,
        cx=cam.cx * scale,
        cy=cam.cy * scale,
        width=round(float(cam.width[0, 0]) * scale),
        height=height,
        camera_type=CameraType.PERSPECTIVE,
    )


def viewer_frame(model, camera, highlighted: bool) -> float:
    """Seconds to make one viewer frame (render, colour map, uint8), with or without the selection effects."""
    import torch
    from nerfstudio.utils import colormaps

    started = time.perf_counter()
    with model.object_viewer.rendering_for_viewer() if highlighted else contextlib.nullcontext(), torch.no_grad():
        out = model.get_outputs_for_camera(camera)
        image = (colormaps.apply_colormap(out["rgb"]) * 255).type(torch.uint8).cpu().numpy()
    assert image.shape[0] == int(camera.height[0, 0])
    return time.perf_counter() - started


def near_tie(model, outputs: dict, y: int, x: int) -> dict:
    """How close a pixel of a full render is to changing id: top-2 class probability gap and opacity."""
    import torch

    with torch.no_grad():
        probs = torch.softmax(model.instance_head(outputs["instance_features"][y, x]), dim=-1)
    top = probs.topk(2).values
    return {
        "probability_gap": round(float(top[0] - top[1]), 4),
        "top_probability": round(float(top[0]), 4),
        "alpha": round(float(outputs["accumulation"][y, x, 0]), 4),
    }


def main(cfg: BenchClick) -> dict:
    import torch
    from nerfstudio.utils.eval_utils import eval_setup
    from nerfstudio.viewer.viewer_elements import ViewerClick

    from nerfstudio_plugin.viewer import PICK_HEIGHT

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    config_path = cfg.load_config or train_scene(cfg)
    _, pipeline, _, step = eval_setup(config_path, test_mode="test")
    model = pipeline.model
    model.eval()
    cameras = pipeline.datamanager.train_dataset.cameras
    viewer = model.object_viewer
    viewer.output_dir = cfg.work_dir / "selection"
    state = {"view": 0}
    fake = SimpleNamespace(
        train_lock=threading.Lock(),
        log_filename=viewer.output_dir / "viewer_log_filename.txt",
        control_panel=SimpleNamespace(crop_viewport=False),
        _trigger_rerender=lambda: None,
    )
    viewer.viewer_control.viewer = fake
    viewer.viewer_control.get_camera = lambda h, w=None, client_id=None: viewer_camera(cameras, state["view"], h)

    rng = np.random.default_rng(cfg.seed)
    timings: dict = {"click": [], "pick": []}
    wrong: list = []
    for i in range(cfg.clicks + 1):  # the first click warms up (allocations, lazy imports)
        state["view"] = i % len(cameras)
        with torch.no_grad():
            full = model.get_outputs_for_camera(viewer_camera(cameras, state["view"], PICK_HEIGHT))
        ids = full["instance_id"][..., 0].long().cpu().numpy()
        ys, xs = np.nonzero(ids > 0)
        if len(xs) == 0:
            continue
        j = int(rng.integers(len(xs)))
        h, w = ids.shape
        click = ViewerClick((0.0, 0.0, 0.0), (0.0, 0.0, 1.0), ((xs[j] + 0.5) / w, (ys[j] + 0.5) / h))

        t0 = time.perf_counter()
        pick = viewer.handle_click(click)
        t1 = time.perf_counter()
        if pick.instance_id != ids[ys[j], xs[j]]:
            wrong.append(near_tie(model, full, int(ys[j]), int(xs[j])))
        frames = {}
        for height in cfg.frame_heights:
            camera = viewer_camera(cameras, state["view"], height)
            frames[f"frame@{height}"] = viewer_frame(model, camera, highlighted=True)
            frames[f"plain_frame@{height}"] = viewer_frame(model, camera, highlighted=False)
        if i == 0:
            continue
        timings["click"].append(t1 - t0)
        timings["pick"].append(pick.seconds)
        for key, seconds in frames.items():
            timings.setdefault(key, []).append(seconds)

    medians = {k: statistics.median(v) for k, v in timings.items() if v}
    for height in cfg.frame_heights:
        medians[f"click_to_frame@{height}"] = medians["click"] + medians[f"frame@{height}"]
    result = {
        "config": str(config_path),
        "step": int(step),
        "gaussians": int(model.num_points),
        "instance_classes": int(model.num_instance_classes),
        "clicks": len(timings["click"]),
        "wrong_picks": len(wrong),
        "wrong_pick_margins": wrong,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "median_seconds": {k: round(v, 4) for k, v in medians.items()},
    }
    out_file = cfg.work_dir / "bench_click.json"
    out_file.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{result['gaussians']} Gaussians, {result['clicks']} clicks, {len(wrong)} picks disagreeing with a full render"
    )
    for margin in wrong:
        print(f"  disagreement at a near tie: {margin}")
    for key, value in medians.items():
        print(f"median {key:>20}: {value * 1000:8.1f} ms")
    print(f"wrote {out_file}")
    return result


if __name__ == "__main__":
    main(tyro.cli(BenchClick))
