"""MASt3R's files: its checkpoint (loaded with clear errors for bad files) and its input images.

MASt3R (github.com/naver/mast3r) is not on PyPI; its code is imported only when a network is
loaded, from ``PYTHONPATH`` or a given clone. :class:`Mast3rInputTransform` is the resize and crop
``dust3r.utils.image.load_images`` applies to an image file, and its exact inverse, so that
coordinates found at the network's resolution map back to the original pixels.
"""

from __future__ import annotations

import contextlib
import io
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.checkpoints import check_checkpoint_file

CHECKPOINT_NAME = "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth"
CHECKPOINT_URL = "https://download.europe.naverlabs.com/ComputerVision/MASt3R/"
INSTALL_HELP = (
    "install MASt3R with `git clone --recursive https://github.com/naver/mast3r && "
    "pip install einops huggingface_hub`, then pass the clone with --mast3r-repo PATH (or put it on PYTHONPATH)"
)
CHECKPOINT_HELP = f"download {CHECKPOINT_NAME} from {CHECKPOINT_URL} and pass its local path as the mast3r checkpoint"


@dataclass(frozen=True)
class Mast3rInputTransform:
    """Where an original image's pixels land in the network input, and back.

    The network input is the image resized to ``resized_size`` and cropped to
    ``crop_box``; continuous coordinates (pixel centres at ``+0.5``) scale with the image,
    so the mapping is ``x_net = x * resized_w / orig_w - crop_left`` (same for y).
    """

    original_size: tuple[int, int]
    """(width, height) of the original image."""
    resized_size: tuple[int, int]
    """(width, height) after resizing."""
    crop_box: tuple[int, int, int, int]
    """(left, top, right, bottom) of the crop, in resized pixels."""

    @classmethod
    def for_image(
        cls, width: int, height: int, size: int = 512, patch_size: int = 16, square_ok: bool = False
    ) -> "Mast3rInputTransform":
        """The transform ``dust3r.utils.image.load_images(..., size, square_ok, patch_size)`` applies.

        ``size == 224`` resizes the short side to 224 and crops a centred square; any other
        size resizes the long side to ``size`` and crops the centre to a multiple of
        ``patch_size`` (a square image becomes 4:3 unless ``square_ok``).
        """
        if width < 1 or height < 1:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        long_edge = round(size * max(width / height, height / width)) if size == 224 else size
        longest = max(width, height)
        rw, rh = (round(v * long_edge / longest) for v in (width, height))
        cx, cy = rw // 2, rh // 2
        if size == 224:
            half = min(cx, cy)
            box: tuple[float, ...] = (cx - half, cy - half, cx + half, cy + half)
        else:
            halfw = ((2 * cx) // patch_size) * patch_size / 2
            halfh = ((2 * cy) // patch_size) * patch_size / 2
            if not square_ok and rw == rh:
                halfh = 3 * halfw / 4
            box = (cx - halfw, cy - halfh, cx + halfw, cy + halfh)
        left, top, right, bottom = (round(v) for v in box)  # PIL's Image.crop rounds the same way
        return cls((int(width), int(height)), (rw, rh), (left, top, right, bottom))

    @property
    def network_size(self) -> tuple[int, int]:
        """(width, height) of the network input."""
        left, top, right, bottom = self.crop_box
        return right - left, bottom - top

    def _scale(self) -> np.ndarray:
        return np.array([self.resized_size[0] / self.original_size[0], self.resized_size[1] / self.original_size[1]])

    def to_network(self, xy: np.ndarray) -> np.ndarray:
        """Original-image coordinates [N, 2] -> network-input coordinates [N, 2] (float64)."""
        offset = np.array(self.crop_box[:2], dtype=np.float64)
        return np.asarray(xy, dtype=np.float64).reshape(-1, 2) * self._scale() - offset

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """Network-input coordinates [N, 2] -> original-image coordinates [N, 2] (float64)."""
        offset = np.array(self.crop_box[:2], dtype=np.float64)
        return (np.asarray(xy, dtype=np.float64).reshape(-1, 2) + offset) / self._scale()

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The network input [h, w, 3] uint8 for an original RGB image [H, W, 3], resampled as dust3r does."""
        if image.shape[1::-1] != self.original_size:
            raise ValueError(f"image of size {image.shape[1::-1]} does not match the transform's {self.original_size}")
        from PIL import Image

        pil = Image.fromarray(np.ascontiguousarray(image))
        # dust3r: LANCZOS when shrinking, BICUBIC when enlarging (or keeping) the long side.
        shrinking = max(self.original_size) > max(self.resized_size)
        pil = pil.resize(self.resized_size, Image.LANCZOS if shrinking else Image.BICUBIC)
        return np.asarray(pil.crop(self.crop_box))



def import_mast3r(repo: Optional[Path]) -> Any:
    """The ``mast3r.model`` module, with the clone (if given) on ``sys.path``."""
    if repo is not None:
        repo = Path(repo).expanduser()
        if not (repo / "mast3r" / "model.py").is_file():
            raise InputError(f"not a clone of github.com/naver/mast3r (no mast3r/model.py); {INSTALL_HELP}", repo)
        if str(repo) not in sys.path:
            sys.path.insert(0, str(repo))
    try:
        import mast3r.model as mast3r_model
        import mast3r.utils.path_to_dust3r  # noqa: F401  (puts the dust3r submodule on sys.path)
    except ImportError as exc:
        raise InputError(
            f"MASt3R's code could not be imported ({exc}); {INSTALL_HELP}"
        ) from exc
    return mast3r_model


def _read_checkpoint_entries(path: Path) -> Optional[tuple[str, set[str]]]:
    """The model constructor string and weight names stored in a MASt3R checkpoint.

    Tensors are memory-mapped, so this is cheap even for the 2.7 GB checkpoint. Returns None
    when the file references code that is not importable here (the loader then decides).
    """
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=zipfile.is_zipfile(path))
    except ModuleNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001  (torch raises many types for unreadable files)
        raise InputError(
            f"cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {exc}); it may be truncated: "
            f"{CHECKPOINT_HELP}",
            path,
        ) from None
    args = getattr(ckpt.get("args"), "model", None) if isinstance(ckpt, dict) else None
    if not isinstance(args, str) or not isinstance(ckpt.get("model"), dict):
        raise InputError(
            f"is not a MASt3R checkpoint (expected 'args' and 'model' entries as saved by MASt3R training); "
            f"{CHECKPOINT_HELP}",
            path,
        )
    model_class = args.split("(", 1)[0].strip()
    if model_class != "AsymmetricMASt3R":
        raise InputError(f"is a {model_class} checkpoint, not a MASt3R one; {CHECKPOINT_HELP}", path)
    return args, set(ckpt["model"].keys())


def load_mast3r_model(checkpoint: Optional[Path], repo: Optional[Path] = None) -> Any:
    """A MASt3R network (CPU, eval mode) from a local checkpoint, with clear errors for bad files."""
    if checkpoint is None:
        raise InputError(f"MASt3R needs a checkpoint: {CHECKPOINT_HELP}; {INSTALL_HELP}")
    path = check_checkpoint_file(checkpoint, "MASt3R checkpoint", CHECKPOINT_HELP)
    entries = _read_checkpoint_entries(path)
    mast3r_model = import_mast3r(repo)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            net = mast3r_model.AsymmetricMASt3R.from_pretrained(str(path))
    except Exception as exc:  # noqa: BLE001  (any failure means the file is not a usable model)
        raise InputError(
            f"could not be loaded as a MASt3R model ({type(exc).__name__}: {exc}); {CHECKPOINT_HELP}", path
        ) from exc
    if not isinstance(net, mast3r_model.AsymmetricMASt3R):
        raise InputError(f"holds a {type(net).__name__}, not a MASt3R model; {CHECKPOINT_HELP}", path)
    if entries is not None:
        missing = set(net.state_dict().keys()) - entries[1]
        if missing:
            raise InputError(
                f"lacks {len(missing)} weights of the model it describes (e.g. {min(missing)}); {CHECKPOINT_HELP}",
                path,
            )
    return net.eval()


def patch_size(net: Any) -> int:
    """The network's patch size in pixels."""
    size = getattr(net, "patch_size", None)
    if size is None:
        size = net.patch_embed.patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def network_view(image: np.ndarray, tf: Mast3rInputTransform, idx: int, instance: Optional[str] = None) -> dict:
    """A dust3r input view of an RGB image: resized/cropped by ``tf``, normalised to [-1, 1], [1, 3, h, w]."""
    import torch

    pixels = torch.from_numpy(tf.apply(image).copy()).permute(2, 0, 1).float()
    img = (pixels / 255.0 - 0.5) / 0.5
    net_w, net_h = tf.network_size
    return {
        "img": img[None],
        "true_shape": np.int32([[net_h, net_w]]),
        "idx": idx,
        "instance": str(idx) if instance is None else instance,
    }
