"""3DGS PLY files: read any tool's standard layout, write it with per-Gaussian object ids.

The standard layout (INRIA 3DGS ``save_ply``, Nerfstudio, gsplat): one ``vertex`` element with
float properties ``x y z`` (``nx ny nz`` optional), ``f_dc_0..2``, ``f_rest_0..M-1`` (channel-
major, M = 3 (K - 1) for SH degree 0..3: 0, 9, 24 or 45), ``opacity`` (logit), ``scale_0..2``
(log) and ``rot_0..3`` (w, x, y, z). Readers look properties up by name, so we write an extra
``instance_id`` (int32) after the standard ones; common viewers skip it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_path
from mastsam_splat.objects.gaussians import Gaussians, sh_degree_from_bases

PathLike = Union[str, Path]

REQUIRED = (
    "x",
    "y",
    "z",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
)
INSTANCE_FIELD = "instance_id"
_REST = re.compile(r"^f_rest_(\d+)$")


def gaussian_dtype(num_rest: int, with_ids: bool) -> np.dtype:
    """Little-endian structured dtype of one PLY row (standard field order, optional ``instance_id``)."""
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    fields = [(name, "<f4") for name in names]
    if with_ids:
        fields.append((INSTANCE_FIELD, "<i4"))
    return np.dtype(fields)


def gaussian_rows(gaussians: Gaussians, with_ids: bool = True) -> np.ndarray:
    """The Gaussians as a structured array of PLY rows (zero normals)."""
    n = len(gaussians)
    k1 = gaussians.sh_rest.shape[1]
    with_ids = with_ids and gaussians.instance_ids is not None
    rows = np.zeros(n, dtype=gaussian_dtype(3 * k1, with_ids))
    for i, axis in enumerate("xyz"):
        rows[axis] = gaussians.means[:, i]
    for i in range(3):
        rows[f"f_dc_{i}"] = gaussians.sh_dc[:, i]
        rows[f"scale_{i}"] = gaussians.scales[:, i]
    rest = gaussians.sh_rest.transpose(0, 2, 1).reshape(n, 3 * k1)  # channel-major
    for i in range(3 * k1):
        rows[f"f_rest_{i}"] = rest[:, i]
    rows["opacity"] = gaussians.opacities
    for i in range(4):
        rows[f"rot_{i}"] = gaussians.quats[:, i]
    if with_ids:
        rows[INSTANCE_FIELD] = gaussians.instance_ids
    return rows


def ply_header(dtype: np.ndarray, count: int, comments: tuple[str, ...] = ()) -> bytes:
    """Binary little-endian PLY header for rows of ``dtype``."""
    types = {"<f4": "float", "<i4": "int", "<u1": "uchar", "|u1": "uchar", "<f8": "double"}
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {c}" for c in comments]
    lines.append(f"element vertex {count}")
    for name in dtype.names:
        lines.append(f"property {types[dtype[name].str]} {name}")
    lines.append("end_header")
    return ("\n".join(lines) + "\n").encode("ascii")


def write_rows(path: PathLike, rows: np.ndarray, comments: tuple[str, ...] = ()) -> Path:
    """Write a structured array as a binary PLY, atomically (vectorised: one buffer write)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(ply_header(rows.dtype, len(rows), comments))
            fh.write(np.ascontiguousarray(rows).tobytes())
    return path


def write_gaussians_ply(path: PathLike, gaussians: Gaussians, with_ids: bool = True) -> Path:
    """Write Gaussians in the standard 3DGS layout (+ ``instance_id`` when known), atomically."""
    return write_rows(path, gaussian_rows(gaussians, with_ids), comments=("mastsam-splat 3D Gaussians",))


