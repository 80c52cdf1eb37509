"""Splatfacto with a per-Gaussian instance feature, decoded per pixel into object ids.

Each Gaussian carries a feature ``f`` [D] stored in ``gauss_params`` next to its colour, so
gsplat's densification, splitting and pruning keep it aligned. Colour and feature are rendered
in one rasterization pass (SH colour evaluated here, then ``[rgb | f]`` rendered as plain
channels); a linear head turns the rendered feature into instance logits, trained with
cross-entropy against the tracker's consistent label maps, plus a 3D k-nearest-neighbour
regulariser on the features.

The model is Splatfacto's, extended: ``populate_modules`` builds Splatfacto's modules and adds
the feature, head and regulariser. Splatfacto's ``get_outputs`` cannot run without a GPU (it
puts intrinsics on ``.cuda()``, compiles ``get_viewmat`` and calls gsplat's CUDA rasterizer),
so it is rebuilt from small steps that keep Splatfacto's order: camera, visible Gaussians,
projection, rasterization (``mastsam_splat.splat.rendering.render``: gsplat on CUDA, the
project's torch rasterizer elsewhere), compositing. Splatfacto's seed colours (``.cuda()``)
and its eager LPIPS (a weight download) are kept out of construction.

An object viewer (``nerfstudio_plugin.viewer``) attaches itself as ``object_viewer`` and
changes eval renders through :class:`SelectionHook`; the model does not depend on it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Literal, Optional, Protocol, Tuple, Type, Union

import numpy as np
import torch
import torchmetrics.image.lpip as lpip
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.models.splatfacto import SplatfactoModel, SplatfactoModelConfig, get_viewmat
from nerfstudio.utils.rich_utils import CONSOLE
from torch import Tensor
from torch.nn import Parameter

from mastsam_splat.metrics.ground_truth import overlap_table, per_view_miou
from mastsam_splat.io.gaussians import Gaussians, rgb_to_sh
from mastsam_splat.objects.run import gaussians_from_params
from mastsam_splat.splat.init import surface_aligned_frames
from mastsam_splat.splat.instance import InstanceConfig, KnnRegularizer, class_embeddings, classify, instance_loss
from mastsam_splat.splat.rendering import RenderOutput, render
from mastsam_splat.splat.schedule import REFERENCE_STEPS, SCHEDULE_FIELDS, Schedule, budget_schedule, growth_capped
from mastsam_splat.tracker.outputs import id_colours

_SHARED = InstanceConfig()
"""Defaults shared with the standalone trainer (``mastsam_splat.splat.trainer``)."""

SEED_LOGIT_SCALE = 8.0
"""Head weight scale when seeding: a seeded Gaussian's own id gets this logit."""

MIN_INITIAL_SCALE = 1e-7
"""Smallest initial Gaussian scale (Splatfacto's is the mean distance to 3 neighbours, 0 for coincident points)."""

MIN_FEATURE_ALPHA = 0.05
"""Rendered features are divided by the pixel's accumulated opacity, clamped below at this value."""

INSTANCE_KEYS = ("instance", "instance_id", "instance_features", "selection")
"""Outputs added to Splatfacto's; always present so the viewer's output list stays stable."""


