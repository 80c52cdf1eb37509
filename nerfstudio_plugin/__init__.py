"""Nerfstudio method plugin for mastsam-splat: ``ns-train mastsam-splat --data <scene>``.

Importing the package (Nerfstudio does so while discovering methods, before any checkpoint is
read) lets ``torch.load`` accept the numpy scalars that Nerfstudio 1.1.5 stores in optimizer and
scheduler state; torch >= 2.6 loads with ``weights_only=True`` and would refuse them, which
breaks ``--load-dir``, ``ns-viewer``, ``ns-eval`` and ``ns-export``.
"""

from __future__ import annotations


def allow_numpy_scalars_in_checkpoints() -> None:
    """Register the numpy globals found in Nerfstudio checkpoints as safe for ``torch.load``."""
    import numpy as np
    import torch

    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads with weights_only=False by default
        return
    if int(np.__version__.split(".")[0]) >= 2:
        from numpy._core.multiarray import scalar
    else:
        from numpy.core.multiarray import scalar
    safe = [scalar, np.dtype]
    safe += [getattr(np.dtypes, name) for name in ("Float64DType", "Float32DType", "Int64DType") if hasattr(np, "dtypes")]
    add_safe_globals(safe)


allow_numpy_scalars_in_checkpoints()
