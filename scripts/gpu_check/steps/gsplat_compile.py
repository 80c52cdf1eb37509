"""Compile gsplat's CUDA kernels once (JIT, into ``$TORCH_EXTENSIONS_DIR``) and time it."""

from __future__ import annotations

import os
import sys
import time

from common import require_cuda, write_result


def main() -> int:
    require_cuda()
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", f"{major}.{minor}")
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    start = time.perf_counter()
    from gsplat.cuda._backend import _C

    seconds = time.perf_counter() - start
    if _C is None:
        write_result({"error": "gsplat's CUDA extension did not build (see the log)", "seconds": round(seconds, 1)})
        return 1
    write_result(
        {"compile_s": round(seconds, 1), "arch": os.environ["TORCH_CUDA_ARCH_LIST"], "max_jobs": os.environ["MAX_JOBS"],
         "extensions_dir": os.environ.get("TORCH_EXTENSIONS_DIR")}  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
