"""Let ``torch.load(weights_only=True)`` read Nerfstudio checkpoints.

Nerfstudio 1.1.5 stores numpy scalars in optimizer and scheduler state; torch >= 2.6 loads with
``weights_only=True`` and refuses them, which breaks ``--load-dir``, ``ns-viewer``, ``ns-eval``
and reading a run's Gaussians.
"""

from __future__ import annotations

import numpy as np


def numpy_checkpoint_globals() -> list:
    """The numpy globals found in Nerfstudio checkpoints."""
    core = np._core if int(np.__version__.split(".")[0]) >= 2 else np.core  # type: ignore[attr-defined]
    safe: list = [core.multiarray.scalar, np.dtype]
    if hasattr(np, "dtypes"):
        safe += [getattr(np.dtypes, n) for n in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np.dtypes, n)]
    return safe


def allow_numpy_scalars_in_checkpoints() -> None:
    """Register those globals as safe for the whole process (idempotent).

    A process-wide registration rather than ``torch.serialization.safe_globals(...)``: that
    context manager removes its globals on exit, including ones registered by others before it.
    """
    import torch

    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is not None:  # torch < 2.4 loads with weights_only=False by default
        add_safe_globals(numpy_checkpoint_globals())
