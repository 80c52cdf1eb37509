"""One renderer interface, two backends: gsplat on CUDA, the torch reference rasterizer on CPU.

- ``rasterize``: gsplat's ``rasterization`` signature and outputs, on the chosen backend.
- ``render``: RGB (from SH or plain colours), instance features, depth and alpha of a set of
  Gaussians in one pass (or two, when feature gradients must not move the geometry).
- ``accumulate_label_weights``: for each Gaussian, the alpha-compositing weight it gives to
  the pixels of each label of a label image, taken from the renderer itself (occlusion-aware).
- ``in_view``: the Gaussians the rasterizer can draw in a view (a cheap, exact pre-cull).
- ``camera_tensors``, ``backend_device``, ``resolve_backend``, ``psnr``: camera, device and
  backend plumbing shared by the trainer and the label lift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mastsam_splat.errors import InputError
from mastsam_splat.types import Camera

Backend = Literal["auto", "gsplat", "torch"]


def resolve_backend(backend: str, device: Union[str, torch.device]) -> Literal["gsplat", "torch"]:
    """The backend to use for tensors on ``device``: ``auto`` is gsplat on CUDA, torch elsewhere."""
    device = torch.device(device)
    if backend == "auto":
        return "gsplat" if device.type == "cuda" else "torch"
    if backend == "gsplat":
        if device.type != "cuda":
            raise ValueError(f"the gsplat backend needs CUDA tensors, got tensors on {device}")
        return "gsplat"
    if backend == "torch":
        return "torch"
    raise ValueError(f"unknown renderer backend {backend!r}; expected 'auto', 'gsplat' or 'torch'")


def backend_device(backend: str) -> torch.device:
    """The device for a renderer choice when the caller has none of its own: CUDA for ``gsplat``
    (and for ``auto`` when a GPU is there), the CPU otherwise."""
    if backend == "gsplat" and not torch.cuda.is_available():
        raise InputError("the gsplat renderer needs a CUDA GPU; use torch (or auto) on this machine")
    if backend == "gsplat" or (backend == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def camera_tensors(camera: Camera, device: Union[str, torch.device], downscale: int = 1) -> Tuple[Tensor, Tensor]:
    """``viewmat [1, 4, 4]`` and ``K [1, 3, 3]`` float32 tensors of a camera, intrinsics at 1/``downscale``."""
    K = camera.K.copy()
    K[:2] /= downscale
    viewmat = torch.as_tensor(camera.world_to_cam, dtype=torch.float32, device=device)[None]
    return viewmat, torch.as_tensor(K, dtype=torch.float32, device=device)[None]


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR (dB, 0-d tensor) of an image against its target, both in [0, 1]."""
    return -10 * torch.log10(((pred - target) ** 2).mean().clamp_min(1e-10))


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] or [(C,) N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    backend: Backend = "auto",
    **kwargs: Any,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """gsplat ``rasterization`` on the chosen backend: ``render [C, H, W, X]``, ``alpha [C, H, W, 1]``, meta.

    Keyword arguments are gsplat's (``near_plane``, ``far_plane``, ``eps2d``, ``sh_degree``,
    ``packed``, ``backgrounds``, ``render_mode``, ``absgrad``, ``rasterize_mode``, ...). The
    torch backend always returns the unpacked meta layout, so pass ``packed=False`` when the
    meta feeds a densification strategy on either backend.
    """
    if resolve_backend(backend, means.device) == "gsplat":
        from mastsam_splat.splat import gsplat_backend

        fn = gsplat_backend.rasterization
    else:
        from mastsam_splat.splat import torch_rasterizer

        fn = torch_rasterizer.rasterization
    return fn(means, quats, scales, opacities, colors, viewmats, Ks, width, height, **kwargs)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor, backend: Backend = "auto") -> Tensor:
    """SH colour ``[..., 3]`` of view directions ``dirs [..., 3]`` (gsplat's convention, before ``+0.5``)."""
    if resolve_backend(backend, dirs.device) == "gsplat":
        from mastsam_splat.splat import gsplat_backend

        return gsplat_backend.spherical_harmonics(degree, dirs, coeffs)
    from gsplat.cuda._torch_impl import _spherical_harmonics

    return _spherical_harmonics(degree, dirs, coeffs)


