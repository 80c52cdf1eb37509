"""PLY files: labelled point clouds and 3D Gaussians, through one writer and one reader.

Both formats are one binary little-endian ``vertex`` element, written with plyfile and read by
property name (so extra properties, ASCII files and other numeric types are accepted):

- **Labelled point cloud** (the tracker's ``points.ply``, a dataset's ``sparse_pc.ply``, an
  export's ``points.ply``): ``x y z`` float, ``red green blue`` uchar and, when known,
  ``instance_id`` int (0 = no object). Missing colours read as grey; float colours in [0, 1]
  are scaled to 0..255.
- **3D Gaussians**, the standard layout (INRIA 3DGS ``save_ply``, Nerfstudio, gsplat): float
  ``x y z`` (``nx ny nz`` optional), ``f_dc_0..2``, ``f_rest_0..M-1`` (channel-major,
  M = 3 (K - 1) for SH degree 0..3: 0, 9, 24 or 45), ``opacity`` (logit), ``scale_0..2`` (log)
  and ``rot_0..3`` (w, x, y, z), plus ``instance_id`` int32 when the Gaussians have object ids
  (-1 unlabelled, 0 background); common viewers skip it.

NaN rule: a file never reads as partly valid. Readers refuse a file whose coordinates,
colours, Gaussian parameters or ids hold any NaN or infinite value, with an
:class:`InputError` naming the file and how many rows are affected; nothing is dropped or
repaired. Writers store what they are given, so a diverged scene can still be saved and
inspected (and is then refused when read back).

Every write is atomic (``mastsam_splat.io.atomic``): a reader never sees a half-written file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import atomic_path
from mastsam_splat.io.gaussians import Gaussians, sh_degree_from_bases

PathLike = Union[str, Path]

INSTANCE_FIELD = "instance_id"
POSITION = ("x", "y", "z")
COLOUR = ("red", "green", "blue")
GREY = 128
"""Colour of points read from a cloud without colours."""
REQUIRED = (
    *POSITION,
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
"""Properties every 3DGS PLY has."""
_REST = re.compile(r"^f_rest_(\d+)$")


# ---------------------------------------------------------------------------------- shared


def write_vertices(path: PathLike, rows: np.ndarray, comments: Sequence[str] = ()) -> Path:
    """Write a structured array as the ``vertex`` element of a binary little-endian PLY, atomically."""
    from plyfile import PlyData, PlyElement

    path = Path(path)
    element = PlyElement.describe(np.ascontiguousarray(rows), "vertex")
    with atomic_path(path) as tmp:
        PlyData([element], text=False, byte_order="<", comments=list(comments)).write(str(tmp))
    return path


def read_vertices(path: PathLike) -> np.ndarray:
    """The ``vertex`` rows of a PLY file (binary or ASCII) as a structured array.

    Raises :class:`InputError` when the file is missing, unreadable or has no ``vertex`` element.
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
    return ply["vertex"].data


def check_finite(rows: np.ndarray, names: Sequence[str], path: Path, what: str) -> None:
    """The NaN rule: raise :class:`InputError` when any of the ``names`` columns holds NaN or infinity."""
    bad = np.zeros(len(rows), dtype=bool)
    fields = []
    for name in names:
        column = np.asarray(rows[name])
        if column.dtype.kind != "f":
            continue
        rows_bad = ~np.isfinite(column)
        if rows_bad.any():
            bad |= rows_bad
            fields.append(name)
    if fields:
        raise InputError(
            f"{int(bad.sum())} of {len(rows)} {what} hold NaN or infinite (non-finite) values "
            f"(in {', '.join(fields)})",
            path,
        )


def _whole_ids(rows: np.ndarray, path: Path) -> np.ndarray:
    """The ``instance_id`` column as int64; float columns must hold whole numbers."""
    raw = np.asarray(rows[INSTANCE_FIELD])
    if raw.dtype.kind == "f" and (raw != np.round(raw)).any():
        raise InputError("instance_id holds non-integer values; ids must be whole numbers", path)
    return raw.astype(np.int64)


