"""Nerfstudio dataparser that reads the dataset's point cloud with plyfile.

Nerfstudio's own parser reads ``ply_file_path`` through open3d, which is often not importable
(missing system libraries) and is a heavy dependency for reading a few float columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Type

import numpy as np
import torch

from nerfstudio.data.dataparsers.nerfstudio_dataparser import Nerfstudio, NerfstudioDataParserConfig

from mastsam_splat.errors import InputError


def read_ply_points(path: Path) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Read ``x y z`` [P, 3] float32, ``red green blue`` [P, 3] uint8 and ``instance_id`` [P] (or None)."""
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(path))
    except FileNotFoundError:
        raise InputError("point cloud not found", path) from None
    except Exception as exc:  # plyfile raises several types for malformed headers/bodies
        raise InputError(f"not a readable PLY file ({exc})", path) from None
    if "vertex" not in ply:
        raise InputError("PLY file has no 'vertex' element", path)
    vertex = ply["vertex"].data
    names = vertex.dtype.names or ()
    if not all(axis in names for axis in ("x", "y", "z")):
        raise InputError("PLY vertices need x, y and z properties", path)
    xyz = np.stack([vertex[axis] for axis in ("x", "y", "z")], axis=1).astype(np.float32)
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([vertex[c] for c in ("red", "green", "blue")], axis=1)
        if rgb.dtype.kind == "f":
            rgb = np.clip(rgb * (255.0 if rgb.max(initial=0.0) <= 1.0 else 1.0), 0, 255)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    ids = np.asarray(vertex["instance_id"]).astype(np.int64) if "instance_id" in names else None
    finite = np.isfinite(xyz).all(axis=1)
    return xyz[finite], rgb[finite], None if ids is None else ids[finite]


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
    """Nerfstudio's parser with a plyfile-based point loader (same transform, same output keys)."""

    config: MastsamDataParserConfig

    def _load_3D_points(
        self, ply_file_path: Path, transform_matrix: torch.Tensor, scale_factor: float
    ) -> Optional[Dict[str, torch.Tensor]]:
        xyz, rgb, _ = read_ply_points(ply_file_path)
        if len(xyz) == 0:
            return None
        return {
            "points3D_xyz": to_dataparser_frame(xyz, transform_matrix, scale_factor),
            "points3D_rgb": torch.from_numpy(rgb),
        }
