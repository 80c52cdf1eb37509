"""3D Gaussians as the 3DGS format stores them: the ``Gaussians`` container and the SH colour terms.

Parameters are stored as the 3DGS PLY layout stores them (and Splatfacto trains them):
``means`` [N, 3], ``quats`` [N, 4] (w, x, y, z; not necessarily normalised), ``scales``
[N, 3] (log), ``opacities`` [N] (logit), ``sh_dc`` [N, 3] and ``sh_rest`` [N, K - 1, 3]
(band-major, like Splatfacto's ``features_rest``). All float32 numpy arrays, so a scene
written to PLY and read back is bit-for-bit the same.

Object ids: ``0`` is background, ``-1`` (``UNLABELLED``) marks a Gaussian that no view saw,
ids ``> 0`` are objects.

The view-independent colour of a Gaussian is its degree-0 SH term: ``rgb = 0.5 + SH_C0 * sh_dc``
(``rgb_to_sh`` / ``sh_to_rgb``, for numpy arrays and torch tensors alike). The PLY layout is in
``mastsam_splat.io.ply``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional, TypeVar, Union

import numpy as np

from mastsam_splat.errors import InputError

UNLABELLED = -1
"""Object id of a Gaussian that got no label (seen in no view)."""
BACKGROUND = 0
"""Object id of a Gaussian that belongs to no object."""
SH_C0 = 0.28209479177387814
"""Degree-0 spherical-harmonic constant: colour = 0.5 + SH_C0 * sh_dc."""

PathLike = Union[str, Path]
ArrayT = TypeVar("ArrayT")


def rgb_to_sh(rgb: ArrayT) -> ArrayT:
    """Degree-0 SH coefficient of an RGB colour in [0, 1] (numpy array or torch tensor)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: ArrayT) -> ArrayT:
    """RGB colour of a degree-0 SH coefficient (unclipped; numpy array or torch tensor)."""
    return sh * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """SH coefficients per colour channel for ``degree``: (degree + 1)^2."""
    return (degree + 1) ** 2


def sh_degree_from_bases(num_bases: int) -> int:
    """SH degree of ``num_bases`` = (degree + 1)^2 coefficients per channel; -1 if not a square."""
    degree = int(round(np.sqrt(num_bases))) - 1
    return degree if degree >= 0 and num_sh_bases(degree) == num_bases else -1


