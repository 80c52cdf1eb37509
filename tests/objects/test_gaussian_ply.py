"""3DGS PLY I/O: bit-for-bit round trips and PLYs written by other tools (any SH degree)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from plyfile import PlyData, PlyElement
from support.gaussian_factories import random_gaussians

from mastsam_splat.errors import InputError
from mastsam_splat.objects.gaussians import Gaussians
from mastsam_splat.objects.plyio import read_gaussians_ply, write_gaussians_ply, write_labelled_points

FIELDS = ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest", "instance_ids")


def assert_bit_identical(a: Gaussians, b: Gaussians) -> None:
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), name


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
@pytest.mark.parametrize("with_ids", [True, False])
def test_round_trip_is_bit_for_bit(tmp_path: Path, sh_degree: int, with_ids: bool) -> None:
    gaussians = random_gaussians(257, sh_degree, seed=sh_degree, with_ids=with_ids)
    path = write_gaussians_ply(tmp_path / "g.ply", gaussians)
    again = read_gaussians_ply(path)
    assert again.sh_degree == sh_degree
    assert_bit_identical(gaussians, again)
    # writing the reloaded scene gives the same bytes
    assert write_gaussians_ply(tmp_path / "h.ply", again).read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_header_is_standard_layout(tmp_path: Path) -> None:
    path = write_gaussians_ply(tmp_path / "g.ply", random_gaussians(3, sh_degree=1))
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    expected = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(9)]
    expected += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "instance_id"]
    assert names == expected
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")


def _foreign_ply(
    path: Path, n: int, sh_degree: int, text: bool = False, dtype: str = "f4", normals: bool = True
) -> dict:
    """A PLY as the INRIA 3DGS code writes it (written by plyfile, not by us), and its columns."""
    rng = np.random.default_rng(sh_degree)
    names = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals else []) + ["f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * ((sh_degree + 1) ** 2 - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    columns = {name: rng.normal(size=n).astype(dtype) for name in names}
    rows = np.zeros(n, dtype=[(name, dtype) for name in names])
    for name in names:
        rows[name] = columns[name]
    PlyData([PlyElement.describe(rows, "vertex")], text=text).write(str(path))
    return columns


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
def test_reads_other_tools_ply_any_degree(tmp_path: Path, sh_degree: int) -> None:
    columns = _foreign_ply(tmp_path / "inria.ply", 11, sh_degree)
    g = read_gaussians_ply(tmp_path / "inria.ply")
    assert len(g) == 11 and g.sh_degree == sh_degree and g.instance_ids is None
    np.testing.assert_array_equal(g.means[:, 2], columns["z"])
    np.testing.assert_array_equal(g.quats[:, 0], columns["rot_0"])
    np.testing.assert_array_equal(g.opacities, columns["opacity"])
    k1 = (sh_degree + 1) ** 2 - 1
    for c in range(3):  # f_rest is channel-major: all coefficients of R, then G, then B
        for k in range(k1):
            np.testing.assert_array_equal(g.sh_rest[:, k, c], columns[f"f_rest_{c * k1 + k}"])


def test_reads_ascii_double_ply_without_normals(tmp_path: Path) -> None:
    columns = _foreign_ply(tmp_path / "a.ply", 5, 1, text=True, dtype="f8", normals=False)
    g = read_gaussians_ply(tmp_path / "a.ply")
    np.testing.assert_allclose(g.scales[:, 1], columns["scale_1"], rtol=1e-6)
    assert g.means.dtype == np.float32


def test_reads_float_instance_ids(tmp_path: Path) -> None:
    _foreign_ply(tmp_path / "a.ply", 4, 0)
    data = PlyData.read(str(tmp_path / "a.ply"))["vertex"].data
    rows = np.zeros(4, dtype=data.dtype.descr + [("instance_id", "f4")])
    for name in data.dtype.names:
        rows[name] = data[name]
    rows["instance_id"] = [3, 0, -1, 7]
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "b.ply"))
    assert read_gaussians_ply(tmp_path / "b.ply").instance_ids.tolist() == [3, 0, -1, 7]
    rows["instance_id"] = [3.5, 0, 0, 0]
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "c.ply"))
    with pytest.raises(InputError, match="non-integer"):
        read_gaussians_ply(tmp_path / "c.ply")


def test_plain_point_cloud_is_refused(tmp_path: Path) -> None:
    rows = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "pc.ply"))
    with pytest.raises(InputError, match="plain point cloud") as err:
        read_gaussians_ply(tmp_path / "pc.ply")
    assert "pc.ply" in str(err.value) and "opacity" in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_gaussians_ply(tmp_path / "missing.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply at all")
    with pytest.raises(InputError, match="readable PLY"):
        read_gaussians_ply(tmp_path / "junk.ply")
    columns = _foreign_ply(tmp_path / "odd.ply", 3, 1)
    data = PlyData.read(str(tmp_path / "odd.ply"))["vertex"].data
    keep = [n for n in data.dtype.names if n != "f_rest_8"]  # 8 coefficients: not 3 channels of (d+1)^2-1
    rows = np.zeros(3, dtype=[(n, "f4") for n in keep])
    for name in keep:
        rows[name] = columns[name]
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "odd.ply"))
    with pytest.raises(InputError, match="f_rest"):
        read_gaussians_ply(tmp_path / "odd.ply")


def test_labelled_points(tmp_path: Path) -> None:
    g = random_gaussians(20)
    write_labelled_points(tmp_path / "p.ply", g)
    data = PlyData.read(str(tmp_path / "p.ply"))["vertex"].data
    assert data.dtype.names == ("x", "y", "z", "red", "green", "blue", "instance_id")
    np.testing.assert_array_equal(data["instance_id"], g.instance_ids)
    np.testing.assert_array_equal(data["x"], g.means[:, 0])
    np.testing.assert_array_equal(data["red"], np.round(g.colors[:, 0] * 255).astype(np.uint8))


def test_non_finite_parameters_are_reported() -> None:
    g = random_gaussians(10)
    g.scales[3, 1] = np.nan
    g.sh_dc[5, 0] = np.inf
    with pytest.raises(InputError, match=r"scales \(1 Gaussians\), sh_dc \(1 Gaussians\)"):
        g.check_finite()
