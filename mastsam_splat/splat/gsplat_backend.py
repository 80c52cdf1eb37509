"""CUDA backend: thin wrappers over gsplat 1.4.0.

gsplat's CUDA module builds its kernels on first use, which fails (and retries on every call)
on machines without a GPU, so nothing here is imported at module import time and these
functions must only be called with CUDA tensors (``rendering.resolve_backend`` ensures it).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from torch import Tensor


def rasterization(*args: Any, **kwargs: Any) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """``gsplat.rendering.rasterization`` (same signature and outputs)."""
    from gsplat.rendering import rasterization as _rasterization

    return _rasterization(*args, **kwargs)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """``gsplat.spherical_harmonics``: SH colour of directions ``dirs [..., 3]`` with ``coeffs [..., K, 3]``."""
    from gsplat.cuda._wrapper import spherical_harmonics as _spherical_harmonics

    return _spherical_harmonics(degree, dirs, coeffs)
