"""Procedural multi-view scenes with ground truth (depth, object ids, part ids, cameras, points).

Rendered by a vectorized numpy ray caster and written as a standard Nerfstudio dataset.
``make_scene`` writes one (the ``mastsam synth`` command).
"""

from mastsam_splat.synthetic.dataset import GENERATOR, is_synthetic_scene, make_scene
from mastsam_splat.synthetic.layout import Layout, build_layout
from mastsam_splat.synthetic.raycast import Renderer, RenderOutput

__all__ = [
    "GENERATOR",
    "Layout",
    "RenderOutput",
    "Renderer",
    "build_layout",
    "is_synthetic_scene",
    "make_scene",
]