def _columns(rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """[N, len(names)] float32 stack of columns ([N, 0] for no names)."""
    if not names:
        return np.zeros((len(rows), 0), dtype=np.float32)
    return np.stack([np.asarray(rows[name], dtype=np.float32) for name in names], axis=1)


# ---------------------------------------------------------------------- labelled point clouds


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


def point_rows(cloud: PointCloud) -> np.ndarray:
    """The cloud as a structured array of PLY rows (``instance_id`` only when the cloud has ids)."""
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    if cloud.instance_id is not None:
        fields.append((INSTANCE_FIELD, "<i4"))
    rows = np.zeros(len(cloud), dtype=fields)
    if len(cloud):
        for i, name in enumerate(POSITION):
            rows[name] = cloud.xyz[:, i]
        for i, name in enumerate(COLOUR):
            rows[name] = cloud.rgb[:, i]
        if cloud.instance_id is not None:
            rows[INSTANCE_FIELD] = cloud.instance_id
    return rows


def write_point_cloud(path: PathLike, cloud: PointCloud, comments: Sequence[str] = ()) -> Path:
    """Write ``x y z red green blue (instance_id)`` as a binary PLY, atomically; may hold 0 points."""
    return write_vertices(path, point_rows(cloud), comments)


def read_point_cloud(path: PathLike, require_instances: bool = False, allow_empty: bool = False) -> PointCloud:
    """Read a (labelled) point cloud.

    Non-finite values are an :class:`InputError` (see the NaN rule above), as are negative ids,
    an empty cloud (unless ``allow_empty``) and, with ``require_instances``, a cloud without ids.
    """
    path = Path(path)
    rows = read_vertices(path)
    names = rows.dtype.names or ()
    missing = [name for name in POSITION if name not in names]
    if missing:
        raise InputError(f"PLY file lacks the position fields {', '.join(missing)}", path)
    if len(rows) == 0 and not allow_empty:
        raise InputError("point cloud is empty", path)
    has_colour = all(c in names for c in COLOUR)
    has_ids = INSTANCE_FIELD in names
    checked = [*POSITION, *(COLOUR if has_colour else ()), *((INSTANCE_FIELD,) if has_ids else ())]
    check_finite(rows, checked, path, "points")
    xyz = _columns(rows, POSITION)
    if has_colour:
        rgb = np.stack([rows[c] for c in COLOUR], axis=1)
        if rgb.dtype.kind == "f":
            rgb = np.round(np.clip(rgb, 0.0, 1.0) * 255.0) if rgb.max(initial=0) <= 1.0 else np.clip(rgb, 0, 255)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), GREY, dtype=np.uint8)
    ids = None
    if has_ids:
        ids = _whole_ids(rows, path)
        if (ids < 0).any():
            raise InputError("instance_id values must be >= 0", path)
    elif require_instances:
        raise InputError("point cloud has no 'instance_id' field", path)
    return PointCloud(xyz=xyz, rgb=rgb, instance_id=ids)


def write_labelled_points(path: PathLike, gaussians: Gaussians) -> Path:
    """Gaussian centres as a labelled point cloud (colour: the SH DC term, rounded to 0..255)."""
    if gaussians.instance_ids is None:
        raise ValueError("labelled points need instance ids")
    rgb = np.round(gaussians.colors * 255.0).astype(np.uint8)
    cloud = PointCloud(xyz=gaussians.means, rgb=rgb, instance_id=gaussians.instance_ids)
    return write_point_cloud(path, cloud, comments=("mastsam-splat labelled Gaussian centres",))


# ---------------------------------------------------------------------------- 3D Gaussians


def gaussian_dtype(num_rest: int, with_ids: bool) -> np.dtype:
    """Little-endian structured dtype of one 3DGS PLY row (standard field order, optional ``instance_id``)."""
    names = [*POSITION, "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(num_rest)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    fields = [(name, "<f4") for name in names]
    if with_ids:
        fields.append((INSTANCE_FIELD, "<i4"))
    return np.dtype(fields)


def gaussian_rows(gaussians: Gaussians, with_ids: bool = True) -> np.ndarray:
    """The Gaussians as a structured array of 3DGS PLY rows (zero normals)."""
    n = len(gaussians)
    k1 = gaussians.sh_rest.shape[1]
    with_ids = with_ids and gaussians.instance_ids is not None
    rows = np.zeros(n, dtype=gaussian_dtype(3 * k1, with_ids))
    for i, axis in enumerate(POSITION):
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


def write_gaussians_ply(path: PathLike, gaussians: Gaussians, with_ids: bool = True) -> Path:
    """Write Gaussians in the standard 3DGS layout (+ ``instance_id`` when known), atomically."""
    return write_vertices(path, gaussian_rows(gaussians, with_ids), comments=("mastsam-splat 3D Gaussians",))


def read_gaussians_ply(path: PathLike) -> Gaussians:
    """Read a 3DGS PLY written by any tool in the standard layout (any SH degree, with or without f_rest_*).

    Raises :class:`InputError` when the file is missing, unreadable, not a 3DGS PLY (e.g. a plain
    point cloud), has an SH coefficient count that is not 3 ((d + 1)^2 - 1), holds non-finite
    values (the NaN rule above) or ids that are not -1, 0 or a positive int32.
    """
    path = Path(path)
    rows = read_vertices(path)
    names = set(rows.dtype.names or ())
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        hint = ""
        if set(POSITION) <= names and {"opacity", "rot_0"}.isdisjoint(names):
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
    rest_names = [f"f_rest_{i}" for i in range(num_rest)]
    has_ids = INSTANCE_FIELD in names
    check_finite(rows, [*REQUIRED, *rest_names, *((INSTANCE_FIELD,) if has_ids else ())], path, "Gaussians")

    n = len(rows)
    k1 = num_rest // 3
    rest = _columns(rows, rest_names).reshape(n, 3, k1).transpose(0, 2, 1)
    instance_ids: Optional[np.ndarray] = None
    if has_ids:
        instance_ids = _whole_ids(rows, path)
        if instance_ids.size and (instance_ids.min() < -1 or instance_ids.max() > np.iinfo(np.int32).max):
            raise InputError("instance_id values must be -1 (unlabelled), 0 (background) or positive int32", path)
    return Gaussians(
        means=_columns(rows, POSITION),
        quats=_columns(rows, ("rot_0", "rot_1", "rot_2", "rot_3")),
        scales=_columns(rows, ("scale_0", "scale_1", "scale_2")),
        opacities=np.asarray(rows["opacity"], dtype=np.float32),
        sh_dc=_columns(rows, ("f_dc_0", "f_dc_1", "f_dc_2")),
        sh_rest=rest,
        instance_ids=instance_ids,
        source=path,
    )
