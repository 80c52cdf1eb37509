"""The Gaussians container and the SH colour terms of the 3DGS format."""

from __future__ import annotations

import numpy as np
import pytest
from support.gaussian_factories import random_gaussians

from mastsam_splat.errors import InputError
from mastsam_splat.io.gaussians import (
    SH_C0,
    Gaussians,
    num_sh_bases,
    rgb_to_sh,
    sh_degree_from_bases,
    sh_to_rgb,
    to_gaussians,
)


def test_non_finite_parameters_are_reported() -> None:
    g = random_gaussians(10)
    g.scales[3, 1] = np.nan
    g.sh_dc[5, 0] = np.inf
    with pytest.raises(InputError, match=r"scales \(1 Gaussians\), sh_dc \(1 Gaussians\)"):
        g.check_finite()


def test_sh_dc_colour_terms_numpy_and_torch() -> None:
    import torch

    rgb = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    sh = rgb_to_sh(rgb)
    np.testing.assert_allclose(sh, [[-0.5 / SH_C0, 0.0, 0.5 / SH_C0]], rtol=1e-6)
    np.testing.assert_allclose(sh_to_rgb(sh), rgb, atol=1e-7)
    t = torch.tensor([0.2, 0.7])
    torch.testing.assert_close(sh_to_rgb(rgb_to_sh(t)), t)
    g = Gaussians(
        means=np.zeros((1, 3)),
        quats=[[1.0, 0.0, 0.0, 0.0]],
        scales=np.zeros((1, 3)),
        opacities=[0.0],
        sh_dc=rgb_to_sh(np.array([[0.25, 2.0, -1.0]])),
        sh_rest=np.zeros((1, 0, 3)),
    )
    np.testing.assert_allclose(g.colors, [[0.25, 1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_degree_and_bases(degree: int) -> None:
    assert sh_degree_from_bases(num_sh_bases(degree)) == degree
    assert random_gaussians(3, sh_degree=degree).sh_degree == degree


@pytest.mark.parametrize("bases", [0, 2, 5, 15])
def test_non_square_bases_have_no_degree(bases: int) -> None:
    assert sh_degree_from_bases(bases) == -1


def test_shapes_are_checked() -> None:
    with pytest.raises(InputError, match="SH coefficients per channel"):
        Gaussians(
            means=np.zeros((2, 3)),
            quats=np.zeros((2, 4)),
            scales=np.zeros((2, 3)),
            opacities=np.zeros(2),
            sh_dc=np.zeros((2, 3)),
            sh_rest=np.zeros((2, 2, 3)),
        )


def test_to_gaussians_from_a_parameter_dict() -> None:
    import torch

    n = 6
    params = {
        "means": torch.randn(n, 3),
        "quats": torch.randn(n, 4),
        "scales": torch.randn(n, 3),
        "opacities": torch.randn(n, 1),
        "features_dc": torch.randn(n, 3),
        "features_rest": torch.randn(n, 3, 3),
        "instance_features": torch.randn(n, 2),
    }
    g = to_gaussians(params, instance_ids=np.arange(n))
    np.testing.assert_array_equal(g.opacities, params["opacities"].numpy().reshape(-1))
    np.testing.assert_array_equal(g.sh_rest, params["features_rest"].numpy())
    assert g.sh_degree == 1 and g.features.shape == (n, 2) and g.instance_ids.tolist() == list(range(n))
    assert to_gaussians(params, with_features=False).features is None
