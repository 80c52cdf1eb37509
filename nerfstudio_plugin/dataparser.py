"""Nerfstudio dataparser that reads the dataset's point cloud with ``mastsam_splat.io.ply``.

Nerfstudio's own parser reads ``ply_file_path`` through open3d, which is often not importable
(missing system libraries) and is a heavy dependency for reading a few float columns. The
project's reader applies its rules here too: a cloud with NaN or infinite values is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Type

import numpy as np
import torch

from nerfstudio.data.dataparsers.nerfstudio_dataparser import Nerfstudio, NerfstudioDataParserConfig

from mastsam_splat.io.ply import read_point_cloud


def to_dataparser_frame(xyz: np.ndarray, transform_matrix: torch.Tensor, scale_factor: float) -> torch.Tensor:
    """Map points [P, 3] from the saved dataset frame into Nerfstudio's normalised frame."""
    points = torch.from_numpy(np.asarray(xyz, dtype=np.float32))
    homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=-1)
    return (homogeneous @ transform_matrix.T.to(points.dtype))[:, :3] * scale_factor


@dataclass
class MastsamDataParserConfig(NerfstudioDataParserConfig):
    """Nerfstudio dataset format; the point cloud named by ``ply_file_path`` seeds the Gaussians."""

    _target: Type = field(default_factory=lambda: MastsamDataParser)
    load_3D_points: bool = True
    """Whether to load the point cloud named by ``ply_file_path`` in transforms.json."""


class MastsamDataParser(Nerfstudio):
    """Nerfstudio's parser with the project's point-cloud reader (same transform, same output keys)."""

    config: MastsamDataParserConfig

    def _load_3D_points(
        self, ply_file_path: Path, transform_matrix: torch.Tensor, scale_factor: float
    ) -> Optional[Dict[str, torch.Tensor]]:
        cloud = read_point_cloud(ply_file_path, allow_empty=True)
        if len(cloud) == 0:
            return None
        return {
            "points3D_xyz": to_dataparser_frame(cloud.xyz, transform_matrix, scale_factor),
            "points3D_rgb": torch.from_numpy(cloud.rgb),
        }
