"""Figures of the training-free lift (``mastsam lift``); prints medians and writes JSON.

Three figures, on synthetic scenes from ``mastsam synth`` (ground-truth depth and ids), with
the project's standalone Gaussian trainer (``mastsam_splat.splat.trainer``) as the reference:

- ``quality``: instance mIoU (consistent, docs/architecture.md) of labels rendered from held-out views
  (every 8th frame): the trained instance feature vs. the lift of the *same* trained Gaussians
  from the same training views and label images.
- ``speed``: wall time of the lift vs. the extra training time of the instance feature, on the
  same 100k Gaussians and 40 views: the trainer's step time with the feature (D = 16: rendered
  channels, head, cross-entropy, k-NN regulariser) minus without it (D = 0), times a full
  schedule (the trainer's default steps and Splatfacto's 30000).
- ``memory``: peak resident memory of a fresh process that lifts 1M Gaussians over 200 views
  at 320x240 (``resource.getrusage`` high-water mark, and a psutil sampler).

Usage: python scripts/bench_lift.py {quality,speed,memory} [--work-dir /tmp/bench_lift] [options]

Modules only the speed and quality figures need (trainer, metrics, tracker) are imported where
they are used, so the memory worker's process holds no more than the lift needs.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

from mastsam_splat.io import load_scene, read_label_image
from mastsam_splat.io.gaussians import Gaussians, rgb_to_sh
from mastsam_splat.objects.lift import LiftConfig, LiftView, lift_labels, render_label_image
from mastsam_splat.synthetic import is_synthetic_scene, make_scene


@dataclass
class BenchLift:
    """Measure the lift's figures (see module docstring)."""

    figure: tyro.conf.Positional[Literal["quality", "speed", "memory", "memory-worker"]]
    """Which figure to measure."""
    work_dir: Path = Path("/tmp/bench_lift")
    """Scenes, runs and results are kept here (reused across invocations)."""
    repeats: int = 3
    """Timed repetitions (medians are reported)."""
    gaussians: Optional[int] = None
    """Number of Gaussians (default: 100k for speed, 1M for memory)."""
    views: Optional[int] = None
    """Number of views (default: 40 for speed and quality, 200 for memory)."""
    width: int = 320
    height: int = 240
    train_steps: int = 30000
    """Training steps the extra cost of the feature is also multiplied by (Splatfacto's default schedule)."""
    timing_steps: int = 12
    """Training steps timed with and without the feature (interleaved) for the feature's cost."""
    quality_steps: int = 600
    """Training steps of the reference run for the quality figure (the trainer's default)."""
    quality_size: tuple[int, int] = (160, 120)
    """Image size of the quality scene."""
    quality_labels: Literal["gt", "tracker"] = "gt"
    """Label images for both training and lift: ground-truth instances, or the MastSAM tracker's masks."""
    seed: int = 0


# ---------------------------------------------------------------------------------------------
# scenes


def scene(work: Path, frames: int, width: int, height: int, seed: int = 0) -> Path:
    path = work / f"scene_{frames}_{width}x{height}_s{seed}"
    if not is_synthetic_scene(path):
        make_scene(path, frames=frames, width=width, height=height, seed=seed, progress=False)
    return path