@dataclass
class MastsamSplatModelConfig(SplatfactoModelConfig):
    """Splatfacto plus a per-Gaussian instance feature supervised by consistent label maps.

    Splatfacto's schedule fields default to None: the budget-aware schedule
    (``mastsam_splat.splat.schedule.budget_schedule``) fills them for ``schedule_steps``; a value
    given on the command line is kept.
    """

    _target: Type = field(default_factory=lambda: MastsamSplatModel)
    instance_feature_dim: int = _SHARED.feature_dim
    """Length D of each Gaussian's instance feature."""
    num_instance_classes: int = 0
    """Classes of the instance head (object ids 0..K-1); 0 = one more than the largest tracked id."""
    instance_loss_weight: float = _SHARED.loss_weight
    """Weight of the per-pixel cross-entropy between head logits and tracked labels."""
    instance_background_weight: float = _SHARED.background_weight
    """Weight of pixels the tracker left unlabelled (id 0) as class "no object"; 0 ignores them."""
    instance_detach_geometry: bool = _SHARED.detach_geometry
    """Render features in a second pass through detached geometry, so the instance loss cannot move Gaussians
    (and does not change densification statistics); costs a second rasterization."""
    knn_loss_weight: float = _SHARED.knn_weight
    """Weight of the 3D regulariser pulling sampled Gaussians' features towards their k nearest neighbours'."""
    knn_neighbours: int = _SHARED.knn_k
    """Neighbours per sampled Gaussian in the 3D regulariser."""
    knn_samples: int = _SHARED.knn_samples
    """Gaussians sampled per step by the 3D regulariser."""
    knn_refresh_every: int = _SHARED.knn_refresh_every
    """Steps between rebuilds of the regulariser's neighbour graph (also rebuilt when the Gaussians change)."""
    instance_start_step: int = 0
    """First step at which the instance losses apply (colour-only warm-up before it)."""
    min_instance_confidence: float = _SHARED.min_confidence
    """Below this head probability a Gaussian's object id is background (0) in ``gaussian_instance_ids``."""
    min_pixel_confidence: float = 0.0
    """Below this head probability a pixel's id is background (0); 0 keeps the argmax everywhere it is covered."""
    min_instance_alpha: float = 0.5
    """Pixels whose accumulated opacity is below this are background in the id/colour outputs."""
    surface_init: bool = True
    """Flatten each seed Gaussian along the normal of its neighbouring seed points (``init.surface_aligned_frames``)
    instead of Splatfacto's round, randomly rotated seeds, so splits put children on the surface."""
    schedule_steps: Optional[int] = None
    """Run length the schedule below is scaled to (``mastsam_splat.splat.schedule``); the trainer sets it from
    ``--max-num-iterations``. None: Splatfacto's 30,000-step schedule."""
    warmup_length: Optional[int] = None  # type: ignore[assignment]
    """Steps before the first densification round (None: Splatfacto's 500, scaled to ``schedule_steps``)."""
    refine_every: Optional[int] = None  # type: ignore[assignment]
    """Steps between densification rounds (None: Splatfacto's 100, scaled; at least 10)."""
    resolution_schedule: Optional[int] = None  # type: ignore[assignment]
    """Steps between halvings of the training downscale (None: Splatfacto's 3000, scaled)."""
    reset_alpha_every: Optional[int] = None  # type: ignore[assignment]
    """Densification rounds between opacity resets (None: Splatfacto's 30)."""
    stop_screen_size_at: Optional[int] = None  # type: ignore[assignment]
    """Step after which Gaussians are not culled or split for their screen size (None: Splatfacto's 4000, scaled)."""
    stop_split_at: Optional[int] = None  # type: ignore[assignment]
    """Step after which densification stops (None: Splatfacto's 15000, scaled)."""
    cull_alpha_thresh: Optional[float] = None  # type: ignore[assignment]
    """Opacity below which densification rounds cull Gaussians (None: Splatfacto's 0.1, lower for short runs)."""
    sh_degree_interval: Optional[int] = None  # type: ignore[assignment]
    """Steps between SH degree increments (None: Splatfacto's 1000, scaled; at least 10)."""
    cpu_max_gaussians: int = 40_000
    """On CPU, densification grows no more Gaussians beyond this many (0: no cap): the torch rasterizer's step
    time grows with their number, and a short CPU run spends its budget on optimising rather than on growth."""
    min_downscaled_size: int = 256
    """The resolution schedule (num_downscales) never shrinks the longer image side below this many pixels:
    it saves time on large images, while small ones (CPU runs) would only lose detail."""
    rasterizer: Literal["auto", "gsplat", "torch"] = "auto"
    """Rasterizer: gsplat's CUDA kernels, the project's torch rasterizer, or auto (gsplat on CUDA, torch elsewhere)."""
    compute_lpips: bool = True
    """Report LPIPS in evaluation (AlexNet weights are loaded on first use; skipped if unavailable)."""


    def resolve_schedule(self, max_steps: Optional[int] = None) -> Schedule:
        """Fill the unset schedule fields from the budget-aware schedule for ``max_steps`` (default: ``schedule_steps``)."""
        if max_steps is not None and self.schedule_steps is None:
            self.schedule_steps = int(max_steps)
        steps = self.schedule_steps if self.schedule_steps is not None else REFERENCE_STEPS
        fields = [f for f in SCHEDULE_FIELDS if hasattr(SplatfactoModelConfig, f)]
        schedule = budget_schedule(steps, {f: getattr(self, f) for f in fields})
        for name in fields:
            setattr(self, name, getattr(schedule, name))
        return schedule


