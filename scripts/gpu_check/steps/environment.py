"""What the machine runs (Python, torch, CUDA, GPU, package versions) and whether everything imports.

Imports the project's modules and the libraries it builds on, and checks that Nerfstudio lists
the ``mastsam-splat`` method; fails when any of them does not import.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import platform
import shutil
import subprocess
import sys
import traceback

from common import write_result

MODULES = (
    "mastsam_splat.cli",
    "mastsam_splat.cli.track",
    "mastsam_splat.cli.objects",
    "mastsam_splat.segmenters.sam",
    "mastsam_splat.matchers.mast3r",
    "mastsam_splat.splat.trainer",
    "mastsam_splat.objects.lift",
    "nerfstudio_plugin.config",
    "nerfstudio_plugin.model",
    "nerfstudio_plugin.pipeline",
    "nerfstudio_plugin.datamanager",
    "nerfstudio_plugin.viewer",
    "nerfstudio.scripts.train",
    "nerfstudio.scripts.eval",
    "nerfstudio.models.splatfacto",
    "gsplat",
    "gsplat.strategy",
    "segment_anything",
    "viser",
    "skimage.segmentation",
    "sklearn.neighbors",
    "cv2",
)
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "scikit-image", "scikit-learn", "opencv-python-headless",
            "nerfstudio", "gsplat", "segment-anything", "viser", "tyro", "mastsam-splat")  # fmt: skip


def main() -> int:
    figures: dict = {"python": sys.version.split()[0], "platform": platform.platform()}
    failed = {}
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (every import failure is reported)
            failed[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    figures["versions"] = versions
    try:
        from nerfstudio.configs.method_configs import all_methods

        figures["nerfstudio_methods"] = sorted(m for m in all_methods if m in ("mastsam-splat", "splatfacto"))
        if "mastsam-splat" not in all_methods:
            failed["nerfstudio method"] = "mastsam-splat is not among Nerfstudio's methods"
    except Exception as exc:  # noqa: BLE001
        failed["nerfstudio.configs.method_configs"] = f"{type(exc).__name__}: {exc}"
    import torch

    figures["torch_cuda"] = torch.version.cuda
    figures["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        figures["gpu"] = props.name
        figures["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        figures["compute_capability"] = f"{props.major}.{props.minor}"
    nvcc = shutil.which("nvcc")
    if nvcc:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
        figures["nvcc"] = out[-1] if out else nvcc
    figures["imported"] = len(MODULES) - len(failed)
    figures["import_failures"] = failed
    if failed:
        figures["error"] = f"{len(failed)} imports failed: {', '.join(failed)}"
    write_result(figures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
