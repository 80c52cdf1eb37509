"""MASt3R dense matching through the official mast3r / dust3r code.

MASt3R is not on PyPI. The matcher needs only the clone (with its dust3r submodule) and two small
packages besides this project's own dependencies::

    git clone --recursive https://github.com/naver/mast3r
    pip install einops huggingface_hub

and either the clone on ``PYTHONPATH`` or its path as ``repo`` (``--mast3r-repo``). MASt3R's own
requirements files are for its demos and training (gradio, a second OpenCV, an unpinned numpy)
and are not needed. The checkpoint is a local file, never downloaded at run time; get
``MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth`` from
https://download.europe.naverlabs.com/ComputerVision/MASt3R/.

A pair is prepared exactly like ``dust3r.utils.image.load_images`` prepares image files
(long side resized to ``image_size``, centre crop to a multiple of the patch size), run through
the network once, and matched by reciprocal nearest neighbours of the dense descriptors
(``mast3r.fast_nn.fast_reciprocal_NNs``). Coordinates are mapped back from the network's
resized/cropped input to each frame's original pixels with :class:`Mast3rInputTransform`.

Two confidences come out of the network. The descriptor confidence is ``exp(x) > 0``
(``desc_conf_mode=('exp', 0, inf)`` in the checkpoint's model string); a match's confidence is
``1 - 1 / c`` with ``c`` the smaller of its two descriptor confidences, clipped to [0, 1] (``c <= 1``
gives 0). The pointmap confidence is ``1 + exp(x) > 1`` (``conf_mode=('exp', 1, inf)``); a match
keeps its 3D points only where both pointmaps are more confident than ``min_pointmap_conf``
(1.5, as MASt3R's demo filters its point clouds); elsewhere its points are NaN, so they enter
neither the point cloud nor the 3D memory, while the 2D match still carries masks between frames.
3D points come from the pointmaps and are expressed in camera a's coordinates at the network's
(metric, for the metric checkpoint) scale, shared by both frames of the pair. Frames of
different sizes in one pair are supported (the network encodes them separately).
"""

from __future__ import annotations

import contextlib
import io
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.checkpoints import check_checkpoint_file
from mastsam_splat.geometry.reprojection import frame_label
from mastsam_splat.matchers.base import check_image
from mastsam_splat.types import Frame, Matches

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


@dataclass
class Mast3rMatcherConfig:
    """Options of the MASt3R matcher."""

    checkpoint: Optional[Path] = None
    """Local MASt3R checkpoint, e.g. MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric.pth."""
    repo: Optional[Path] = None
    """Clone of github.com/naver/mast3r (with its dust3r submodule), when it is not on PYTHONPATH."""
    image_size: int = 512
    """Long side of the network input in pixels (512: the checkpoint's training resolution; 224 resizes the
    short side to 224 and crops a square). Smaller is faster and coarser."""
    min_pointmap_conf: float = 1.5
    """Keep a match's 3D points only where both pointmap confidences exceed this (they are > 1; MASt3R's demo
    keeps > 1.5). 1.0 keeps every point."""
    subsample: int = 8
    """Start reciprocal nearest-neighbour search from every n-th network pixel."""
    border: int = 3
    """Drop matches within this many network pixels of the input's border."""
    device: str = "auto"
    """Torch device; "auto" picks CUDA when available."""

    def setup(self) -> "Mast3rMatcher":
        """Build the matcher with these settings."""
        return Mast3rMatcher(self)


def _import_mast3r(repo: Optional[Path]) -> Any:
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
            f"the mast3r matcher needs the MASt3R code, which could not be imported ({exc}); {INSTALL_HELP}"
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
        raise InputError(f"the mast3r matcher needs a checkpoint: {CHECKPOINT_HELP}; {INSTALL_HELP}")
    path = check_checkpoint_file(checkpoint, "MASt3R checkpoint", CHECKPOINT_HELP)
    entries = _read_checkpoint_entries(path)
    mast3r_model = _import_mast3r(repo)
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


def _patch_size(net: Any) -> int:
    size = getattr(net, "patch_size", None)
    if size is None:
        size = net.patch_embed.patch_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


