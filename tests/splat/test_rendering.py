"""Backend and device choice, camera tensors, the colour+feature render, in-view culling, label weights, PSNR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.splat_reference import random_scene

from mastsam_splat.errors import InputError
from mastsam_splat.splat.rendering import (
    accumulate_label_weights,
    backend_device,
    camera_centers,
    camera_tensors,
    in_view,
    psnr,
    render,
    resolve_backend,
)
from mastsam_splat.splat.torch_rasterizer import rasterization
from mastsam_splat.types import Camera


def test_backend_choice():
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("torch", "cpu") == "torch"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_backend("gsplat", "cpu")
    with pytest.raises(ValueError, match="unknown"):
        resolve_backend("vulkan", "cpu")
    if torch.cuda.is_available():
        assert resolve_backend("auto", "cuda") == "gsplat"


def test_backend_device():
    assert backend_device("torch") == torch.device("cpu")
    assert backend_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert backend_device("gsplat") == torch.device("cuda")
    else:
        with pytest.raises(InputError, match="CUDA"):
            backend_device("gsplat")


def test_camera_tensors():
    w2c = np.eye(4)
    w2c[:3, 3] = [0.5, -1.0, 2.0]
    K = np.array([[100.0, 0, 40.0], [0, 90.0, 30.0], [0, 0, 1]])
    viewmat, Ks = camera_tensors(Camera(K=K, world_to_cam=w2c, width=80, height=60), "cpu", downscale=2)
    assert viewmat.shape == (1, 4, 4) and Ks.shape == (1, 3, 3) and viewmat.dtype == Ks.dtype == torch.float32
    torch.testing.assert_close(viewmat[0], torch.tensor(w2c, dtype=torch.float32))
    torch.testing.assert_close(Ks[0], torch.tensor([[50.0, 0, 20.0], [0, 45.0, 15.0], [0, 0, 1]]))


def test_psnr():
    image = torch.rand(8, 6, 3)
    assert float(psnr(image + 0.1, image)) == pytest.approx(20.0, abs=1e-4)
    assert float(psnr(image, image)) == pytest.approx(100.0)  # MSE floored at 1e-10


def test_camera_centers():
    R, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    c = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    vm = torch.eye(4, dtype=torch.float64)
    vm[:3, :3] = R
    vm[:3, 3] = -R @ c
    torch.testing.assert_close(camera_centers(vm[None])[0], c)


def _scene(n=40, width=32, height=24, seed=0):
    means, quats, scales, opac, _, viewmat, K = random_scene(n, width, height, seed=seed, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    sh = torch.randn(n, 4, 3, generator=g) * 0.3
    feats = torch.randn(n, 16, generator=g)
    return means, quats, scales, opac, sh, feats, viewmat, K


def test_one_pass_equals_separate_passes():
    means, quats, scales, opac, sh, feats, viewmat, K = _scene()
    bg = torch.tensor([[0.1, 0.5, 0.9]])
    out = render(means, quats, scales, opac, sh, viewmat[None], K[None], 32, 24, sh_degree=1, features=feats, backgrounds=bg, with_depth=True)
    rgb, alpha, _ = rasterization(means, quats, scales, opac, sh, viewmat[None], K[None], 32, 24, sh_degree=1, backgrounds=bg)
    f, _, _ = rasterization(means, quats, scales, opac, feats, viewmat[None], K[None], 32, 24)
    d, _, _ = rasterization(means, quats, scales, opac, feats, viewmat[None], K[None], 32, 24, render_mode="ED")
    torch.testing.assert_close(out.rgb, rgb, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.alpha, alpha)
    torch.testing.assert_close(out.features, f, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.depth, d, atol=1e-4, rtol=1e-5)
    assert out.meta["means2d"].shape == (1, 40, 2)


def test_detached_geometry_keeps_feature_loss_off_the_geometry():
    means, quats, scales, opac, sh, feats, viewmat, K = _scene()
    leaves = [t.clone().requires_grad_() for t in (means, scales, opac, feats)]
    for detach, expect_geometry_grad in ((True, False), (False, True)):
        for t in leaves:
            t.grad = None
        m, s, o, f = leaves
        out = render(m, quats, s, o, sh, viewmat[None], K[None], 32, 24, sh_degree=0, features=f, detach_geometry_for_features=detach)
        out.features.square().sum().backward()
        assert float(f.grad.abs().sum()) > 0
        has_geometry_grad = m.grad is not None and float(m.grad.abs().sum()) > 0
        assert has_geometry_grad == expect_geometry_grad


def test_label_weights_come_from_compositing_and_respect_occlusion():
    """An opaque Gaussian hides one straight behind it: the hidden one takes no weight from the front pixels."""
    W, H = 24, 20
    K = torch.tensor([[20.0, 0, 12.0], [0, 20.0, 10.0], [0, 0, 1]])
    viewmat = torch.eye(4)
    means = torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0], [0.9, 0.0, 3.0]])
    scales = torch.tensor([[1.0, 1.0, 1.0], [0.1, 0.1, 0.1], [0.15, 0.15, 0.15]])
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1)
    opac = torch.tensor([0.999, 0.9, 0.8])
    labels = torch.zeros(H, W, dtype=torch.long)
    labels[:, 12:] = 1
    weights = accumulate_label_weights(means, quats, scales, opac, viewmat, K, labels, 2)
    assert weights.shape == (3, 2)
    front, hidden, side = weights.sum(1)
    alone = accumulate_label_weights(means[1:2], quats[1:2], scales[1:2], opac[1:2], viewmat, K, labels, 2).sum()
    assert float(alone) > 0.5
    assert float(hidden) < 0.05 * float(alone)  # occluded: projecting its centre would give it the front's pixels
    assert float(side) > 0.5
    # weights are the compositing weights: summed over Gaussians they give the rendered alpha per label
    _, alpha, _ = rasterization(means, quats, scales, opac, torch.ones(3, 1), viewmat[None], K[None], W, H)
    for lab in (0, 1):
        torch.testing.assert_close(weights[:, lab].sum(), alpha[0, ..., 0][labels == lab].sum(), rtol=1e-4, atol=1e-4)
    # chunking over labels and summing over views (out=) give the same totals
    acc = torch.zeros(3, 2)
    accumulate_label_weights(means, quats, scales, opac, viewmat, K, labels.numpy(), 2, out=acc, label_chunk=1)
    torch.testing.assert_close(acc, weights)


def test_in_view_drops_only_gaussians_that_reach_no_pixel():
    """Rendering the kept Gaussians alone gives the same image as rendering all of them."""
    g = torch.Generator().manual_seed(3)
    n, W, H = 400, 32, 24
    means = torch.cat([torch.randn(n, 3, generator=g) * torch.tensor([4.0, 3.0, 1.0]) + torch.tensor([0, 0, 4.0]),
                       torch.tensor([[0.0, 0.0, -2.0], [0.0, 0.0, 0.005]])])  # fmt: skip
    scales = torch.rand(n + 2, 3, generator=g) * 0.3 + 0.02
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n + 2, 1)
    opac = torch.full((n + 2,), 0.7)
    colors = torch.rand(n + 2, 3, generator=g)
    viewmat = torch.eye(4)
    K = torch.tensor([[30.0, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]])
    keep = in_view(means, scales, viewmat, K, W, H, near_plane=0.01)
    assert 0 < len(keep) < n and not {n, n + 1} & set(keep.tolist())  # behind the camera, before the near plane
    full, full_alpha, _ = rasterization(means, quats, scales, opac, colors, viewmat[None], K[None], W, H)
    part, part_alpha, _ = rasterization(
        means[keep], quats[keep], scales[keep], opac[keep], colors[keep], viewmat[None], K[None], W, H
    )
    torch.testing.assert_close(part, full)
    torch.testing.assert_close(part_alpha, full_alpha)
