"""Label space, classifier head, losses, kNN regulariser and object assignment."""

from __future__ import annotations

import numpy as np
import torch

from mastsam_splat.splat.instance import (
    InstanceHead,
    KnnRegularizer,
    LabelSpace,
    assign_instances,
    class_embeddings,
    instance_loss,
    label_image,
    seed_features,
)


def test_label_space_round_trip():
    space = LabelSpace([0, 7, 3, 3, 12])
    assert space.to_list() == [3, 7, 12] and space.num_classes == 4
    ids = np.array([[0, 3, 7], [12, 99, 5]])
    classes = space.to_class(ids)
    assert classes.tolist() == [[0, 1, 2], [3, 0, 0]]  # unknown ids are "no object"
    assert space.to_id(classes).tolist() == [[0, 3, 7], [12, 0, 0]]
    maps = [np.array([[0, 4]], np.uint16), np.array([[9, 4]], np.uint16)]
    assert LabelSpace.from_label_maps(maps).to_list() == [4, 9]


def test_embeddings_and_seeded_head_classify_seeded_features():
    emb = class_embeddings(6, 16)
    assert float(emb[0].abs().sum()) == 0.0
    torch.testing.assert_close(emb[1:] @ emb[1:].T, torch.eye(5), atol=1e-5, rtol=0)
    many = class_embeddings(40, 16)
    torch.testing.assert_close(many[1:].norm(dim=-1), torch.ones(39))
    space = LabelSpace([2, 5, 8, 11, 20])
    head = InstanceHead(16, space.num_classes).seed(emb)
    ids = np.array([2, 5, 8, 11, 20, 0, 5])
    feats = seed_features(ids, space, emb, noise=0.05)
    got, conf = assign_instances(feats, head, space, min_confidence=0.5)
    assert got.tolist() == ids.tolist()
    assert conf.dtype == np.float32 and (conf > 0.5).all()


def test_assignment_falls_back_to_no_object_when_unsure():
    space = LabelSpace([1, 2])
    head = InstanceHead(4, 3)
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.copy_(torch.tensor([0.0, 0.1, 0.0]))
    ids, conf = assign_instances(torch.randn(5, 4), head, space, min_confidence=0.5)
    assert (ids == 0).all() and (conf < 0.5).all()


def test_instance_loss_ignores_or_down_weights_unlabelled_pixels():
    torch.manual_seed(0)
    head = InstanceHead(8, 3)
    feats = torch.randn(6, 5, 8)
    classes = torch.zeros(6, 5, dtype=torch.long)
    classes[:3] = 1
    logits = head(feats)
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), classes.reshape(-1), reduction="none").reshape(6, 5)
    torch.testing.assert_close(instance_loss(feats, classes, head, 0.0), ce[:3].mean())
    expected = (ce[:3].sum() + 0.5 * ce[3:].sum()) / (15 + 0.5 * 15)
    torch.testing.assert_close(instance_loss(feats, classes, head, 0.5), expected)
    empty = instance_loss(feats, torch.zeros(6, 5, dtype=torch.long), head, 0.0)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_knn_regulariser_pulls_clusters_together():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0, 0], [10.0, 0, 0]])
    means = torch.cat([centres[0] + 0.1 * torch.randn(200, 3, generator=g), centres[1] + 0.1 * torch.randn(200, 3, generator=g)])
    feats = torch.cat([torch.zeros(200, 4), torch.ones(200, 4)])  # constant within each cluster
    reg = KnnRegularizer(k=6, num_anchors=400, num_samples=100, refresh_every=10)
    assert float(reg(feats, means, step=0)) == 0.0  # neighbours never cross the gap
    noisy = (feats + 0.5 * torch.randn(400, 4, generator=g)).requires_grad_()
    opt = torch.optim.SGD([noisy], lr=20.0)
    first = None
    for step in range(30):
        loss = reg(noisy, means, step)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert reg(noisy, means, 30).item() < 0.3 * first
    # a change in the number of Gaussians rebuilds the graph
    loss = reg(noisy[:300], means[:300], 31)
    assert reg._neighbours.max() < 300 and torch.isfinite(loss)


def test_label_image_thresholds_confidence_and_alpha():
    space = LabelSpace([4, 9])
    emb = class_embeddings(3, 8)
    head = InstanceHead(8, 3).seed(emb)
    feats = torch.zeros(2, 3, 8)
    feats[0, 0] = emb[1]
    feats[0, 1] = emb[2]
    feats[0, 2] = emb[2]
    alpha = torch.ones(2, 3, 1)
    alpha[0, 2] = 0.1
    out = label_image(feats, head, space, alpha, min_confidence=0.5, min_alpha=0.5)
    assert out.dtype == np.uint16
    assert out.tolist() == [[4, 9, 0], [0, 0, 0]]