def instance_palette(num_ids: int, device: Union[str, torch.device] = "cpu") -> Tensor:
    """RGB colour [num_ids, 3] in [0, 1] of ids 0..num_ids-1: the tracker's overlay colours, id 0 black."""
    return torch.from_numpy(id_colours(np.arange(num_ids)).astype(np.float32) / 255.0).to(device)


viewmat_from_c2w = getattr(get_viewmat, "__wrapped__", get_viewmat)
"""Splatfacto's ``get_viewmat`` (OpenGL camera-to-world [C, 3, 4] -> OpenCV world-to-camera [C, 4, 4])
without its ``torch.compile`` wrapper, whose first call takes about 30 s on CPU."""


def downscale_labels(labels: Tensor, d: int) -> Tensor:
    """Nearest-neighbour label map [H, W] -> [H // d, W // d], the size of Splatfacto's area-downscaled image."""
    if d <= 1:
        return labels
    h, w = labels.shape[0] // d * d, labels.shape[1] // d * d
    return labels[d // 2 : h : d, d // 2 : w : d]


class SelectionHook(Protocol):
    """What an attached object viewer (``nerfstudio_plugin.viewer.ObjectViewer``) gives eval renders."""

    @property
    def selected_id(self) -> Optional[int]:
        """Object id shown in the ``selection`` output (None: nothing selected)."""

    def visible_mask(self, crop: Optional[Tensor]) -> Optional[Tensor]:
        """Gaussians to draw [N] bool (None: all), given the crop box's mask (None: no crop)."""

    def highlight(self, outputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """The render's outputs with the selection's effects applied."""


class LazyLpips:
    """Splatfacto's LPIPS metric, built on its first call rather than with the model.

    Building it loads AlexNet weights (a download, which fails offline). Not an ``nn.Module``,
    so its weights stay out of checkpoints. Scores NaN when disabled or when the weights
    cannot be loaded; the model drops NaN LPIPS values from its metrics.
    """

    def __init__(self, **kwargs: object) -> None:
        self.kwargs = kwargs
        self.enabled = True
        self._metric: Optional[torch.nn.Module] = None
        self._failed = False

    def __call__(self, images: Tensor, references: Tensor) -> Tensor:
        if not self.enabled or self._failed:
            return torch.tensor(float("nan"))
        if self._metric is None:
            try:
                self._metric = lpip.LearnedPerceptualImagePatchSimilarity(**self.kwargs)
            except Exception as exc:  # noqa: BLE001 (download or load failure of the AlexNet weights)
                CONSOLE.print(f"[yellow]LPIPS unavailable, not reported ({type(exc).__name__}: {exc})")
                self._failed = True
                return torch.tensor(float("nan"))
        return self._metric.to(images.device)(images, references)


@contextlib.contextmanager
def _lazy_lpips() -> Iterator[None]:
    """Within this block, Splatfacto's ``populate_modules`` gets a :class:`LazyLpips` for its LPIPS metric."""
    original = lpip.LearnedPerceptualImagePatchSimilarity
    lpip.LearnedPerceptualImagePatchSimilarity = LazyLpips
    try:
        yield
    finally:
        lpip.LearnedPerceptualImagePatchSimilarity = original


class MastsamSplatModel(SplatfactoModel):
    """Splatfacto whose Gaussians also carry an instance feature (see module docstring)."""

    config: MastsamSplatModelConfig

    # ------------------------------------------------------------------ construction

    def populate_modules(self) -> None:
        """Splatfacto's modules (built on CPU, LPIPS on first use), then the instance feature, head and regulariser."""
        metadata = self.kwargs.get("metadata") or {}
        seeded = self.seed_points is not None and not self.config.random_init
        seed_ids = metadata.get("points3D_instance") if seeded else None
        colours = None
        if seeded:
            # Splatfacto puts seed colours on ``.cuda()``: it gets the points only, the colours are set below.
            points, colours = self.seed_points
            self.seed_points = (points.detach().float().cpu(), colours[:0])
            colours = colours.detach().cpu()
        self.config.resolve_schedule()
        with _lazy_lpips():
            super().populate_modules()
        self.lpips.enabled = self.config.compute_lpips
        num_points = self.num_points
        with torch.no_grad():
            self.scales.clamp_min_(math.log(MIN_INITIAL_SCALE))  # coincident seed points
            if seeded and self.config.surface_init:
                log_scales, quats = surface_aligned_frames(self.means.cpu().numpy(), self.scales[:, 0].cpu().numpy())
                self.scales.copy_(torch.from_numpy(log_scales))
                self.quats.copy_(torch.from_numpy(quats))
            if colours is not None and colours.shape[0] == num_points:
                rgb = colours.float() / 255.0
                self.features_dc.copy_(rgb_to_sh(rgb) if self.config.sh_degree > 0 else torch.logit(rgb, eps=1e-10))

        self.num_instance_classes = self._initial_num_classes(metadata, seed_ids)
        self.instance_head = torch.nn.Linear(self.config.instance_feature_dim, self.num_instance_classes)
        self.gauss_params["instance_features"] = Parameter(self._initial_instance_features(num_points, seed_ids))
        self.knn_regularizer = KnnRegularizer(
            k=self.config.knn_neighbours,
            num_samples=self.config.knn_samples,
            refresh_every=self.config.knn_refresh_every,
        )
        self.object_viewer: Optional[SelectionHook] = None
        """Attached by the pipeline (an ``nn.Module``, so Nerfstudio's viewer finds its controls)."""

    def _initial_num_classes(self, metadata: Dict, seed_ids: Optional[Tensor]) -> int:
        """K from the config, else from the tracked labels (largest id + 1); at least 2."""
        if self.config.num_instance_classes > 0:
            return max(2, int(self.config.num_instance_classes))
        largest = int(metadata.get("num_instance_ids", 0))
        if seed_ids is not None and len(seed_ids):
            largest = max(largest, int(torch.as_tensor(seed_ids).max()))
        return max(2, largest + 1)

    def _initial_instance_features(self, num_points: int, seed_ids: Optional[Tensor]) -> Tensor:
        """Small random features; Gaussians seeded from labelled points start where the head predicts their id.

        Class ``c`` gets the shared embedding ``class_embeddings[c]`` (orthonormal while K - 1 <= D) as
        its head row and a labelled point's feature is its id's embedding, so the rendered ids are
        already the tracker's before the first step; unknown (zero) features lean to "no object".
        """
        D, K = self.config.instance_feature_dim, self.num_instance_classes
        features = 0.01 * torch.randn(num_points, D)
        if seed_ids is None or len(seed_ids) != num_points:
            return features
        codes = class_embeddings(K, D)
        with torch.no_grad():
            self.instance_head.weight.copy_(codes * SEED_LOGIT_SCALE)
            self.instance_head.bias.zero_()
            self.instance_head.bias[0] = 0.5 * SEED_LOGIT_SCALE
        ids = torch.as_tensor(seed_ids).long()
        labelled = (ids > 0) & (ids < K)
        features[labelled] = codes[ids[labelled]]
        return features

    # ------------------------------------------------------------------ parameters

    @property
    def instance_features(self) -> Parameter:
        return self.gauss_params["instance_features"]

    def get_gaussian_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = super().get_gaussian_param_groups()
        groups["instance_features"] = [self.gauss_params["instance_features"]]
        return groups

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = super().get_param_groups()
        groups["instance_head"] = list(self.instance_head.parameters())
        return groups

    def load_state_dict(self, dict, **kwargs):  # type: ignore[override]  # noqa: A002 (nn.Module's name)
        """Resize Gaussians and head to the checkpoint's shapes *in place*, then load.

        Keeping the same ``Parameter`` objects matters on resume: the trainer's optimizers were
        built before the checkpoint is read and must keep pointing at the model's tensors.
        """
        self.step = 30000
        num = dict["gauss_params.means"].shape[0]
        for name, param in self.gauss_params.items():
            key = f"gauss_params.{name}"
            shape = tuple(dict[key].shape) if key in dict else (num,) + tuple(param.shape[1:])
            if tuple(param.shape) != shape:
                param.data = torch.zeros(shape, device=param.device, dtype=param.dtype)
        weight = dict.get("instance_head.weight")
        if weight is not None and tuple(weight.shape) != tuple(self.instance_head.weight.shape):
            self.num_instance_classes = int(weight.shape[0])
            self.instance_head.weight.data = torch.zeros_like(weight, device=self.instance_head.weight.device)
            self.instance_head.bias.data = torch.zeros(weight.shape[0], device=self.instance_head.bias.device)
            self.instance_head.out_features = self.num_instance_classes
        return torch.nn.Module.load_state_dict(self, dict, **kwargs)

    def step_post_backward(self, step: int) -> None:
        """Splatfacto's densification step, without growth past ``cpu_max_gaussians`` on CPU."""
        cap = self.config.cpu_max_gaussians if self.device.type == "cpu" else 0
        with growth_capped(self.strategy, self.num_points, cap):
            super().step_post_backward(step)

    # ------------------------------------------------------------------ rendering

    def _get_downscale_factor(self) -> int:
        """Splatfacto's schedule, capped so the longer side stays >= ``min_downscaled_size`` pixels."""
        d = super()._get_downscale_factor()
        longest = getattr(self, "_image_longest_side", 0)
        while d > 1 and longest // d < self.config.min_downscaled_size:
            d //= 2
        return d

    def get_empty_outputs(  # type: ignore[override]  (an instance method: it needs the feature size)
        self, width: int, height: int, background: Tensor
    ) -> Dict[str, Union[Tensor, List]]:
        out = SplatfactoModel.get_empty_outputs(width, height, background)
        zeros = background.new_zeros(height, width, 1)
        out["instance"] = background.new_zeros(height, width, 3)
        out["instance_id"] = zeros
        out["instance_features"] = background.new_zeros(height, width, self.config.instance_feature_dim)
        out["selection"] = zeros.clone()
        return out

    def get_outputs(self, camera: Cameras) -> Dict[str, Union[Tensor, List]]:
        """Splatfacto's outputs plus the instance feature, id, palette colour and selection, for one camera."""
        if not isinstance(camera, Cameras):
            CONSOLE.print("[yellow]get_outputs needs a Cameras object")
            return {}
        if self.training:
            assert camera.shape[0] == 1, "Only one camera at a time"
            c2w = self.camera_optimizer.apply_to_camera(camera)
        else:
            c2w = camera.camera_to_worlds
        visible = self._visible_gaussians()
        if visible is not None and not visible.any():
            width, height = int(camera.width.item()), int(camera.height.item())
            return self.get_empty_outputs(width, height, self.background_color.to(self.device))
        params = {k: (v[visible] if visible is not None else v) for k, v in self.gauss_params.items()}
        viewmat, K, W, H = self._projection(camera, c2w)
        rendered = self._rasterize(params, viewmat, K, W, H)
        outputs = self._composite(rendered, camera, W, H)
        # Alpha-weighted mean of the Gaussians' features: with a linear head its logits are the same
        # mean of their logits, so a pixel is as confident as the Gaussians it shows (not damped by
        # low opacity early in training).
        features = rendered.features[0] / rendered.alpha[0].detach().clamp_min(MIN_FEATURE_ALPHA)  # [H, W, D]
        outputs["instance_features"] = features
        outputs.update(self._instance_outputs(features.detach(), outputs["accumulation"].detach()))
        if not self.training and self.object_viewer is not None:
            outputs = self.object_viewer.highlight(outputs)
        return outputs  # type: ignore[return-value]

    def _visible_gaussians(self) -> Optional[Tensor]:
        """Gaussians an eval render draws [N] bool (None: all): the crop box, narrowed by the object viewer."""
        if self.training:
            return None
        visible = self.crop_box.within(self.means).squeeze() if self.crop_box is not None else None
        if self.object_viewer is not None:
            visible = self.object_viewer.visible_mask(visible)
        return visible

    def _projection(self, camera: Cameras, c2w: Tensor) -> Tuple[Tensor, Tensor, int, int]:
        """View matrix [1, 4, 4], intrinsics [1, 3, 3] and size W, H at the current downscale (no ``.cuda()``)."""
        self._image_longest_side = int(max(camera.width.max().item(), camera.height.max().item()))
        d = self._get_downscale_factor()
        camera.rescale_output_resolution(1 / d)
        viewmat = viewmat_from_c2w(c2w)
        K = camera.get_intrinsics_matrices().to(self.device)
        W, H = int(camera.width.item()), int(camera.height.item())
        self.last_size = (H, W)
        camera.rescale_output_resolution(d)
        return viewmat, K, W, H

    def _rasterize(self, params: Dict[str, Tensor], viewmat: Tensor, K: Tensor, W: int, H: int) -> RenderOutput:
        """Colour (SH evaluated up to the scheduled degree), instance features, depth and alpha in one pass.

        Goes through ``mastsam_splat.splat.rendering.render``: gsplat on CUDA, the torch
        rasterizer elsewhere. Feeds the densification strategy like Splatfacto does.
        """
        if self.config.rasterize_mode not in ("antialiased", "classic"):
            raise ValueError(f"Unknown rasterize_mode: {self.config.rasterize_mode}")
        if self.config.sh_degree > 0:
            sh_degree = min(self.step // self.config.sh_degree_interval, self.config.sh_degree)
            colors = torch.cat([params["features_dc"][:, None, :], params["features_rest"]], dim=1)  # [N, K, 3]
        else:
            sh_degree, colors = None, torch.sigmoid(params["features_dc"])  # [N, 3]
        rendered = render(
            params["means"],
            params["quats"],
            torch.exp(params["scales"]),
            torch.sigmoid(params["opacities"]).squeeze(-1),
            colors,
            viewmat,
            K,
            W,
            H,
            sh_degree=sh_degree,
            features=params["instance_features"],
            with_depth=self.config.output_depth_during_training or not self.training,
            detach_geometry_for_features=self.config.instance_detach_geometry,
            absgrad=self.strategy.absgrad,
            rasterize_mode=self.config.rasterize_mode,
            backend=self.config.rasterizer,
        )
        self.info = rendered.meta
        if self.training:
            self.strategy.step_pre_backward(
                self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info
            )
        return rendered

    def _composite(self, rendered: RenderOutput, camera: Cameras, W: int, H: int) -> Dict[str, Tensor]:
        """Splatfacto's ``rgb`` / ``depth`` / ``accumulation`` / ``background`` outputs from a render."""
        alpha = rendered.alpha  # [1, H, W, 1]
        background = self._get_background_color()
        rgb = torch.clamp(rendered.rgb + (1 - alpha) * background, 0.0, 1.0)
        if self.config.use_bilateral_grid and self.training:
            if camera.metadata is not None and "cam_idx" in camera.metadata:
                rgb = self._apply_bilateral_grid(rgb, camera.metadata["cam_idx"], H, W)
        depth = None
        if rendered.depth is not None:
            depth = torch.where(alpha > 0, rendered.depth, rendered.depth.detach().max()).squeeze(0)
        if background.shape[0] == 3 and not self.training:
            background = background.expand(H, W, 3)
        return {"rgb": rgb.squeeze(0), "depth": depth, "accumulation": alpha.squeeze(0), "background": background}

    @torch.no_grad()
    def _instance_outputs(self, features: Tensor, alpha: Tensor) -> Dict[str, Tensor]:
        """Per-pixel id [H, W, 1] (float, for the viewer), palette colour [H, W, 3] and selection [H, W, 1]."""
        probs = torch.softmax(self.instance_head(features), dim=-1)  # [H, W, K]
        confidence, ids = probs.max(dim=-1)
        shown = (confidence >= self.config.min_pixel_confidence) & (alpha[..., 0] >= self.config.min_instance_alpha)
        ids = torch.where(shown, ids, 0)
        palette = instance_palette(self.num_instance_classes, features.device)
        selection = torch.zeros_like(alpha)
        selected = None if self.object_viewer is None else self.object_viewer.selected_id
        if selected is not None and 0 < selected < self.num_instance_classes:
            selection = probs[..., selected : selected + 1] * alpha
        return {"instance_id": ids[..., None].float(), "instance": palette[ids], "selection": selection}

    @torch.no_grad()
    def gaussian_instance_ids(self, min_confidence: Optional[float] = None) -> Tensor:
        """Object id of every Gaussian [N] (argmax of the head on its own feature; 0 below ``min_confidence``)."""
        threshold = self.config.min_instance_confidence if min_confidence is None else min_confidence
        ids, confidence = classify(self.instance_features, self.instance_head)
        return torch.where(confidence >= threshold, ids, torch.zeros_like(ids))

    @torch.no_grad()
    def gaussians(self, source: Optional[Path] = None) -> Gaussians:
        """The Gaussians in the 3DGS PLY layout, with their object ids (``gaussian_instance_ids``) and features."""
        return gaussians_from_params(
            {name: param.detach() for name, param in self.gauss_params.items()},
            self.config.sh_degree,
            source,
            instance_ids=self.gaussian_instance_ids().cpu().numpy(),
        )

    # ------------------------------------------------------------------ losses and metrics

    def _labels_for_output(self, batch: Dict, key: str) -> Optional[Tensor]:
        """The batch's label map at the current render resolution, as int64 on the model's device."""
        if key not in batch:
            return None
        return downscale_labels(batch[key], self._get_downscale_factor()).to(self.device).long()

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        metrics = super().get_metrics_dict(outputs, batch)
        labels = self._labels_for_output(batch, "instance_labels")
        if labels is not None:
            labelled = labels > 0
            if labelled.any():
                predicted = self.instance_head(outputs["instance_features"].detach()).argmax(dim=-1)
                metrics["instance_accuracy"] = (predicted[labelled] == labels[labelled]).float().mean()
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        losses = super().get_loss_dict(outputs, batch, metrics_dict)
        if not self.training or self.step < self.config.instance_start_step:
            return losses
        labels = self._labels_for_output(batch, "instance_labels")
        if labels is not None and self.config.instance_loss_weight > 0:
            features = outputs["instance_features"]
            assert labels.shape == features.shape[:2], (labels.shape, features.shape)
            classes = torch.where(labels < self.num_instance_classes, labels, 0)
            ce = instance_loss(features, classes, self.instance_head, self.config.instance_background_weight)
            losses["instance_loss"] = self.config.instance_loss_weight * ce
        if self.config.knn_loss_weight > 0:
            knn = self.knn_regularizer(self.instance_features, self.means, self.step)
            losses["instance_knn_loss"] = self.config.knn_loss_weight * knn
        return losses

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        """Splatfacto's image metrics (LPIPS when available) plus the instance mIoU and an id image."""
        metrics, images = super().get_image_metrics_and_images(outputs, batch)
        for key in ("lpips", "cc_lpips"):
            if key in metrics and math.isnan(metrics[key]):
                del metrics[key]
        predicted_ids = outputs["instance_id"][..., 0].long()
        gt_ids = self._labels_for_output(batch, "gt_instances")
        if gt_ids is not None:
            pred_np, gt_np = predicted_ids.cpu().numpy(), gt_ids.cpu().numpy()
            miou = per_view_miou(overlap_table([pred_np], [gt_np])).miou
            metrics["instance_miou"] = float(np.nan_to_num(miou, nan=0.0))
            self._record_eval_labels(pred_np, gt_np)
            gt_palette = instance_palette(int(gt_ids.max()) + 1, gt_ids.device)[gt_ids]
            images["instance"] = torch.cat([gt_palette, outputs["instance"]], dim=1)
        else:
            images["instance"] = outputs["instance"]
        return metrics, images

    # Consistent mIoU needs all eval views at once: the pipeline opens a recording, the
    # per-image metrics above append to it, and the pipeline scores the whole set.

    def start_eval_recording(self) -> None:
        self._eval_record: Optional[List[Tuple[np.ndarray, np.ndarray]]] = []

    def stop_eval_recording(self) -> List[Tuple[np.ndarray, np.ndarray]]:
        record = getattr(self, "_eval_record", None) or []
        self._eval_record = None
        return record

    def _record_eval_labels(self, predicted: np.ndarray, ground_truth: np.ndarray) -> None:
        record = getattr(self, "_eval_record", None)
        if record is not None:
            record.append((predicted, ground_truth))
