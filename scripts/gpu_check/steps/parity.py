"""The project's torch rasterizer against gsplat's CUDA rasterizer: forward and gradients.

Both render the same random scene (19 channels: colour plus a 16-D feature, expected depth)
from the project's test fixtures; the torch rasterizer runs on CPU and on CUDA. Then the
project's own parity test runs under pytest.
"""

from __future__ import annotations

import subprocess
import sys

from common import REPO, require_cuda, write_result


def compare(device: str) -> dict:
    import torch
    from gsplat import rasterization as gsplat_rasterization

    sys.path.insert(0, str(REPO / "tests"))
    from support.splat_reference import random_scene

    from mastsam_splat.splat.torch_rasterizer import rasterization

    width, height = 96, 72
    scene = random_scene(400, width, height, dtype=torch.float32, seed=14, channels=19)
    bg = torch.rand(1, 19, generator=torch.Generator().manual_seed(0))
    ours = [t.to(device).clone().requires_grad_() for t in scene[:5]]
    out, alpha, meta = rasterization(
        *ours, scene[5][None].to(device), scene[6][None].to(device), width, height, backgrounds=bg.to(device),
        render_mode="RGB+ED",
    )  # fmt: skip
    ref = [t.cuda().clone().requires_grad_() for t in scene[:5]]
    out_g, alpha_g, meta_g = gsplat_rasterization(
        *ref, scene[5][None].cuda(), scene[6][None].cuda(), width, height, backgrounds=bg.cuda(),
        render_mode="RGB+ED", packed=False,
    )  # fmt: skip
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * w.to(device)).sum().backward()
    (out_g * w.cuda()).sum().backward()
    names = ("means", "quats", "scales", "opacities", "colors")
    grads = {}
    for name, a, b in zip(names, ours, ref):
        scale = float(b.grad.abs().max()) + 1e-6
        grads[name] = float((a.grad.cpu() - b.grad.cpu()).abs().max()) / scale
    return {
        "image_max_abs": float((out.detach().cpu() - out_g.detach().cpu()).abs().max()),
        "alpha_max_abs": float((alpha.detach().cpu() - alpha_g.detach().cpu()).abs().max()),
        "radii_equal": bool(torch.equal(meta["radii"].cpu(), meta_g["radii"].cpu())),
        "grad_max_rel": grads,
    }


def main() -> int:
    require_cuda()
    figures: dict = {}
    for device in ("cpu", "cuda"):
        try:
            figures[f"torch_{device}_vs_gsplat"] = compare(device)
        except Exception as exc:  # noqa: BLE001 (reported; the pytest run below still happens)
            figures[f"torch_{device}_vs_gsplat"] = {"error": f"{type(exc).__name__}: {exc}"}
    test = "tests/splat/test_torch_rasterizer.py"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=REPO)
    figures["pytest_" + test] = "passed" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    errors = [k for k, v in figures.items() if isinstance(v, dict) and "error" in v]
    if proc.returncode != 0 or errors:
        figures["error"] = "parity failed: " + ", ".join(errors + ([test] if proc.returncode else []))
    write_result(figures)
    return 1 if "error" in figures else 0


if __name__ == "__main__":
    sys.exit(main())
