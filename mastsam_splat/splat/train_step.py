"""One optimisation step of the standalone trainer, and the state it reads and updates.

As in gsplat's simple trainer: ``make_train_state`` builds everything a step needs (parameters,
optimizers, densification strategy and its state, instance head, label space, loss modules);
``train_step`` does one step on one view (render, losses, backward, strategy hooks, optimizer
steps). ``trainer.train`` loops over it; benchmarks time it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from mastsam_splat.splat.instance import InstanceHead, KnnRegularizer, LabelSpace, class_embeddings, instance_loss
from mastsam_splat.splat.params import FEATURE_KEY, activated, make_optimizers
from mastsam_splat.splat.rendering import camera_tensors, psnr, render
from mastsam_splat.splat.schedule import growth_capped
from mastsam_splat.types import Frame

if TYPE_CHECKING:
    from mastsam_splat.splat.trainer import SplatTrainConfig


@dataclass
class TrainView:
    """One posed image and its labels as tensors on the training device."""

    name: str
    image: Tensor
    """[H, W, 3] float RGB in [0, 1]."""
    classes: Optional[Tensor]
    """[H, W] int64 class of each pixel (``LabelSpace``), for training views."""
    gt: Optional[np.ndarray]
    """[H, W] uint16 ground-truth object ids, for scoring."""
    viewmat: Tensor
    """[1, 4, 4] world-to-camera."""
    K: Tensor
    """[1, 3, 3] intrinsics."""
    width: int
    height: int


def downscale_image(image: np.ndarray, d: int) -> np.ndarray:
    """Area-averaged 1/``d`` image (floor size)."""
    import cv2

    if d == 1:
        return image
    h, w = image.shape[0] // d, image.shape[1] // d
    return cv2.resize(image[: h * d, : w * d], (w, h), interpolation=cv2.INTER_AREA)


def downscale_labels(labels: np.ndarray, d: int) -> np.ndarray:
    """Nearest-neighbour downscale that samples each block's centre pixel (floor size)."""
    if d == 1:
        return labels
    h, w = labels.shape[0] // d, labels.shape[1] // d
    return labels[d // 2 :: d, d // 2 :: d][:h, :w]


def view_of_frame(
    frame: Frame,
    space: LabelSpace,
    labels: Optional[np.ndarray] = None,
    gt: Optional[np.ndarray] = None,
    downscale: int = 1,
    device: Union[str, torch.device] = "cpu",
) -> TrainView:
    """A frame (image, camera) with its label image (classes of ``space``) and ground truth at 1/``downscale``."""
    image = downscale_image(frame.image, downscale)
    viewmat, K = camera_tensors(frame.camera, device, downscale)
    classes = None if labels is None else space.to_class(downscale_labels(labels, downscale))
    return TrainView(
        name=frame.name,
        image=torch.as_tensor(image, dtype=torch.float32, device=device) / 255.0,
        classes=None if classes is None else torch.as_tensor(classes, device=device),
        gt=None if gt is None else downscale_labels(gt, downscale),
        viewmat=viewmat,
        K=K,
        width=image.shape[1],
        height=image.shape[0],
    )


def camera_positions(views: Sequence[TrainView]) -> Tensor:
    """[V, 3] camera centres of the views."""
    return torch.stack([torch.linalg.inv(v.viewmat[0])[:3, 3] for v in views])


def scene_scale(views: Sequence[TrainView]) -> float:
    """1.1 times the largest distance of a camera from the cameras' mean (Splatfacto's scene scale)."""
    centers = camera_positions(views)
    return float((centers - centers.mean(0)).norm(dim=-1).max().clamp_min(1e-6)) * 1.1


@dataclass
class TrainState:
    """Everything a training step reads and updates."""

    config: "SplatTrainConfig"
    """Losses, schedules and background mode."""
    params: nn.ParameterDict
    """Gaussians in Splatfacto's layout (+ ``instance_features``)."""
    optimizers: Dict[str, torch.optim.Optimizer]
    """One Adam per parameter (the layout gsplat's strategies expect)."""
    means_scheduler: Any
    """Exponential decay of the means' learning rate to 1% over the run."""
    head: InstanceHead
    head_optimizer: torch.optim.Optimizer
    space: LabelSpace
    """Object ids <-> the head's classes."""
    knn: KnnRegularizer
    background: Tensor
    """[3] learned background logits (zeros and unused unless ``background == "learned"``)."""
    background_optimizer: Optional[torch.optim.Optimizer]
    ssim: Optional[nn.Module]
    strategy: Optional[Any]
    """gsplat ``DefaultStrategy`` when densifying."""
    strategy_state: Optional[Dict[str, Any]]
    backend: str
    """Renderer backend (``gsplat`` or ``torch``)."""
    last_background: Optional[Tensor] = None
    """[3] background colour of the latest step."""
    sh_degree_interval: int = 1
    """Steps between raising the SH degree by one (the config's schedule, resolved)."""

    @property
    def use_features(self) -> bool:
        return self.config.instance.feature_dim > 0

    def step_background(self) -> Tensor:
        """[3] background colour of a step: learned, random (drawn now) or fixed."""
        mode = self.config.background
        device = self.background.device
        if mode == "learned":
            return torch.sigmoid(self.background)
        if mode == "random":
            return torch.rand(3, device=device)
        return torch.full((3,), 1.0 if mode == "white" else 0.0, device=device)

    def eval_background(self) -> Tensor:
        """[3] background colour to render held-out views with: the learned one, else the latest step's."""
        if self.config.background == "learned":
            return torch.sigmoid(self.background).detach()
        if self.last_background is None:
            return self.step_background().detach()
        return self.last_background.detach()


def make_train_state(
    config: "SplatTrainConfig",
    params: nn.ParameterDict,
    space: LabelSpace,
    views: Sequence[TrainView],
    *,
    seed_head: bool,
    backend: str,
) -> TrainState:
    """Optimizers, schedule, head, regulariser, background, SSIM and densification strategy for ``params``.

    ``views`` (the training views) set the scene scale of the means' learning rate and of
    densification; ``seed_head`` makes each class the head's answer for its seeded embedding
    (when the features start at the embeddings of the point cloud's ids).
    """
    device = params["means"].device
    icfg = config.instance
    head = InstanceHead(max(icfg.feature_dim, 1), space.num_classes).to(device)
    if icfg.feature_dim > 0 and seed_head:
        head.seed(class_embeddings(space.num_classes, icfg.feature_dim, seed=config.seed).to(device))

    scale = scene_scale(views)
    lrs = {
        "means": config.lr_means * scale,
        "scales": config.lr_scales,
        "quats": config.lr_quats,
        "opacities": config.lr_opacities,
        "features_dc": config.lr_colors,
        "features_rest": config.lr_colors / 20.0,
        FEATURE_KEY: icfg.feature_lr,
    }
    optimizers = make_optimizers(params, lrs)
    head_optimizer = torch.optim.Adam(head.parameters(), lr=icfg.head_lr)
    learned = config.background == "learned"
    background = torch.zeros(3, device=device, requires_grad=learned)
    background_optimizer = torch.optim.Adam([background], lr=config.lr_background) if learned else None
    decay = 0.01 ** (1.0 / config.steps)
    means_scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizers["means"], gamma=decay)
    knn = KnnRegularizer(
        k=icfg.knn_k, num_samples=icfg.knn_samples, refresh_every=icfg.knn_refresh_every, seed=config.seed
    )

    strategy = strategy_state = None
    if config.densify:
        from gsplat.strategy import DefaultStrategy

        schedule = config.schedule()
        strategy = DefaultStrategy(
            grow_grad2d=config.grow_grad2d,
            refine_start_iter=schedule.warmup_length,
            refine_stop_iter=schedule.stop_split_at,
            refine_every=schedule.refine_every,
            reset_every=schedule.reset_alpha_every * schedule.refine_every if config.opacity_reset else 10**9,
            absgrad=False,
            verbose=False,
        )
        strategy.check_sanity(params, optimizers)
        strategy_state = strategy.initialize_state(scene_scale=scale)

    ssim = None
    if config.ssim_lambda > 0:
        from pytorch_msssim import SSIM

        ssim = SSIM(data_range=1.0, size_average=True, channel=3)

    return TrainState(
        config=config,
        params=params,
        optimizers=optimizers,
        means_scheduler=means_scheduler,
        head=head,
        head_optimizer=head_optimizer,
        space=space,
        knn=knn,
        background=background,
        background_optimizer=background_optimizer,
        ssim=ssim,
        strategy=strategy,
        strategy_state=strategy_state,
        backend=backend,
        sh_degree_interval=config.schedule().sh_degree_interval,
    )


