"""MastSAM against independent per-view masks, with a simulated SAM on a synthetic orbit.

The simulated SAM (``mastsam_splat.segmenters.simulated``) re-cuts the ground-truth objects per
view the way SAM does (whole, split into parts, partly merged; jittered boundaries; missed small
parts), so the tracker faces SAM's inconsistencies while the ground truth scores the result.
Correspondences come from the geometric matcher (exact, from depth and cameras).

Usage:
  python scripts/bench_simulated_sam.py                      # 24 frames at 160x120
  python scripts/bench_simulated_sam.py --frames 40 --split-probability 0.3

Prints, for each tracker mode, per-view and consistent mIoU and id switches at object and part
level, and the SfM-track consistency (IDC / PSC near and far) over a COLMAP model made from the
scene's ground truth.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import tyro

from mastsam_splat.io import load_scene, read_label_dir
from mastsam_splat.io.colmap import read_sparse_model, tracks_in_frames
from mastsam_splat.matchers import make_matcher
from mastsam_splat.metrics import consistent_miou, id_switches, overlap_table, per_view_miou, sfm_consistency
from mastsam_splat.segmenters import make_segmenter
from mastsam_splat.segmenters.simulated import SimulatedSamConfig
from mastsam_splat.synthetic import make_scene
from mastsam_splat.synthetic.sfm import write_scene_sfm_model
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.tracker import MastSAMTracker


LEVELS = {"object": "instances", "part": "parts"}
"""Ground-truth folder of each scored level."""


@dataclass
class BenchSimulatedSam:
    """Track a synthetic orbit with the simulated SAM and score both tracker modes."""

    frames: int = 24
    """Views of the orbit."""
    width: int = 160
    height: int = 120
    scene_seed: int = 0
    """Seed of the synthetic scene."""
    seed: int = 0
    """Seed of the simulated SAM."""
    split_probability: float = 0.5
    merge_probability: float = 0.2
    jitter_px: int = 2
    modes: tuple[Literal["mastsam", "independent"], ...] = ("mastsam", "independent")
    data: Optional[Path] = None
    """Use this synthetic scene instead of rendering one."""


def scores(preds: list[np.ndarray], gts: list[np.ndarray]) -> tuple[float, float, int]:
    table = overlap_table(preds, gts)
    return per_view_miou(table).miou, consistent_miou(table).miou, id_switches(table).total


def main(args: BenchSimulatedSam) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_scene(
            Path(tmp) / "scene", frames=args.frames, width=args.width, height=args.height, seed=args.scene_seed,
            progress=False,
        )
        scene = load_scene(root)
        names = [f.name for f in scene.frames]
        shapes = [(f.height, f.width) for f in scene.frames]
        gts = {level: read_label_dir(Path(root) / folder, names, shapes) for level, folder in LEVELS.items()}
        tracks = tracks_in_frames(read_sparse_model(write_scene_sfm_model(root, Path(tmp) / "sparse")), scene.frames)
        segmenter_config = SimulatedSamConfig(
            data=Path(root),
            seed=args.seed,
            split_probability=args.split_probability,
            merge_probability=args.merge_probability,
            jitter_px=args.jitter_px,
        )
        print(
            f"{len(scene.frames)} frames at {scene.frames[0].width}x{scene.frames[0].height}, simulated SAM "
            f"(split {args.split_probability}, merge {args.merge_probability}, jitter {args.jitter_px} px), "
            "geometric matcher"
        )
        header = (
            f"{'mode':<14}{'level':<8}{'per-view mIoU':>14}{'consistent mIoU':>17}{'id switches':>13}"
            f"{'sfm IDC near':>14}{'sfm IDC far':>13}{'sfm PSC far':>13}{'segs/frame':>12}{'s/frame':>9}"
        )
        print(header)
        for mode in args.modes:
            segmenter = make_segmenter("simulated", segmenter_config)
            matcher = make_matcher("geometric")
            tracker = MastSAMTracker(TrackerConfig(mode=mode), segmenter, matcher, matcher_name="geometric")
            t0 = time.perf_counter()
            labels = tracker.run(scene.frames).labels
            seconds = (time.perf_counter() - t0) / len(scene.frames)
            sfm = sfm_consistency(labels, tracks)
            for level, gt in gts.items():
                view, consistent, switches = scores(labels, gt)
                print(
                    f"{mode:<14}{level:<8}{view:>14.3f}{consistent:>17.3f}"
                    f"{switches:>13d}{sfm.near.idc:>14.3f}{sfm.far.idc:>13.3f}{sfm.far.psc:>13.3f}"
                    f"{sfm.segments_per_frame:>12.1f}{seconds:>9.2f}"
                )
        for level, gt in gts.items():
            sfm = sfm_consistency(gt, tracks)
            print(
                f"{'ground truth':<14}{level:<8}{1.0:>14.3f}{1.0:>17.3f}{0:>13d}"
                f"{sfm.near.idc:>14.3f}{sfm.far.idc:>13.3f}{sfm.far.psc:>13.3f}{sfm.segments_per_frame:>12.1f}{'':>9}"
            )


if __name__ == "__main__":
    main(tyro.cli(BenchSimulatedSam))
