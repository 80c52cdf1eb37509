"""Fixtures: a tiny synthetic scene and Gaussians seeded on its ground-truth surfaces."""

from support.object_scene import scene_gaussians, synthetic_scene

__all__ = ["scene_gaussians", "synthetic_scene"]