def train_step(state: TrainState, view: TrainView, step: int) -> Dict[str, Tensor]:
    """One optimisation step on one view; returns the step's losses and PSNR as detached 0-d tensors.

    Renders colour (and instance features), computes L1 + SSIM, the instance cross-entropy and
    the k-NN feature regulariser, back-propagates, runs the strategy's pre/post-backward hooks
    and steps every optimizer and the means' schedule. Keys: ``loss``, ``l1``, ``instance``,
    ``knn``, ``psnr`` (of the rendered colour before the update).
    """
    config, icfg = state.config, state.config.instance
    params, optimizers = state.params, state.optimizers
    bg = state.step_background()
    state.last_background = bg
    sh_degree = min(step // max(state.sh_degree_interval, 1), config.sh_degree)
    act = activated(params)
    out = render(
        act["means"], act["quats"], act["scales"], act["opacities"], act["sh"],
        view.viewmat, view.K, view.width, view.height,
        sh_degree=sh_degree, features=act.get("features") if state.use_features else None,
        backgrounds=bg[None], detach_geometry_for_features=icfg.detach_geometry, backend=state.backend,
    )  # fmt: skip
    if state.strategy is not None:
        state.strategy.step_pre_backward(params, optimizers, state.strategy_state, step, out.meta)
    pred = out.rgb[0]
    l1 = (pred - view.image).abs().mean()
    loss = l1 * (1.0 - config.ssim_lambda)
    if state.ssim is not None:
        ssim = state.ssim(pred.permute(2, 0, 1)[None], view.image.permute(2, 0, 1)[None])
        loss = loss + config.ssim_lambda * (1.0 - ssim)
    if config.flatten_weight > 0:
        loss = loss + config.flatten_weight * act["scales"].min(dim=-1).values.mean()
    ce = knn_loss = torch.zeros((), device=pred.device)
    if state.use_features:
        ce = instance_loss(out.features[0], view.classes, state.head, icfg.background_weight)
        knn_loss = state.knn(params[FEATURE_KEY], params["means"], step) if icfg.knn_weight > 0 else knn_loss
        loss = loss + icfg.loss_weight * ce + icfg.knn_weight * knn_loss
    loss.backward()
    for opt in optimizers.values():
        opt.step()
        opt.zero_grad(set_to_none=True)
    if state.use_features:
        state.head_optimizer.step()
        state.head_optimizer.zero_grad(set_to_none=True)
    if state.background_optimizer is not None:
        state.background_optimizer.step()
        state.background_optimizer.zero_grad(set_to_none=True)
    state.means_scheduler.step()
    if state.strategy is not None:
        with growth_capped(state.strategy, int(params["means"].shape[0]), config.max_gaussians):
            state.strategy.step_post_backward(params, optimizers, state.strategy_state, step, out.meta, packed=False)
    with torch.no_grad():
        score = psnr(pred, view.image)
    return {
        "loss": loss.detach(),
        "l1": l1.detach(),
        "instance": ce.detach(),
        "knn": knn_loss.detach(),
        "psnr": score,
    }