@dataclass
class Mast3rMatcher:
    """Matches two frames with MASt3R; see the module docstring. Loads the network on creation."""

    config: Mast3rMatcherConfig = field(default_factory=Mast3rMatcherConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        if cfg.subsample < 1:
            raise ValueError(f"subsample must be >= 1, got {cfg.subsample}")
        if cfg.image_size < 16:
            raise InputError(f"MASt3R image size must be at least one 16-pixel patch, got {cfg.image_size}")
        self.net = load_mast3r_model(cfg.checkpoint, cfg.repo)
        import torch

        device = cfg.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.net.to(device)
        self.patch_size = _patch_size(self.net)
        self.square_ok = bool(getattr(self.net, "square_ok", False))

    def input_transform(self, frame: Frame) -> Mast3rInputTransform:
        """How ``frame`` is resized and cropped for the network."""
        tf = Mast3rInputTransform.for_image(
            frame.width, frame.height, self.config.image_size, self.patch_size, self.square_ok
        )
        net_w, net_h = tf.network_size
        if net_w < self.patch_size or net_h < self.patch_size:
            raise InputError(
                f"{frame_label(frame)}: a {frame.width}x{frame.height} image becomes {net_w}x{net_h} at the "
                f"network's resolution, smaller than one {self.patch_size}-pixel patch",
                frame.file,
            )
        return tf

    def _view(self, frame: Frame, tf: Mast3rInputTransform, idx: int) -> dict:
        """A dust3r input view: image normalised to [-1, 1], [1, 3, h, w]."""
        import torch

        pixels = torch.from_numpy(tf.apply(frame.image).copy()).permute(2, 0, 1).float()
        img = (pixels / 255.0 - 0.5) / 0.5
        net_w, net_h = tf.network_size
        return {"img": img[None], "true_shape": np.int32([[net_h, net_w]]), "idx": idx, "instance": str(idx)}

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """Reciprocal descriptor matches ``frame_a -> frame_b`` in original pixels, with pointmap 3D points."""
        from dust3r.inference import inference
        from mast3r.fast_nn import fast_reciprocal_NNs

        check_image(frame_a)
        check_image(frame_b)
        cfg = self.config
        tf_a, tf_b = self.input_transform(frame_a), self.input_transform(frame_b)
        views = (self._view(frame_a, tf_a, 0), self._view(frame_b, tf_b, 1))
        output = inference([views], self.net, self.device, batch_size=1, verbose=False)
        pred_a, pred_b = output["pred1"], output["pred2"]
        desc_a = pred_a["desc"][0].detach()  # [h_a, w_a, D]
        desc_b = pred_b["desc"][0].detach()  # [h_b, w_b, D]
        # Blocked brute-force dot products (descriptors are unit-norm), as MASt3R's own demo does; on
        # the CPU this beats fast_reciprocal_NNs' KD-tree fallback, which degrades in 24 dimensions.
        px_a, px_b = fast_reciprocal_NNs(
            desc_a, desc_b, subsample_or_initxy1=cfg.subsample, device=self.device, dist="dot", block_size=2**13
        )
        px_a = np.asarray(px_a, dtype=np.int64).reshape(-1, 2)  # (x, y) network pixel indices
        px_b = np.asarray(px_b, dtype=np.int64).reshape(-1, 2)
        keep = _inside(px_a, tf_a.network_size, cfg.border) & _inside(px_b, tf_b.network_size, cfg.border)
        px_a, px_b = px_a[keep], px_b[keep]

        conf_key = "desc_conf" if "desc_conf" in pred_a else "conf"
        conf_a = pred_a[conf_key][0].detach().cpu().numpy()[px_a[:, 1], px_a[:, 0]]
        conf_b = pred_b[conf_key][0].detach().cpu().numpy()[px_b[:, 1], px_b[:, 0]]
        raw = np.minimum(conf_a, conf_b).astype(np.float64)  # exp(x) > 0 (desc_conf_mode ('exp', 0, inf))
        confidence = np.clip(1.0 - 1.0 / np.maximum(raw, 1.0), 0.0, 1.0)

        pts_a = pred_a["pts3d"][0].detach().cpu().numpy()[px_a[:, 1], px_a[:, 0]]
        pts_b = pred_b["pts3d_in_other_view"][0].detach().cpu().numpy()[px_b[:, 1], px_b[:, 0]]
        if "conf" in pred_a and "conf" in pred_b:  # pointmap confidences, 1 + exp(x) > 1
            pconf_a = pred_a["conf"][0].detach().cpu().numpy()[px_a[:, 1], px_a[:, 0]]
            pconf_b = pred_b["conf"][0].detach().cpu().numpy()[px_b[:, 1], px_b[:, 0]]
            unsure = ~((pconf_a > cfg.min_pointmap_conf) & (pconf_b > cfg.min_pointmap_conf))
            pts_a = np.where(unsure[:, None], np.nan, pts_a)
            pts_b = np.where(unsure[:, None], np.nan, pts_b)
        return Matches(
            xy_a=tf_a.to_original(px_a + 0.5),
            xy_b=tf_b.to_original(px_b + 0.5),
            confidence=confidence,
            pts3d_a=pts_a.astype(np.float32),
            pts3d_b=pts_b.astype(np.float32),
        )


def _inside(px: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    """Pixels [N, 2] at least ``border`` pixels away from the edges of an image of ``size`` (w, h)."""
    w, h = size
    return (px[:, 0] >= border) & (px[:, 0] < w - border) & (px[:, 1] >= border) & (px[:, 1] < h - border)
