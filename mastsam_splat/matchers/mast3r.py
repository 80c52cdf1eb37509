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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.reprojection import frame_label
from mastsam_splat.io.mast3r import (  # noqa: F401  (re-exported: the matcher's names)
    CHECKPOINT_HELP,
    CHECKPOINT_NAME,
    CHECKPOINT_URL,
    INSTALL_HELP,
    Mast3rInputTransform,
    load_mast3r_model,
    network_view,
    patch_size,
)
from mastsam_splat.matchers.base import check_image
from mastsam_splat.types import Frame, Matches


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
        self.patch_size = patch_size(self.net)
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

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """Reciprocal descriptor matches ``frame_a -> frame_b`` in original pixels, with pointmap 3D points."""
        from dust3r.inference import inference
        from mast3r.fast_nn import fast_reciprocal_NNs

        check_image(frame_a)
        check_image(frame_b)
        cfg = self.config
        tf_a, tf_b = self.input_transform(frame_a), self.input_transform(frame_b)
        views = (network_view(frame_a.image, tf_a, 0), network_view(frame_b.image, tf_b, 1))
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
