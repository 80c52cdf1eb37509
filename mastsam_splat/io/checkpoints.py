"""Checkpoint files: clear errors for a wrong path, and ``torch.load(weights_only=True)`` for Nerfstudio's.

Nerfstudio 1.1.5 stores numpy scalars in optimizer and scheduler state; torch >= 2.6 loads with
``weights_only=True`` and refuses them, which breaks ``--load-dir``, ``ns-viewer``, ``ns-eval``
and reading a run's Gaussians.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from mastsam_splat.errors import InputError


def check_checkpoint_file(path: Union[str, Path], what: str, hint: str) -> Path:
    """``path`` as a Path when it is a file; otherwise an :class:`InputError` saying what it is instead.

    ``what`` names the checkpoint (e.g. "SAM checkpoint"), ``hint`` says where to get one.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{what} is a folder, not a checkpoint file: pass the checkpoint file itself; {hint}", path)
    if not path.exists():
        raise InputError(f"{what} not found: {hint}", path)
    if not path.is_file():
        raise InputError(f"{what} is not a regular file: {hint}", path)
    return path


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
