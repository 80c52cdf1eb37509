"""Training-free lift: renderer-based weights, vote rules, occlusion, recovery of true ids, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.gaussian_factories import FRAMES

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene, read_label_image
from mastsam_splat.io.gaussians import UNLABELLED, Gaussians
from mastsam_splat.objects.lift import (
    LiftConfig,
    LiftView,
    VoteTable,
    label_weights,
    lift_labels,
    render_label_image,
)
from mastsam_splat.splat.rendering import rasterize
from mastsam_splat.types import Camera

CONFIG = LiftConfig(rasterizer="torch", check_views=0)


def _camera(eye: np.ndarray, forward: np.ndarray, width: int = 32, height: int = 24, focal: float = 30.0) -> Camera:
    """OpenCV camera at ``eye`` looking along ``forward``."""
    f = forward / np.linalg.norm(forward)
    up = np.array([0.0, 1.0, 0.0]) if abs(f[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    right = np.cross(up, f)
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    R = np.stack([right, down, f])  # rows: camera axes in world
    w2c = np.eye(4)
    w2c[:3, :3] = R
    w2c[:3, 3] = -R @ eye
    K = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
    return Camera(K=K, world_to_cam=w2c, width=width, height=height)


def _gaussians(means: np.ndarray, radius: float, opacity_logit: float = 8.0) -> Gaussians:
    n = len(means)
    return Gaussians(
        means=means,
        quats=np.tile([1.0, 0, 0, 0], (n, 1)),
        scales=np.full((n, 3), np.log(radius)),
        opacities=np.full(n, opacity_logit),
        sh_dc=np.zeros((n, 3)),
        sh_rest=np.zeros((n, 0, 3)),
    )


# ---------------------------------------------------------------------------------------------
# votes


def test_vote_table_rules() -> None:
    table = VoteTable(5, flush_every=2)
    # Gaussian 0: label 3 heavy (0.8 of 1.0); 1: split 0.4 / 0.35 / bg 0.25 -> below share -> background
    # 2: background wins; 3: tie between labels 4 and 2 -> smaller label; 4: never seen
    table.add(np.array([0, 0, 1, 1]), np.array([3, 0, 6, 7]), np.array([0.5, 0.2, 0.4, 0.35]))
    table.add(np.array([0, 1, 2, 2]), np.array([3, 0, 0, 5]), np.array([0.3, 0.25, 0.9, 0.1]))
    table.add(np.array([3, 3]), np.array([4, 2]), np.array([0.5, 0.5]))
    ids, share, total = table.decide(min_share=0.5, min_weight=1e-3)
    assert ids.tolist() == [3, 0, 0, 2, UNLABELLED]
    np.testing.assert_allclose(total, [1.0, 1.0, 1.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(share, [0.8, 0.4, 0.9, 0.5, 0.0], atol=1e-6)
    ids_low, _, _ = table.decide(min_share=0.3, min_weight=1e-3)
    assert ids_low[1] == 6


def test_vote_table_buffering_does_not_change_result() -> None:
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 50, 200), rng.integers(0, 4, 200), rng.random(200)) for _ in range(9)]
    results = []
    for flush_every in (1, 4, 100):
        table = VoteTable(50, flush_every)
        for batch in batches:
            table.add(*batch)
        results.append(table.decide(0.5, 1e-3))
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])
        np.testing.assert_allclose(other[2], results[0][2], rtol=1e-9)


def test_weights_come_from_the_renderer() -> None:
    """Per-label weight sums equal the rendered opacity summed over that label's pixels, and
    skipping Gaussians outside the view changes nothing."""
    rng = np.random.default_rng(1)
    means = np.concatenate([rng.normal([0, 0, 4], [2.0, 1.5, 0.5], size=(300, 3)), rng.normal([0, 0, -3], 1, (20, 3))])
    small = _gaussians(means, 0.15, opacity_logit=0.5)
    # large Gaussians centred outside the view (left/right/above/below) whose tails reach into it
    edge = np.array([[-3.0, 0, 4], [3.2, 0.5, 4], [0, -2.6, 4], [0.5, 2.5, 4], [-2.6, -2.0, 3]])
    large = _gaussians(edge, 0.6, opacity_logit=2.0)
    gaussians = Gaussians(
        **{
            k: np.concatenate([getattr(small, k), getattr(large, k)])
            for k in ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest")
        }
    )
    camera = _camera(np.zeros(3), np.array([0, 0, 1.0]))
    labels = np.zeros((24, 32), dtype=np.uint16)
    labels[:, 10:20] = 4
    labels[12:, 20:] = 65535
    params = gaussians.torch_params()
    g, lab, w = label_weights(params, camera, labels, "torch", CONFIG)
    assert set(np.unique(lab)) <= {0, 4, 65535} and (w > 0).all()
    assert len(np.unique(g)) < 300  # some Gaussians are out of view
    assert set(range(320, 325)) <= set(g.tolist())  # the large off-screen ones reach in
    xy, _ = camera.project(edge)
    assert ((xy < 0) | (xy > [32, 24])).any(axis=1).all()

    # reference: the same gradient over every Gaussian, no culling
    present = np.array([0, 4, 65535])
    onehot = torch.from_numpy((labels[..., None] == present).astype(np.float32))[None]
    channels = torch.zeros(len(gaussians), 3, requires_grad=True)  # every Gaussian, no culling
    render, alpha, _ = rasterize(
        backend="torch",
        means=params["means"],
        quats=params["quats"],
        scales=params["scales"],
        opacities=params["opacities"],
        colors=channels,
        viewmats=torch.tensor(camera.world_to_cam, dtype=torch.float32)[None],
        Ks=torch.tensor(camera.K, dtype=torch.float32)[None],
        width=32,
        height=24,
    )
    (reference,) = torch.autograd.grad(render, channels, grad_outputs=onehot)
    dense = np.zeros((len(gaussians), 3), np.float32)
    dense[g, np.searchsorted(present, lab)] = w
    np.testing.assert_allclose(dense, reference.numpy(), rtol=1e-5, atol=1e-7)
    alpha = alpha[0, ..., 0].detach().numpy()
    for label in present:
        np.testing.assert_allclose(w[lab == label].sum(), alpha[labels == label].sum(), rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# occlusion


def _wall_and_hidden() -> tuple[Gaussians, int]:
    """Two opaque layers of a wall at z = 2 in front of one larger Gaussian at z = 3 (index returned)."""
    xs, ys = np.meshgrid(np.linspace(-1.6, 1.6, 33), np.linspace(-1.2, 1.2, 25))
    layer = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 2.0)], axis=1)
    wall = _gaussians(np.concatenate([layer, layer + [0, 0, 0.05]]), 0.06)
    hidden = _gaussians(np.array([[0.0, 0.0, 3.0]]), 0.25)
    joined = Gaussians(
        **{
            k: np.concatenate([getattr(wall, k), getattr(hidden, k)])
            for k in ("means", "quats", "scales", "opacities", "sh_dc", "sh_rest")
        }
    )
    return joined, len(joined) - 1


def test_occluded_gaussian_takes_no_label_from_the_front_object() -> None:
    gaussians, hidden = _wall_and_hidden()
    front = _camera(np.zeros(3), np.array([0, 0, 1.0]))
    wall_labels = np.full((24, 32), 5, dtype=np.uint16)
    # the hidden Gaussian's centre projects onto wall pixels (label 5): centre projection would give it 5
    xy, _ = front.project(gaussians.means[hidden : hidden + 1])
    assert wall_labels[int(xy[0, 1]), int(xy[0, 0])] == 5

    result = lift_labels(gaussians, [LiftView("front", front, wall_labels)], CONFIG)
    assert result.instance_ids[hidden] == UNLABELLED
    assert result.total_weight[hidden] < 1e-6
    wall = result.instance_ids[:hidden]
    assert (wall[result.total_weight[:hidden] > 0.05] == 5).all()

    # seen from behind, the Gaussian covers a disc of pixels labelled 9: it takes 9, the wall keeps 5
    back = _camera(np.array([0.0, 0.0, 6.0]), np.array([0, 0, -1.0]))
    xy, _ = back.project(gaussians.means)
    rows, cols = np.mgrid[0:24, 0:32] + 0.5
    disc = np.hypot(cols - xy[hidden, 0], rows - xy[hidden, 1]) < 7.5  # ~3 sigma of its footprint
    back_labels = np.where(disc, 9, 5).astype(np.uint16)
    result = lift_labels(
        gaussians, [LiftView("front", front, wall_labels), LiftView("back", back, back_labels)], CONFIG
    )
    assert result.instance_ids[hidden] == 9
    away = np.hypot(*(xy[:hidden] - xy[hidden]).T) > 10
    assert (result.instance_ids[:hidden][away & (result.total_weight[:hidden] > 0.05)] == 5).all()


# ---------------------------------------------------------------------------------------------
# synthetic scene with ground truth


def _views(scene_dir, every: int = 2) -> list[LiftView]:
    scene = load_scene(scene_dir, stride=every)
    return [
        LiftView(f.name, f.camera, read_label_image(scene_dir / "instances" / f"{f.name}.png"), image=f.image)
        for f in scene.frames
    ]


def test_lift_recovers_true_ids_of_shuffled_gaussians(synthetic_scene, scene_gaussians) -> None:
    gaussians, true_ids = scene_gaussians
    views = _views(synthetic_scene)
    result = lift_labels(gaussians, views, LiftConfig(rasterizer="torch", check_views=1))
    labelled = result.instance_ids != UNLABELLED
    assert labelled.mean() > 0.95
    accuracy = (result.instance_ids[labelled] == true_ids[labelled]).mean()
    assert accuracy > 0.9, accuracy
    for obj in np.unique(true_ids[true_ids > 0]):
        got = result.instance_ids[(true_ids == obj) & labelled]
        if len(got) >= 10:
            values, counts = np.unique(got, return_counts=True)
            assert values[counts.argmax()] == obj
    assert len(result.psnr) == 1 and result.timing["per_view_s"] > 0

    # labels rendered from a held-out view agree with its ground truth
    held_out = load_scene(synthetic_scene).frames[FRAMES - 1]
    rendered = render_label_image(gaussians.with_ids(result.instance_ids), held_out.camera, CONFIG)
    truth = read_label_image(synthetic_scene / "instances" / f"{held_out.name}.png")
    assert (rendered == truth).mean() > 0.8


@pytest.mark.parametrize(
    "offset, message",
    [
        ((0.0, 0.0, 100.0), "fall inside any view"),  # above every camera: no centre in any view
        ((100.0, 0.0, 0.0), "covers only"),  # far away in some views' frusta: tiny on screen
    ],
)
def test_cameras_in_another_frame_are_refused(synthetic_scene, scene_gaussians, offset, message) -> None:
    gaussians, _ = scene_gaussians
    moved = Gaussians(**{**gaussians.__dict__, "means": gaussians.means + np.array(offset, np.float32)})
    with pytest.raises(InputError, match=f"{message}.*not in the same frame"):
        lift_labels(moved, _views(synthetic_scene, every=3), CONFIG)


def test_bad_labels_and_parameters(synthetic_scene, scene_gaussians) -> None:
    gaussians, _ = scene_gaussians
    views = _views(synthetic_scene, every=5)
    small = LiftView(views[0].name, views[0].camera, np.zeros((10, 10), np.uint16), source="masks/x.png")
    with pytest.raises(InputError, match=r"masks/x.png: label image of view .* is 10x10 but its frame is 64x48"):
        lift_labels(gaussians, [small], CONFIG)
    broken = gaussians.subset(np.arange(len(gaussians)))
    broken.opacities[4] = np.nan
    with pytest.raises(InputError, match=r"non-finite .*opacities"):
        lift_labels(broken, views, CONFIG)
    with pytest.raises(InputError, match="no views"):
        lift_labels(gaussians, [], CONFIG)
    with pytest.raises(InputError, match="min_share"):
        lift_labels(gaussians, views, LiftConfig(min_share=0.0))


def test_object_label_wins_at_silhouettes_in_the_vote() -> None:
    """Gaussian 0 holds object 3 at 0.3 and background 0.7 (an outline seen edge-on): object with the rule."""
    table = VoteTable(3)
    table.add(np.array([0, 0, 1, 1, 2]), np.array([3, 0, 3, 0, 0]), np.array([0.3, 0.7, 0.1, 0.9, 1.0]))
    assert table.decide(0.5, 1e-3)[0].tolist() == [0, 0, 0]
    ids, share, _ = table.decide(0.5, 1e-3, min_object_share=0.25)
    assert ids.tolist() == [3, 0, 0]
    np.testing.assert_allclose(share, [0.7, 0.9, 1.0], atol=1e-6)


def test_visible_object_gaussians_keep_their_object_with_ground_truth_masks(synthetic_scene, scene_gaussians) -> None:
    """Gaussians on the true surfaces, ground-truth masks: >= 95% of the seen object Gaussians get their object
    (a plain majority vote loses 17% of them at silhouettes), and the ground stays mostly background."""
    gaussians, true_ids = scene_gaussians
    result = lift_labels(gaussians, _views(synthetic_scene), LiftConfig(rasterizer="torch", check_views=0))
    seen = result.instance_ids != UNLABELLED
    on_objects = seen & (true_ids > 0)
    assert (result.instance_ids[on_objects] == true_ids[on_objects]).mean() >= 0.95
    ground = seen & (true_ids == 0)
    assert (result.instance_ids[ground] == 0).mean() >= 0.9
