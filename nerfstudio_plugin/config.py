"""The ``mastsam-splat`` method: Splatfacto's recipe plus instance features supervised by MastSAM labels.

Registered through the ``nerfstudio.method_configs`` entry point, so after installing the
package ``ns-train mastsam-splat --data <dataset>`` is available. Options beyond Splatfacto's:

- ``--pipeline.datamanager.tracking.*``: the tracker run before training (segmenter, matcher,
  checkpoints, cache folder, tracker parameters);
- ``--pipeline.model.instance-*`` / ``knn-*``: feature size, loss weights, rasterizer backend;
- ``--optimizers.instance-features.*`` / ``instance-head.*``: their learning rates.
"""

from __future__ import annotations

from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.plugins.types import MethodSpecification

from mastsam_splat.splat.instance import InstanceConfig

from nerfstudio_plugin.datamanager import MastsamDatamanagerConfig
from nerfstudio_plugin.checks import install_input_error_hook
from nerfstudio_plugin.dataparser import MastsamDataParserConfig
from nerfstudio_plugin.model import MastsamSplatModelConfig
from nerfstudio_plugin.pipeline import MastsamPipelineConfig
from nerfstudio_plugin.trainer import MastsamTrainerConfig


install_input_error_hook()

_SHARED = InstanceConfig()
"""Instance-feature learning rates shared with the standalone trainer."""


def _adam(lr: float) -> dict:
    return {"optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15), "scheduler": None}


def make_trainer_config() -> MastsamTrainerConfig:
    """The method's full default configuration (every value overridable from ``ns-train``)."""
    return MastsamTrainerConfig(
        method_name="mastsam-splat",
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=2000,
        steps_per_eval_all_images=1000,
        max_num_iterations=30000,
        mixed_precision=False,
        pipeline=MastsamPipelineConfig(
            datamanager=MastsamDatamanagerConfig(dataparser=MastsamDataParserConfig(load_3D_points=True)),
            model=MastsamSplatModelConfig(),
        ),
        optimizers={
            "means": {
                "optimizer": AdamOptimizerConfig(lr=1.6e-4, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=1.6e-6, max_steps=30000),
            },
            "features_dc": _adam(0.0025),
            "features_rest": _adam(0.0025 / 20),
            "opacities": _adam(0.05),
            "scales": _adam(0.005),
            "quats": _adam(0.001),
            "instance_features": _adam(_SHARED.feature_lr),
            "instance_head": _adam(_SHARED.head_lr),
            "camera_opt": {
                "optimizer": AdamOptimizerConfig(lr=1e-4, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(
                    lr_final=5e-7, max_steps=30000, warmup_steps=1000, lr_pre_warmup=0
                ),
            },
            "bilateral_grid": {
                "optimizer": AdamOptimizerConfig(lr=2e-3, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(
                    lr_final=1e-4, max_steps=30000, warmup_steps=1000, lr_pre_warmup=0
                ),
            },
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


mastsam_splat_method = MethodSpecification(
    config=make_trainer_config(),
    description="Gaussian splatting whose Gaussians know their objects: MastSAM's multi-view-consistent "
    "masks supervise a per-Gaussian instance feature (Splatfacto + instance head).",
)
