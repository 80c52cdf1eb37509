"""MASt3R's input transform: the resize/crop ``dust3r.utils.image.load_images`` applies, and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.io.mast3r import Mast3rInputTransform, network_view

SIZES = [(1282, 1110), (640, 480), (480, 640), (320, 240), (333, 217), (217, 333), (512, 512), (1001, 1001),
         (97, 61), (61, 97), (1920, 1080), (513, 17), (100, 99)]  # fmt: skip


@pytest.mark.parametrize("size", [512, 224, 384])
@pytest.mark.parametrize("width,height", SIZES)
def test_round_trip_and_network_shape(width, height, size):
    tf = Mast3rInputTransform.for_image(width, height, size=size)
    net_w, net_h = tf.network_size
    rng = np.random.default_rng(width * 7 + height)
    xy = rng.uniform(0, 1, (200, 2)) * [width, height]
    np.testing.assert_allclose(tf.to_original(tf.to_network(xy)), xy, rtol=0, atol=1e-9)
    net_xy = rng.uniform(0, 1, (200, 2)) * [net_w, net_h]
    np.testing.assert_allclose(tf.to_network(tf.to_original(net_xy)), net_xy, rtol=0, atol=1e-9)
    if size == 224:
        assert net_w == net_h == min(tf.resized_size) // 2 * 2
    else:
        assert max(tf.resized_size) == size and net_w % 16 == 0
        if tf.resized_size[0] == tf.resized_size[1]:
            assert net_h == net_w * 3 // 4  # squares are cropped to 4:3
        else:
            assert net_h % 16 == 0
    # The network sees a centred crop of the image: its corners map inside the original.
    corners = tf.to_original(np.array([[0.0, 0.0], [net_w, net_h]]))
    assert np.all(corners[0] >= -1e-9) and np.all(corners[1] <= np.array([width, height]) + 1e-9)
    left_margin, right_margin = corners[0], np.array([width, height]) - corners[1]
    assert np.all(np.abs(left_margin - right_margin) <= np.array([width, height]) / np.array(tf.resized_size) * 1.01)


def test_known_sizes():
    tf = Mast3rInputTransform.for_image(1282, 1110)
    assert tf.resized_size == (512, 443)
    assert tf.crop_box == (0, 5, 512, 437)
    assert tf.network_size == (512, 432)
    # Square images become 4:3 unless the model accepts squares.
    assert Mast3rInputTransform.for_image(1000, 1000).network_size == (512, 384)
    assert Mast3rInputTransform.for_image(1000, 1000, square_ok=True).network_size == (512, 512)
    assert Mast3rInputTransform.for_image(480, 640).network_size == (384, 512)
    # Original corners in the package convention (pixel edges at integers).
    tf = Mast3rInputTransform.for_image(640, 480)
    assert tf.resized_size == (512, 384) and tf.crop_box == (0, 0, 512, 384)
    np.testing.assert_allclose(tf.to_network(np.array([[0.0, 0.0], [640.0, 480.0], [0.5, 0.5]])),
                               [[0, 0], [512, 384], [0.4, 0.4]])  # fmt: skip
    # Network pixel (0, 0) has its centre at (0.5, 0.5), i.e. original (0.625, 0.625).
    np.testing.assert_allclose(tf.to_original(np.array([[0.5, 0.5]])), [[0.625, 0.625]])


@pytest.mark.parametrize("width,height", [(640, 480), (333, 217), (217, 333), (200, 200), (900, 700)])
def test_apply_moves_image_content_like_to_network(width, height):
    """A small blob drawn in the original appears where to_network says (resampling as dust3r does)."""
    tf = Mast3rInputTransform.for_image(width, height)
    rng = np.random.default_rng(width + height)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    sigma = 3.0 * max(width, height) / 512
    for _ in range(4):
        centre = rng.uniform(0.3, 0.7, 2) * [width, height]
        blob = np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * sigma**2))
        image = np.repeat((255 * blob).astype(np.uint8)[..., None], 3, axis=2)
        out = tf.apply(image)
        assert out.shape == (tf.network_size[1], tf.network_size[0], 3) and out.dtype == np.uint8
        weight = out[..., 0].astype(np.float64)
        weight[weight < 20] = 0
        ny, nx = np.mgrid[0 : out.shape[0], 0 : out.shape[1]] + 0.5
        found = np.array([(nx * weight).sum(), (ny * weight).sum()]) / weight.sum()
        np.testing.assert_allclose(found, tf.to_network(centre[None])[0], atol=0.25)


def test_apply_matches_dust3r_load_images(tmp_path):
    pytest.importorskip("mast3r.model")
    from dust3r.utils.image import load_images
    from PIL import Image

    rng = np.random.default_rng(0)
    for width, height in [(333, 217), (640, 480), (512, 512), (217, 333), (1282, 1110)]:
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = tmp_path / f"img_{width}x{height}.png"
        Image.fromarray(image).save(path)
        (view,) = load_images([str(path)], size=512, verbose=False)
        tf = Mast3rInputTransform.for_image(width, height)
        ours = (np.asarray(tf.apply(image), np.float32) / 255.0 - 0.5) / 0.5
        theirs = view["img"][0].permute(1, 2, 0).numpy()
        assert tuple(view["true_shape"][0]) == (tf.network_size[1], tf.network_size[0])
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        mine = network_view(image, tf, 3, "a")
        np.testing.assert_allclose(mine["img"][0].permute(1, 2, 0).numpy(), theirs, atol=1e-6)
        np.testing.assert_array_equal(mine["true_shape"], view["true_shape"])
        assert (mine["idx"], mine["instance"]) == (3, "a")
