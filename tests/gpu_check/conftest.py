"""The GPU check scripts live in scripts/gpu_check (not a package); make them importable.

The steps folder goes last on ``sys.path``: its generic module names (install, common) must not
shadow anything else.
"""

import sys
from pathlib import Path

GPU_CHECK = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check"
if str(GPU_CHECK) not in sys.path:
    sys.path.insert(0, str(GPU_CHECK))
if str(GPU_CHECK / "steps") not in sys.path:
    sys.path.append(str(GPU_CHECK / "steps"))
