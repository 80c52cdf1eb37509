"""Figures of ``ns-train mastsam-splat`` on CPU; prints medians and writes JSON.

On a synthetic scene (``mastsam synth``, ground-truth instances): the first run labels the
training views with the tracker (computed), later runs reuse its cache. Reported per run and
as medians over runs: iterations per second (and the median step time), the wall-time split
between the tracker and the training loop, and the final eval figures that the run writes to
``eval_metrics.json`` (consistent instance mIoU against ground truth, PSNR, SSIM).

Usage: python scripts/bench_plugin.py [--frames 40] [--width 320] [--height 240] [--iterations 300]
       [--repeats 2] [--threads 1] [--work-dir /tmp/bench_plugin]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import tyro


@dataclass
class BenchPlugin:
    """Benchmark the Nerfstudio method on CPU."""

    frames: int = 40
    """Views of the synthetic scene."""
    width: int = 320
    """Image width of the synthetic scene."""
    height: int = 240
    """Image height of the synthetic scene."""
    seed: int = 0
    """Scene seed."""
    iterations: int = 300
    """Training steps per run."""
    repeats: int = 2
    """Training runs (the first computes the tracker's labels, the others reuse them)."""
    threads: Optional[int] = 1
    """OMP_NUM_THREADS of the training runs (None: the environment's / torch's default)."""
    work_dir: Path = Path("/tmp/bench_plugin")
    """Scene, tracker cache and run folders (replaced)."""
    extra: list[str] = field(default_factory=list)
    """More ns-train options, e.g. --extra --pipeline.datamanager.cpu-max-image-size 160."""


def run_training(cfg: BenchPlugin, scene: Path, name: str) -> dict:
    command = [
        str(Path(sys.executable).with_name("ns-train")),
        "mastsam-splat",
        "--data", str(scene),
        "--machine.device-type", "cpu",
        "--max-num-iterations", str(cfg.iterations),
        "--vis", "tensorboard",
        "--viewer.quit-on-train-completion", "True",
        "--steps-per-eval-image", "1000000",
        "--steps-per-eval-all-images", "1000000",
        "--output-dir", str(cfg.work_dir / "outputs"),
        "--timestamp", name,
        *cfg.extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if cfg.threads is not None:
        env["OMP_NUM_THREADS"] = str(cfg.threads)
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"ns-train failed (exit {result.returncode})")
    run_dir = cfg.work_dir / "outputs" / scene.name / "mastsam-splat" / name
    report = json.loads((run_dir / "eval_metrics.json").read_text())
    report["wall_s"] = round(wall, 2)
    return report


def main(cfg: BenchPlugin) -> None:
    from mastsam_splat.synthetic import make_scene

    if cfg.work_dir.exists():
        shutil.rmtree(cfg.work_dir)
    cfg.work_dir.mkdir(parents=True)
    scene = make_scene(
        cfg.work_dir / "scene", frames=cfg.frames, width=cfg.width, height=cfg.height, seed=cfg.seed, progress=False
    )
    runs = []
    for i in range(cfg.repeats):
        report = run_training(cfg, scene, f"run{i}")
        t, e = report["timing"], report.get("eval", {})
        runs.append(report)
        print(
            f"run {i}: tracker {report['tracker']['status']} {t['tracker_s']:.1f} s | "
            f"training {t['training_s']:.1f} s, "
            f"{t['iterations_per_s']:.2f} it/s (median step {t['median_iteration_s']:.3f} s) | "
            f"mIoU {e.get('instance_miou_consistent')} PSNR {e.get('psnr')} | process {report['wall_s']:.0f} s",
            flush=True,
        )

    def median(values: list) -> float:
        values = [v for v in values if v is not None]
        return float(statistics.median(values)) if values else float("nan")

    computed = [r["timing"]["tracker_s"] for r in runs if r["tracker"]["status"] == "computed"]
    reused = [r["timing"]["tracker_s"] for r in runs if r["tracker"]["status"] == "reused"]
    summary = {
        "scene": {"frames": cfg.frames, "width": cfg.width, "height": cfg.height, "seed": cfg.seed},
        "iterations": cfg.iterations,
        "threads": cfg.threads,
        "tracker_frames": runs[0]["tracker"]["frames"],
        "tracker_ids": runs[0]["tracker"]["num_ids"],
        "eval_images": runs[0].get("eval_images"),
        "tracker_computed_s": median(computed),
        "tracker_reused_s": median(reused),
        "training_s": median([r["timing"]["training_s"] for r in runs]),
        "iterations_per_s": median([r["timing"]["iterations_per_s"] for r in runs]),
        "median_step_s": median([r["timing"]["median_iteration_s"] for r in runs]),
        "instance_miou_consistent": median([r.get("eval", {}).get("instance_miou_consistent") for r in runs]),
        "psnr": median([r.get("eval", {}).get("psnr") for r in runs]),
        "ssim": median([r.get("eval", {}).get("ssim") for r in runs]),
        "runs": runs,
    }
    out = cfg.work_dir / "bench_plugin.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    share = summary["tracker_computed_s"] / (summary["tracker_computed_s"] + summary["training_s"])
    print(
        f"\nmedians over {cfg.repeats} run(s), {cfg.frames} views {cfg.width}x{cfg.height}, {cfg.iterations} steps, "
        f"OMP_NUM_THREADS={cfg.threads}:\n"
        f"  iterations/s        {summary['iterations_per_s']:.2f} (median step {summary['median_step_s']:.3f} s)\n"
        f"  tracker (computed)  {summary['tracker_computed_s']:.1f} s for {summary['tracker_frames']} views "
        f"({summary['tracker_ids']} ids); reused: {summary['tracker_reused_s']:.2f} s\n"
        f"  training loop       {summary['training_s']:.1f} s  -> tracker share of a first run {100 * share:.0f}%\n"
        f"  eval ({summary['eval_images']} views)   "
        f"consistent instance mIoU {summary['instance_miou_consistent']:.3f}, "
        f"PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.3f}\n"
        f"  written to {out}"
    )


if __name__ == "__main__":
    main(tyro.cli(BenchPlugin))
