"""Labelled point clouds (``points.ply`` of the tracker, ``sparse_pc.ply`` of a synthetic scene):
``x y z`` (+ ``red green blue``, + ``instance_id``), read and written with numpy structured arrays.

Trained Gaussians are written in the standard 3DGS layout by ``mastsam_splat.objects.plyio``;
``to_gaussians`` converts a parameter dict for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_path

PathLike = Union[str, Path]


@dataclass
class PointCloud:
    """Points with colours and, optionally, an instance id per point."""

    xyz: np.ndarray
    """[N, 3] float32."""
    rgb: np.ndarray
    """[N, 3] uint8."""
    instance_id: Optional[np.ndarray] = None
    """[N] int64, 0 = no object."""

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def _read_vertices(path: Path) -> np.ndarray:
    from plyfile import PlyData

    if not path.is_file():
        raise InputError("PLY file not found", path)
    try:
        ply = PlyData.read(str(path))
    except Exception as exc:  # plyfile raises several types for malformed headers / bodies
        raise InputError(f"not a readable PLY file ({exc})", path) from exc
    if "vertex" not in ply:
        raise InputError("PLY file has no 'vertex' element", path)
    return ply["vertex"].data


def _require(data: np.ndarray, names: list[str], path: Path, what: str) -> None:
    missing = [n for n in names if n not in data.dtype.names]
    if missing:
        raise InputError(f"PLY file lacks the {what} fields {', '.join(missing)}", path)


def read_point_cloud(path: PathLike, require_instances: bool = False) -> PointCloud:
    """Read a (labelled) point cloud; NaN/inf coordinates or an empty cloud are an InputError."""
    path = Path(path)
    data = _read_vertices(path)
    _require(data, ["x", "y", "z"], path, "position")
    xyz = np.stack([data["x"], data["y"], data["z"]], axis=1).astype(np.float32)
    if len(xyz) == 0:
        raise InputError("point cloud is empty", path)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise InputError(f"point cloud has {int(bad.sum())} points with NaN or infinite coordinates", path)
    names = data.dtype.names
    if all(c in names for c in ("red", "green", "blue")):
        rgb = np.stack([data["red"], data["green"], data["blue"]], axis=1)
        if rgb.dtype.kind == "f":
            if not np.isfinite(rgb).all():
                raise InputError("point colours contain NaN or infinite values", path)
            rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255.0) if rgb.max(initial=0) <= 1.0 else np.clip(rgb, 0, 255)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, dtype=np.uint8)
    ids = None
    if "instance_id" in names:
        raw = np.asarray(data["instance_id"])
        if raw.dtype.kind == "f":
            if not np.isfinite(raw).all() or (raw != np.round(raw)).any():
                raise InputError("instance_id values must be whole numbers", path)
        ids = raw.astype(np.int64)
        if (ids < 0).any():
            raise InputError("instance_id values must be >= 0", path)
    elif require_instances:
        raise InputError("point cloud has no 'instance_id' field", path)
    return PointCloud(xyz=xyz, rgb=rgb, instance_id=ids)


def write_point_cloud(path: PathLike, cloud: PointCloud) -> Path:
    """Write ``x y z red green blue (instance_id)`` as binary little-endian PLY, atomically."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.instance_id is not None:
        fields.append(("instance_id", "<i4"))
    data = np.empty(len(cloud), dtype=fields)
    for i, name in enumerate("xyz"):
        data[name] = cloud.xyz[:, i]
    for i, name in enumerate(("red", "green", "blue")):
        data[name] = cloud.rgb[:, i]
    if cloud.instance_id is not None:
        data["instance_id"] = cloud.instance_id
    return _write_vertices(Path(path), data)


_TYPE_NAMES = {
    "<f4": "float", "<f8": "double", "u1": "uchar", "<i2": "short", "<u2": "ushort", "<i4": "int", "<u4": "uint"
}


def _write_vertices(path: Path, data: np.ndarray, comments: tuple[str, ...] = ()) -> Path:
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments]
    header.append(f"element vertex {len(data)}")
    for name in data.dtype.names:
        header.append(f"property {_TYPE_NAMES[data.dtype[name].str.replace('|', '')]} {name}")
    header.append("end_header")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            fh.write(np.ascontiguousarray(data).tobytes())
    return path


def to_gaussians(params, instance_ids: Optional[np.ndarray] = None, with_features: bool = True):
    """A Splatfacto-layout parameter dict (torch) as the numpy ``objects.Gaussians`` that the 3DGS PLY
    writer (``mastsam_splat.objects.plyio.write_gaussians_ply``) takes."""
    from mastsam_splat.objects.gaussians import Gaussians

    def arr(key: str) -> np.ndarray:
        return params[key].detach().cpu().float().numpy()

    feats = arr("instance_features") if with_features and "instance_features" in params else None
    return Gaussians(
        means=arr("means"),
        quats=arr("quats"),
        scales=arr("scales"),
        opacities=arr("opacities").reshape(-1),
        sh_dc=arr("features_dc"),
        sh_rest=arr("features_rest"),
        instance_ids=instance_ids,
        features=feats,
    )