def surface_gaussians(scene_dir: Path, n: int, seed: int = 0) -> tuple[Gaussians, np.ndarray]:
    """``n`` small isotropic Gaussians on the scene's surfaces (unprojected depth) and their true ids.

    Radii follow the local point spacing (half the mean distance to 3 neighbours), as a
    trained scene's Gaussians tile its surfaces.
    """
    from scipy.spatial import cKDTree

    s = load_scene(scene_dir)
    rng = np.random.default_rng(seed)
    per_view = -(-n // len(s.frames))
    xyz, rgb, ids = [], [], []
    for f in s.frames:
        truth = read_label_image(scene_dir / "instances" / f"{f.name}.png")
        valid = np.flatnonzero(f.depth.reshape(-1) > 0)
        pick = rng.choice(valid, size=min(per_view, len(valid)), replace=False)
        rows, cols = np.divmod(pick, f.width)
        xy = np.stack([cols + rng.random(len(pick)), rows + rng.random(len(pick))], axis=1)
        xyz.append(f.camera.unproject(xy, f.depth.reshape(-1)[pick]))
        rgb.append(f.image.reshape(-1, 3)[pick] / 255.0)
        ids.append(truth.reshape(-1)[pick])
    xyz, rgb, ids = np.concatenate(xyz)[:n], np.concatenate(rgb)[:n], np.concatenate(ids)[:n]
    dist, _ = cKDTree(xyz).query(xyz, k=4, workers=-1)
    radius = 0.5 * dist[:, 1:].mean(axis=1) + 1e-4
    g = Gaussians(
        means=xyz,
        quats=np.tile([1.0, 0, 0, 0], (len(xyz), 1)),
        scales=np.log(np.repeat(radius[:, None], 3, axis=1)),
        opacities=np.full(len(xyz), 2.0),
        sh_dc=rgb_to_sh(rgb),
        sh_rest=np.zeros((len(xyz), 0, 3)),
    )
    return g, ids.astype(np.int32)


def gt_views(scene_dir: Path, names: Optional[set[str]] = None) -> list[LiftView]:
    s = load_scene(scene_dir)
    return [
        LiftView(f.name, f.camera, (lambda p=scene_dir / "instances" / f"{f.name}.png": read_label_image(p)))
        for f in s.frames
        if names is None or f.name in names
    ]


# ---------------------------------------------------------------------------------------------
# speed


def write_init_cloud(g: Gaussians, ids: np.ndarray, path: Path) -> Path:
    """The Gaussians' centres, colours and ids as the labelled point cloud the trainer starts from."""
    from mastsam_splat.io.ply import PointCloud, write_point_cloud

    rgb = np.round(g.colors * 255).astype(np.uint8)
    return write_point_cloud(path, PointCloud(xyz=g.means, rgb=rgb, instance_id=ids.astype(np.int64)))


def step_costs(scene_dir: Path, init: Path, n: int, steps: int, seed: int = 0) -> dict[str, list[float]]:
    """Per-step time of the trainer's step without and with the instance feature, interleaved.

    The step is the standalone trainer's ``train_step``: ``rendering.render`` of SH colour (and,
    with the feature, D = 16 feature channels in the same pass), L1 + SSIM, ``instance_loss``
    through the head and the ``KnnRegularizer``, backward, Adam; no densification, black
    background. Two training states start from the same Gaussians (feature D = 16 and D = 0);
    they alternate on the same views, and each step is timed in wall-clock and in this
    process's CPU seconds (robust to other processes on the machine).
    """
    from mastsam_splat.splat.config import InstanceConfig
    from mastsam_splat.splat.init import gaussians_from_points
    from mastsam_splat.splat.instance import LabelSpace
    from mastsam_splat.io.ply import read_point_cloud
    from mastsam_splat.splat.train_step import make_train_state, train_step, view_of_frame
    from mastsam_splat.splat.trainer import SplatTrainConfig

    s = load_scene(scene_dir)
    labels = [read_label_image(scene_dir / "instances" / f"{f.name}.png") for f in s.frames]
    space = LabelSpace.from_label_maps(labels)
    views = [view_of_frame(f, space, lab) for f, lab in zip(s.frames, labels)]
    cloud = read_point_cloud(init)
    base = SplatTrainConfig(
        data=scene_dir, steps=2 * steps + 2, sh_degree=1, sh_degree_interval=1, background="black", densify=False,
        backend="torch", device="cpu", seed=seed,
    )  # fmt: skip
    states = {}
    for with_feature in (False, True):
        config = replace(base, instance=InstanceConfig(feature_dim=InstanceConfig().feature_dim if with_feature else 0))
        params = gaussians_from_points(
            cloud, sh_degree=1, feature_dim=config.instance.feature_dim, init_opacity=config.init_opacity,
            space=space, max_points=n, seed=seed,
        )  # fmt: skip
        states[with_feature] = make_train_state(config, params, space, views, seed_head=True, backend="torch")

    def step(i: int, with_feature: bool) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        train_step(states[with_feature], views[i % len(views)], i)
        return time.perf_counter() - wall, time.process_time() - cpu

    for with_feature in (False, True):
        step(1, with_feature)  # warm-up (allocations, KD-tree)
    costs: dict[str, list[float]] = {"wall_without": [], "wall_with": [], "cpu_without": [], "cpu_with": []}
    for i in range(steps):
        for with_feature in (False, True) if i % 2 == 0 else (True, False):
            wall, cpu = step(i + 1, with_feature)
            key = "with" if with_feature else "without"
            costs[f"wall_{key}"].append(wall)
            costs[f"cpu_{key}"].append(cpu)
    return costs


def bench_speed(cfg: BenchLift) -> dict:
    from mastsam_splat.splat.trainer import SplatTrainConfig

    n = cfg.gaussians or 100_000
    views = cfg.views or 40
    scene_dir = scene(cfg.work_dir, views, cfg.width, cfg.height, cfg.seed)
    g, truth = surface_gaussians(scene_dir, n, cfg.seed)
    init = write_init_cloud(g, truth, cfg.work_dir / f"init_{n}_{scene_dir.name}.ply")

    lift_times, lift_cpu, per_view = [], [], []
    result = None
    for _ in range(cfg.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = lift_labels(g, gt_views(scene_dir), LiftConfig(rasterizer="torch", check_views=0))
        lift_times.append(time.perf_counter() - t0)
        lift_cpu.append(time.process_time() - c0)
        per_view.append(result.timing["per_view_s"])
    seen = result.instance_ids >= 0
    costs = step_costs(scene_dir, init, n, cfg.timing_steps, cfg.seed)
    med = {k: statistics.median(v) for k, v in costs.items()}
    extra = max(med["wall_with"] - med["wall_without"], 0.0)
    extra_cpu = max(med["cpu_with"] - med["cpu_without"], 0.0)
    lift_s = statistics.median(lift_times)
    lift_cpu_s = statistics.median(lift_cpu)
    trainer_steps = SplatTrainConfig(data=scene_dir).steps
    return {
        "gaussians": len(g),
        "views": views,
        "size": [cfg.width, cfg.height],
        "lift_s_median": round(lift_s, 2),
        "lift_s_runs": [round(t, 2) for t in lift_times],
        "lift_cpu_s_median": round(lift_cpu_s, 2),
        "lift_per_view_s_median": round(statistics.median(per_view), 3),
        "lift_accuracy_vs_true_ids": round(float((result.instance_ids[seen] == truth[seen]).mean()), 4),
        "step_s_median": {k: round(v, 3) for k, v in med.items()},
        "timed_steps_each": cfg.timing_steps,
        "feature_overhead_per_step_s": {"wall": round(extra, 3), "cpu": round(extra_cpu, 3)},
        "feature_overhead_ratio_cpu": round(med["cpu_with"] / med["cpu_without"], 3),
        "extra_training_s": {
            f"{trainer_steps} steps (standalone trainer default)": round(extra * trainer_steps, 1),
            f"{cfg.train_steps} steps (mastsam-splat / Splatfacto schedule)": round(extra * cfg.train_steps, 1),
        },
        "lift_speedup_vs_extra_training": {
            f"{trainer_steps} steps, wall": round(extra * trainer_steps / lift_s, 2),
            f"{trainer_steps} steps, cpu": round(extra_cpu * trainer_steps / lift_cpu_s, 2),
            f"{cfg.train_steps} steps, wall": round(extra * cfg.train_steps / lift_s, 1),
            f"{cfg.train_steps} steps, cpu": round(extra_cpu * cfg.train_steps / lift_cpu_s, 1),
        },
    }


# ---------------------------------------------------------------------------------------------
# memory


class PeakSampler:
    """Samples this process's RSS with psutil every ``interval`` seconds (the high-water mark)."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        self.process = psutil.Process()
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_worker(cfg: BenchLift) -> dict:
    """Runs in a fresh process: build the scene's Gaussians, then lift and report peak memory."""
    n = cfg.gaussians or 1_000_000
    views = cfg.views or 200
    scene_dir = scene(cfg.work_dir, views, cfg.width, cfg.height, cfg.seed)
    ply = cfg.work_dir / f"gaussians_{n}_{scene_dir.name}.ply"
    from mastsam_splat.io.ply import read_gaussians_ply, write_gaussians_ply

    if not ply.is_file():
        g, _ = surface_gaussians(scene_dir, n, cfg.seed)
        write_gaussians_ply(ply, g)
        return {"prepared": str(ply)}
    g = read_gaussians_ply(ply)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with PeakSampler() as sampler:
        t0 = time.perf_counter()
        result = lift_labels(g, gt_views(scene_dir), LiftConfig(rasterizer="torch", check_views=0))
        wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "gaussians": len(g),
        "views": views,
        "size": [cfg.width, cfg.height],
        "peak_rss_gb": round(peak / 2**30, 3),
        "peak_rss_sampled_gb": round(sampler.peak / 2**30, 3),
        "rss_before_lift_gb": round(base / 2**30, 3),
        "lift_s": round(wall, 1),
        "per_view_s": round(result.timing["per_view_s"], 2),
        "counts": result.counts(),
    }


def bench_memory(cfg: BenchLift) -> dict:
    """Prepare the Gaussians in one process, then measure the lift alone in a fresh one."""
    args = [
        sys.executable,
        __file__,
        "memory-worker",
        "--work-dir",
        str(cfg.work_dir),
        "--width",
        str(cfg.width),
        "--height",
        str(cfg.height),
        "--seed",
        str(cfg.seed),
    ]
    if cfg.gaussians:
        args += ["--gaussians", str(cfg.gaussians)]
    if cfg.views:
        args += ["--views", str(cfg.views)]
    result = {}
    for _ in range(2):  # first run may only prepare the scene
        out = subprocess.run(args, check=True, capture_output=True, text=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if "prepared" not in result:
            break
    return result


# ---------------------------------------------------------------------------------------------
# quality


def bench_quality(cfg: BenchLift) -> dict:
    """Held-out instance mIoU: trained feature vs. lift of the same trained Gaussians, same label images."""
    import torch

    from mastsam_splat.metrics import consistent_miou, overlap_table, per_view_miou
    from mastsam_splat.io.gaussians import to_gaussians
    from mastsam_splat.splat.trainer import SplatTrainConfig, train

    views = cfg.views or 40
    width, height = cfg.quality_size
    scene_dir = scene(cfg.work_dir, views, width, height, cfg.seed)
    labels = scene_dir / "instances"
    if cfg.quality_labels == "tracker":
        from mastsam_splat.cli.track import TrackCommand, run_track

        track_dir = cfg.work_dir / f"track_{scene_dir.name}"
        run_track(TrackCommand(data=scene_dir, output_dir=track_dir, matcher="geometric", quiet=True))
        labels = track_dir / "masks"
    config = SplatTrainConfig(data=scene_dir, labels=labels, steps=cfg.quality_steps, backend="torch", progress=False)
    trained = train(config)

    s = load_scene(scene_dir)
    held = {i for i in range(len(s.frames)) if config.eval_every > 0 and i % config.eval_every == 0}
    train_frames = [f for i, f in enumerate(s.frames) if i not in held]
    held_frames = [f for i, f in enumerate(s.frames) if i in held]
    g = to_gaussians({k: v.detach() for k, v in trained.params.items()}, with_features=False)
    lift_views = [
        LiftView(f.name, f.camera, (lambda p=labels / f"{f.name}.png": read_label_image(p))) for f in train_frames
    ]
    lift_times, result = [], None
    for _ in range(cfg.repeats):
        t0 = time.perf_counter()
        result = lift_labels(g, lift_views, LiftConfig(rasterizer="torch", check_views=0))
        lift_times.append(time.perf_counter() - t0)
    lifted = g.with_ids(result.instance_ids)
    truth = [read_label_image(scene_dir / "instances" / f"{f.name}.png") for f in held_frames]
    with torch.no_grad():
        pred = [
            render_label_image(lifted, f.camera, LiftConfig(rasterizer="torch"), min_alpha=0.5) for f in held_frames
        ]
    table = overlap_table(pred, truth)
    lift = {
        "consistent_miou": round(consistent_miou(table).miou, 4),
        "per_view_miou": round(per_view_miou(table).miou, 4),
    }
    feature = {
        "consistent_miou": round(trained.metrics["miou"], 4),
        "per_view_miou": round(trained.metrics["miou_per_view"], 4),
    }
    return {
        "scene": scene_dir.name,
        "labels": cfg.quality_labels,
        "train_steps": cfg.quality_steps,
        "gaussians": len(g),
        "train_views": len(train_frames),
        "held_out_views": len(held_frames),
        "held_out_psnr": round(trained.metrics["psnr"], 2),
        "trained_feature": feature,
        "lift": lift,
        "lift_over_trained": round(lift["consistent_miou"] / max(feature["consistent_miou"], 1e-9), 3),
        "lift_s_median": round(statistics.median(lift_times), 2),
        "training_s": round(trained.metrics["train_seconds"], 1),
    }


# ---------------------------------------------------------------------------------------------


def main(cfg: BenchLift) -> None:
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.figure == "memory-worker":
        print(json.dumps(memory_worker(cfg)))
        return
    result = {"speed": bench_speed, "memory": bench_memory, "quality": bench_quality}[cfg.figure](cfg)
    result["load_average_1min"] = round(os.getloadavg()[0], 1)
    result["cpus"] = os.cpu_count()
    result["bench_s"] = round(time.perf_counter() - t0, 1)
    out = cfg.work_dir / f"{cfg.figure}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for key, value in result.items():
        print(f"{key:32s} {value}")
    print(f"written to {out}")


if __name__ == "__main__":
    main(tyro.cli(BenchLift))
