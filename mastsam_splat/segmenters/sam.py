"""Segment Anything (SAM) backend: automatic masks and point prompts from one image embedding.

``prepare`` runs SAM's image encoder once; the automatic mask generator and every prompt on that
image decode from the same embedding. By default the generator runs on the whole image only
(``crop_n_layers=0``), so its single crop's embedding is the frame's embedding; with crop layers,
each smaller crop is encoded on its own (one more encoder pass per crop).

Cost: the automatic masks decode ``points_per_side**2`` point prompts per frame. On a CPU a vit_b
frame takes about 150 s with the default 32x32 grid, 78% of it in that decoding; the decoding
scales with the number of points, so ``points_per_side=16`` cuts it about four times (with fewer
small masks). On a GPU the image encoder dominates instead.

Weights are read from a local checkpoint (the official files from the segment-anything
README); nothing is downloaded at run time. torch and segment_anything are imported only when a
model is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.checkpoints import check_checkpoint_file
from mastsam_splat.segmenters.base import check_image, empty_mask, points_in_image
from mastsam_splat.types import Mask

if TYPE_CHECKING:
    import torch
    from segment_anything.modeling import Sam

SAM_DOWNLOAD_ROOT = "https://dl.fbaipublicfiles.com/segment_anything/"
SAM_CHECKPOINT_FILES = {
    "vit_h": "sam_vit_h_4b8939.pth",
    "vit_l": "sam_vit_l_0b3195.pth",
    "vit_b": "sam_vit_b_01ec64.pth",
}
"""Official checkpoint file of each model type (segment-anything README)."""

# Image-encoder width of each official model type, to name the type a checkpoint really holds.
_OFFICIAL_WIDTHS = {"vit_b": 768, "vit_l": 1024, "vit_h": 1280}
_ENCODER_WIDTHS = {width: name for name, width in _OFFICIAL_WIDTHS.items()}


def _official_builder(model_type: str) -> Callable[[], "Sam"]:
    def build() -> "Sam":
        from segment_anything import sam_model_registry

        return sam_model_registry[model_type]()

    return build


SAM_ARCHITECTURES: dict[str, Callable[[], "Sam"]] = {name: _official_builder(name) for name in SAM_CHECKPOINT_FILES}
"""Model type -> function building that (uninitialised) ``Sam``; checkpoints are loaded into it."""


@dataclass
class SamSegmenterConfig:
    """Settings of the segment-anything backend."""

    checkpoint: Optional[Path] = None
    """Local SAM checkpoint (.pth) matching ``model_type``, e.g. sam_vit_b_01ec64.pth."""
    model_type: Literal["vit_b", "vit_l", "vit_h"] = "vit_h"
    """SAM image-encoder size the checkpoint was trained with."""
    device: str = "auto"
    """torch device: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    points_per_side: int = 32
    """Automatic masks: the point grid has points_per_side**2 prompts (SAM's default 32: 1,024 prompts a frame;
    16 decodes four times fewer, at the cost of small objects)."""
    points_per_batch: int = 64
    """Automatic masks: prompts decoded at once (more is faster, uses more memory)."""
    pred_iou_thresh: float = 0.88
    """Automatic masks: keep masks whose predicted IoU exceeds this (SAM's default 0.88)."""
    stability_score_thresh: float = 0.95
    """Automatic masks: keep masks whose stability score reaches this (SAM's default 0.95)."""
    crop_n_layers: int = 0
    """Automatic masks: also run on 4**i image crops for i = 1..crop_n_layers (finds smaller objects; each crop
    is encoded separately). 0: the whole image only, the one embedding shared with the prompts."""
    box_nms_thresh: float = 0.7
    """Automatic masks: box IoU above which duplicates are suppressed."""
    min_mask_region_area: int = 0
    """Automatic masks: remove islands and holes smaller than this many pixels (0: off)."""
    multimask_single_point: bool = True
    """Prompts: for a single positive point, decode SAM's three candidate masks and keep the best."""

    def setup(self) -> "SamSegmenter":
        """Build the segmenter with these settings."""
        return SamSegmenter(self)

    def check(self) -> None:
        """Reject settings SAM cannot use, before the (large) model is built."""
        if self.points_per_side < 1:
            raise InputError(f"SAM points per side must be at least 1, got {self.points_per_side}")
        if self.points_per_batch < 1:
            raise InputError(f"SAM points per batch must be at least 1, got {self.points_per_batch}")
        for name in ("pred_iou_thresh", "stability_score_thresh", "box_nms_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"SAM {name.replace('_', ' ')} must be within [0, 1], got {value}")
        if self.crop_n_layers < 0:
            raise InputError(f"SAM crop layers must be 0 or more, got {self.crop_n_layers}")


def checkpoint_hint(model_type: str) -> str:
    """Where to get the official checkpoint of ``model_type``."""
    name = SAM_CHECKPOINT_FILES.get(model_type)
    if name is None:
        return "pass a checkpoint trained for this model type"
    return f"download {SAM_DOWNLOAD_ROOT}{name} and pass it with --sam-checkpoint (model type {model_type})"


def resolve_device(device: str) -> "torch.device":
    """The torch device named by ``device`` (``auto``: cuda when available, else cpu)."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise InputError(f"unknown torch device {device!r}: {err}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was requested but CUDA is not available; use --device cpu or auto")
    return dev


def load_sam(checkpoint: Optional[Path], model_type: str, device: str = "auto") -> "Sam":
    """Build the ``model_type`` SAM and load ``checkpoint`` into it, with a clear error for a bad file."""
    import torch

    if model_type not in SAM_ARCHITECTURES:
        choices = ", ".join(sorted(SAM_ARCHITECTURES))
        raise InputError(f"unknown SAM model type {model_type!r}; choose one of: {choices}")
    target = resolve_device(device)
    hint = checkpoint_hint(model_type)
    if checkpoint is None:
        raise InputError(f"the sam segmenter needs a checkpoint: {hint}")
    path = check_checkpoint_file(checkpoint, "SAM checkpoint", hint)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any failure to unpickle means the file is unusable
        raise InputError(
            f"cannot read the SAM checkpoint ({type(err).__name__}); the file is truncated or not a "
            f"PyTorch checkpoint: {hint}",
            path,
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"not a SAM checkpoint (expected a state dict of tensors): {hint}", path)

    actual = _ENCODER_WIDTHS.get(_encoder_width(state))
    wrong_type = (
        f"checkpoint does not match SAM model type {model_type}: it holds a {actual} model; "
        f"pass --sam-model-type {actual} or {hint}"
    )
    if actual is not None and model_type in _OFFICIAL_WIDTHS and actual != model_type:
        raise InputError(wrong_type, path)  # known before building the (large) model
    model = SAM_ARCHITECTURES[model_type]()
    problem = _state_dict_mismatch(model.state_dict(), state)
    if problem:
        if actual is not None and actual != model_type:
            raise InputError(wrong_type, path)
        raise InputError(f"checkpoint does not match SAM model type {model_type}: {problem}; {hint}", path)
    model.load_state_dict(state)
    return model.to(target).eval()


def _encoder_width(state: Mapping[str, Any]) -> Optional[int]:
    pos = state.get("image_encoder.pos_embed")
    return int(pos.shape[-1]) if pos is not None and pos.ndim >= 1 else None


def _state_dict_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """A short description of how ``found`` differs from ``expected`` ('' when they match)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [k for k in expected if k in found and tuple(expected[k].shape) != tuple(found[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing weights (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected weights (e.g. {unexpected[0]})")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} weights of another shape "
            f"(e.g. {k}: {tuple(found[k].shape)} instead of {tuple(expected[k].shape)})"
        )
    return ", ".join(parts)


@dataclass
class SamState:
    """One image's SAM embedding and the sizes needed to decode masks from it."""

    image: np.ndarray
    """[H, W, 3] uint8 RGB."""
    features: "torch.Tensor"
    """[1, C, h, w] image embedding."""
    input_size: tuple[int, int]
    """Size of the resized image fed to the encoder, (H', W')."""

    @property
    def original_size(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))


class SamSegmenter:
    """segment-anything: ``SamAutomaticMaskGenerator`` and ``SamPredictor`` over one shared embedding."""

    name = "sam"
    concurrent = True
    """``prepare`` and ``auto`` of one image may run in another thread while ``prompt`` runs on another image's state:
    each side has its own predictor (the model's weights are shared and only read)."""

    def __init__(self, config: Optional[SamSegmenterConfig] = None) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        self.config = config or SamSegmenterConfig()
        cfg = self.config
        cfg.check()
        self.model = load_sam(cfg.checkpoint, cfg.model_type, cfg.device)
        self.predictor = _shared_embedding_predictor(self.model)
        """Decodes the prompts' masks."""
        self.auto_predictor = _shared_embedding_predictor(self.model)
        """Encodes images and serves the automatic mask generator."""
        self.generator = SamAutomaticMaskGenerator(
            self.model,
            points_per_side=cfg.points_per_side,
            points_per_batch=cfg.points_per_batch,
            pred_iou_thresh=cfg.pred_iou_thresh,
            stability_score_thresh=cfg.stability_score_thresh,
            box_nms_thresh=cfg.box_nms_thresh,
            crop_n_layers=cfg.crop_n_layers,
            min_mask_region_area=cfg.min_mask_region_area,
            output_mode="binary_mask",
        )
        self.generator.predictor = self.auto_predictor

    def prepare(self, image: np.ndarray) -> SamState:
        return self.auto_predictor.encode(check_image(image))

    def auto(self, state: SamState) -> list[Mask]:
        self.auto_predictor.use(state)
        records = self.generator.generate(state.image)
        return [
            Mask(
                segmentation=r["segmentation"],
                score=float(np.clip(r["predicted_iou"], 0.0, 1.0)),
                area=int(r["area"]),
            )
            for r in records
        ]

    def prompt(self, state: SamState, positive_xy: np.ndarray, negative_xy: Optional[np.ndarray] = None) -> Mask:
        height, width = state.original_size
        pos = points_in_image(positive_xy, width, height)
        neg = points_in_image(negative_xy, width, height)
        if len(pos) == 0:
            return empty_mask(height, width)
        # SAM's prompt encoder adds 0.5 to integer pixel indices; ours are continuous with centres at +0.5.
        coords = np.concatenate([pos, neg], axis=0) - 0.5
        labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64)
        multimask = self.config.multimask_single_point and len(pos) == 1 and len(neg) == 0
        self.predictor.use(state)
        masks, iou, _ = self.predictor.predict(point_coords=coords, point_labels=labels, multimask_output=multimask)
        best = int(np.argmax(iou))
        return Mask(segmentation=masks[best], score=float(np.clip(iou[best], 0.0, 1.0)))


def _shared_embedding_predictor(model: "Sam") -> Any:
    """A ``SamPredictor`` that decodes from an embedding computed once per image by ``encode``."""
    from segment_anything import SamPredictor

    class SharedEmbeddingPredictor(SamPredictor):
        """``set_image`` re-installs the current state's embedding instead of running the encoder again.

        ``SamAutomaticMaskGenerator`` calls ``set_image`` on each crop; its first crop is the whole
        image, so the embedding from ``encode`` is exactly what it would compute. Smaller crops (crop
        layers) are encoded as SAM would; ``use`` installs the frame's embedding again afterwards.
        """

        def __init__(self, sam: "Sam") -> None:
            super().__init__(sam)
            self._state: Optional[SamState] = None

        def encode(self, image: np.ndarray) -> SamState:
            super().set_image(image)
            state = SamState(image=image, features=self.features, input_size=tuple(self.input_size))
            self.reset_image()
            return state

        def use(self, state: SamState) -> None:
            self._state = state
            self._install()

        def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
            if self._state is None:
                raise RuntimeError("the shared-embedding predictor serves the image given to use() first")
            if tuple(image.shape[:2]) == self._state.original_size:
                self._install()
            else:  # a crop of the frame (crop layers): encode it
                super().set_image(image, image_format)

        def _install(self) -> None:
            assert self._state is not None
            self.reset_image()
            self.features = self._state.features
            self.original_size = self._state.original_size
            self.input_size = self._state.input_size
            self.is_image_set = True

    return SharedEmbeddingPredictor(model)
