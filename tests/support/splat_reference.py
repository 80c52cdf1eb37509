"""Brute-force reference renderer for tests: every Gaussian evaluated at every pixel, loop over depth.

Written independently of the rasterizer under test (no tiles, no sort of pairs, no custom
backward) from gsplat 1.4.0's documented conventions: EWA projection with the 1.3x-FOV
clamp of the Jacobian, ``eps2d`` blur, ``radius = ceil(3 sqrt(lambda_max))``, a Gaussian
reaches the pixels of the 16x16 tiles its ``[mean - radius, mean + radius]`` square
overlaps, pixel centres at ``+0.5``, ``alpha = min(0.999, o exp(-sigma))`` skipped below
1/255, and a pixel stops before the Gaussian that would bring its transmittance to 1e-4.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor


def quat_to_rotmat(q: Tensor) -> Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def project(means, quats, scales, viewmat, K, width, height, eps2d=0.3, near=0.01, far=1e10, antialiased=False):
    """Per-Gaussian 2D mean, conic, depth, radius (0 = culled) and compensation for one camera."""
    R = quat_to_rotmat(quats)
    M = R * scales[:, None, :]
    cov = M @ M.transpose(1, 2)
    Rc, tc = viewmat[:3, :3], viewmat[:3, 3]
    mc = means @ Rc.T + tc
    covc = Rc @ cov @ Rc.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx, ty, tz = mc.unbind(-1)
    tz_safe = torch.where(tz > near, tz, torch.ones_like(tz))
    lim_x_pos = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_x_neg = cx / fx + 0.3 * (0.5 * width / fx)
    lim_y_pos = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_y_neg = cy / fy + 0.3 * (0.5 * height / fy)
    txc = tz_safe * torch.clamp(tx / tz_safe, -lim_x_neg, lim_x_pos)
    tyc = tz_safe * torch.clamp(ty / tz_safe, -lim_y_neg, lim_y_pos)
    J = torch.zeros(len(means), 2, 3, dtype=means.dtype)
    J[:, 0, 0] = fx / tz_safe
    J[:, 0, 2] = -fx * txc / tz_safe**2
    J[:, 1, 1] = fy / tz_safe
    J[:, 1, 2] = -fy * tyc / tz_safe**2
    c2 = J @ covc @ J.transpose(1, 2)
    det0 = c2[:, 0, 0] * c2[:, 1, 1] - c2[:, 0, 1] * c2[:, 1, 0]
    c2 = c2 + eps2d * torch.eye(2, dtype=means.dtype)
    det = c2[:, 0, 0] * c2[:, 1, 1] - c2[:, 0, 1] * c2[:, 1, 0]
    comp = torch.sqrt(torch.clamp(det0 / det, min=0.0)) if antialiased else torch.ones_like(det)
    conic = torch.stack([c2[:, 1, 1] / det, -c2[:, 0, 1] / det, c2[:, 0, 0] / det], -1)
    m2 = torch.stack([fx * tx / tz_safe + cx, fy * ty / tz_safe + cy], -1)
    b = 0.5 * (c2[:, 0, 0] + c2[:, 1, 1])
    radius = torch.ceil(3.0 * torch.sqrt(b + torch.sqrt(torch.clamp(b * b - det, min=0.01))))
    ok = (tz > near) & (tz < far)
    ok &= (m2[:, 0] + radius > 0) & (m2[:, 0] - radius < width) & (m2[:, 1] + radius > 0) & (m2[:, 1] - radius < height)
    radius = torch.where(ok, radius, torch.zeros_like(radius))
    return m2, conic, tz, radius, comp


def composite(m2, conic, depth, radius, opac, colors, width, height, tile=16, background: Optional[Tensor] = None):
    """Dense front-to-back compositing of projected Gaussians: ``[H, W, D]`` colour and ``[H, W]`` alpha."""
    dt = m2.dtype
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dt), torch.arange(width, dtype=dt), indexing="ij")
    dx = m2[:, 0, None, None] - (xs + 0.5)
    dy = m2[:, 1, None, None] - (ys + 0.5)
    a, b, c = (conic[:, i, None, None] for i in range(3))
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = torch.clamp(opac[:, None, None] * torch.exp(-sigma), max=0.999)
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    r = radius / tile
    tx0 = torch.floor(m2[:, 0] / tile - r).clamp(0, tw)
    tx1 = torch.ceil(m2[:, 0] / tile + r).clamp(0, tw)
    ty0 = torch.floor(m2[:, 1] / tile - r).clamp(0, th)
    ty1 = torch.ceil(m2[:, 1] / tile + r).clamp(0, th)
    ptx = torch.div(xs, tile, rounding_mode="floor")
    pty = torch.div(ys, tile, rounding_mode="floor")
    inside = (ptx >= tx0[:, None, None]) & (ptx < tx1[:, None, None]) & (pty >= ty0[:, None, None]) & (pty < ty1[:, None, None])
    use = inside & (radius > 0)[:, None, None] & (alpha >= 1.0 / 255.0) & (sigma >= 0)
    alpha = torch.where(use, alpha, torch.zeros_like(alpha))
    order = torch.sort(depth, stable=True).indices
    T = torch.ones(height, width, dtype=dt)
    done = torch.zeros(height, width, dtype=torch.bool)
    out = torch.zeros(height, width, colors.shape[-1], dtype=dt)
    for i in order.tolist():
        a_i = alpha[i]
        done = done | ((T * (1 - a_i) <= 1e-4) & (a_i > 0))
        a_i = torch.where(done, torch.zeros_like(a_i), a_i)
        out = out + (a_i * T)[..., None] * colors[i]
        T = T * (1 - a_i)
    if background is not None:
        out = out + T[..., None] * background
    return out, 1 - T


def render(means, quats, scales, opac, colors, viewmat, K, width, height, background=None, antialiased=False, depth_channel=False):
    """Full reference render of one camera; ``depth_channel`` appends expected z-depth (``ED``)."""
    m2, conic, depth, radius, comp = project(means, quats, scales, viewmat, K, width, height, antialiased=antialiased)
    cols = torch.cat([colors, depth[:, None]], -1) if depth_channel else colors
    bg = None
    if background is not None:
        bg = torch.cat([background, background.new_zeros(1)]) if depth_channel else background
    out, alpha = composite(m2, conic, depth, radius, opac * comp, cols, width, height, background=bg)
    if depth_channel:
        out = torch.cat([out[..., :-1], out[..., -1:] / alpha[..., None].clamp(min=1e-10)], -1)
    return out, alpha


def random_scene(n: int, width: int, height: int, dtype=torch.float64, seed: int = 0, channels: int = 4, spread: float = 1.0):
    """Random Gaussians in front of an identity camera looking down +z."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=dtype) * torch.tensor([1.0, 0.8, 0.5], dtype=dtype) * spread
    means = means + torch.tensor([0.0, 0.0, 4.0], dtype=dtype)
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.rand(n, 3, generator=g, dtype=dtype) * 0.2 + 0.02
    opac = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    colors = torch.rand(n, channels, generator=g, dtype=dtype)
    K = torch.tensor([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1]], dtype=dtype)
    return means, quats, scales, opac, colors, torch.eye(4, dtype=dtype), K
