"""A tiny randomly initialised MASt3R network built from MASt3R's own classes (needs the mast3r clone)."""

from __future__ import annotations

import argparse
from pathlib import Path

TINY_ARGS = (
    "AsymmetricMASt3R(enc_depth=2, dec_depth=10, enc_embed_dim=64, dec_embed_dim=32, enc_num_heads=2, "
    "dec_num_heads=2, pos_embed='RoPE100', patch_embed_cls='PatchEmbedDust3R', img_size=(512, 512), "
    "head_type='catmlp+dpt', output_mode='pts3d+desc24', depth_mode=('exp', -inf, inf), "
    "conf_mode=('exp', 1, inf), landscape_only=False)"
)
"""The constructor string MASt3R stores in its checkpoints, for a network small enough for CPU tests."""


def save_tiny_mast3r(path: Path, seed: int = 0, in_front: bool = False) -> Path:
    """Save a tiny random MASt3R as a checkpoint at ``path``.

    ``in_front``: scale down the pointmap heads' last layer and bias it along +z, so every pixel's
    3D point lies in front of its camera, as a trained network's do (MASt3R's global alignment
    requires positive depths); the network stays random otherwise.
    """
    import mast3r.model as mast3r_model
    import torch

    torch.manual_seed(seed)
    net = eval(TINY_ARGS, {**vars(mast3r_model), "inf": float("inf")})  # the constructor string MASt3R saves
    if in_front:
        with torch.no_grad():
            for head in (net.downstream_head1, net.downstream_head2):
                last = head.dpt.head[-1]
                last.weight.mul_(0.01)
                last.bias[:3] = torch.tensor([0.0, 0.0, 1.0])
    torch.save({"args": argparse.Namespace(model=TINY_ARGS), "model": net.state_dict()}, path)
    return path
