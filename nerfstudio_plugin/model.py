"""Splatfacto with a per-Gaussian instance feature, decoded per pixel into object ids.

Each Gaussian carries a feature ``f`` [D] stored in ``gauss_params`` next to its colour, so
gsplat's densification, splitting and pruning keep it aligned. Colour and feature are rendered
in one rasterization pass (SH colour evaluated here, then ``[rgb | f]`` rendered as plain
channels); a linear head turns the rendered feature into instance logits, trained with
cross-entropy against the tracker's consistent label maps, plus a 3D k-nearest-neighbour
regulariser on the features.

Rendering, head seeding, losses and the regulariser come from ``mastsam_splat.splat`` (shared
with the standalone trainer): gsplat on CUDA, the project's torch rasterizer on CPU. Stock
Splatfacto hard-codes ``.cuda()``, builds LPIPS eagerly and compiles ``get_viewmat``; none of
that here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type, Union

import numpy as np
import torch
from torch import Tensor
from torch.nn import Parameter

from gsplat.strategy import DefaultStrategy
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.model_components.lib_bilagrid import BilateralGrid
from nerfstudio.models.splatfacto import SplatfactoModel, SplatfactoModelConfig, random_quat_tensor
from nerfstudio.utils.colors import get_color
from nerfstudio.utils.rich_utils import CONSOLE

from mastsam_splat.io.gaussians import num_sh_bases, rgb_to_sh
from mastsam_splat.splat.instance import InstanceConfig

_SHARED = InstanceConfig()
"""Defaults shared with the standalone trainer (``mastsam_splat.splat.trainer``)."""

SEED_LOGIT_SCALE = 8.0
"""Head weight scale when seeding: a seeded Gaussian's own id gets this logit."""

MIN_FEATURE_ALPHA = 0.05
"""Rendered features are divided by the pixel's accumulated opacity, clamped below at this value."""

INSTANCE_KEYS = ("instance", "instance_id", "instance_features", "selection")
"""Outputs added to Splatfacto's; always present so the viewer's output list stays stable."""


@dataclass
class MastsamSplatModelConfig(SplatfactoModelConfig):
    """Splatfacto plus a per-Gaussian instance feature supervised by consistent label maps."""

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
    min_downscaled_size: int = 256
    """The resolution schedule (num_downscales) never shrinks the longer image side below this many pixels:
    it saves time on large images, while small ones (CPU runs) would only lose detail."""
    rasterizer: Literal["auto", "gsplat", "torch"] = "auto"
    """Rasterizer: gsplat's CUDA kernels, the project's torch rasterizer, or auto (gsplat on CUDA, torch elsewhere)."""
    compute_lpips: bool = True
    """Report LPIPS in evaluation (AlexNet weights are loaded on first use; skipped if unavailable)."""


def instance_palette(num_ids: int, device: Union[str, torch.device] = "cpu") -> Tensor:
    """RGB colour [num_ids, 3] in [0, 1] of ids 0..num_ids-1: the tracker's overlay colours, id 0 black."""
    from mastsam_splat.tracker.outputs import id_colours

    return torch.from_numpy(id_colours(np.arange(num_ids)).astype(np.float32) / 255.0).to(device)


def viewmat_from_c2w(c2w: Tensor) -> Tensor:
    """OpenGL camera-to-world [C, 3, 4] -> OpenCV world-to-camera [C, 4, 4] (no torch.compile)."""
    R = c2w[:, :3, :3] * torch.tensor([[[1.0, -1.0, -1.0]]], device=c2w.device, dtype=c2w.dtype)
    T = c2w[:, :3, 3:4]
    R_inv = R.transpose(1, 2)
    viewmat = torch.zeros(c2w.shape[0], 4, 4, device=c2w.device, dtype=c2w.dtype)
    viewmat[:, 3, 3] = 1.0
    viewmat[:, :3, :3] = R_inv
    viewmat[:, :3, 3:4] = -torch.bmm(R_inv, T)
    return viewmat


