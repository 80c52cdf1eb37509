"""Fixtures: a tiny synthetic dataset and Gaussians on its surfaces."""

from support.faults import gaussian_plys, tiny_dataset

__all__ = ["gaussian_plys", "tiny_dataset"]
