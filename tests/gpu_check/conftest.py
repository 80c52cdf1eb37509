"""The GPU check scripts live in scripts/gpu_check (not a package); put them on sys.path."""

import sys
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check"
for folder in (GPU_CHECK, GPU_CHECK / "steps"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
