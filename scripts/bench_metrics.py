"""Time the metrics on 40 views at 320x240 (12 objects, each split in 3 parts with ids shuffled per view).

Usage: python scripts/bench_metrics.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import tyro

from mastsam_splat.metrics import (
    Correspondences,
    consistency_scores,
    consistent_miou,
    evaluate,
    granularity,
    id_switches,
    overlap_table,
    per_view_miou,
    view_pairs,
)

VIEWS, HEIGHT, WIDTH = 40, 240, 320


@dataclass
class BenchMetrics:
    """Time each metric on a fixed set of generated label maps (no options)."""


def make_labels(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ground truth of 12 squares per view; predictions split each square into 3 strips with random ids."""
    rng = np.random.default_rng(seed)
    gt, pred = [], []
    for _ in range(VIEWS):
        g = np.zeros((HEIGHT, WIDTH), np.uint16)
        p = np.zeros((HEIGHT, WIDTH), np.uint16)
        for k in range(1, 13):
            x0, y0 = rng.integers(0, WIDTH - 60), rng.integers(0, HEIGHT - 60)
            g[y0 : y0 + 60, x0 : x0 + 60] = k
            for s in range(3):
                p[y0 : y0 + 60, x0 + 20 * s : x0 + 20 * s + 20] = rng.integers(1, 200)
        gt.append(g)
        pred.append(p)
    return gt, pred


def median_seconds(fn: Callable[[], object], repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(_: BenchMetrics) -> None:
    gt, pred = make_labels()

    def mious() -> None:
        table = overlap_table(pred, gt)
        per_view_miou(table)
        consistent_miou(table)
        id_switches(table)

    ys, xs = np.mgrid[0:HEIGHT:2, 0:WIDTH:2]
    xy = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)
    corr = [Correspondences(a, b, xy, xy + [b - a, 0]) for a, b in view_pairs(VIEWS)]
    print(f"overlap table + per-view + consistent mIoU + id switches: {median_seconds(mious) * 1e3:.1f} ms")
    print(f"granularity: {median_seconds(lambda: granularity(pred)) * 1e3:.1f} ms")
    print(
        f"consistency over {len(corr)} pairs x {len(xy)} correspondences: "
        f"{median_seconds(lambda: consistency_scores(pred, corr, gt), 3) * 1e3:.1f} ms"
    )
    print(f"evaluate (everything, with ground truth): {median_seconds(lambda: evaluate(pred, gt, corr), 3) * 1e3:.1f} ms")


if __name__ == "__main__":
    main(tyro.cli(BenchMetrics))
