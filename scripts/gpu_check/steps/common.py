"""Shared by the GPU check steps: where results go, timers and peak GPU memory."""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[3]


def write_result(figures: dict[str, Any]) -> None:
    """Hand the step's figures to the runner (``$STEP_RESULT``) and print them."""
    text = json.dumps(figures, indent=2, default=str)
    print(text, flush=True)
    target = os.environ.get("STEP_RESULT")
    if target:
        Path(target).write_text(text + "\n")


def work_dir() -> Path:
    """Scratch folder shared by the steps of one run (``$GPU_CHECK_WORK``)."""
    path = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/mastsam-gpu-check"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def timed(figures: dict[str, Any], key: str) -> Iterator[None]:
    """Store the block's wall time in ``figures[key]`` (seconds), also when it raises."""
    start = time.perf_counter()
    try:
        yield
    finally:
        figures[key] = round(time.perf_counter() - start, 3)


def reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib() -> float:
    """Peak GPU memory allocated by torch since the last reset, GiB (0 without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return 0.0
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def require_cuda() -> str:
    """The device to run on: ``cuda``; without CUDA, stop the step with a clear message.

    ``GPU_CHECK_ALLOW_CPU=1`` runs the step on the CPU instead (a smoke test of the step's own
    code at small sizes, not a measurement).
    """
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if os.environ.get("GPU_CHECK_ALLOW_CPU") == "1":
        return "cpu"
    write_result({"error": "CUDA is not available"})
    sys.exit(1)


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
