"""PLY files: labelled point clouds and 3DGS Gaussians (bit-for-bit round trips, files written by
other tools, any SH degree) and the one NaN rule of both readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.gaussian_factories import random_gaussians
from plyfile import PlyData, PlyElement

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import Gaussians
from mastsam_splat.io.ply import (
    PointCloud,
    read_gaussians_ply,
    read_point_cloud,
    read_vertices,
    write_gaussians_ply,
    write_labelled_points,
    write_point_cloud,
)

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



# ------------------------------------------------------------------------ labelled point clouds


def _cloud(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return PointCloud(
        xyz=rng.normal(size=(n, 3)).astype(np.float32),
        rgb=rng.integers(0, 256, size=(n, 3)).astype(np.uint8),
        instance_id=rng.integers(0, 4, size=n),
    )


def test_point_cloud_round_trip(tmp_path):
    cloud = _cloud()
    path = write_point_cloud(tmp_path / "points.ply", cloud)
    back = read_point_cloud(path, require_instances=True)
    np.testing.assert_array_equal(back.xyz, cloud.xyz)
    np.testing.assert_array_equal(back.rgb, cloud.rgb)
    np.testing.assert_array_equal(back.instance_id, cloud.instance_id)
    assert back.xyz.dtype == np.float32 and back.rgb.dtype == np.uint8 and back.instance_id.dtype == np.int64
    plain = write_point_cloud(tmp_path / "plain.ply", PointCloud(cloud.xyz, cloud.rgb))
    assert read_point_cloud(plain).instance_id is None
    with pytest.raises(InputError, match="instance_id"):
        read_point_cloud(plain, require_instances=True)
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    # writing what was read gives the same bytes
    assert write_point_cloud(tmp_path / "again.ply", back).read_bytes() == path.read_bytes()


def test_point_cloud_header(tmp_path):
    path = write_point_cloud(tmp_path / "p.ply", _cloud(4))
    vertex = PlyData.read(str(path))["vertex"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "red", "green", "blue", "instance_id"]
    assert path.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert "property float x\nproperty float y" in path.read_bytes()[:400].decode("ascii", "replace")


def test_point_clouds_written_by_other_tools(tmp_path):
    """ASCII files, float colours in [0, 1], float ids, extra properties and no colours."""
    rows = np.zeros(3, dtype=[("x", "f8"), ("y", "f8"), ("z", "f8"), ("nx", "f4"), ("red", "f4"), ("green", "f4"),
                              ("blue", "f4"), ("instance_id", "f4")])
    rows["x"] = [1.5, 2.5, 3.5]
    rows["red"] = [0.0, 0.5, 1.0]
    rows["instance_id"] = [0, 2, 7]
    PlyData([PlyElement.describe(rows, "vertex")], text=True).write(str(tmp_path / "a.ply"))
    cloud = read_point_cloud(tmp_path / "a.ply")
    np.testing.assert_array_equal(cloud.xyz[:, 0], [1.5, 2.5, 3.5])
    assert cloud.rgb[:, 0].tolist() == [0, 128, 255] and cloud.instance_id.tolist() == [0, 2, 7]
    bare = np.zeros(2, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(bare, "vertex")]).write(str(tmp_path / "b.ply"))
    assert read_point_cloud(tmp_path / "b.ply").rgb.tolist() == [[128, 128, 128]] * 2
    rows["instance_id"] = [0, 2.5, 7]
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "c.ply"))
    with pytest.raises(InputError, match="whole numbers"):
        read_point_cloud(tmp_path / "c.ply")
    rows["instance_id"] = [0, -3, 7]
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "d.ply"))
    with pytest.raises(InputError, match=">= 0"):
        read_point_cloud(tmp_path / "d.ply")


def test_empty_missing_and_malformed_clouds(tmp_path):
    empty = write_point_cloud(tmp_path / "empty.ply", PointCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)))
    with pytest.raises(InputError, match="empty"):
        read_point_cloud(empty)
    assert len(read_point_cloud(empty, allow_empty=True)) == 0
    with pytest.raises(InputError, match="not found"):
        read_point_cloud(tmp_path / "missing.ply")
    junk = tmp_path / "junk.ply"
    junk.write_bytes(b"this is not a ply file")
    with pytest.raises(InputError, match="PLY"):
        read_point_cloud(junk)
    faces = np.zeros(2, dtype=[("x", "f4"), ("y", "f4")])
    PlyData([PlyElement.describe(faces, "face")]).write(str(tmp_path / "faces.ply"))
    with pytest.raises(InputError, match="no 'vertex' element"):
        read_point_cloud(tmp_path / "faces.ply")
    PlyData([PlyElement.describe(faces, "vertex")]).write(str(tmp_path / "flat.ply"))
    with pytest.raises(InputError, match="position fields z"):
        read_point_cloud(tmp_path / "flat.ply")


def test_labelled_points_round_trip(tmp_path: Path) -> None:
    g = random_gaussians(30, sh_degree=1)
    g = g.with_ids(np.abs(g.instance_ids))  # point clouds hold ids >= 0
    cloud = read_point_cloud(write_labelled_points(tmp_path / "p.ply", g), require_instances=True)
    np.testing.assert_array_equal(cloud.xyz, g.means)
    np.testing.assert_array_equal(cloud.rgb, np.round(g.colors * 255).astype(np.uint8))
    np.testing.assert_array_equal(cloud.instance_id, g.instance_ids)
    with pytest.raises(ValueError, match="instance ids"):
        write_labelled_points(tmp_path / "q.ply", random_gaussians(3, with_ids=False))


# ---------------------------------------------------------------------------------- NaN rule


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points_are_rejected_with_the_file_named(tmp_path, bad):
    cloud = _cloud()
    cloud.xyz[7, 1] = bad
    path = write_point_cloud(tmp_path / "bad.ply", cloud)
    with pytest.raises(InputError, match="NaN or infinite") as err:
        read_point_cloud(path)
    assert "bad.ply" in str(err.value)
    assert "1 of 50 points" in str(err.value) and "(in y)" in str(err.value)


def test_nan_rule_covers_float_colours_and_ids(tmp_path):
    rows = np.zeros(4, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "f4"), ("green", "f4"), ("blue", "f4"),
                              ("instance_id", "f4")])
    rows["green"][[1, 2]] = np.nan
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "colour.ply"))
    with pytest.raises(InputError, match=r"2 of 4 points hold NaN or infinite \(non-finite\) values \(in green\)"):
        read_point_cloud(tmp_path / "colour.ply")
    rows["green"] = 0.5
    rows["instance_id"][3] = np.inf
    PlyData([PlyElement.describe(rows, "vertex")]).write(str(tmp_path / "ids.ply"))
    with pytest.raises(InputError, match=r"1 of 4 points .*\(in instance_id\)"):
        read_point_cloud(tmp_path / "ids.ply")


@pytest.mark.parametrize("field", ["means", "opacities", "sh_rest", "quats"])
def test_non_finite_gaussians_are_written_but_refused_when_read(tmp_path, field):
    g = random_gaussians(12, sh_degree=1)
    getattr(g, field).reshape(12, -1)[[2, 9], 0] = np.nan
    path = write_gaussians_ply(tmp_path / "nan.ply", g)  # writers store what they are given
    assert len(read_vertices(path)) == 12
    with pytest.raises(InputError, match=r"2 of 12 Gaussians hold NaN or infinite \(non-finite\) values") as err:
        read_gaussians_ply(path)
    assert "nan.ply" in str(err.value)


def test_one_rule_for_both_formats(tmp_path):
    """The same Gaussians' centres, written in both formats, are refused with the same message."""
    g = random_gaussians(8)
    g.means[4, 2] = np.inf
    g = g.with_ids(np.abs(g.instance_ids))
    messages = []
    for path, read in ((write_gaussians_ply(tmp_path / "g.ply", g), read_gaussians_ply),
                       (write_labelled_points(tmp_path / "p.ply", g), read_point_cloud)):
        with pytest.raises(InputError) as err:
            read(path)
        messages.append(str(err.value).replace("Gaussians", "rows").replace("points", "rows").replace(path.name, "F"))
    assert messages[0] == messages[1]
    assert "1 of 8 rows hold NaN or infinite (non-finite) values (in z)" in messages[0]


# ---------------------------------------------------------------------------- dataparser


def test_dataparser_reads_points_with_the_one_reader(tmp_path):
    pytest.importorskip("nerfstudio")
    import torch

    from nerfstudio_plugin.dataparser import MastsamDataParser, MastsamDataParserConfig

    parser = MastsamDataParser(MastsamDataParserConfig(data=tmp_path))
    cloud = _cloud(6)
    transform = torch.eye(4)[:3]
    points = parser._load_3D_points(write_point_cloud(tmp_path / "pc.ply", cloud), transform, 2.0)
    torch.testing.assert_close(points["points3D_xyz"], torch.from_numpy(cloud.xyz) * 2.0)
    assert torch.equal(points["points3D_rgb"], torch.from_numpy(cloud.rgb))
    empty = PointCloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8))
    assert parser._load_3D_points(write_point_cloud(tmp_path / "empty.ply", empty), transform, 1.0) is None
    cloud.xyz[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        parser._load_3D_points(write_point_cloud(tmp_path / "nan.ply", cloud), transform, 1.0)
