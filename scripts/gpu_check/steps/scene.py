"""Make (or reuse) a synthetic scene: Nerfstudio dataset with depth and ground-truth instances."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import write_result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from mastsam_splat.synthetic import is_synthetic_scene, make_scene

    start = time.perf_counter()
    reused = is_synthetic_scene(args.output)
    if not reused:
        make_scene(args.output, frames=args.frames, width=args.width, height=args.height, seed=args.seed,
                   antialias=1, progress=False)  # fmt: skip
    write_result(
        {"scene": str(args.output), "frames": args.frames, "size": [args.width, args.height], "reused": reused,
         "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
