"""Accuracy and speed of the matcher backends (medians over repeats).

1. ``sift`` on the opencv-doc aloe stereo pair against its ground-truth disparity
   (aloeGT.png: left-view disparity in full-resolution pixels, 0 = unknown;
   left (x, y) <-> right (x - d, y)), at full and half resolution.
2. Every backend on a synthetic scene: error of xy_b against the true position of xy_a in b
   (a's depth and both cameras), and the cycle error (xy_b carried back to a through b's own
   depth), which for ``geometric`` is zero up to depth quantization where nothing is occluded.
3. Time per frame pair of each backend at 320x240 and 640x480 on synthetic scenes
   (``mast3r`` only when a checkpoint is given).

Run: ``.venv/bin/python scripts/bench_matchers.py [--repeats 5] [--mast3r-checkpoint PATH]``
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import tyro

from mastsam_splat.geometry.reprojection import sample_inverse_depth_bilinear
from mastsam_splat.io import load_scene
from mastsam_splat.matchers import make_matcher
from mastsam_splat.synthetic import make_scene
from mastsam_splat.types import Frame, Matches


@dataclass
class BenchMatchers:
    """Benchmark the matchers."""

    repeats: int = 5
    """Timed runs per measurement (medians are printed)."""
    aloe_dir: Path = Path("/usr/share/doc/opencv-doc/examples/data")
    """Folder with aloeL.jpg, aloeR.jpg and aloeGT.png."""
    synthetic_frames: int = 40
    """Frames of each synthetic 360-degree orbit (consecutive pairs, 9 degrees apart at 40, are matched)."""
    synthetic_pairs: int = 4
    """Consecutive pairs of each synthetic scene to evaluate."""
    mast3r_checkpoint: Optional[Path] = None
    """MASt3R checkpoint; without it mast3r is not timed."""
    mast3r_repo: Optional[Path] = None
    """Clone of naver/mast3r when it is not on PYTHONPATH."""
    mast3r_image_size: int = 512
    """Network input size for mast3r."""


def timed(match: Callable[[Frame, Frame], Matches], a: Frame, b: Frame, repeats: int) -> tuple[Matches, float, float]:
    """``match(a, b)`` and its median wall and CPU seconds over ``repeats`` runs."""
    walls, cpus = [], []
    result = Matches.empty()
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = match(a, b)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return result, float(np.median(walls)), float(np.median(cpus))


def bench_aloe(cfg: BenchMatchers) -> None:
    paths = [cfg.aloe_dir / n for n in ("aloeL.jpg", "aloeR.jpg", "aloeGT.png")]
    if not all(p.exists() for p in paths):
        print(f"aloe pair not found in {cfg.aloe_dir} (apt-get install opencv-doc); skipped")
        return
    disparity = cv2.imread(str(paths[2]), cv2.IMREAD_UNCHANGED).astype(np.float64)
    matcher = make_matcher("sift")
    print("\n## sift on the aloe stereo pair (ground-truth disparity)")
    print(f"{'scale':>6} {'size':>10} {'matches':>8} {'with GT':>8} {'<1px':>7} {'<2px':>7} {'wall s':>7} {'cpu s':>7}")
    for scale in (1.0, 0.5):
        images = []
        for p in paths[:2]:
            bgr = cv2.imread(str(p))
            if scale != 1.0:
                bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            images.append(np.ascontiguousarray(bgr[:, :, ::-1]))
        left, right = Frame(images[0], "aloeL"), Frame(images[1], "aloeR")
        matches, wall, cpu = timed(matcher.match, left, right, cfg.repeats)
        full = matches.xy_a / scale
        d = disparity[np.floor(full[:, 1]).astype(int), np.floor(full[:, 0]).astype(int)] * scale
        known = d > 0
        err = np.hypot(
            matches.xy_a[known, 0] - d[known] - matches.xy_b[known, 0], matches.xy_a[known, 1] - matches.xy_b[known, 1]
        )
        size = f"{left.width}x{left.height}"
        within = f"{(err < 1).mean():>7.2%} {(err < 2).mean():>7.2%}"
        print(f"{scale:>6} {size:>10} {len(matches):>8} {known.sum():>8} {within} {wall:>7.3f} {cpu:>7.3f}")


def synthetic_frames(cfg: BenchMatchers, width: int, height: int, root: Path) -> list[Frame]:
    path = make_scene(root / f"orbit_{width}x{height}", frames=cfg.synthetic_frames, width=width, height=height,
                      seed=0, progress=False)  # fmt: skip
    return load_scene(path, max_frames=cfg.synthetic_pairs + 1).frames


def reprojection_errors(a: Frame, b: Frame, matches: Matches) -> tuple[np.ndarray, np.ndarray]:
    """Per match [M]: distance of xy_b to the true position of xy_a in b (from a's depth), and the cycle
    error, the distance of xy_a to xy_b carried back to a through b's own depth (inf where unknown)."""
    assert a.depth is not None and b.depth is not None and a.camera is not None and b.camera is not None
    gt = np.full(len(matches), np.inf)
    depth_a = sample_inverse_depth_bilinear(a.depth.astype(np.float64), matches.xy_a.astype(np.float64))
    ok = depth_a > 0
    true_b, _ = b.camera.project(a.camera.unproject(matches.xy_a[ok], depth_a[ok]))
    gt[ok] = np.linalg.norm(true_b - matches.xy_b[ok], axis=1)
    cycle = np.full(len(matches), np.inf)
    depth_b = sample_inverse_depth_bilinear(b.depth.astype(np.float64), matches.xy_b.astype(np.float64))
    ok = depth_b > 0
    back, _ = a.camera.project(b.camera.unproject(matches.xy_b[ok], depth_b[ok]))
    cycle[ok] = np.linalg.norm(back - matches.xy_a[ok], axis=1)
    return gt, cycle


def bench_synthetic(cfg: BenchMatchers) -> None:
    backends: dict[str, dict] = {
        "sift (known cameras)": {"name": "sift", "config": {}},
        "sift (MAGSAC, no cameras)": {"name": "sift", "config": {"use_cameras": False}},
        "geometric (step 2)": {"name": "geometric", "config": {}},
        "geometric (step 1)": {"name": "geometric", "config": {"step": 1}},
    }
    if cfg.mast3r_checkpoint is not None:
        backends["mast3r"] = {
            "name": "mast3r",
            "config": {
                "checkpoint": cfg.mast3r_checkpoint,
                "repo": cfg.mast3r_repo,
                "image_size": cfg.mast3r_image_size,
            },
        }
    matchers = {label: make_matcher(spec["name"], spec["config"]) for label, spec in backends.items()}
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((320, 240), (640, 480)):
            frames = synthetic_frames(cfg, width, height, Path(tmp))
            pairs = list(zip(frames[:-1], frames[1:], strict=True))
            print(f"\n## synthetic orbit scene {width}x{height}, {len(pairs)} consecutive pairs (medians over pairs)")
            print(
                f"{'backend':<26} {'matches':>8} {'err med':>8} {'err<1px':>8} {'err<2px':>8} {'cyc med':>8} "
                f"{'cyc<0.1':>8} {'wall s':>7} {'cpu s':>7}"
            )
            for label, matcher in matchers.items():
                rows = []
                for a, b in pairs:
                    matches, wall, cpu = timed(matcher.match, a, b, cfg.repeats)
                    gt, cycle = reprojection_errors(a, b, matches)
                    stats = [np.median(gt), (gt < 1).mean(), (gt < 2).mean(), np.median(cycle), (cycle < 0.1).mean()]
                    rows.append([len(matches), *(stats if len(matches) else [np.nan] * 5), wall, cpu])
                m = np.nanmedian(np.array(rows, dtype=np.float64), axis=0)
                print(
                    f"{label:<26} {m[0]:>8.0f} {m[1]:>8.3f} {m[2]:>8.2%} {m[3]:>8.2%} {m[4]:>8.4f} {m[5]:>8.2%} "
                    f"{m[6]:>7.3f} {m[7]:>7.3f}"
                )


def main(cfg: BenchMatchers) -> None:
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; {cfg.repeats} timed runs per measurement")
    bench_aloe(cfg)
    bench_synthetic(cfg)


if __name__ == "__main__":
    main(tyro.cli(BenchMatchers))