def read_gaussians_ply(path: PathLike) -> Gaussians:
    """Read a 3DGS PLY written by any tool in the standard layout (any SH degree, with or without f_rest_*).

    Raises :class:`InputError` when the file is missing, unreadable, not a 3DGS PLY (e.g. a plain
    point cloud), or has an SH coefficient count that is not 3 ((d + 1)^2 - 1).
    """
    from plyfile import PlyData

    path = Path(path)
    if not path.is_file():
        raise InputError("PLY file not found", path)
    try:
        ply = PlyData.read(str(path))
    except Exception as exc:  # plyfile raises several types for malformed headers and bodies
        raise InputError(f"not a readable PLY file ({exc})", path) from None
    if "vertex" not in ply:
        raise InputError("PLY file has no 'vertex' element", path)
    data = ply["vertex"].data
    names = set(data.dtype.names or ())
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = ""
        if {"x", "y", "z"} <= names and {"opacity", "rot_0"}.isdisjoint(names):
            hint = " (this looks like a plain point cloud, not 3D Gaussians)"
        elif "scale_0" in names and "scale_2" not in names:
            hint = " (2D Gaussian splats with two scales are not supported)"
        raise InputError(
            f"not a 3D Gaussian Splatting PLY: missing {', '.join(missing)}{hint}; expected the standard "
            "3DGS fields x y z f_dc_0..2 [f_rest_*] opacity scale_0..2 rot_0..3",
            path,
        )
    rest_idx = sorted(int(m.group(1)) for name in names if (m := _REST.match(name)))
    num_rest = len(rest_idx)
    if rest_idx != list(range(num_rest)) or num_rest % 3 or sh_degree_from_bases(num_rest // 3 + 1) < 0:
        raise InputError(
            f"{num_rest} f_rest_* properties (indices {rest_idx[:3]}...) do not form 3 channels of "
            "(degree + 1)^2 - 1 SH coefficients (expected 0, 9, 24 or 45 for degree 0 to 3)",
            path,
        )

    def column(*fields: str) -> np.ndarray:
        if not fields:
            return np.zeros((len(data), 0), dtype=np.float32)
        return np.stack([np.asarray(data[f], dtype=np.float32) for f in fields], axis=1)

    n = len(data)
    k1 = num_rest // 3
    rest = column(*(f"f_rest_{i}" for i in range(num_rest))).reshape(n, 3, k1).transpose(0, 2, 1)
    instance_ids: Optional[np.ndarray] = None
    if INSTANCE_FIELD in names:
        raw = np.asarray(data[INSTANCE_FIELD])
        if raw.dtype.kind == "f" and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
            raise InputError("instance_id holds non-integer values", path)
        instance_ids = raw.astype(np.int64)
        if instance_ids.size and (instance_ids.min() < -1 or instance_ids.max() > np.iinfo(np.int32).max):
            raise InputError("instance_id values must be -1 (unlabelled), 0 (background) or positive int32", path)
    return Gaussians(
        means=column("x", "y", "z"),
        quats=column("rot_0", "rot_1", "rot_2", "rot_3"),
        scales=column("scale_0", "scale_1", "scale_2"),
        opacities=np.asarray(data["opacity"], dtype=np.float32),
        sh_dc=column("f_dc_0", "f_dc_1", "f_dc_2"),
        sh_rest=rest,
        instance_ids=instance_ids,
        source=path,
    )


def write_labelled_points(path: PathLike, gaussians: Gaussians) -> Path:
    """Gaussian centres as a labelled point cloud: ``x y z`` float, ``red green blue`` uchar, ``instance_id`` int."""
    if gaussians.instance_ids is None:
        raise ValueError("labelled points need instance ids")
    rows = np.zeros(
        len(gaussians),
        dtype=[
            ("x", "<f4"),
            ("y", "<f4"),
            ("z", "<f4"),
            ("red", "u1"),
            ("green", "u1"),
            ("blue", "u1"),
            (INSTANCE_FIELD, "<i4"),
        ],
    )
    for i, axis in enumerate("xyz"):
        rows[axis] = gaussians.means[:, i]
    rgb = np.round(gaussians.colors * 255.0).astype(np.uint8)
    for i, channel in enumerate(("red", "green", "blue")):
        rows[channel] = rgb[:, i]
    rows[INSTANCE_FIELD] = gaussians.instance_ids
    return write_rows(path, rows, comments=("mastsam-splat labelled Gaussian centres",))
