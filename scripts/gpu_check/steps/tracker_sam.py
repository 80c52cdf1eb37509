"""The MastSAM tracker with the ``sam`` segmenter on CUDA: seconds per frame, image-encoder share, peak memory.

No weights exist on the GPU machine, so each SAM is built randomly initialised from
segment-anything's own registry and saved as a checkpoint the segmenter loads as usual; the
timings do not depend on the weights (the automatic-mask grid is always decoded), although the
number of masks a random model keeps does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import peak_memory_gib, require_cuda, reset_peak_memory, work_dir, write_result


def random_checkpoint(model_type: str, folder: Path) -> Path:
    import torch
    from segment_anything import sam_model_registry

    path = folder / f"random_sam_{model_type}.pth"
    if not path.is_file():
        torch.manual_seed(0)
        torch.save(sam_model_registry[model_type]().state_dict(), path)
    return path


def run(model_type: str, frames: list, points_per_side: int, device: str) -> dict:
    from mastsam_splat.tracker.job import TrackingJob
    from mastsam_splat.tracker.config import TrackerConfig

    figures: dict = {"model_type": model_type, "points_per_side": points_per_side, "frames": len(frames)}
    start = time.perf_counter()
    checkpoint = random_checkpoint(model_type, work_dir())
    figures["build_checkpoint_s"] = round(time.perf_counter() - start, 1)
    job = TrackingJob.from_options(
        "sam", "sift", TrackerConfig(), sam_checkpoint=checkpoint, sam_model_type=model_type,
        sam_options={"points_per_side": points_per_side},
    )  # fmt: skip
    job.segmenter_config = replace(job.segmenter_config, device=device)
    start = time.perf_counter()
    tracker = job.make_tracker()
    figures["load_s"] = round(time.perf_counter() - start, 1)
    reset_peak_memory()
    reports = []
    tracker.run(list(frames), on_frame=reports.append)
    per_frame = [sum(r.seconds.values()) for r in reports]
    prepare = [r.seconds.get("prepare", 0.0) for r in reports]
    figures["seconds_per_frame_median"] = round(statistics.median(per_frame), 3)
    figures["image_encoder_share"] = round(sum(prepare) / max(sum(per_frame), 1e-9), 3)
    figures["stage_seconds_median"] = {
        k: round(statistics.median(r.seconds.get(k, 0.0) for r in reports), 3) for k in reports[0].seconds
    }
    figures["ids_last_frame"] = reports[-1].num_ids
    figures["peak_gpu_memory_gib"] = peak_memory_gib()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scene", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--model-types", default="vit_h,vit_b")
    parser.add_argument("--points-per-side", type=int, default=32)
    args = parser.parse_args()
    device = require_cuda()
    from mastsam_splat.io import load_scene

    frames = load_scene(args.scene, max_frames=args.frames).frames
    figures: dict = {}
    for model_type in args.model_types.split(","):
        try:
            figures[model_type] = run(model_type, frames, args.points_per_side, device)
        except Exception as exc:  # noqa: BLE001 (one model's failure is reported; the next still runs)
            figures[model_type] = {"error": f"{type(exc).__name__}: {exc}"}
            import traceback

            traceback.print_exc()
    failed = [k for k, v in figures.items() if "error" in v]
    if failed:
        figures["error"] = f"failed for {', '.join(failed)}"
    write_result(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
