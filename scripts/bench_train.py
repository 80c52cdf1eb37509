"""Training figures of the standalone Gaussian trainer on a synthetic orbit (CPU by default).

1. Cost of the instance feature: median training-step time with 16-D features + losses vs.
   without features, same scene, same settings, no densification (``--ratio-steps`` each).
2. Quality with ground-truth masks: held-out PSNR and instance mIoU (consistent and per-view)
   after ``--steps`` steps with densification.
3. The same with the MastSAM tracker's masks (``mastsam track``, classical segmenter,
   geometric matcher) instead of ground truth, initialised from the tracker's points.ply.
4. Geometry of a short run (``--surface-steps``, the trainer's default schedule scaled to it):
   opacity-weighted share of the exported Gaussians whose centre lies within ``--surface-radius``
   metres of a true surface (the scene's depth maps back-projected, filled between pixels;
   ``metrics.surface``). The trained Gaussians go through ``mastsam export`` (default filters):
   ``scene`` is scene.ply (every Gaussian), ``objects`` the union of objects/object_*.ply (the
   per-object files, transparent Gaussians and outliers left out). Each is also given without
   the Gaussians seen against the sky (no true surface there by design), and against pixel
   centres only (the coarser surface samples of earlier figures).

    .venv/bin/python scripts/bench_train.py [--frames 40] [--size 160x120] [--steps 800] [--threads 1]
    .venv/bin/python scripts/bench_train.py --surface-only [--surface-steps 600]
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import tyro

from mastsam_splat.io import load_scene, read_label_image
from mastsam_splat.io.gaussians import to_gaussians
from mastsam_splat.io.ply import read_gaussians_ply
from mastsam_splat.metrics.surface import depth_surface_points, near_surface_fraction, seen_against_sky
from mastsam_splat.objects.export import OBJECTS_DIR, SCENE_NAME, export_objects
from mastsam_splat.objects.filters import ObjectFilter
from mastsam_splat.metrics import consistent_miou, overlap_table, per_view_miou
from mastsam_splat.splat.config import InstanceConfig
from mastsam_splat.splat.trainer import SplatTrainConfig, train
from mastsam_splat.synthetic import make_scene
from mastsam_splat.cli.track import TrackCommand, run_track


@dataclass
class BenchTrain:
    """Measure the trainer's figures (see module docstring)."""

    frames: int = 40
    """Frames of the synthetic orbit."""
    size: str = "160x120"
    """Image size, WIDTHxHEIGHT."""
    seed: int = 0
    steps: int = 800
    """Training steps of the quality runs (figures 2 and 3)."""
    ratio_steps: int = 150
    """Training steps of each run timed for the feature's cost (figure 1)."""
    threads: int = 1
    """CPU threads for torch."""
    surface_steps: int = 600
    """Training steps of the run measured for figure 4 (0: skip it)."""
    surface_radius: float = 0.05
    """Distance to a true surface (metres) within which a Gaussian counts as on it (figure 4)."""
    skip_tracker: bool = False
    """Skip figure 3 (tracker masks)."""
    surface_only: bool = False
    """Measure figure 4 only."""
    json: Optional[Path] = None
    """Also write the figures here."""


