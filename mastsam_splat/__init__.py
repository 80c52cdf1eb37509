"""mastsam-splat: multi-view-consistent masks lifted into 3D Gaussians."""

__version__ = "0.1.0"