def downscale_labels(labels: Tensor, d: int) -> Tensor:
    """Nearest-neighbour label map [H, W] -> [H // d, W // d], the size of Splatfacto's area-downscaled image."""
    if d <= 1:
        return labels
    h, w = labels.shape[0] // d * d, labels.shape[1] // d * d
    return labels[d // 2 : h : d, d // 2 : w : d]


class MastsamSplatModel(SplatfactoModel):
    """Splatfacto whose Gaussians also carry an instance feature (see module docstring)."""

    config: MastsamSplatModelConfig

    # ------------------------------------------------------------------ construction

    def populate_modules(self) -> None:
        metadata = self.kwargs.get("metadata") or {}
        seed_ids = metadata.get("points3D_instance")
        if self.seed_points is not None and not self.config.random_init:
            means = self.seed_points[0].detach().float().cpu()
            colours = self.seed_points[1].detach().cpu()
        else:
            means = (torch.rand((self.config.num_random, 3)) - 0.5) * self.config.random_scale
            colours, seed_ids = None, None
        num_points = means.shape[0]
        distances, _ = self.k_nearest_sklearn(means, 3)
        avg_dist = torch.from_numpy(distances).mean(dim=-1, keepdim=True).clamp_min(1e-7)

        dim_sh = num_sh_bases(self.config.sh_degree)
        if colours is not None and colours.shape[0] == num_points:
            shs = torch.zeros((num_points, dim_sh, 3))
            rgb = colours.float() / 255.0
            shs[:, 0, :] = rgb_to_sh(rgb) if self.config.sh_degree > 0 else torch.logit(rgb, eps=1e-10)
            features_dc, features_rest = shs[:, 0, :], shs[:, 1:, :]
        else:
            features_dc, features_rest = torch.rand(num_points, 3), torch.zeros((num_points, dim_sh - 1, 3))

        self.num_instance_classes = self._initial_num_classes(metadata, seed_ids)
        D = self.config.instance_feature_dim
        self.instance_head = torch.nn.Linear(D, self.num_instance_classes)
        instance_features = self._initial_instance_features(num_points, seed_ids)

        self.gauss_params = torch.nn.ParameterDict(
            {
                "means": Parameter(means),
                "scales": Parameter(torch.log(avg_dist.repeat(1, 3))),
                "quats": Parameter(random_quat_tensor(num_points)),
                "features_dc": Parameter(features_dc),
                "features_rest": Parameter(features_rest),
                "opacities": Parameter(torch.logit(0.1 * torch.ones(num_points, 1))),
                "instance_features": Parameter(instance_features),
            }
        )

        self.camera_optimizer = self.config.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")

        from pytorch_msssim import SSIM
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = SSIM(data_range=1.0, size_average=True, channel=3)
        self._lazy_metrics: Dict[str, object] = {}
        self.step = 0
        self.crop_box: Optional[OrientedBox] = None
        if self.config.background_color == "random":
            self.background_color = torch.tensor([0.1490, 0.1647, 0.2157])  # viser's background
        else:
            self.background_color = get_color(self.config.background_color)
        if self.config.use_bilateral_grid:
            self.bil_grids = BilateralGrid(
                num=self.num_train_data,
                grid_X=self.config.grid_shape[0],
                grid_Y=self.config.grid_shape[1],
                grid_W=self.config.grid_shape[2],
            )
        self.strategy = DefaultStrategy(
            prune_opa=self.config.cull_alpha_thresh,
            grow_grad2d=self.config.densify_grad_thresh,
            grow_scale3d=self.config.densify_size_thresh,
            grow_scale2d=self.config.split_screen_size,
            prune_scale3d=self.config.cull_scale_thresh,
            prune_scale2d=self.config.cull_screen_size,
            refine_scale2d_stop_iter=self.config.stop_screen_size_at,
            refine_start_iter=self.config.warmup_length,
            refine_stop_iter=self.config.stop_split_at,
            reset_every=self.config.reset_alpha_every * self.config.refine_every,
            refine_every=self.config.refine_every,
            pause_refine_after_reset=self.num_train_data + self.config.refine_every,
            absgrad=self.config.use_absgrad,
            revised_opacity=False,
            verbose=True,
        )
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0)
        from mastsam_splat.splat.instance import KnnRegularizer

        self.knn_regularizer = KnnRegularizer(
            k=self.config.knn_neighbours,
            num_samples=self.config.knn_samples,
            refresh_every=self.config.knn_refresh_every,
        )
        self.selected_instance: Optional[int] = None
        """Object id highlighted in the ``selection`` output (None = nothing selected)."""
        # -- object viewer (nerfstudio_plugin/viewer.py) --
        from nerfstudio_plugin.viewer import ObjectViewer

        self.object_viewer = ObjectViewer(self)
        """Viewer controls: click to select an object; highlight, isolate, hide or export it."""
        # -- end object viewer --

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
        from mastsam_splat.splat.instance import class_embeddings

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
        """Render colour, depth, instance feature, logits, id, palette colour and selection for one camera."""
        if not isinstance(camera, Cameras):
            CONSOLE.print("[yellow]get_outputs needs a Cameras object")
            return {}
        if self.training:
            assert camera.shape[0] == 1, "Only one camera at a time"
            c2w = self.camera_optimizer.apply_to_camera(camera)
        else:
            c2w = camera.camera_to_worlds

        crop_ids = None
        if self.crop_box is not None and not self.training:
            crop_ids = self.crop_box.within(self.means).squeeze()
            if crop_ids.sum() == 0:
                return self.get_empty_outputs(
                    int(camera.width.item()), int(camera.height.item()), self.background_color.to(self.device)
                )
        # -- object viewer: isolate / hide the selection in viewer renders --
        if not self.training:
            crop_ids = self.object_viewer.visible_gaussians(crop_ids)
            if crop_ids is not None and not crop_ids.any():
                return self.get_empty_outputs(
                    int(camera.width.item()), int(camera.height.item()), self.background_color.to(self.device)
                )
        # -- end object viewer --
        params = {k: (v[crop_ids] if crop_ids is not None else v) for k, v in self.gauss_params.items()}

        self._image_longest_side = int(max(camera.width.max().item(), camera.height.max().item()))
        d = self._get_downscale_factor()
        camera.rescale_output_resolution(1 / d)
        viewmat = viewmat_from_c2w(c2w)
        K = camera.get_intrinsics_matrices().to(self.device)
        W, H = int(camera.width.item()), int(camera.height.item())
        self.last_size = (H, W)
        camera.rescale_output_resolution(d)

        if self.config.rasterize_mode not in ("antialiased", "classic"):
            raise ValueError(f"Unknown rasterize_mode: {self.config.rasterize_mode}")
        render_mode = "RGB+ED" if (self.config.output_depth_during_training or not self.training) else "RGB"

        from mastsam_splat.splat.rendering import render

        if self.config.sh_degree > 0:
            sh_degree = min(self.step // self.config.sh_degree_interval, self.config.sh_degree)
            colors = torch.cat([params["features_dc"][:, None, :], params["features_rest"]], dim=1)  # [N, K, 3]
        else:
            sh_degree, colors = None, torch.sigmoid(params["features_dc"])  # [N, 3]
        out = render(
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
            with_depth=render_mode == "RGB+ED",
            detach_geometry_for_features=self.config.instance_detach_geometry,
            absgrad=self.strategy.absgrad,
            rasterize_mode=self.config.rasterize_mode,
            backend=self.config.rasterizer,
        )
        self.info = out.meta
        alpha = out.alpha  # [1, H, W, 1]
        if self.training:
            self.strategy.step_pre_backward(
                self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info
            )

        background = self._get_background_color()
        rgb_im = torch.clamp(out.rgb + (1 - alpha) * background, 0.0, 1.0)
        if self.config.use_bilateral_grid and self.training:
            if camera.metadata is not None and "cam_idx" in camera.metadata:
                rgb_im = self._apply_bilateral_grid(rgb_im, camera.metadata["cam_idx"], H, W)
        # Alpha-weighted mean of the Gaussians' features: with a linear head its logits are the same
        # mean of their logits, so a pixel is as confident as the Gaussians it shows (not damped by
        # low opacity early in training).
        features = out.features[0] / alpha[0].detach().clamp_min(MIN_FEATURE_ALPHA)  # [H, W, D]
        if out.depth is not None:
            depth_im = torch.where(alpha > 0, out.depth, out.depth.detach().max()).squeeze(0)
        else:
            depth_im = None
        if background.shape[0] == 3 and not self.training:
            background = background.expand(H, W, 3)

        outputs = {
            "rgb": rgb_im.squeeze(0),
            "depth": depth_im,
            "accumulation": alpha.squeeze(0),
            "background": background,
            "instance_features": features,
        }
        outputs.update(self._instance_outputs(features.detach(), alpha.squeeze(0).detach()))
        if not self.training:  # -- object viewer: tint the selection, dim the rest --
            outputs = self.object_viewer.highlight(outputs)
        return outputs  # type: ignore[return-value]

    @torch.no_grad()
    def _instance_outputs(self, features: Tensor, alpha: Tensor) -> Dict[str, Tensor]:
        """Per-pixel id [H, W, 1] (float, for the viewer), palette colour [H, W, 3] and selection [H, W, 1]."""
        probs = torch.softmax(self.instance_head(features), dim=-1)  # [H, W, K]
        confidence, ids = probs.max(dim=-1)
        shown = (confidence >= self.config.min_pixel_confidence) & (alpha[..., 0] >= self.config.min_instance_alpha)
        ids = torch.where(shown, ids, 0)
        palette = instance_palette(self.num_instance_classes, features.device)
        selection = torch.zeros_like(alpha)
        if self.selected_instance is not None and 0 < self.selected_instance < self.num_instance_classes:
            selection = probs[..., self.selected_instance : self.selected_instance + 1] * alpha
        return {"instance_id": ids[..., None].float(), "instance": palette[ids], "selection": selection}

    @torch.no_grad()
    def gaussian_instance_ids(self, min_confidence: Optional[float] = None) -> Tensor:
        """Object id of every Gaussian [N] (argmax of the head on its own feature; 0 below ``min_confidence``)."""
        from mastsam_splat.splat.instance import classify

        threshold = self.config.min_instance_confidence if min_confidence is None else min_confidence
        ids, confidence = classify(self.instance_features, self.instance_head)
        return torch.where(confidence >= threshold, ids, torch.zeros_like(ids))

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
        from mastsam_splat.splat.instance import instance_loss

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

    def _lpips(self):
        """LPIPS metric built on first use; None when its weights cannot be loaded (offline)."""
        if "lpips" not in self._lazy_metrics:
            try:
                from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

                self._lazy_metrics["lpips"] = LearnedPerceptualImagePatchSimilarity(normalize=True).to(self.device)
            except Exception as exc:  # noqa: BLE001 (download or load failure of the AlexNet weights)
                CONSOLE.print(f"[yellow]LPIPS unavailable, not reported ({type(exc).__name__}: {exc})")
                self._lazy_metrics["lpips"] = None
        return self._lazy_metrics["lpips"]

    def get_image_metrics_and_images(
        self, outputs: Dict[str, Tensor], batch: Dict[str, Tensor]
    ) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        gt_rgb = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        predicted_rgb = outputs["rgb"]
        gt_chw = torch.moveaxis(gt_rgb, -1, 0)[None]
        pred_chw = torch.moveaxis(predicted_rgb, -1, 0)[None]
        metrics: Dict[str, float] = {
            "psnr": float(self.psnr(gt_chw, pred_chw).item()),
            "ssim": float(self.ssim(gt_chw, pred_chw)),
        }
        lpips = self._lpips() if self.config.compute_lpips else None
        if lpips is not None:
            metrics["lpips"] = float(lpips(gt_chw, pred_chw))
        images = {"img": torch.cat([gt_rgb, predicted_rgb], dim=1)}

        predicted_ids = outputs["instance_id"][..., 0].long()
        gt_ids = self._labels_for_output(batch, "gt_instances")
        if gt_ids is not None:
            from mastsam_splat.metrics.ground_truth import overlap_table, per_view_miou

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