def main(args: BenchTrain) -> None:
    width, height = (int(v) for v in args.size.split("x"))
    figures: dict = {"load_average": os.getloadavg()[0], "cores": os.cpu_count(), "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp) / "scene", frames=args.frames, width=width, height=height, seed=args.seed, progress=False)
        base = SplatTrainConfig(data=scene, threads=args.threads, progress=False, seed=args.seed)

        print(f"scene: {args.frames} frames {args.size} (seed {args.seed}); load average {figures['load_average']:.1f} on {figures['cores']} cores, {args.threads} torch thread(s)")
        if args.surface_only:
            figures["surface"] = surface_figure(replace(base, steps=args.surface_steps), args.surface_radius, Path(tmp))
            _print_surface(figures["surface"])
            _write_json(args.json, figures)
            return
        with_f = train(replace(base, steps=args.ratio_steps, densify=False)).metrics
        without = train(replace(base, steps=args.ratio_steps, densify=False, instance=InstanceConfig(feature_dim=0))).metrics
        ratio = with_f["median_step_seconds"] / without["median_step_seconds"]
        figures["step_seconds_with_features"] = with_f["median_step_seconds"]
        figures["step_seconds_without_features"] = without["median_step_seconds"]
        figures["feature_cost_ratio"] = ratio
        figures["step_cpu_seconds_with_features"] = with_f["median_step_cpu_seconds"]
        figures["step_cpu_seconds_without_features"] = without["median_step_cpu_seconds"]
        cpu_ratio = with_f["median_step_cpu_seconds"] / without["median_step_cpu_seconds"]
        figures["feature_cost_ratio_cpu"] = cpu_ratio
        print(
            f"[1] median step, {with_f['num_gaussians']} Gaussians: wall {with_f['median_step_seconds'] * 1e3:.1f} ms "
            f"with features, {without['median_step_seconds'] * 1e3:.1f} ms without (x{ratio:.2f}); process CPU "
            f"{with_f['median_step_cpu_seconds'] * 1e3:.1f} / {without['median_step_cpu_seconds'] * 1e3:.1f} ms "
            f"(x{cpu_ratio:.2f})"
        )

        gt = train(replace(base, steps=args.steps, densify=True)).metrics
        figures["gt"] = {k: gt[k] for k in ("psnr", "miou", "miou_per_view", "num_gaussians", "train_seconds", "steps_per_second")}
        print(
            f"[2] ground-truth masks, {args.steps} steps: held-out PSNR {gt['psnr']:.2f} dB, instance mIoU "
            f"{gt['miou']:.3f} (per-view {gt['miou_per_view']:.3f}), {gt['num_gaussians']} Gaussians, "
            f"{gt['train_seconds']:.0f} s ({gt['steps_per_second']:.2f} steps/s)"
        )

        if args.surface_steps > 0:
            figures["surface"] = surface_figure(replace(base, steps=args.surface_steps), args.surface_radius, Path(tmp))
            _print_surface(figures["surface"])

        if not args.skip_tracker:
            track_dir = Path(tmp) / "track"
            summary = run_track(TrackCommand(data=scene, output_dir=track_dir, matcher="geometric", quiet=True))
            masks_miou = _label_miou(track_dir / "masks", scene / "instances")
            tr = train(replace(base, steps=args.steps, densify=True, labels=track_dir / "masks")).metrics
            figures["tracker"] = {k: tr[k] for k in ("psnr", "miou", "miou_per_view", "num_gaussians", "train_seconds")}
            figures["tracker"]["ids"] = summary.get("ids")
            figures["tracker"]["masks_miou"] = masks_miou
            print(
                f"[3] tracker masks ({summary.get('ids')} ids; the masks themselves score mIoU {masks_miou[0]:.3f}, "
                f"per-view {masks_miou[1]:.3f}), {args.steps} steps: held-out PSNR {tr['psnr']:.2f} dB, "
                f"instance mIoU {tr['miou']:.3f} (per-view {tr['miou_per_view']:.3f}) against ground truth"
            )
    _write_json(args.json, figures)


def _write_json(path: Optional[Path], figures: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(figures, indent=2) + "\n")


def surface_figure(config: SplatTrainConfig, radius: float, tmp: Path) -> dict:
    """Train ``config``, export its Gaussians as ``mastsam export`` does, and measure how many of the
    exported Gaussians (scene.ply; objects/object_*.ply) lie on the scene's true surfaces."""
    import numpy as np

    result = train(config)
    export = export_objects(to_gaussians(result.params, result.instance_ids), tmp / "export", object_filter=ObjectFilter())
    scene_g = read_gaussians_ply(export.output_dir / SCENE_NAME)
    parts = [read_gaussians_ply(f) for f in sorted((export.output_dir / OBJECTS_DIR).glob("object_*.ply"))]
    scene = load_scene(config.data)
    surfaces = {
        "filled": depth_surface_points(scene, spacing=radius, max_points=None),
        "pixel_centres": depth_surface_points(scene),
    }
    figure: dict = {"steps": config.steps, "radius_m": radius, "psnr": result.metrics["psnr"]}
    figure["train_seconds"] = result.metrics["train_seconds"]
    for name, means, logits in (
        ("scene", scene_g.means, scene_g.opacities),
        ("objects", np.concatenate([g.means for g in parts]), np.concatenate([g.opacities for g in parts])),
    ):
        opacity = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))
        ground = ~seen_against_sky(means, scene)
        entry = {"num_gaussians": int(len(means)), "median_opacity": float(np.median(opacity))}
        entry["sky_share"] = float(opacity[~ground].sum() / max(opacity.sum(), 1e-12))
        for surface_name, surface in surfaces.items():
            entry[surface_name] = near_surface_fraction(means, surface, radius, opacity)
            entry[f"{surface_name}_without_sky"] = near_surface_fraction(means[ground], surface, radius, opacity[ground])
            entry[f"{surface_name}_unweighted"] = near_surface_fraction(means, surface, radius)
        figure[name] = entry
    return figure


def _print_surface(f: dict) -> None:
    print(
        f"[4] {f['steps']} steps ({f['train_seconds']:.0f} s, held-out PSNR {f['psnr']:.2f} dB): opacity-weighted share "
        f"within {f['radius_m'] * 100:.0f} cm of a true surface (without the Gaussians seen against the sky; "
        f"against pixel centres only)"
    )
    for name in ("scene", "objects"):
        e = f[name]
        print(
            f"    {name:7s} {e['num_gaussians']:6d} Gaussians (median opacity {e['median_opacity']:.3f}): "
            f"{100 * e['filled']:.1f}% ({100 * e['filled_without_sky']:.1f}% without sky, whose share is "
            f"{100 * e['sky_share']:.1f}%; {100 * e['pixel_centres']:.1f}% / {100 * e['pixel_centres_without_sky']:.1f}% "
            f"against pixel centres; {100 * e['filled_unweighted']:.1f}% unweighted)"
        )


def _label_miou(pred_dir: Path, gt_dir: Path) -> tuple[float, float]:
    """Consistent and per-view mIoU of a folder of label images against ground truth (all frames)."""
    gts = sorted(gt_dir.glob("*.png"))
    table = overlap_table([read_label_image(pred_dir / p.name) for p in gts], [read_label_image(p) for p in gts])
    return consistent_miou(table).miou, per_view_miou(table).miou


if __name__ == "__main__":
    main(tyro.cli(BenchTrain, description=__doc__))