def camera_centers(viewmats: Tensor) -> Tensor:
    """[C, 3] camera centres of world-to-camera matrices [C, 4, 4]."""
    R = viewmats[:, :3, :3]
    t = viewmats[:, :3, 3:]
    return -(R.transpose(1, 2) @ t)[..., 0]


def sh_colors(means: Tensor, sh: Tensor, viewmats: Tensor, sh_degree: int, backend: Backend = "auto") -> Tensor:
    """[C, N, 3] view-dependent RGB of SH coefficients ``sh [N, K, 3]`` seen from each camera.

    As gsplat's ``rasterization``: SH value ``+ 0.5``, clamped at 0."""
    dirs = means[None] - camera_centers(viewmats)[:, None]  # [C, N, 3]
    coeffs = sh[None].expand(viewmats.shape[0], -1, -1, -1)
    return torch.clamp_min(spherical_harmonics(sh_degree, dirs, coeffs, backend) + 0.5, 0.0)


@dataclass
class RenderOutput:
    """What ``render`` returns; image tensors are ``[C, H, W, X]``."""

    rgb: Tensor
    """[C, H, W, 3] colour, background composited."""
    alpha: Tensor
    """[C, H, W, 1] accumulated opacity."""
    depth: Optional[Tensor]
    """[C, H, W, 1] expected z-depth (0 where nothing is rendered), when requested."""
    features: Optional[Tensor]
    """[C, H, W, D] alpha-composited instance features (zero background), when given."""
    meta: Dict[str, Any]
    """gsplat's meta of the colour pass (``means2d``, ``radii``, ... for densification)."""


def render(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] (activated)
    opacities: Tensor,  # [N] (activated)
    colors: Tensor,  # [N, K, 3] SH coefficients with sh_degree, else [N, 3] RGB
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    *,
    sh_degree: Optional[int] = None,
    features: Optional[Tensor] = None,  # [N, D]
    backgrounds: Optional[Tensor] = None,  # [C, 3]
    with_depth: bool = False,
    detach_geometry_for_features: bool = False,
    absgrad: bool = False,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    backend: Backend = "auto",
) -> RenderOutput:
    """Render colour, features, depth and alpha of Gaussians.

    With ``features`` and shared geometry, RGB, features and depth are one rasterization pass
    of ``3 + D (+ 1)`` channels (SH evaluated here, as gsplat does). With
    ``detach_geometry_for_features`` the features get a second pass through detached
    geometry, so the instance loss cannot move, resize or fade Gaussians.
    """
    C = viewmats.shape[0]
    common = dict(
        near_plane=near_plane,
        far_plane=far_plane,
        eps2d=eps2d,
        packed=False,
        rasterize_mode=rasterize_mode,
        backend=backend,
    )
    one_pass = features is not None and not detach_geometry_for_features
    mode = "RGB+ED" if with_depth else "RGB"
    if one_pass:
        if sh_degree is not None:
            rgb = sh_colors(means, colors, viewmats, sh_degree, backend)
        else:
            rgb = colors[None].expand(C, -1, -1)
        chans = torch.cat([rgb, features[None].expand(C, -1, -1)], dim=-1)  # [C, N, 3 + D]
        bgs = None
        if backgrounds is not None:
            bgs = torch.cat([backgrounds, backgrounds.new_zeros(C, features.shape[-1])], dim=-1)
        out, alpha, meta = rasterize(
            means, quats, scales, opacities, chans, viewmats, Ks, width, height,
            sh_degree=None, backgrounds=bgs, render_mode=mode, absgrad=absgrad, **common,
        )  # fmt: skip
        D = features.shape[-1]
        feats = out[..., 3 : 3 + D]
    else:
        out, alpha, meta = rasterize(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            sh_degree=sh_degree, backgrounds=backgrounds, render_mode=mode, absgrad=absgrad, **common,
        )  # fmt: skip
        feats = None
        if features is not None:
            feats, _, _ = rasterize(
                means.detach(), quats.detach(), scales.detach(), opacities.detach(), features,
                viewmats, Ks, width, height, sh_degree=None, render_mode="RGB", **common,
            )  # fmt: skip
    depth = out[..., -1:] if with_depth else None
    return RenderOutput(rgb=out[..., :3], alpha=alpha, depth=depth, features=feats, meta=meta)


