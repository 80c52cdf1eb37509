"""``ns-train METHOD`` in this process, timed per iteration, then its held-out figures.

Runs Nerfstudio's own train entry point with the given options, with two additions: every
training iteration is timed (CUDA synchronised), and after training the run's held-out figures
are collected (``eval_metrics.json`` of a mastsam-splat run; Nerfstudio's average eval-image
metrics for any other method). LPIPS is built lazily so a machine without its AlexNet weights
still trains (it is then not reported). Nerfstudio's own dataparser reads the dataset's point
cloud with open3d, which the GPU machine lacks; any method using it gets the plugin's parser
instead, which is the same parser with the project's PLY reader (same split, same transform).

    python ns_train.py METHOD --data DIR --steps N --output-dir DIR [-- more ns-train options]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

from common import peak_memory_gib, require_cuda, reset_peak_memory, synchronize, write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("method")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--output-dir", type=Path, required=True)
    args, extra = parser.parse_known_args()  # everything after ``--`` goes to ns-train as it is
    device = require_cuda()
    import torch
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.engine.trainer import Trainer
    from nerfstudio.scripts import train as ns_train
    from torchmetrics.image import lpip

    from nerfstudio_plugin.dataparser import MastsamDataParserConfig
    from nerfstudio_plugin.model import LazyLpips

    lpip.LearnedPerceptualImagePatchSimilarity = LazyLpips
    step_times: list[float] = []
    trainers: list[Trainer] = []
    original_iteration, original_setup = Trainer.train_iteration, Trainer.setup

    def timed_iteration(self, step):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = original_iteration(self, step)
        synchronize()
        step_times.append(time.perf_counter() - start)
        return out

    def remembered_setup(self, *a, **k):  # type: ignore[no-untyped-def]
        trainers.append(self)
        return original_setup(self, *a, **k)

    Trainer.train_iteration, Trainer.setup = timed_iteration, remembered_setup
    sys.argv = [
        "ns-train", args.method, "--data", str(args.data),
        "--max-num-iterations", str(args.steps),
        "--vis", "tensorboard",
        "--viewer.quit-on-train-completion", "True",
        "--steps-per-eval-image", "1000000", "--steps-per-eval-batch", "0",
        "--steps-per-eval-all-images", "1000000", "--steps-per-save", "1000000",
        "--output-dir", str(args.output_dir), "--timestamp", "run",
        "--machine.device-type", device,
        *[option for option in extra if option != "--"],
    ]  # fmt: skip
    config = tyro.cli(AnnotatedBaseConfigUnion, args=sys.argv[1:])
    parser_config = config.pipeline.datamanager.dataparser
    if type(parser_config) is NerfstudioDataParserConfig:
        settings = {f.name: getattr(parser_config, f.name) for f in fields(parser_config) if f.init and f.name != "_target"}
        config.pipeline.datamanager.dataparser = MastsamDataParserConfig(**settings)
    reset_peak_memory()
    start = time.perf_counter()
    ns_train.main(config)
    wall = time.perf_counter() - start
    figures: dict = {"method": args.method, "steps": args.steps, "wall_s": round(wall, 1),
                     "dataparser": type(config.pipeline.datamanager.dataparser).__name__}  # fmt: skip
    if step_times:
        figures["iterations_per_s"] = round(len(step_times) / sum(step_times), 2)
        figures["median_step_ms"] = round(1000 * statistics.median(step_times), 3)
    figures["peak_gpu_memory_gib"] = peak_memory_gib()
    run_dir = Path(trainers[-1].base_dir) if trainers else args.output_dir / args.data.name / args.method / "run"
    report_file = run_dir / "eval_metrics.json"
    if report_file.is_file():
        report = json.loads(report_file.read_text())
        figures["eval"] = report.get("eval", {})
        figures["eval_images"] = report.get("eval_images", 0)
        figures["plugin_timing"] = report.get("timing", {})
        figures["tracker"] = report.get("tracker")
    elif trainers:
        pipeline = trainers[-1].pipeline
        with torch.no_grad():
            metrics = pipeline.get_average_eval_image_metrics(step=args.steps)
        figures["eval"] = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        figures["eval_images"] = len(pipeline.datamanager.eval_dataset)
    if trainers:
        figures["gaussians"] = int(trainers[-1].pipeline.model.num_points)
    write_result(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
