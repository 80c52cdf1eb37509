"""Per-frame time of each segmenter: prepare + automatic masks + a few point prompts.

Usage:
  python scripts/bench_segmenters.py                         # classical, and SAM with a tiny model
  python scripts/bench_segmenters.py --sam-arch vit_b         # SAM's vit_b architecture, random weights
  python scripts/bench_segmenters.py --sam-checkpoint sam_vit_b_01ec64.pth --sam-model-type vit_b

Without a checkpoint, SAM runs a randomly initialised model saved to a temporary checkpoint and
loaded through the normal path: ``tiny`` (64 px input, width 32; times the pipeline around the
network) or an official architecture (same compute as the real weights, meaningless masks).
Prints the median of each phase over ``--repeats`` frames at each size (wall-clock), and the
median CPU time of a frame (all threads of this process), which a busy machine disturbs less.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, Optional

import cv2
import numpy as np
import tyro

from mastsam_splat.segmenters import ClassicalSegmenterConfig, SamSegmenterConfig, make_segmenter
from mastsam_splat.segmenters.base import Segmenter

PHOTO = Path("/usr/share/doc/opencv-doc/examples/data/fruits.jpg")


@dataclass
class BenchSegmenters:
    """Time prepare, automatic masks and point prompts of each segmenter."""

    backends: tuple[Literal["classical", "sam"], ...] = ("classical", "sam")
    """Segmenters to time."""
    sizes: tuple[str, ...] = ("320x240", "640x480")
    """Frame sizes as WIDTHxHEIGHT."""
    repeats: int = 5
    """Timed frames per size (medians are printed)."""
    prompts: int = 5
    """Prompts per frame."""
    sam_checkpoint: Optional[Path] = None
    """Real SAM weights (else random weights)."""
    sam_model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_b"
    """Architecture of ``sam_checkpoint``."""
    sam_arch: Literal["tiny", "vit_b", "vit_l", "vit_h"] = "tiny"
    """Architecture of the random model used without ``sam_checkpoint``."""
    sam_points_per_side: int = 32
    """Grid of point prompts of SAM's automatic masks."""
    device: str = "auto"
    """Torch device of SAM."""


def bench_image(width: int, height: int) -> np.ndarray:
    """fruits.jpg from opencv-doc resized to ``width`` x ``height``, or coloured discs when it is absent."""
    if PHOTO.is_file():
        image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), 180, dtype=np.uint8)
    for _ in range(8):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(height // 12, height // 5)), colour, -1)
    return image


def prompt_points(width: int, height: int, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` prompts of 5 positives in a small window and 3 negatives around it."""
    rng = np.random.default_rng(seed)
    prompts = []
    for _ in range(count):
        centre = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height])
        pos = centre + rng.normal(0, 0.03 * width, (5, 2))
        neg = centre + rng.normal(0, 0.15 * width, (3, 2))
        prompts.append((pos, neg))
    return prompts


def bench(segmenter: Segmenter, width: int, height: int, repeats: int, prompts: int) -> dict[str, float]:
    image = bench_image(width, height)
    points = prompt_points(width, height, prompts, seed=0)
    times: dict[str, list[float]] = {"prepare": [], "auto": [], "prompt": [], "frame": [], "frame_cpu": []}
    counts = []
    for k in range(repeats + 1):  # the first frame warms caches and is not counted
        c0 = time.process_time()
        t0 = time.perf_counter()
        state = segmenter.prepare(image)
        t1 = time.perf_counter()
        masks = segmenter.auto(state)
        t2 = time.perf_counter()
        per_prompt = []
        for pos, neg in points:
            t = time.perf_counter()
            segmenter.prompt(state, pos, neg)
            per_prompt.append(time.perf_counter() - t)
        t3 = time.perf_counter()
        c3 = time.process_time()
        if k == 0:
            continue
        times["prepare"].append(t1 - t0)
        times["auto"].append(t2 - t1)
        times["prompt"].append(statistics.median(per_prompt))
        times["frame"].append(t3 - t0)
        times["frame_cpu"].append(c3 - c0)
        counts.append(len(masks))
    out = {name: 1000 * statistics.median(v) for name, v in times.items()}
    out["masks"] = statistics.median(counts)
    return out


def random_sam_checkpoint(arch: str, folder: Path) -> tuple[Path, str]:
    """Save a randomly initialised SAM of architecture ``arch`` and register ``tiny`` when asked for."""
    import torch

    from mastsam_splat.segmenters.sam import SAM_ARCHITECTURES

    if arch == "tiny":
        SAM_ARCHITECTURES["tiny"] = tiny_sam
    torch.manual_seed(0)
    path = folder / f"random_{arch}.pth"
    torch.save(SAM_ARCHITECTURES[arch]().state_dict(), path)
    return path, arch


def tiny_sam():
    """SAM's architecture at toy size: 64 px input, 8x8 embedding, width 32, two encoder blocks."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=64,
            patch_size=8,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=32,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


def main(args: BenchSegmenters) -> None:
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]

    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            label = backend
            if backend == "classical":
                segmenter = make_segmenter("classical", ClassicalSegmenterConfig())
            else:
                checkpoint: Optional[Path] = args.sam_checkpoint
                model_type = args.sam_model_type
                if checkpoint is None:
                    checkpoint, model_type = random_sam_checkpoint(args.sam_arch, Path(tmp))
                    label = f"sam ({model_type}, random weights)"
                else:
                    label = f"sam ({model_type})"
                config = SamSegmenterConfig(
                    checkpoint=checkpoint,
                    model_type=model_type,  # type: ignore[arg-type]
                    device=args.device,
                    points_per_side=args.sam_points_per_side,
                )
                segmenter = make_segmenter("sam", config)
                label += f" on {segmenter.model.device}"
            for width, height in sizes:
                r = bench(segmenter, width, height, args.repeats, args.prompts)
                print(
                    f"{label:40s} {width}x{height}: frame {r['frame']:8.1f} ms wall, {r['frame_cpu']:8.1f} ms CPU "
                    f"(prepare {r['prepare']:8.1f}, "
                    f"auto {r['auto']:8.1f}, prompt {r['prompt']:6.2f} ms each x{args.prompts}; "
                    f"{r['masks']:.0f} auto masks)  median of {args.repeats}",
                    flush=True,
                )


if __name__ == "__main__":
    main(tyro.cli(BenchSegmenters))