def in_view(
    means: Tensor,  # [N, 3]
    scales: Tensor,  # [N, 3] (activated)
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    tile_px: float = 16.0,
) -> Tensor:
    """Indices of the Gaussians the rasterizer can draw in a view (a superset; the rest can be skipped).

    A Gaussian is kept when it lies beyond the near plane and its centre projects within
    ``3.5 sigma`` of the image plus a tile, where ``sigma`` bounds its projected standard
    deviation: ``s * f / z * sqrt(1 + (x^2 + y^2) / z^2)`` for its largest scale ``s`` (the
    projection's Jacobian norm), widened by the rasterizer's 2D blur. The rasterizer draws a
    Gaussian only within ``3 sigma`` (rounded out to whole tiles), so dropping the others does
    not change the render; it saves projecting and sorting Gaussians that reach no pixel.
    """
    R = viewmat[:3, :3].to(means)
    t = viewmat[:3, 3].to(means)
    cam = means @ R.T + t
    z = cam[:, 2]
    front = z > near_plane
    zc = torch.where(front, z, torch.ones_like(z))
    (fx, _, cx), (_, fy, cy), _ = K.tolist()
    x = fx * cam[:, 0] / zc + cx
    y = fy * cam[:, 1] / zc + cy
    slant = torch.sqrt(1.0 + (cam[:, 0].square() + cam[:, 1].square()) / zc.square())
    sigma = scales.max(dim=-1).values * max(fx, fy) / zc * slant
    reach = 3.5 * torch.sqrt(sigma.square() + 0.3) + tile_px
    keep = front & (x > -reach) & (x < width + reach) & (y > -reach) & (y < height + reach)
    return torch.nonzero(keep).squeeze(1)


def accumulate_label_weights(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] (activated)
    opacities: Tensor,  # [N] (activated)
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    labels: Union[Tensor, np.ndarray],  # [H, W] int, 0..num_labels-1
    num_labels: int,
    *,
    out: Optional[Tensor] = None,  # [N, num_labels] accumulated into
    label_chunk: int = 32,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    backend: Backend = "auto",
) -> Tensor:
    """[N, num_labels] sum over pixels of each Gaussian's compositing weight ``alpha_i T_i``, per pixel label.

    The weights are the gradient of the rendered one-hot label image with respect to
    per-Gaussian colour channels, so they come from the rasterizer (depth order, occlusion,
    early stop) on both backends; one render per chunk of ``label_chunk`` labels. Pass
    ``out`` to sum over views.
    """
    device = means.device
    H, W = int(labels.shape[0]), int(labels.shape[1])
    labels = torch.as_tensor(np.asarray(labels) if isinstance(labels, np.ndarray) else labels, device=device).long()
    N = means.shape[0]
    geo = [t.detach() for t in (means, quats, scales, opacities)]
    chunks = []
    for lo in range(0, num_labels, label_chunk):
        hi = min(num_labels, lo + label_chunk)
        in_chunk = (labels >= lo) & (labels < hi)
        if not bool(in_chunk.any()):
            chunks.append(torch.zeros(N, hi - lo, dtype=means.dtype, device=device))
            continue
        onehot = torch.zeros(H, W, hi - lo, dtype=means.dtype, device=device)
        onehot[in_chunk, labels[in_chunk] - lo] = 1.0
        carrier = torch.zeros(N, hi - lo, dtype=means.dtype, device=device, requires_grad=True)
        with torch.enable_grad():
            img, _, _ = rasterize(
                *geo, carrier, viewmat[None], K[None], W, H,
                sh_degree=None, packed=False, near_plane=near_plane, far_plane=far_plane, eps2d=eps2d,
                rasterize_mode=rasterize_mode, backend=backend,
            )  # fmt: skip
            (grad,) = torch.autograd.grad(img, carrier, grad_outputs=onehot[None])
        chunks.append(grad)
    weights = chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1) if chunks else means.new_zeros(N, 0)
    if out is None:
        return weights
    out += weights
    return out
