"""CPU reference rasterizer: gsplat 1.4.0's ``rasterization`` in plain PyTorch.

Same inputs, outputs and numerics as the CUDA path (unpacked layout):

- projection: gsplat's own pure-torch EWA projection (``gsplat.cuda._torch_impl``), run only
  on Gaussians between the near and far planes so that nothing behind the camera enters the
  backward pass; ``radii = ceil(3 sqrt(lambda_max))`` of the blurred 2D covariance
  (``eps2d``), 0 for culled Gaussians;
- compositing: a Gaussian reaches the pixels of the ``tile_size`` tiles that its
  ``[mean - radius, mean + radius]`` square overlaps (gsplat's tile intersection), pixel
  centres are at ``(x + 0.5, y + 0.5)``, ``alpha = min(0.999, opacity * exp(-sigma))``,
  pairs with ``alpha < 1/255`` are skipped, front-to-back by depth, and a pixel stops before
  the Gaussian that would bring its transmittance to ``<= 1e-4``.

How it runs on a CPU: Gaussians are assigned to small square sub-tiles (``SUBTILE`` pixels a
side, dividing ``tile_size``) that their ``alpha >= 1/255`` ellipse reaches; each sub-tile
holds a depth-sorted list. Sub-tiles of similar list length are batched into dense
``[B, P, K]`` blocks (``B`` sub-tiles, ``P`` pixels, ``K`` Gaussians) so that every step is a
dense tensor op: ``sigma`` is one matrix product of per-Gaussian quadratic-form coefficients
with the pixel monomials ``[x^2, xy, y^2, x, y, 1]``, transmittance a ``cumprod`` along ``K``,
colour a batched matrix product. The backward pass is written by hand (``_TileComposite``):
per-pixel gradients are reduced to the quadratic coefficients with one more matrix product,
chained to means, conics and opacities analytically, and summed per Gaussian with a segment
reduction. Forward blocks are kept for the backward pass up to ``KEEP_BYTES`` and recomputed
beyond, so memory stays bounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA_MIN = 1.0 / 255.0
"""Pairs with a smaller alpha are skipped (gsplat)."""
ALPHA_MAX = 0.999
"""Alpha is clamped to this value (gsplat)."""
T_MIN = 1e-4
"""A pixel stops before the Gaussian that would bring its transmittance to this value or below (gsplat)."""
SUBTILE = 8
"""Side of the sub-tiles that the compositor batches (must divide ``tile_size``; gcd is used otherwise)."""
BLOCK_ELEMENTS = 1 << 20
"""Upper bound on ``B * K * P`` of one dense block (memory of a block ~ a few times this many floats)."""
KEEP_BYTES = 768 << 20
"""Forward blocks are kept for the backward pass when they fit in this many bytes, else recomputed."""
BLOCK_PADDING = 0.15
"""Sub-tiles share a block while its padding stays below this fraction of its useful elements ..."""
BLOCK_PADDING_FLOOR = 1 << 15
"""... or below this many elements (so short lists go in few blocks)."""
_PAD_SIGMA = 1e4
"""``sigma`` of padding entries: ``exp(-1e4) == 0``."""


# ---------------------------------------------------------------------------------------------
# Projection


def project_gaussians(
    means: Tensor,  # [N, 3]
    quats: Optional[Tensor],  # [N, 4]
    scales: Optional[Tensor],  # [N, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    calc_compensations: bool = False,
    camera_model: Literal["pinhole", "ortho", "fisheye"] = "pinhole",
    covars: Optional[Tensor] = None,  # [N, 3, 3]
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Optional[Tensor]]:
    """EWA projection of 3D Gaussians (gsplat's unpacked ``fully_fused_projection``, in torch).

    Returns ``radii [C, N] int32, means2d [C, N, 2], depths [C, N], conics [C, N, 3],
    compensations [C, N] or None``; entries of culled Gaussians are zero. Only Gaussians
    strictly between the near and far planes are projected, so no NaN can reach gradients.
    """
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    N = means.shape[0]
    C = viewmats.shape[0]
    if covars is None:
        covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    with torch.no_grad():
        z = torch.einsum("cj,nj->cn", viewmats[:, 2, :3], means) + viewmats[:, 2, 3:4]  # [C, N]
        in_range = (z > near_plane) & (z < far_plane)

    radii_l, means2d_l, depths_l, conics_l, comp_l = [], [], [], [], []
    for c in range(C):
        idx = torch.nonzero(in_range[c]).squeeze(1)
        radii_c = torch.zeros(N, dtype=torch.int32, device=means.device)
        if idx.numel() == 0:
            means2d_l.append(means.new_zeros(N, 2) + 0.0 * means[:, :2])
            depths_l.append(means.new_zeros(N))
            conics_l.append(means.new_zeros(N, 3))
            comp_l.append(means.new_zeros(N) if calc_compensations else None)
            radii_l.append(radii_c)
            continue
        radii, m2d, depths, conics, comps = _fully_fused_projection(
            means[idx],
            covars[idx],
            viewmats[c : c + 1],
            Ks[c : c + 1],
            width,
            height,
            eps2d=eps2d,
            near_plane=near_plane,
            far_plane=far_plane,
            calc_compensations=calc_compensations,
            camera_model=camera_model,
        )
        radii = radii[0]
        if radius_clip > 0:
            radii = torch.where(radii.float() <= radius_clip, torch.zeros_like(radii), radii)
        radii_c[idx] = radii.to(torch.int32)
        radii_l.append(radii_c)
        means2d_l.append(means.new_zeros(N, 2).index_copy(0, idx, m2d[0]))
        depths_l.append(means.new_zeros(N).index_copy(0, idx, depths[0]))
        conics_l.append(means.new_zeros(N, 3).index_copy(0, idx, conics[0]))
        comp_l.append(means.new_zeros(N).index_copy(0, idx, comps[0]) if calc_compensations else None)

    radii = torch.stack(radii_l)
    means2d = torch.stack(means2d_l)
    depths = torch.stack(depths_l)
    conics = torch.stack(conics_l)
    comps = torch.stack(comp_l) if calc_compensations else None
    return radii, means2d, depths, conics, comps


# ---------------------------------------------------------------------------------------------
# Tile plan (integer bookkeeping, no gradients)


@dataclass
class TilePlan:
    """Which Gaussians touch which sub-tile, and how sub-tiles are batched into dense blocks."""

    width: int
    height: int
    sub: int
    """Sub-tile side in pixels."""
    tiles_x: int
    tiles_y: int
    entry_gauss: Tensor
    """[Q] int64 Gaussian (index into the depth-sorted visible list) of each (sub-tile, Gaussian) entry."""
    entry_tile: Tensor
    """[Q] int64 sub-tile of each entry; entries are grouped by sub-tile, depth order inside."""
    by_gaussian: Tensor
    """[Q] int64 entry indices ordered by Gaussian (for segment sums of per-entry gradients)."""
    entries_per_gaussian: Tensor
    """[n] int64 number of entries of each Gaussian."""
    blocks: List[Tuple[Tensor, Tensor]]
    """Per dense block: sub-tile ids [B] and entry indices [B, K] (``Q`` pads)."""
    monomials: Tensor
    """[P, 6] ``[x^2, xy, y^2, x, y, 1]`` of the sub-tile's pixel centres (local coordinates)."""

    @property
    def num_entries(self) -> int:
        return int(self.entry_gauss.numel())

    @property
    def num_subtiles(self) -> int:
        return self.tiles_x * self.tiles_y

    @property
    def pixels_per_subtile(self) -> int:
        return self.sub * self.sub

    def entry_origins(self, dtype: torch.dtype) -> Tensor:
        """[Q, 2] pixel coordinates of each entry's sub-tile corner."""
        tx = (self.entry_tile % self.tiles_x).to(dtype) * self.sub
        ty = torch.div(self.entry_tile, self.tiles_x, rounding_mode="floor").to(dtype) * self.sub
        return torch.stack([tx, ty], dim=-1)

    def to_tiles(self, image: Tensor) -> Tensor:
        """[H, W, D] image -> [S, P, D] sub-tile layout (zero padded)."""
        H, W, D = image.shape
        s = self.sub
        Hp, Wp = self.tiles_y * s, self.tiles_x * s
        if (Hp, Wp) != (H, W):
            image = torch.nn.functional.pad(image, (0, 0, 0, Wp - W, 0, Hp - H))
        return image.reshape(self.tiles_y, s, self.tiles_x, s, D).permute(0, 2, 1, 3, 4).reshape(-1, s * s, D)

    def from_tiles(self, tiles: Tensor) -> Tensor:
        """[S, P, D] sub-tile layout -> [H, W, D] image."""
        s = self.sub
        D = tiles.shape[-1]
        img = tiles.reshape(self.tiles_y, self.tiles_x, s, s, D).permute(0, 2, 1, 3, 4)
        return img.reshape(self.tiles_y * s, self.tiles_x * s, D)[: self.height, : self.width]


def _pixel_monomials(sub: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[P, 6] monomials ``[x^2, xy, y^2, x, y, 1]`` of the pixel centres of a sub-tile (row-major)."""
    r = torch.arange(sub, dtype=dtype, device=device) + 0.5
    py, px = torch.meshgrid(r, r, indexing="ij")
    px, py = px.reshape(-1), py.reshape(-1)
    return torch.stack([px * px, px * py, py * py, px, py, torch.ones_like(px)], dim=-1)


@torch.no_grad()
def build_tile_plan(
    means2d: Tensor,  # [n, 2] depth-sorted visible Gaussians
    conics: Tensor,  # [n, 3]
    opacities: Tensor,  # [n]
    radii: Tensor,  # [n]
    width: int,
    height: int,
    tile_size: int = 16,
    sub: Optional[int] = None,
    block_elements: Optional[int] = None,
) -> TilePlan:
    """Assign depth-sorted Gaussians to sub-tiles and batch sub-tiles into dense blocks.

    A Gaussian enters a sub-tile when the sub-tile lies inside the tiles gsplat assigns it and
    meets the bounding box of its ``alpha >= 1/255`` ellipse; pixels of that sub-tile outside
    the ellipse get ``alpha < 1/255`` and are skipped by the compositor, so the result is
    exactly gsplat's pixel set.
    """
    device = means2d.device
    sub = math.gcd(int(tile_size), int(SUBTILE if sub is None else sub))
    block_elements = BLOCK_ELEMENTS if block_elements is None else block_elements
    tiles_x = -(-width // sub)
    tiles_y = -(-height // sub)
    tile_w = -(-width // tile_size)
    tile_h = -(-height // tile_size)
    n = means2d.shape[0]
    m = means2d.detach().double()
    a, b, c = conics.detach().double().unbind(-1)
    o = opacities.detach().double()
    r = radii.double()

    # gsplat tile range [t0, t1) of each Gaussian, in pixels.
    tr = r / tile_size
    tx = m[:, 0] / tile_size
    ty = m[:, 1] / tile_size
    x_lo = torch.floor(tx - tr).clamp(0, tile_w) * tile_size
    x_hi = torch.ceil(tx + tr).clamp(0, tile_w) * tile_size
    y_lo = torch.floor(ty - tr).clamp(0, tile_h) * tile_size
    y_hi = torch.ceil(ty + tr).clamp(0, tile_h) * tile_size

    # Bounding box of the ellipse sigma <= log(255 * opacity), i.e. alpha >= 1/255 (padded for rounding).
    tau = torch.log((o * 255.0).clamp_min(1e-30))
    det = (a * c - b * b).clamp_min(1e-30)
    ok = (tau >= 0) & (r > 0)
    tau = tau.clamp_min(0)
    ex = torch.sqrt(2.0 * tau * c / det) * (1 + 1e-6) + 1e-3
    ey = torch.sqrt(2.0 * tau * a / det) * (1 + 1e-6) + 1e-3
    # pixel columns/rows whose centres lie in the box, clipped to tiles and image: [c0, c1)
    c0 = torch.maximum(torch.ceil(m[:, 0] - ex - 0.5), x_lo).clamp_min(0)
    c1 = torch.minimum(torch.floor(m[:, 0] + ex - 0.5) + 1, x_hi).clamp_max(width)
    r0 = torch.maximum(torch.ceil(m[:, 1] - ey - 0.5), y_lo).clamp_min(0)
    r1 = torch.minimum(torch.floor(m[:, 1] + ey - 0.5) + 1, y_hi).clamp_max(height)
    ok &= (c1 > c0) & (r1 > r0) & torch.isfinite(ex) & torch.isfinite(ey)
    c0, c1, r0, r1 = (torch.where(ok, v, torch.zeros_like(v)).long() for v in (c0, c1, r0, r1))
    sx0 = torch.div(c0, sub, rounding_mode="floor")
    sx1 = torch.where(ok, torch.div(c1 - 1, sub, rounding_mode="floor") + 1, sx0)
    sy0 = torch.div(r0, sub, rounding_mode="floor")
    sy1 = torch.where(ok, torch.div(r1 - 1, sub, rounding_mode="floor") + 1, sy0)
    nsx = sx1 - sx0
    counts = nsx * (sy1 - sy0)  # [n] candidate sub-tiles per Gaussian

    gauss = torch.repeat_interleave(torch.arange(n, device=device), counts)
    starts = torch.cumsum(counts, 0) - counts
    j = torch.arange(gauss.numel(), device=device) - starts[gauss]
    nsx_g = nsx[gauss]
    tx_e = sx0[gauss] + j % nsx_g
    ty_e = sy0[gauss] + torch.div(j, nsx_g, rounding_mode="floor")
    # exact test: does the ellipse reach a pixel centre of the sub-tile?
    lo_x = tx_e.double() * sub + 0.5 - m[gauss, 0]
    lo_y = ty_e.double() * sub + 0.5 - m[gauss, 1]
    reach = _min_quadratic_on_rect(a[gauss], b[gauss], c[gauss], lo_x, lo_x + (sub - 1), lo_y, lo_y + (sub - 1))
    hit = reach <= tau[gauss] * (1 + 1e-6) + 1e-9
    gauss = gauss[hit]
    tile = (ty_e * tiles_x + tx_e)[hit]
    order = torch.sort(tile, stable=True).indices
    entry_gauss = gauss[order]
    entry_tile = tile[order]
    total = int(entry_gauss.numel())
    by_gaussian = torch.empty_like(order)
    by_gaussian[order] = torch.arange(total, device=device)  # entries were enumerated Gaussian by Gaussian

    num_tiles = tiles_x * tiles_y
    per_tile = torch.bincount(entry_tile, minlength=num_tiles)
    tile_start = torch.cumsum(per_tile, 0) - per_tile
    tile_order = torch.sort(per_tile, descending=True, stable=True).indices
    sorted_counts = per_tile[tile_order].tolist()
    busy = int((per_tile > 0).sum())
    P = sub * sub
    blocks: List[Tuple[Tensor, Tensor]] = []
    i = 0
    while i < busy:
        k = sorted_counts[i]  # longest list of the block (counts are sorted)
        # extend the block while its padding stays small (relative, or absolute for short lists)
        e, useful = i + 1, k
        while e < busy and (e + 1 - i) * k * P <= block_elements:
            pad = (e + 1 - i) * k - (useful + sorted_counts[e])
            if pad > max(BLOCK_PADDING * (useful + sorted_counts[e]), BLOCK_PADDING_FLOOR // P):
                break
            useful += sorted_counts[e]
            e += 1
        tids = tile_order[i:e]
        ar = torch.arange(k, device=device)
        kk = per_tile[tids]
        idx = torch.where(ar[None, :] < kk[:, None], tile_start[tids][:, None] + ar[None, :], total)
        blocks.append((tids, idx))
        i = e
    return TilePlan(
        width=width,
        height=height,
        sub=sub,
        tiles_x=tiles_x,
        tiles_y=tiles_y,
        entry_gauss=entry_gauss,
        entry_tile=entry_tile,
        by_gaussian=by_gaussian,
        entries_per_gaussian=torch.bincount(gauss, minlength=n),
        blocks=blocks,
        monomials=_pixel_monomials(sub, means2d.dtype, device),
    )


def _min_quadratic_on_rect(a: Tensor, b: Tensor, c: Tensor, x0: Tensor, x1: Tensor, y0: Tensor, y1: Tensor) -> Tensor:
    """Minimum of ``0.5 (a x^2 + c y^2) + b x y`` (positive definite) over the rectangles ``[x0, x1] x [y0, y1]``."""
    inside = (x0 <= 0) & (x1 >= 0) & (y0 <= 0) & (y1 >= 0)
    best = torch.full_like(a, float("inf"))
    for x in (x0, x1):  # vertical edges: minimise over y
        y = torch.minimum(torch.maximum(-b * x / c, y0), y1)
        best = torch.minimum(best, 0.5 * (a * x * x + c * y * y) + b * x * y)
    for y in (y0, y1):  # horizontal edges: minimise over x
        x = torch.minimum(torch.maximum(-b * y / a, x0), x1)
        best = torch.minimum(best, 0.5 * (a * x * x + c * y * y) + b * x * y)
    return torch.where(inside, torch.zeros_like(best), best)


def quadratic_coefficients(
    means2d: Tensor,  # [Q, 2] (relative to each entry's sub-tile corner)
    conics: Tensor,  # [Q, 3]
    opacities: Tensor,  # [Q]
) -> Tensor:
    """[Q, 6] coefficients of ``sigma - log(opacity)`` on the monomials ``[x^2, xy, y^2, x, y, 1]``.

    ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` with ``(dx, dy) = (x, y) - mean``, so
    ``alpha = exp(-(coefficients @ monomials))`` before clamping.
    """
    mx, my = means2d.unbind(-1)
    a, b, c = conics.unbind(-1)
    lin_x = a * mx + b * my
    lin_y = b * mx + c * my
    const = 0.5 * (a * mx * mx + c * my * my) + b * mx * my - torch.log(opacities)
    return torch.stack([0.5 * a, b, 0.5 * c, -lin_x, -lin_y, const], dim=-1)


# ---------------------------------------------------------------------------------------------
# Compositing with a hand-written backward


class AbsGradSink:
    """Collects ``|dL/dmeans2d|`` summed over pixels (gsplat's ``absgrad``) during backward."""

    def __init__(self, buffer: Tensor, camera: int, gaussian_ids: Tensor) -> None:
        self.buffer = buffer  # [C, N, 2]
        self.camera = camera
        self.gaussian_ids = gaussian_ids  # [n] ids of the depth-sorted visible Gaussians

    def add(self, per_visible: Tensor) -> None:
        self.buffer[self.camera].index_add_(0, self.gaussian_ids, per_visible.to(self.buffer.dtype))


def _alpha_floor(dtype: torch.dtype) -> float:
    """Largest value below ``1/255`` in ``dtype``: ``threshold(x, floor)`` keeps exactly ``x >= 1/255``."""
    one = torch.tensor(ALPHA_MIN, dtype=dtype)
    return float(torch.nextafter(one, torch.zeros_like(one)))


def _block_alpha(coef: Tensor, mono: Tensor, alpha_floor: float) -> Tensor:
    """[B, P, K] alpha of one block from its coefficients [B, K, 6] (clamped, and 0 where skipped)."""
    alpha = torch.matmul(mono, coef.transpose(1, 2))  # sigma - log(opacity)
    alpha.neg_().exp_().clamp_(max=ALPHA_MAX)
    return F.threshold_(alpha, alpha_floor, 0.0)


def _block_transmittance(alpha: Tensor) -> Tensor:
    """[B, P, K] transmittance in front of each Gaussian, 0 from the Gaussian that stops the pixel on."""
    one_minus = 1.0 - alpha
    t_incl = F.threshold_(torch.cumprod(one_minus, dim=-1), T_MIN, 0.0)
    return t_incl.div_(one_minus)


class _TileComposite(torch.autograd.Function):
    """Front-to-back compositing of projected Gaussians over a tile plan (hand-written backward).

    Inputs are per visible Gaussian (depth-sorted): ``means2d [n, 2]``, ``conics [n, 3]``,
    ``opacities [n]``, ``colors [n, D]``. Per-entry gradients are chained through the quadratic
    coefficients by hand and summed per Gaussian with a segment reduction.
    """

    @staticmethod
    def forward(ctx: Any, means2d, conics, opacities, colors, plan: TilePlan, sink: Optional[AbsGradSink], keep: bool):
        n, D = colors.shape
        S, P = plan.num_subtiles, plan.pixels_per_subtile
        g = plan.entry_gauss
        local = means2d.index_select(0, g) - plan.entry_origins(means2d.dtype)
        coef = quadratic_coefficients(local, conics.index_select(0, g), opacities.index_select(0, g))
        coef_pad = torch.cat([coef, coef.new_tensor([[0, 0, 0, 0, 0, _PAD_SIGMA]])], 0)
        colors_pad = torch.cat([colors, colors.new_zeros(1, D)], 0)
        gauss_pad = torch.cat([g, g.new_tensor([n])])
        floor = _alpha_floor(coef.dtype)
        out = colors.new_zeros(S, P, D)
        acc = colors.new_zeros(S, P, 1)
        kept = []
        for tids, idx in plan.blocks:
            B, K = idx.shape
            flat = idx.view(-1)
            alpha = _block_alpha(coef_pad.index_select(0, flat).view(B, K, 6), plan.monomials, floor)
            t_excl = _block_transmittance(alpha)
            w = alpha * t_excl  # [B, P, K]
            col = colors_pad.index_select(0, gauss_pad.index_select(0, flat)).view(B, K, D)
            out.index_copy_(0, tids, torch.bmm(w, col))
            acc.index_copy_(0, tids, w.sum(-1, keepdim=True))
            if keep:
                kept.append((alpha, t_excl))
        ctx.save_for_backward(local, conics, opacities, coef_pad, colors_pad, gauss_pad, acc)
        ctx.kept = kept
        ctx.plan = plan
        ctx.sink = sink
        return plan.from_tiles(out), plan.from_tiles(acc)

    @staticmethod
    def backward(ctx: Any, g_render: Tensor, g_alpha: Tensor):
        local, conics, opacities, coef_pad, colors_pad, gauss_pad, acc = ctx.saved_tensors
        plan: TilePlan = ctx.plan
        sink: Optional[AbsGradSink] = ctx.sink
        Q = coef_pad.shape[0] - 1
        n, D = colors_pad.shape[0] - 1, colors_pad.shape[1]
        need_geometry = any(ctx.needs_input_grad[:3]) or sink is not None
        need_colors = ctx.needs_input_grad[3]
        g_out = plan.to_tiles(g_render.contiguous())  # [S, P, D]
        g_acc = plan.to_tiles(g_alpha.contiguous())  # [S, P, 1]
        mono = plan.monomials
        mono_t = mono.t().contiguous()
        floor = _alpha_floor(coef_pad.dtype)
        # per-entry gradients: [dcoef (6) | dcolour (D) | |dmean| (2)], row Q collects padding
        width = (6 if need_geometry else 0) + (D if need_colors else 0) + (2 if sink is not None else 0)
        per_entry = coef_pad.new_zeros(Q + 1, width)
        c_col = 6 if need_geometry else 0
        c_abs = c_col + (D if need_colors else 0)
        for b, (tids, idx) in enumerate(plan.blocks):
            B, K = idx.shape
            flat = idx.view(-1)
            coef = coef_pad.index_select(0, flat).view(B, K, 6)
            if ctx.kept:
                alpha, t_excl = ctx.kept[b]
            else:
                alpha = _block_alpha(coef, mono, floor)
                t_excl = _block_transmittance(alpha)
            w = alpha * t_excl
            go = g_out.index_select(0, tids)  # [B, P, D]
            rows = []
            if need_geometry:
                col = colors_pad.index_select(0, gauss_pad.index_select(0, flat)).view(B, K, D)
                v = torch.bmm(go, col.transpose(1, 2))  # [B, P, K] colour . dL/drender
            if need_colors:
                d_col = torch.bmm(w.transpose(1, 2), go).view(B * K, D)
            if need_geometry:
                wv = w.mul_(v)
                # later[k] = sum_{j > k} w_j v_j - dL/dalpha_pixel * T_final
                later = torch.cumsum(wv, dim=-1).neg_().add_(wv.sum(-1, keepdim=True))
                later.sub_(g_acc.index_select(0, tids) * (1.0 - acc.index_select(0, tids)))
                # dL/dalpha = T v - later / (1 - alpha);  dL/dsigma' = -alpha dL/dalpha on live pairs
                d_sig = later.div_(1.0 - alpha).sub_(v.mul_(t_excl))
                d_sig.mul_(alpha).mul_(torch.sign(t_excl)).mul_(torch.sign(ALPHA_MAX - alpha))
                rows.append(torch.matmul(mono_t, d_sig).transpose(1, 2).reshape(B * K, 6))
            if need_colors:
                rows.append(d_col)
            if sink is not None:
                # |dL/dmean| per pixel: |d_sig| |d(sigma)/d(mean)|, d(sigma)/dmx = -(2A x + B y + D)
                mono3 = mono[:, 3:]
                lx = torch.matmul(mono3, torch.stack([2 * coef[..., 0], coef[..., 1], coef[..., 3]], 1)).abs_()
                ly = torch.matmul(mono3, torch.stack([coef[..., 1], 2 * coef[..., 2], coef[..., 4]], 1)).abs_()
                ad = d_sig.abs_()
                rows.append(torch.stack([(ad * lx).sum(1), (ad * ly).sum(1)], -1).view(B * K, 2))
            per_entry.index_copy_(0, flat, torch.cat(rows, -1) if len(rows) > 1 else rows[0])
        ctx.kept = None
        per_entry = per_entry[:Q]
        grads: list = [None, None, None, None]
        if need_geometry:
            # chain rule through the coefficients (see quadratic_coefficients)
            g0, g1, g2, g3, g4, g5 = per_entry[:, :6].unbind(-1)
            mx, my = local.unbind(-1)
            g = plan.entry_gauss
            a, b, c = conics.index_select(0, g).unbind(-1)
            lin_x = a * mx + b * my
            lin_y = b * mx + c * my
            d_geo = torch.stack(
                [
                    -a * g3 - b * g4 + lin_x * g5,  # d mean x
                    -b * g3 - c * g4 + lin_y * g5,  # d mean y
                    0.5 * g0 - mx * g3 + 0.5 * mx * mx * g5,  # d conic a
                    g1 - my * g3 - mx * g4 + mx * my * g5,  # d conic b
                    0.5 * g2 - my * g4 + 0.5 * my * my * g5,  # d conic c
                    -g5 / opacities.index_select(0, g),  # d opacity
                ],
                -1,
            )
            per_entry = torch.cat([d_geo, per_entry[:, 6:]], -1)
        if Q > 0:
            per_gauss = torch.segment_reduce(
                per_entry.index_select(0, plan.by_gaussian), "sum", lengths=plan.entries_per_gaussian, axis=0
            )  # [n, width]
        else:
            per_gauss = per_entry.new_zeros(n, per_entry.shape[1])
        if need_geometry:
            grads[0], grads[1], grads[2] = per_gauss[:, 0:2], per_gauss[:, 2:5], per_gauss[:, 5]
        if need_colors:
            grads[3] = per_gauss[:, c_col : c_col + D]
        if sink is not None:
            sink.add(per_gauss[:, c_abs : c_abs + 2])
        return (*grads, None, None, None)


def composite(
    means2d: Tensor,  # [n, 2] depth-sorted
    conics: Tensor,  # [n, 3]
    opacities: Tensor,  # [n]
    colors: Tensor,  # [n, D]
    plan: TilePlan,
    sink: Optional[AbsGradSink] = None,
) -> Tuple[Tensor, Tensor]:
    """Render ``colors`` of depth-sorted projected Gaussians: ``[H, W, D]`` and alpha ``[H, W, 1]``."""
    keep = plan.num_entries * plan.pixels_per_subtile * 2 * colors.element_size() <= KEEP_BYTES
    return _TileComposite.apply(means2d, conics, opacities, colors, plan, sink, keep)


# ---------------------------------------------------------------------------------------------
# gsplat-compatible entry point


def rasterization(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] or [(C,) N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    render_mode: Literal["RGB", "D", "ED", "RGB+D", "RGB+ED"] = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: Literal["classic", "antialiased"] = "classic",
    channel_chunk: int = 32,
    distributed: bool = False,
    camera_model: Literal["pinhole", "ortho", "fisheye"] = "pinhole",
    covars: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor, Dict[str, Any]]:
    """Drop-in CPU counterpart of ``gsplat.rasterization`` (1.4.0).

    Returns ``render [C, H, W, X]``, ``alpha [C, H, W, 1]`` and a meta dict in gsplat's
    unpacked layout (``radii [C, N]`` int32, ``means2d [C, N, 2]`` carrying the 2D gradient and,
    with ``absgrad``, ``means2d.absgrad``; ``gaussian_ids``/``camera_ids`` None), which is
    what ``gsplat.strategy.DefaultStrategy`` reads. ``packed``, ``sparse_grad`` and
    ``channel_chunk`` only change memory layout on CUDA and are accepted for compatibility;
    the meta is always unpacked. ``distributed`` is not supported.
    """
    if distributed:
        raise ValueError("the torch rasterizer does not support distributed rendering")
    if render_mode not in ("RGB", "D", "ED", "RGB+D", "RGB+ED"):
        raise ValueError(f"unknown render_mode {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"unknown rasterize_mode {rasterize_mode!r}")
    N = means.shape[0]
    C = viewmats.shape[0]
    if opacities.shape != (N,):
        raise ValueError(f"opacities must have shape ({N},), got {tuple(opacities.shape)}")
    if sh_degree is None:
        if not ((colors.dim() == 2 and colors.shape[0] == N) or (colors.dim() == 3 and colors.shape[:2] == (C, N))):
            raise ValueError(f"colors must be [N, D] or [C, N, D] without sh_degree, got {tuple(colors.shape)}")
    elif not (
        (colors.dim() == 3 and colors.shape[0] == N and colors.shape[2] == 3)
        or (colors.dim() == 4 and colors.shape[:2] == (C, N) and colors.shape[3] == 3)
    ) or (sh_degree + 1) ** 2 > colors.shape[-2]:
        k = (sh_degree + 1) ** 2
        raise ValueError(f"colors must be SH coefficients [(C,) N, K>={k}, 3], got {tuple(colors.shape)}")

    radii, means2d, depths, conics, comps = project_gaussians(
        means,
        quats,
        scales,
        viewmats,
        Ks,
        width,
        height,
        eps2d=eps2d,
        near_plane=near_plane,
        far_plane=far_plane,
        radius_clip=radius_clip,
        calc_compensations=rasterize_mode == "antialiased",
        camera_model=camera_model,
        covars=covars,
    )
    opac = opacities[None].expand(C, N)
    if comps is not None:
        opac = opac * comps

    absgrad_buffer = None
    if absgrad and means2d.requires_grad:
        absgrad_buffer = means2d.new_zeros(C, N, 2)
        means2d.absgrad = absgrad_buffer

    renders, alphas = [], []
    tile_counts = []
    for c in range(C):
        vis = torch.nonzero(radii[c] > 0).squeeze(1)
        vis = vis[torch.sort(depths[c].detach()[vis], stable=True).indices]
        m2d = means2d[c][vis]
        con = conics[c][vis]
        op = opac[c][vis]
        chans = _channels(colors, sh_degree, means, viewmats, c, vis, depths[c][vis], render_mode)
        plan = build_tile_plan(m2d, con, op, radii[c][vis], width, height, tile_size)
        counts = torch.zeros(N, dtype=torch.int32, device=means.device)
        counts.index_add_(0, vis[plan.entry_gauss], torch.ones_like(plan.entry_gauss, dtype=torch.int32))
        tile_counts.append(counts)
        sink = AbsGradSink(absgrad_buffer, c, vis) if absgrad_buffer is not None else None
        render, alpha = composite(m2d, con, op, chans, plan, sink)
        if backgrounds is not None:
            bg = backgrounds[c]
            if render_mode in ("RGB+D", "RGB+ED"):
                bg = torch.cat([bg, bg.new_zeros(1)])
            elif render_mode in ("D", "ED"):
                bg = bg.new_zeros(1)
            render = render + (1.0 - alpha) * bg
        if render_mode in ("ED", "RGB+ED"):
            render = torch.cat([render[..., :-1], render[..., -1:] / alpha.clamp(min=1e-10)], dim=-1)
        renders.append(render)
        alphas.append(alpha)

    meta: Dict[str, Any] = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": radii,
        "means2d": means2d,
        "depths": depths,
        "conics": conics,
        "opacities": opac,
        "tile_width": -(-width // tile_size),
        "tile_height": -(-height // tile_size),
        "tiles_per_gauss": torch.stack(tile_counts),
        "isect_ids": None,
        "flatten_ids": None,
        "isect_offsets": None,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": C,
    }
    return torch.stack(renders), torch.stack(alphas), meta


def _channels(
    colors: Tensor,
    sh_degree: Optional[int],
    means: Tensor,
    viewmats: Tensor,
    c: int,
    vis: Tensor,
    depths: Tensor,
    render_mode: str,
) -> Tensor:
    """[n, X] per-Gaussian channels of camera ``c`` for the visible Gaussians ``vis``."""
    if render_mode in ("D", "ED"):
        return depths[:, None]
    cols = colors[c] if colors.dim() == (3 if sh_degree is None else 4) else colors
    cols = cols[vis]
    if sh_degree is not None:
        from gsplat.cuda._torch_impl import _spherical_harmonics

        R = viewmats[c, :3, :3]
        t = viewmats[c, :3, 3]
        campos = -R.transpose(0, 1) @ t
        cols = torch.clamp_min(_spherical_harmonics(sh_degree, means[vis] - campos, cols) + 0.5, 0.0)
    if render_mode in ("RGB+D", "RGB+ED"):
        cols = torch.cat([cols, depths[:, None]], dim=-1)
    return cols
