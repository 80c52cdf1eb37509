"""Time synthetic scene generation (``make_scene``) and print the median over several runs.

Usage: python scripts/bench_synth.py [--frames 40] [--width 320] [--height 240] [--runs 5]
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

from mastsam_splat.synthetic import make_scene
from mastsam_splat.synthetic.layout import Trajectory


@dataclass
class BenchSynth:
    """Generate the same scene several times and report wall-clock time per run."""

    frames: int = 40
    """Views per scene."""
    width: int = 320
    """Image width in pixels."""
    height: int = 240
    """Image height in pixels."""
    runs: int = 5
    """Timed runs per trajectory."""
    trajectories: tuple[Trajectory, ...] = ("orbit", "forward")
    """Camera paths to time."""


def main(cfg: BenchSynth) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for trajectory in cfg.trajectories:
            times, cpu = [], []
            for run in range(cfg.runs):
                out = Path(tmp) / f"{trajectory}_{run}"
                start, start_cpu = time.perf_counter(), time.process_time()
                make_scene(out, cfg.frames, cfg.width, cfg.height, seed=0, trajectory=trajectory, progress=False)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            median = statistics.median(times)
            print(
                f"{trajectory:8s} {cfg.frames} frames {cfg.width}x{cfg.height}: median {median:.2f} s wall "
                f"({median / cfg.frames * 1000:.0f} ms/frame), min {min(times):.2f} s, max {max(times):.2f} s, "
                f"median CPU {statistics.median(cpu):.2f} s, runs {cfg.runs}"
            )
    print(f"load average over the last minute: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main(tyro.cli(BenchSynth))
