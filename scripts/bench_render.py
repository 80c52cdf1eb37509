"""Forward + backward time of the CPU torch rasterizer (medians).

Gaussians: ``--gaussians`` points of a synthetic orbit scene's point cloud (``mastsam synth``),
initialised as for training (isotropic, scale = mean distance to the 3 nearest neighbours,
opacity ``--opacity``), seen from the scene's first camera. For each resolution it times one
forward + backward pass of RGB + expected depth with and without 16 instance-feature
channels, at 1 and 2 torch threads, and reports wall and process CPU time.

    .venv/bin/python scripts/bench_render.py [--gaussians 10000] [--repeats 7]
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tyro


@dataclass
class BenchRender:
    """Time one forward + backward pass of the CPU torch rasterizer."""

    gaussians: int = 10_000
    """Gaussians taken from the scene's point cloud."""
    opacity: tuple[float, ...] = (0.1, 0.5)
    """Initial opacities to time."""
    repeats: int = 7
    """Timed runs per measurement (after one warm-up run)."""
    threads: tuple[int, ...] = (1, 2)
    """Torch thread counts to time."""
    sizes: tuple[str, ...] = ("160x120", "320x240")
    """Resolutions as WIDTHxHEIGHT."""
    scene: Optional[Path] = None
    """Existing synthetic scene (default: make one)."""


def main(args: BenchRender) -> None:
    import torch

    from mastsam_splat.io import load_scene
    from mastsam_splat.splat.init import gaussians_from_points
    from mastsam_splat.splat.params import activated
    from mastsam_splat.io.ply import read_point_cloud
    from mastsam_splat.splat.rendering import render

    with tempfile.TemporaryDirectory() as tmp:
        scene_dir = args.scene
        if scene_dir is None:
            from mastsam_splat.synthetic import make_scene

            scene_dir = make_scene(Path(tmp) / "scene", frames=8, width=320, height=240, seed=0, progress=False, max_points=max(20_000, args.gaussians))
        scene = load_scene(scene_dir, max_frames=1)
        cloud = read_point_cloud(scene.ply_file)
    cam = scene.frames[0].camera
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch {torch.__version__}")
    print(f"{'size':>8} {'opacity':>7} {'threads':>7} {'channels':>9} {'fwd+bwd wall ms':>16} {'cpu ms':>8} {'fwd ms':>7} {'visible':>8}")
    for opacity in args.opacity:
        params = gaussians_from_points(cloud, sh_degree=1, feature_dim=16, init_opacity=opacity, max_points=args.gaussians)
        for size in args.sizes:
            W, H = (int(v) for v in size.split("x"))
            K = cam.K.copy()
            K[0] *= W / cam.width
            K[1] *= H / cam.height
            viewmat = torch.as_tensor(cam.world_to_cam, dtype=torch.float32)[None]
            Ks = torch.as_tensor(K, dtype=torch.float32)[None]
            for threads in args.threads:
                torch.set_num_threads(threads)
                for with_features in (True, False):
                    times, cpus, fwds, vis = [], [], [], 0
                    for rep in range(args.repeats + 1):
                        for p in params.values():
                            p.grad = None
                        t0, c0 = time.perf_counter(), time.process_time()
                        act = activated(params)
                        out = render(
                            act["means"], act["quats"], act["scales"], act["opacities"], act["sh"], viewmat, Ks, W, H,
                            sh_degree=1, features=act["features"] if with_features else None, with_depth=True,
                            backgrounds=torch.zeros(1, 3), backend="torch",
                        )  # fmt: skip
                        t1 = time.perf_counter()
                        loss = out.rgb.square().mean() + out.depth.mean() * 1e-3
                        if with_features:
                            loss = loss + out.features.square().mean()
                        loss.backward()
                        if rep:  # first run warms up
                            times.append(time.perf_counter() - t0)
                            cpus.append(time.process_time() - c0)
                            fwds.append(t1 - t0)
                        vis = int((out.meta["radii"] > 0).sum())
                    chans = "RGB+16+D" if with_features else "RGB+D"
                    print(
                        f"{size:>8} {opacity:>7.2f} {threads:>7d} {chans:>9} {np.median(times) * 1e3:>16.1f} "
                        f"{np.median(cpus) * 1e3:>8.1f} {np.median(fwds) * 1e3:>7.1f} {vis:>8d}"
                    )


if __name__ == "__main__":
    main(tyro.cli(BenchRender))
