"""Settings of the instance feature (kept free of torch so that command-line parsing stays light)."""

from __future__ import annotations

from dataclasses import dataclass

from mastsam_splat.errors import check_fraction, check_option


@dataclass
class InstanceConfig:
    """Instance-feature settings shared by the standalone trainer and the Nerfstudio model."""

    feature_dim: int = 16
    """Length D of each Gaussian's instance feature."""
    loss_weight: float = 0.1
    """Weight of the per-pixel cross-entropy against the label images."""
    background_weight: float = 0.2
    """Weight of pixels without an object id (label 0) as class "no object"; 0 ignores them. A small weight
    keeps Gaussians that no label image claims (ground, walls) out of the objects, while views that do
    label a pixel outweigh views that leave it at 0."""
    knn_weight: float = 0.05
    """Weight of the 3D kNN feature regulariser."""
    knn_k: int = 8
    """Neighbours per sampled Gaussian in the regulariser."""
    knn_samples: int = 1024
    """Gaussians sampled per step by the regulariser."""
    knn_refresh_every: int = 100
    """Steps between rebuilds of the neighbour graph."""
    min_confidence: float = 0.5
    """A Gaussian (or pixel) below this class probability is assigned to no object."""
    detach_geometry: bool = False
    """Render features through detached geometry, so the instance loss cannot move Gaussians."""
    feature_lr: float = 0.01
    """Adam learning rate of the features."""
    head_lr: float = 0.01
    """Adam learning rate of the classifier head."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.feature_dim >= 0, "instance.feature-dim", ">= 0 (0: no instance feature)", self.feature_dim)
        for name in ("loss_weight", "background_weight", "knn_weight"):
            value = getattr(self, name)
            check_option(value >= 0, f"instance.{name.replace('_', '-')}", ">= 0", value)
        check_option(self.knn_k >= 1, "instance.knn-k", ">= 1", self.knn_k)
        check_option(self.knn_samples >= 1, "instance.knn-samples", ">= 1", self.knn_samples)
        check_option(self.knn_refresh_every >= 1, "instance.knn-refresh-every", ">= 1", self.knn_refresh_every)
        check_fraction(self.min_confidence, "instance.min-confidence")
