"""``mastsam lift`` of many Gaussians over many views on CUDA: wall time and peak GPU memory.

The Gaussians tile the synthetic scene's surfaces (unprojected depth, as in scripts/bench_lift.py)
and the label images are its ground-truth instances; the lift runs through the command line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import REPO, peak_memory_gib, require_cuda, reset_peak_memory, work_dir, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    args = parser.parse_args()
    device = require_cuda()
    sys.path.insert(0, str(REPO / "scripts"))
    from bench_lift import surface_gaussians

    from mastsam_splat.cli import entrypoint
    from mastsam_splat.io.ply import write_gaussians_ply

    figures: dict = {"gaussians": args.gaussians}
    ply = work_dir() / f"lift_gaussians_{args.gaussians}.ply"
    start = time.perf_counter()
    if not ply.is_file():
        g, _ = surface_gaussians(args.scene, args.gaussians)
        write_gaussians_ply(ply, g)
    figures["prepare_s"] = round(time.perf_counter() - start, 1)
    out = work_dir() / "lift_out"
    reset_peak_memory()
    start = time.perf_counter()
    code = entrypoint(
        ["lift", "--ply", str(ply), "--data", str(args.scene), "--masks", str(args.scene / "instances"),
         "--output-dir", str(out), "--rasterizer", "gsplat" if device == "cuda" else "torch", "--quiet"]  # fmt: skip
    )
    figures["lift_s"] = round(time.perf_counter() - start, 2)
    figures["peak_gpu_memory_gib"] = peak_memory_gib()
    figures["views"] = len(list((args.scene / "instances").glob("*.png")))
    if code:
        figures["error"] = f"mastsam lift exited with {code}"
    write_result(figures)
    return 1 if code else 0


if __name__ == "__main__":
    sys.exit(main())
