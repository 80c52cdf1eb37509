"""The torch rasterizer against a brute-force renderer, finite differences, DefaultStrategy and gsplat."""

from __future__ import annotations

import math

import pytest
import torch
from support.splat_reference import composite as ref_composite
from support.splat_reference import random_scene
from support.splat_reference import render as ref_render

from mastsam_splat.splat.torch_rasterizer import project_gaussians, rasterization


def _rasterize(scene, width, height, **kwargs):
    means, quats, scales, opac, colors, viewmat, K = scene
    return rasterization(means, quats, scales, opac, colors, viewmat[None], K[None], width, height, **kwargs)


@pytest.mark.parametrize(
    "n, width, height, seed",
    [(1, 17, 13, 0), (60, 37, 29, 1), (300, 64, 48, 2), (120, 50, 40, 3)],
)
def test_matches_brute_force_float64(n, width, height, seed):
    scene = random_scene(n, width, height, seed=seed)
    means, quats, scales, opac, colors, viewmat, K = scene
    background = torch.rand(colors.shape[1], dtype=torch.float64)
    out, alpha, meta = _rasterize(scene, width, height, backgrounds=background[None])
    ref, ref_alpha = ref_render(means, quats, scales, opac, colors, viewmat, K, width, height, background=background)
    torch.testing.assert_close(out[0], ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(alpha[0, ..., 0], ref_alpha, atol=1e-10, rtol=0)
    assert out.shape == (1, height, width, colors.shape[1]) and alpha.shape == (1, height, width, 1)


def test_early_stop_and_depth_order():
    """Many opaque overlapping Gaussians: pixels saturate, so the 1e-4 transmittance stop matters."""
    width, height = 40, 30
    means, quats, scales, opac, colors, viewmat, K = random_scene(200, width, height, seed=5, spread=0.3)
    opac = torch.full_like(opac, 0.98)
    scales = scales * 3
    out, alpha, _ = rasterization(means, quats, scales, opac, colors, viewmat[None], K[None], width, height)
    ref, ref_alpha = ref_render(means, quats, scales, opac, colors, viewmat, K, width, height)
    assert float(ref_alpha.max()) > 1 - 1e-3  # saturated somewhere
    torch.testing.assert_close(out[0], ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(alpha[0, ..., 0], ref_alpha, atol=1e-10, rtol=0)


def test_expected_depth_antialiased_and_sh():
    width, height = 33, 27
    means, quats, scales, opac, colors, viewmat, K = random_scene(80, width, height, seed=6)
    out, alpha, _ = rasterization(
        means, quats, scales, opac, colors, viewmat[None], K[None], width, height, render_mode="RGB+ED", rasterize_mode="antialiased"
    )
    ref, _ = ref_render(means, quats, scales, opac, colors, viewmat, K, width, height, antialiased=True, depth_channel=True)
    torch.testing.assert_close(out[0], ref, atol=1e-9, rtol=0)
    covered = alpha[0, ..., 0] > 0.5
    depth = out[0, ..., -1][covered]
    assert bool(((depth > means[:, 2].min() - 1) & (depth < means[:, 2].max() + 1)).all())

    # degree-1 SH: colour = 0.5 + C0 dc - C1 y f1 + C1 z f2 - C1 x f3 (gsplat's basis order)
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(len(means), 4, 3, generator=g, dtype=torch.float64) * 0.3
    out_sh, _, _ = rasterization(means, quats, scales, opac, sh, viewmat[None], K[None], width, height, sh_degree=1)
    d = means / means.norm(dim=-1, keepdim=True)  # camera at the origin
    c0, c1 = 0.28209479177387814, 0.4886025119029199
    rgb = c0 * sh[:, 0] - c1 * d[:, 1:2] * sh[:, 1] + c1 * d[:, 2:3] * sh[:, 2] - c1 * d[:, 0:1] * sh[:, 3]
    rgb = torch.clamp_min(rgb + 0.5, 0.0)
    ref_sh, _ = ref_render(means, quats, scales, opac, rgb, viewmat, K, width, height)
    torch.testing.assert_close(out_sh[0], ref_sh, atol=1e-10, rtol=0)


def test_float32_close_to_reference():
    width, height = 64, 48
    scene = random_scene(300, width, height, dtype=torch.float32, seed=7)
    out, _, _ = _rasterize(scene, width, height)
    means, quats, scales, opac, colors, viewmat, K = (t.double() for t in scene)
    ref, _ = ref_render(means, quats, scales, opac, colors, viewmat, K, width, height)
    err = (out[0].double() - ref).abs()
    assert float(err.mean()) < 1e-5
    assert float((err > 1e-3).float().mean()) < 1e-3  # rare threshold flips only


def test_multiple_cameras_culling_and_meta():
    width, height = 30, 20
    means, quats, scales, opac, colors, viewmat, K = random_scene(50, width, height, seed=8)
    behind = means.clone()
    behind[:5, 2] = -3.0  # behind the camera
    behind[5:8, 0] = 100.0  # far off-screen
    second = viewmat.clone()
    second[0, 3] = 0.3
    viewmats = torch.stack([viewmat, second])
    Ks = torch.stack([K, K])
    means_p = behind.clone().requires_grad_()
    out, alpha, meta = rasterization(means_p, quats, scales, opac, colors, viewmats, Ks, width, height)
    assert out.shape == (2, height, width, 4)
    assert meta["radii"].shape == (2, 50) and meta["radii"].dtype == torch.int32
    assert meta["means2d"].shape == (2, 50, 2)
    assert meta["width"] == width and meta["height"] == height and meta["n_cameras"] == 2
    assert meta["gaussian_ids"] is None and meta["camera_ids"] is None
    assert bool((meta["radii"][:, :8] == 0).all())
    for c in range(2):
        ref, _ = ref_render(behind, quats, scales, opac, colors, viewmats[c], K, width, height)
        torch.testing.assert_close(out[c], ref, atol=1e-10, rtol=0)
    out.sum().backward()
    assert bool(torch.isfinite(means_p.grad).all())
    assert bool((means_p.grad[:5] == 0).all())  # culled before projection: no NaN, no gradient


def test_empty_and_invisible_scenes():
    width, height = 16, 12
    means, quats, scales, opac, colors, viewmat, K = random_scene(4, width, height, seed=9)
    means = means.clone()
    means[:, 2] = -5.0
    means.requires_grad_()
    bg = torch.tensor([[0.2, 0.4, 0.6, 0.0]], dtype=torch.float64)
    out, alpha, meta = rasterization(means, quats, scales, opac, colors, viewmat[None], K[None], width, height, backgrounds=bg)
    torch.testing.assert_close(out[0], bg[0].expand(height, width, 4))
    assert float(alpha.detach().abs().max()) == 0.0
    out.sum().backward()
    assert float(means.grad.abs().max()) == 0.0


def test_gradcheck_all_inputs():
    """Hand-written backward vs finite differences (float64): means, quats, scales, opacities, colours."""
    width, height = 20, 16
    means, quats, scales, opac, colors, viewmat, K = random_scene(12, width, height, seed=3)
    scales = scales * 2
    bg = torch.full((1, 4), 0.3, dtype=torch.float64)

    def f(means, quats, scales, opac, colors):
        out, alpha, _ = rasterization(
            means, quats, scales, opac, colors, viewmat[None], K[None], width, height, render_mode="RGB+ED", backgrounds=bg
        )
        return out, alpha

    inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opac, colors)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradcheck_features_and_background():
    width, height = 18, 14
    means, quats, scales, opac, _, viewmat, K = random_scene(10, width, height, seed=4, channels=3)
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(10, 6, generator=g, dtype=torch.float64)

    def f(opac, feats, bg):
        out, alpha, _ = rasterization(means, quats, scales * 2, opac, feats, viewmat[None], K[None], width, height, backgrounds=bg)
        return out, alpha

    inputs = [opac.clone().requires_grad_(), feats.requires_grad_(), torch.rand(1, 6, dtype=torch.float64, requires_grad=True)]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradcheck_clamped_opaque_centres():
    """Near-opaque wide Gaussians: alpha is clamped to 0.999 around their centres, where its gradient vanishes."""
    width, height = 16, 12
    means, quats, scales, _, colors, viewmat, K = random_scene(2, width, height, seed=15)
    # the first one is centred between four pixel centres and about 26 px wide
    means = torch.tensor([[0.0, 0.0, 4.0], [2.0, -0.8, 5.0]], dtype=torch.float64)
    scales = torch.tensor([[8.0, 8.0, 8.0], [0.3, 0.5, 0.4]], dtype=torch.float64)
    opac = torch.tensor([0.99995, 0.7], dtype=torch.float64)

    def f(means, opac, colors):
        out, alpha, _ = rasterization(means, quats, scales, opac, colors, viewmat[None], K[None], width, height)
        return out, alpha

    alpha = f(means, opac, colors)[1]
    assert int(((alpha - 0.999).abs() < 1e-12).sum()) >= 4  # the clamp is active on the central pixels
    inputs = [means.clone().requires_grad_(), opac.requires_grad_(), colors.requires_grad_()]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradcheck_saturated_pixels(monkeypatch):
    """Stacked opaque Gaussians: pixels stop early; Gaussians after the stop get no gradient there."""
    import mastsam_splat.splat.torch_rasterizer as tr

    width, height = 12, 10
    means, quats, scales, _, colors, viewmat, K = random_scene(5, width, height, seed=16, spread=0.05)
    opac = torch.tensor([0.97, 0.96, 0.98, 0.95, 0.9], dtype=torch.float64)

    def f(means, opac, colors):
        out, alpha, _ = rasterization(means, quats, scales * 6, opac, colors, viewmat[None], K[None], width, height)
        return out, alpha

    with monkeypatch.context() as m:
        m.setattr(tr, "T_MIN", 0.0)
        no_stop = f(means, opac, colors)[1]
    assert float((f(means, opac, colors)[1] - no_stop).abs().max()) > 1e-5  # the stop changes some pixels
    inputs = [means.clone().requires_grad_(), opac.requires_grad_(), colors.requires_grad_()]
    assert torch.autograd.gradcheck(f, inputs, eps=1e-7, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_means2d_grad_and_absgrad_match_per_pixel_reference():
    width, height = 14, 11
    means, quats, scales, opac, colors, viewmat, K = random_scene(8, width, height, seed=11)
    scales = scales * 2
    weights = torch.randn(height, width, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out, _, meta = rasterization(
        means.requires_grad_(), quats, scales, opac, colors, viewmat[None], K[None], width, height, absgrad=True
    )
    meta["means2d"].retain_grad()
    (out[0] * weights).sum().backward()
    grad = meta["means2d"].grad[0]
    absgrad = meta["means2d"].absgrad[0]

    # the same quantities from the dense reference: per-pixel gradients w.r.t. the 2D means
    radii = meta["radii"][0].double()
    m2 = meta["means2d"][0].detach().clone().requires_grad_()
    conic = meta["conics"][0].detach()
    depth = meta["depths"][0].detach()
    ref_abs = torch.zeros_like(m2)
    ref_img, _ = ref_composite(m2, conic, depth, radii, opac, colors, width, height)
    for y in range(height):
        for x in range(width):
            (g,) = torch.autograd.grad((ref_img[y, x] * weights[y, x]).sum(), m2, retain_graph=True)
            ref_abs += g.abs()
    (ref_grad,) = torch.autograd.grad((ref_img * weights).sum(), m2)
    torch.testing.assert_close(grad, ref_grad, atol=1e-9, rtol=1e-7)
    torch.testing.assert_close(absgrad, ref_abs, atol=1e-9, rtol=1e-7)


def test_projection_matches_gsplat_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    width, height = 40, 30
    means, quats, scales, opac, colors, viewmat, K = random_scene(30, width, height, seed=12)
    radii, m2, depths, conics, _ = project_gaussians(means, quats, scales, viewmat[None], K[None], width, height)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, True, False)
    r2, m22, d2, c2, _ = _fully_fused_projection(means, covars, viewmat[None], K[None], width, height)
    assert torch.equal(radii, r2.int())
    vis = radii > 0
    torch.testing.assert_close(m2[vis], m22[vis])
    torch.testing.assert_close(conics[vis], c2[vis])


def test_default_strategy_refines_with_extra_feature_param():
    """gsplat's DefaultStrategy grows and prunes using this rasterizer's meta, keeping [N, 16] features aligned."""
    from gsplat.strategy import DefaultStrategy

    width, height = 48, 36
    means, quats, scales, opac, colors, viewmat, K = random_scene(150, width, height, dtype=torch.float32, seed=13)
    n = len(means)
    feats = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 16)
    params = torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(means),
            "scales": torch.nn.Parameter(torch.log(scales)),
            "quats": torch.nn.Parameter(quats),
            "opacities": torch.nn.Parameter(torch.logit(opac)),
            "colors": torch.nn.Parameter(colors),
            "instance_features": torch.nn.Parameter(feats),
        }
    )
    optimizers = {k: torch.optim.Adam([v], lr=1e-3) for k, v in params.items()}
    strategy = DefaultStrategy(grow_grad2d=1e-9, prune_opa=0.3, refine_start_iter=0, refine_every=2, reset_every=10**6, verbose=False)
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    for step in range(3):
        out, _, info = rasterization(
            params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
            torch.cat([params["colors"], params["instance_features"]], -1), viewmat[None], K[None], width, height,
            packed=False,
        )  # fmt: skip
        strategy.step_pre_backward(params, optimizers, state, step, info)
        out.square().mean().backward()
        assert info["means2d"].grad is not None and info["means2d"].grad.shape == (1, params["means"].shape[0], 2)
        for opt in optimizers.values():
            opt.step()
            opt.zero_grad()
        strategy.step_post_backward(params, optimizers, state, step, info, packed=False)
    sizes = {k: v.shape[0] for k, v in params.items()}
    assert len(set(sizes.values())) == 1, sizes
    assert sizes["means"] != n  # something was grown or pruned
    # grown Gaussians copy their parent's feature row: every row is still constant across its 16 channels
    f = params["instance_features"].detach()
    assert torch.allclose(f, f[:, :1].expand_as(f), atol=1e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat parity needs CUDA")
def test_parity_with_gsplat_cuda():
    from gsplat import rasterization as gsplat_rasterization

    width, height = 96, 72
    scene = random_scene(400, width, height, dtype=torch.float32, seed=14, channels=19)
    bg = torch.rand(1, 19)
    cpu = [t.clone().requires_grad_() for t in scene[:5]]
    out, alpha, meta = rasterization(*cpu, scene[5][None], scene[6][None], width, height, backgrounds=bg, render_mode="RGB+ED")
    gpu = [t.cuda().requires_grad_() for t in scene[:5]]
    out_g, alpha_g, meta_g = gsplat_rasterization(
        *gpu, scene[5][None].cuda(), scene[6][None].cuda(), width, height, backgrounds=bg.cuda(), render_mode="RGB+ED", packed=False
    )
    torch.testing.assert_close(out, out_g.cpu(), atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(alpha, alpha_g.cpu(), atol=2e-3, rtol=1e-3)
    assert torch.equal(meta["radii"], meta_g["radii"].cpu())
    w = torch.randn_like(out)
    (out * w).sum().backward()
    (out_g * w.cuda()).sum().backward()
    for a, b in zip(cpu, gpu):
        scale = float(b.grad.abs().max()) + 1e-6
        assert float((a.grad - b.grad.cpu()).abs().max()) / scale < 2e-2
    assert math.isfinite(float(out.sum()))