@dataclass
class Gaussians:
    """3D Gaussians of one scene (see module docstring for layouts)."""

    means: np.ndarray
    """[N, 3] float32 centres."""
    quats: np.ndarray
    """[N, 4] float32 rotations, (w, x, y, z)."""
    scales: np.ndarray
    """[N, 3] float32 log scales."""
    opacities: np.ndarray
    """[N] float32 opacity logits."""
    sh_dc: np.ndarray
    """[N, 3] float32 degree-0 SH coefficients."""
    sh_rest: np.ndarray
    """[N, K - 1, 3] float32 higher-band SH coefficients, band-major (K = (degree + 1)^2)."""
    instance_ids: Optional[np.ndarray] = None
    """[N] int32 object ids (0 background, -1 unlabelled), when known."""
    features: Optional[np.ndarray] = None
    """[N, D] float32 instance features, when the scene was trained with them."""
    source: Optional[Path] = field(default=None, compare=False)
    """File the Gaussians were read from (used in error messages)."""

    def __post_init__(self) -> None:
        self.means = np.ascontiguousarray(self.means, dtype=np.float32)
        self.quats = np.ascontiguousarray(self.quats, dtype=np.float32)
        self.scales = np.ascontiguousarray(self.scales, dtype=np.float32)
        self.opacities = np.ascontiguousarray(np.reshape(self.opacities, -1), dtype=np.float32)
        self.sh_dc = np.ascontiguousarray(self.sh_dc, dtype=np.float32)
        n = len(self.means)
        rest = np.asarray(self.sh_rest, dtype=np.float32)
        if rest.size == 0:
            rest = rest.reshape(n, 0, 3)
        self.sh_rest = np.ascontiguousarray(rest)
        if self.instance_ids is not None:
            self.instance_ids = np.ascontiguousarray(self.instance_ids, dtype=np.int32).reshape(-1)
        if self.features is not None:
            self.features = np.ascontiguousarray(self.features, dtype=np.float32)
        self._check_shapes()

    def _check_shapes(self) -> None:
        n = len(self.means)
        expected = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "scales": (self.scales, (n, 3)),
            "opacities": (self.opacities, (n,)),
            "sh_dc": (self.sh_dc, (n, 3)),
        }
        for name, (array, shape) in expected.items():
            if array.shape != shape:
                raise InputError(f"Gaussian parameter {name} has shape {array.shape}, expected {shape}", self.source)
        if self.sh_rest.ndim != 3 or self.sh_rest.shape[0] != n or self.sh_rest.shape[2] != 3:
            raise InputError(f"sh_rest has shape {self.sh_rest.shape}, expected ({n}, K-1, 3)", self.source)
        if sh_degree_from_bases(self.sh_rest.shape[1] + 1) < 0:
            raise InputError(
                f"{self.sh_rest.shape[1] + 1} SH coefficients per channel is not (degree + 1)^2", self.source
            )
        if self.instance_ids is not None and self.instance_ids.shape != (n,):
            raise InputError(f"instance_ids has shape {self.instance_ids.shape}, expected ({n},)", self.source)
        if self.features is not None and (self.features.ndim != 2 or self.features.shape[0] != n):
            raise InputError(f"features have shape {self.features.shape}, expected ({n}, D)", self.source)

    # ------------------------------------------------------------------ properties

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_bases(self.sh_rest.shape[1] + 1)

    @property
    def colors(self) -> np.ndarray:
        """[N, 3] float32 view-independent RGB in [0, 1] (the SH DC term)."""
        return np.clip(sh_to_rgb(self.sh_dc), 0.0, 1.0)

    @property
    def shs(self) -> np.ndarray:
        """[N, K, 3] float32 all SH coefficients (DC first), as gsplat's ``rasterization`` takes them."""
        return np.concatenate([self.sh_dc[:, None, :], self.sh_rest], axis=1)

    def object_ids(self) -> np.ndarray:
        """Sorted ids > 0 present in ``instance_ids`` (empty without ids)."""
        if self.instance_ids is None:
            return np.zeros(0, dtype=np.int32)
        ids = np.unique(self.instance_ids)
        return ids[ids > 0]

    # ------------------------------------------------------------------ derived scenes

    def subset(self, keep: np.ndarray) -> "Gaussians":
        """The Gaussians selected by a boolean mask [N] or an index array, in their order."""
        return Gaussians(
            means=self.means[keep],
            quats=self.quats[keep],
            scales=self.scales[keep],
            opacities=self.opacities[keep],
            sh_dc=self.sh_dc[keep],
            sh_rest=self.sh_rest[keep],
            instance_ids=None if self.instance_ids is None else self.instance_ids[keep],
            features=None if self.features is None else self.features[keep],
            source=self.source,
        )

    def with_ids(self, instance_ids: np.ndarray) -> "Gaussians":
        """A copy (sharing parameter arrays) with the given object ids [N]."""
        return replace(self, instance_ids=np.asarray(instance_ids, dtype=np.int32))

    def check_finite(self) -> None:
        """Raise :class:`InputError` naming the parameters that hold NaN or infinite values."""
        bad = []
        for name in ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest", "features"):
            array = getattr(self, name)
            if array is None or array.size == 0:
                continue
            rows = ~np.isfinite(array.reshape(len(self), -1)).all(axis=1)
            if rows.any():
                bad.append(f"{name} ({int(rows.sum())} Gaussians)")
        if bad:
            raise InputError(
                "non-finite (NaN or infinite) Gaussian parameters: " + ", ".join(bad) + "; the scene is corrupt",
                self.source,
            )
        if len(self) and not (np.abs(self.quats).sum(axis=1) > 0).all():
            raise InputError("some Gaussians have an all-zero rotation quaternion", self.source)

    def torch_params(self, device: str = "cpu", with_sh: bool = True) -> dict:
        """Activated tensors for gsplat's ``rasterization``: means, quats (normalised), scales, opacities
        and (``with_sh``) all SH coefficients ``shs``."""
        import torch

        quats = torch.from_numpy(self.quats).to(device)
        params = {
            "means": torch.from_numpy(self.means).to(device),
            "quats": quats / quats.norm(dim=-1, keepdim=True),
            "scales": torch.exp(torch.from_numpy(self.scales).to(device)),
            "opacities": torch.sigmoid(torch.from_numpy(self.opacities).to(device)),
        }
        if with_sh:
            params["shs"] = torch.from_numpy(self.shs).to(device)
        return params


def to_gaussians(
    params: Mapping[str, Any], instance_ids: Optional[np.ndarray] = None, with_features: bool = True
) -> Gaussians:
    """Gaussians from a Splatfacto-layout parameter dict of torch tensors (raw values, as
    ``mastsam_splat.splat.params`` holds them); ``instance_features`` become ``features`` when asked for."""

    def arr(key: str) -> np.ndarray:
        return params[key].detach().cpu().float().numpy()

    feats = arr("instance_features") if with_features and "instance_features" in params else None
    return Gaussians(
        means=arr("means"),
        quats=arr("quats"),
        scales=arr("scales"),
        opacities=arr("opacities").reshape(-1),
        sh_dc=arr("features_dc"),
        sh_rest=arr("features_rest"),
        instance_ids=instance_ids,
        features=feats,
    )
