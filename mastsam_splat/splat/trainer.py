"""A small standalone trainer: Gaussians + instance features fitted to a scene and its label images.

Used by tests, benchmarks and the CPU demo; the Nerfstudio model reuses the same pieces
(``rendering.render``, ``instance``, ``init``). Every ``eval_every``-th frame is held out and
scored at the end: PSNR of the render, and instance mIoU of the rendered labels against
ground-truth label images (``metrics.consistent_miou`` / ``per_view_miou``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

import numpy as np

from mastsam_splat.errors import InputError, check_option
from mastsam_splat.io import atomic_path, atomic_write_text, load_scene, read_label_dir, write_label_image
from mastsam_splat.io.scene import check_downscale
from mastsam_splat.io.gaussians import to_gaussians
from mastsam_splat.io.ply import read_point_cloud, write_gaussians_ply
from mastsam_splat.metrics import consistent_miou, overlap_table, per_view_miou
from mastsam_splat.splat.config import InstanceConfig
from mastsam_splat.splat.schedule import Schedule, budget_schedule
from mastsam_splat.threads import cpu_threads


@dataclass
class SplatTrainConfig:
    """Fit 3D Gaussians with instance features to a scene with cameras and per-frame label images,
    then report held-out PSNR and instance mIoU and write the Gaussians (with object ids) as a PLY."""

    data: Path
    """Scene with cameras: a Nerfstudio dataset folder (e.g. from ``mastsam synth``) or its transforms.json."""
    labels: Optional[Path] = None
    """Folder of label images ``<frame>.png`` that supervise the features (a tracker's ``masks/``).
    Default: the dataset's ground-truth ``instances/``."""
    output_dir: Optional[Path] = None
    """Where to write gaussians.ply, metrics.json, checkpoint.pt and held-out renders; nothing is written when unset."""
    init_ply: Optional[Path] = None
    """Labelled point cloud for the initial Gaussians. Default: ``points.ply`` next to the labels folder
    (the tracker's), else the dataset's ``ply_file_path``, else random points."""
    seed_features: Optional[bool] = None
    """Start each Gaussian's feature at the embedding of its point's instance id. Default: only when the
    point cloud's ids come from the same labelling as the label images (the tracker's points.ply with its
    masks, or the dataset's point cloud with its ground-truth instances, or an explicit --init-ply)."""
    eval_labels: Optional[Path] = None
    """Ground-truth label images for the mIoU of held-out views. Default: the dataset's ``instances/`` if present."""
    steps: int = 600
    """Optimisation steps (one image each)."""
    downscale: int = 1
    """Train and evaluate at 1/downscale of the image resolution."""
    eval_every: int = 8
    """Hold out every n-th frame for evaluation (0: no held-out frames)."""
    max_frames: Optional[int] = None
    """Use at most this many frames of the scene."""
    max_init_points: Optional[int] = 10_000
    """Subsample the initial point cloud to this many Gaussians."""
    num_random: int = 5_000
    """Random Gaussians when there is no point cloud."""
    sh_degree: int = 1
    """Maximum spherical-harmonics degree of colour."""
    sh_degree_interval: Optional[int] = None
    """Steps between raising the SH degree by one (default: Splatfacto's, scaled to ``steps``; see ``splat.schedule``)."""
    init_opacity: float = 0.1
    """Initial opacity of every Gaussian."""
    surface_init: bool = True
    """Flatten each seed Gaussian along the normal of its neighbouring seed points (``init.surface_aligned_frames``),
    so that splits place its children on the surface rather than up to a seed spacing off it."""
    flatten_weight: float = 0.0
    """Weight of the mean smallest scale of the Gaussians (metres) in the loss: keeps them thin discs that hug surfaces."""
    background: Literal["learned", "black", "white", "random"] = "learned"
    """Background colour: optimised, fixed black/white, or random per step (forces empty space to stay empty)."""
    ssim_lambda: float = 0.2
    """Weight of (1 - SSIM) in the colour loss (the rest is L1)."""
    lr_means: float = 1.6e-4
    """Learning rate of positions, times the scene scale; decays exponentially to 1% over the run."""
    lr_scales: float = 0.005
    """Learning rate of log scales."""
    lr_quats: float = 0.001
    """Learning rate of rotations."""
    lr_opacities: float = 0.05
    """Learning rate of opacity logits."""
    lr_colors: float = 0.0025
    """Learning rate of the SH DC colour (higher bands: 1/20 of it)."""
    lr_background: float = 0.01
    """Learning rate of the learned background colour."""
    densify: bool = True
    """Grow, split and prune Gaussians with gsplat's DefaultStrategy."""
    refine_every: Optional[int] = None
    """Steps between densification rounds (default: Splatfacto's, scaled to ``steps``)."""
    refine_start: Optional[int] = None
    """First step of densification (default: Splatfacto's warm-up, scaled to ``steps``)."""
    refine_stop_fraction: Optional[float] = None
    """Fraction of the run after which densification stops (default: Splatfacto's 15,000 of 30,000 steps, scaled)."""
    opacity_reset: bool = True
    """Reset opacities every ``reset_alpha_every`` densification rounds of the scaled schedule, as Splatfacto."""
    max_gaussians: Optional[int] = None
    """Densification grows no more Gaussians beyond this many (None: no cap); bounds the CPU rasterizer's step time."""
    grow_grad2d: float = 2e-4
    """Image-space gradient threshold for growing (gsplat's default without absgrad)."""
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    """Instance feature, head and losses."""
    backend: Literal["auto", "gsplat", "torch"] = "auto"
    """Rasterizer: gsplat on CUDA, the torch reference rasterizer on CPU (auto picks by device)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Torch device (auto: CUDA when available)."""
    threads: Optional[int] = None
    """CPU threads for torch (default: OMP_NUM_THREADS, else the cores idle when training starts)."""
    seed: int = 0
    """Random seed (initialisation, frame order, regulariser sampling)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.steps >= 1, "--steps", ">= 1", self.steps)
        check_option(self.downscale >= 1, "--downscale", ">= 1", self.downscale)
        check_option(self.eval_every >= 0, "--eval-every", ">= 0", self.eval_every)
        check_option(self.max_frames is None or self.max_frames >= 1, "--max-frames", ">= 1", self.max_frames)
        check_option(
            self.max_init_points is None or self.max_init_points >= 1, "--max-init-points", ">= 1", self.max_init_points
        )
        check_option(self.num_random >= 1, "--num-random", ">= 1", self.num_random)
        check_option(0 <= self.sh_degree <= 4, "--sh-degree", "between 0 and 4", self.sh_degree)
        for option, value in (("--sh-degree-interval", self.sh_degree_interval), ("--refine-every", self.refine_every)):
            check_option(value is None or value >= 1, option, ">= 1", value)
        check_option(self.refine_start is None or self.refine_start >= 0, "--refine-start", ">= 0", self.refine_start)
        check_option(
            self.refine_stop_fraction is None or 0 < self.refine_stop_fraction <= 1,
            "--refine-stop-fraction",
            "in (0, 1]",
            self.refine_stop_fraction,
        )
        check_option(self.flatten_weight >= 0, "--flatten-weight", ">= 0", self.flatten_weight)
        check_option(0 < self.init_opacity < 1, "--init-opacity", "between 0 and 1 (exclusive)", self.init_opacity)
        check_option(self.threads is None or self.threads >= 1, "--threads", ">= 1", self.threads)

    def schedule(self) -> Schedule:
        """Splatfacto's schedule scaled to ``steps``, with the values set here taking precedence."""
        stop = None if self.refine_stop_fraction is None else max(1, int(self.steps * self.refine_stop_fraction))
        return budget_schedule(
            max(self.steps, 1),
            {
                "sh_degree_interval": self.sh_degree_interval,
                "refine_every": self.refine_every,
                "warmup_length": self.refine_start,
                "stop_split_at": stop,
            },
        )


@dataclass
class TrainResult:
    """What a training run produced."""

    params: Any
    """Final ``nn.ParameterDict`` (Splatfacto layout + ``instance_features``)."""
    head: Any
    """Trained ``InstanceHead``."""
    space: Any
    """``LabelSpace`` of the head's classes."""
    instance_ids: np.ndarray
    """[N] object id of each Gaussian (0: none)."""
    metrics: Dict[str, Any]
    """Held-out PSNR, instance mIoU, timings, counts."""

    def summary(self) -> str:
        m = self.metrics
        parts = [
            f"{m['num_gaussians']} Gaussians",
            f"{m['steps']} steps in {m['train_seconds']:.1f} s ({m['steps_per_second']:.2f} steps/s)",
        ]
        if m.get("psnr") is not None:
            parts.append(f"held-out PSNR {m['psnr']:.2f} dB")
        if m.get("miou") is not None:
            parts.append(f"instance mIoU {m['miou']:.3f} (per-view {m['miou_per_view']:.3f})")
        return ", ".join(parts)


def _resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but no CUDA device is available")
    return torch.device(name)


def _default_labels(scene) -> Optional[Path]:
    folder = Path(scene.root) / "instances"
    return folder if folder.is_dir() else None


def _load_views(config: SplatTrainConfig, device) -> tuple[list, list, Any, Optional[Path], bool]:
    """Training and held-out ``TrainView``s, the label space, the initial point cloud and whether
    its ids seed the features."""
    from mastsam_splat.splat.instance import LabelSpace
    from mastsam_splat.splat.train_step import view_of_frame

    scene = load_scene(config.data, max_frames=config.max_frames)
    if not scene.has_cameras:
        raise InputError("the scene has no cameras; Gaussians need posed images (a Nerfstudio dataset)", config.data)
    check_downscale(scene, config.downscale)
    labels_dir = config.labels if config.labels is not None else _default_labels(scene)
    if labels_dir is None:
        raise InputError("no label images: pass --labels (e.g. a tracker's masks/ folder)", config.data)
    if not Path(labels_dir).is_dir():
        raise InputError("label folder not found", labels_dir)
    eval_dir = config.eval_labels if config.eval_labels is not None else _default_labels(scene)
    if eval_dir is not None and not Path(eval_dir).is_dir():
        raise InputError("ground-truth label folder not found", eval_dir)

    frames = scene.frames
    held = [i for i in range(len(frames)) if config.eval_every > 0 and i % config.eval_every == 0]
    if len(held) == len(frames):
        held = []
    train_idx = [i for i in range(len(frames)) if i not in set(held)]
    names = [f.name for f in frames]
    shapes = [(f.height, f.width) for f in frames]
    train_labels = read_label_dir(labels_dir, [names[i] for i in train_idx], [shapes[i] for i in train_idx])
    gt = read_label_dir(eval_dir, names, shapes) if eval_dir is not None else [None] * len(frames)
    space = LabelSpace.from_label_maps(train_labels)
    if space.num_classes < 2:
        raise InputError("the label images hold no object ids (all 0)", labels_dir)

    train_lab = dict(zip(train_idx, train_labels))
    train_views, eval_views = [], []
    for i, frame in enumerate(frames):
        view = view_of_frame(frame, space, train_lab.get(i), gt[i], config.downscale, device)
        (eval_views if i in held else train_views).append(view)
    init_ply, same_ids = config.init_ply, config.init_ply is not None
    if init_ply is None:
        tracker_points = Path(labels_dir).parent / "points.ply"
        if config.labels is not None and tracker_points.is_file():
            init_ply, same_ids = tracker_points, True
        elif scene.ply_file is not None and Path(scene.ply_file).is_file():
            init_ply, same_ids = Path(scene.ply_file), config.labels is None
    seed = same_ids if config.seed_features is None else config.seed_features
    return train_views, eval_views, space, init_ply, seed


def _initial_params(config: SplatTrainConfig, init_ply: Optional[Path], seed_ids: bool, space, train_views, device):
    from mastsam_splat.splat.init import gaussians_from_points, random_points
    from mastsam_splat.splat.train_step import camera_positions

    if init_ply is not None:
        cloud = read_point_cloud(init_ply)
    else:
        centers = camera_positions(train_views).cpu().numpy()
        middle = centers.mean(0)
        cloud = random_points(config.num_random, middle, float(np.abs(centers - middle).max()), config.seed)
    params = gaussians_from_points(
        cloud,
        sh_degree=config.sh_degree,
        feature_dim=config.instance.feature_dim,
        init_opacity=config.init_opacity,
        space=space if seed_ids else None,
        max_points=config.max_init_points,
        seed=config.seed,
        surface_aligned=config.surface_init and init_ply is not None,
    )
    return params.to(device)


def train(config: SplatTrainConfig) -> TrainResult:
    """Run the training and the held-out evaluation; write outputs when ``output_dir`` is set."""
    with cpu_threads(config.threads):
        return _train(config)


def _train(config: SplatTrainConfig) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    from mastsam_splat.splat.instance import assign_instances
    from mastsam_splat.splat.params import FEATURE_KEY
    from mastsam_splat.splat.rendering import resolve_backend
    from mastsam_splat.splat.train_step import make_train_state, train_step

    if config.steps < 1:
        raise InputError(f"steps must be >= 1, got {config.steps}")
    torch.manual_seed(config.seed)
    device = _resolve_device(config.device)
    backend = resolve_backend(config.backend, device)
    train_views, eval_views, space, init_ply, seed_ids = _load_views(config, device)
    if not train_views:
        raise InputError("no training frames left after holding out evaluation frames", config.data)
    params = _initial_params(config, init_ply, seed_ids, space, train_views, device)
    state = make_train_state(config, params, space, train_views, seed_head=seed_ids, backend=backend)

    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    history: List[Dict[str, float]] = []
    t0 = time.perf_counter()
    bar = tqdm(range(config.steps), desc="training", unit="step", disable=not config.progress)
    step_seconds: List[float] = []
    step_cpu_seconds: List[float] = []
    for step in bar:
        t_step, c_step = time.perf_counter(), time.process_time()
        if not order:
            order = list(rng.permutation(len(train_views)))
        losses = train_step(state, train_views[order.pop()], step)
        step_seconds.append(time.perf_counter() - t_step)
        step_cpu_seconds.append(time.process_time() - c_step)
        if step % 10 == 0 or step == config.steps - 1:
            record = {"step": step, **{k: float(losses[k]) for k in ("loss", "psnr", "instance", "knn")}}
            history.append(record)
            n = int(state.params["means"].shape[0])
            bar.set_postfix(loss=f"{record['loss']:.3f}", psnr=f"{record['psnr']:.1f}", n=n)
    train_seconds = time.perf_counter() - t0
    bar.close()

    params = state.params
    if state.use_features:
        ids, _ = assign_instances(params[FEATURE_KEY].detach(), state.head, space, config.instance.min_confidence)
    else:
        ids = np.zeros(params["means"].shape[0], dtype=np.int64)
    evaluation = evaluate(params, state.head, space, eval_views, config, backend, state.eval_background())
    metrics = {
        "num_gaussians": int(params["means"].shape[0]),
        "steps": config.steps,
        "train_seconds": train_seconds,
        "steps_per_second": config.steps / max(train_seconds, 1e-9),
        "median_step_seconds": float(np.median(step_seconds)),
        "median_step_cpu_seconds": float(np.median(step_cpu_seconds)),
        "backend": backend,
        "num_train_views": len(train_views),
        "num_eval_views": len(eval_views),
        "num_classes": space.num_classes,
        "object_ids": space.to_list(),
        "init_ply": None if init_ply is None else str(init_ply),
        "seeded_features": bool(seed_ids),
        **evaluation.pop("scores"),
        "history": history,
    }
    result = TrainResult(params=params, head=state.head, space=space, instance_ids=ids, metrics=metrics)
    if config.output_dir is not None:
        _write_outputs(config, result, evaluation)
    return result


def evaluate(params, head, space, views: list, config: SplatTrainConfig, backend: str, background) -> Dict[str, Any]:
    """Render held-out ``TrainView``s: PSNR, rendered label images, mIoU against their ground truth."""
    import torch

    from mastsam_splat.splat.instance import label_image
    from mastsam_splat.splat.params import activated
    from mastsam_splat.splat.rendering import psnr, render

    use_features = config.instance.feature_dim > 0
    psnrs, preds, gts, renders = [], [], [], []
    with torch.no_grad():
        act = activated(params)
        for view in views:
            out = render(
                act["means"], act["quats"], act["scales"], act["opacities"], act["sh"],
                view.viewmat, view.K, view.width, view.height,
                sh_degree=config.sh_degree, features=act.get("features") if use_features else None,
                backgrounds=background[None], backend=backend,
            )  # fmt: skip
            rgb = out.rgb[0].clamp(0, 1)
            psnrs.append(float(psnr(rgb, view.image)))
            pred = None
            if use_features:
                pred = label_image(out.features[0], head, space, out.alpha[0], config.instance.min_confidence)
            renders.append((view.name, rgb.cpu().numpy(), pred))
            if pred is not None and view.gt is not None:
                preds.append(pred)
                gts.append(view.gt)
    scores: Dict[str, Any] = {"psnr": float(np.mean(psnrs)) if psnrs else None, "psnr_per_view": psnrs}
    scores["miou"] = scores["miou_per_view"] = None
    if preds:
        table = overlap_table(preds, gts)
        scores["miou"] = consistent_miou(table).miou
        scores["miou_per_view"] = per_view_miou(table).miou
    return {"scores": scores, "renders": renders}


def _write_outputs(config: SplatTrainConfig, result: TrainResult, evaluation: Dict[str, Any]) -> None:
    import cv2
    import torch


    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_gaussians_ply(out / "gaussians.ply", to_gaussians(result.params, result.instance_ids))
    with atomic_path(out / "checkpoint.pt") as tmp:
        torch.save(
            {
                "params": {k: v.detach().cpu() for k, v in result.params.items()},
                "head": result.head.state_dict(),
                "object_ids": result.space.to_list(),
                "instance_ids": torch.as_tensor(result.instance_ids),
            },
            tmp,
        )
    for name, rgb, labels in evaluation["renders"]:
        with atomic_path(out / "eval" / f"{name}_rgb.png") as tmp:
            cv2.imwrite(str(tmp), cv2.cvtColor((rgb * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR))
        if labels is not None:
            write_label_image(out / "eval" / f"{name}_labels.png", labels)
    metrics = dict(result.metrics)
    metrics["config"] = json.loads(json.dumps(asdict(config), default=str))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
