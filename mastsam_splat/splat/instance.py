"""Instance features: label space, classifier head, losses, regulariser and object assignment.

Each Gaussian carries a feature ``f [D]`` rendered like colour. A linear head maps a feature
(rendered per pixel, or a Gaussian's own) to logits over the scene's classes: class 0 is
"no object", class ``c > 0`` is object id ``LabelSpace.ids[c - 1]``.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from mastsam_splat.splat.config import InstanceConfig

__all__ = [
    "InstanceConfig",
    "InstanceHead",
    "KnnRegularizer",
    "LabelSpace",
    "assign_instances",
    "class_embeddings",
    "classify",
    "instance_loss",
    "label_image",
    "seed_features",
    "unique_ids",
]


class LabelSpace:
    """Object ids <-> classifier classes (class 0 = no object, then the ids in increasing order)."""

    def __init__(self, ids: Iterable[int]) -> None:
        ids = np.unique(np.asarray(list(ids), dtype=np.int64))
        ids = ids[ids > 0]
        self.ids = ids
        self._lut = np.zeros(int(ids.max(initial=0)) + 1, dtype=np.int64)
        self._lut[ids] = np.arange(1, len(ids) + 1)

    @classmethod
    def from_label_maps(cls, label_maps: Iterable[np.ndarray]) -> "LabelSpace":
        ids: set[int] = set()
        for labels in label_maps:
            ids.update(int(i) for i in np.unique(labels))
        return cls(ids)

    @property
    def num_classes(self) -> int:
        return len(self.ids) + 1

    def to_class(self, labels: np.ndarray) -> np.ndarray:
        """Classes of an id array (ids outside the space map to class 0)."""
        labels = np.asarray(labels, dtype=np.int64)
        inside = (labels >= 0) & (labels < len(self._lut))
        return np.where(inside, self._lut[np.clip(labels, 0, len(self._lut) - 1)], 0)

    def to_id(self, classes: np.ndarray) -> np.ndarray:
        """Object ids of a class array (class 0 -> id 0)."""
        table = np.concatenate([[0], self.ids])
        return table[np.asarray(classes, dtype=np.int64)]

    def to_list(self) -> list[int]:
        return [int(i) for i in self.ids]


def class_embeddings(num_classes: int, dim: int, seed: int = 0) -> Tensor:
    """[num_classes, D] fixed unit vectors for seeding features (row 0, "no object", is zero).

    Orthonormal when ``num_classes - 1 <= D``, random unit vectors otherwise.
    """
    g = torch.Generator().manual_seed(seed)
    k = num_classes - 1
    if k <= 0:
        return torch.zeros(num_classes, dim)
    if k <= dim:
        q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g))
        emb = q[:, :k].t()
    else:
        emb = torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=-1)
    return torch.cat([torch.zeros(1, dim), emb], dim=0)


class InstanceHead(nn.Module):
    """Linear classifier ``D -> num_classes`` applied to features (per pixel or per Gaussian)."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(feature_dim, num_classes)

    @property
    def num_classes(self) -> int:
        return self.linear.out_features

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)

    @torch.no_grad()
    def seed(self, embeddings: Tensor, scale: float = 4.0) -> "InstanceHead":
        """Make class ``c`` the argmax of ``embeddings[c]`` (features seeded from known ids start classified)."""
        self.linear.weight.copy_(embeddings.to(self.linear.weight) * scale)
        self.linear.bias.zero_()
        self.linear.bias[0] = 0.5 * scale  # a zero (unknown) feature leans to "no object"
        return self


def instance_loss(
    features: Tensor,  # [..., H, W, D] rendered
    classes: Tensor,  # [..., H, W] int64 class of each pixel
    head: InstanceHead,
    background_weight: float = 0.0,
) -> Tensor:
    """Cross-entropy of the head on rendered features; class-0 pixels count with ``background_weight``.

    ``background_weight = 0`` ignores pixels without an object id (what a tracker leaves
    unlabelled is unknown, not necessarily background).
    """
    logits = head(features.reshape(-1, features.shape[-1]))
    target = classes.reshape(-1)
    per_pixel = nn.functional.cross_entropy(logits, target, reduction="none")
    weight = torch.where(target > 0, torch.ones_like(per_pixel), torch.full_like(per_pixel, background_weight))
    total = weight.sum()
    if float(total) == 0.0:
        return per_pixel.sum() * 0.0
    return (per_pixel * weight).sum() / total


class KnnRegularizer:
    """3D smoothness of features: pulls sampled Gaussians' features towards their k nearest neighbours'.

    Neighbours come from a KD-tree over the Gaussian centres, rebuilt every ``refresh_every``
    steps or when the number of Gaussians changes; each call samples ``num_samples`` of the
    stored anchors, so its cost stays small.
    """

    def __init__(
        self, k: int = 8, num_anchors: int = 4096, num_samples: int = 1024, refresh_every: int = 100, seed: int = 0
    ) -> None:
        self.k = k
        self.num_anchors = num_anchors
        self.num_samples = num_samples
        self.refresh_every = refresh_every
        self._rng = np.random.default_rng(seed)
        self._anchors: Optional[Tensor] = None  # [A]
        self._neighbours: Optional[Tensor] = None  # [A, k]
        self._n = -1
        self._built_at = -(10**9)

    def refresh(self, means: Tensor, step: int = 0) -> None:
        """Rebuild anchors and their neighbours from the current centres [N, 3]."""
        from scipy.spatial import cKDTree

        pts = means.detach().cpu().numpy()
        n = len(pts)
        self._n = n
        self._built_at = step
        if n <= self.k:
            self._anchors = self._neighbours = None
            return
        anchors = self._rng.choice(n, size=min(self.num_anchors, n), replace=False)
        _, nbr = cKDTree(pts).query(pts[anchors], k=self.k + 1)
        self._anchors = torch.as_tensor(anchors, device=means.device)
        self._neighbours = torch.as_tensor(nbr[:, 1:], device=means.device)

    def __call__(self, features: Tensor, means: Tensor, step: int = 0) -> Tensor:
        """Mean squared feature distance of sampled anchors to their neighbours."""
        if self._n != means.shape[0] or step - self._built_at >= self.refresh_every:
            self.refresh(means, step)
        if self._anchors is None:
            return features.sum() * 0.0
        pick = torch.as_tensor(
            self._rng.choice(len(self._anchors), size=min(self.num_samples, len(self._anchors)), replace=False),
            device=features.device,
        )
        own = features[self._anchors[pick]]  # [S, D]
        nbr = features[self._neighbours[pick]]  # [S, k, D]
        return (own[:, None, :] - nbr).square().sum(-1).mean()


@torch.no_grad()
def classify(features: Tensor, head: InstanceHead, batch: int = 1 << 16) -> Tuple[Tensor, Tensor]:
    """Class (argmax) and its softmax probability for features [M, D]."""
    cls, conf = [], []
    for lo in range(0, features.shape[0], batch):
        p = torch.softmax(head(features[lo : lo + batch]), dim=-1)
        c, k = p.max(dim=-1)
        cls.append(k)
        conf.append(c)
    if not cls:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return torch.cat(cls), torch.cat(conf)


def assign_instances(
    features: Tensor, head: InstanceHead, space: LabelSpace, min_confidence: float = 0.5
) -> Tuple[np.ndarray, np.ndarray]:
    """Object id of each Gaussian from its own feature [N, D]: argmax class, 0 below ``min_confidence``.

    Returns ``(ids [N] int64, confidence [N] float32)``.
    """
    cls, conf = classify(features, head)
    cls = torch.where(conf >= min_confidence, cls, torch.zeros_like(cls))
    return space.to_id(cls.cpu().numpy()), conf.cpu().numpy().astype(np.float32)


def label_image(
    features: Tensor,  # [H, W, D] rendered
    head: InstanceHead,
    space: LabelSpace,
    alpha: Optional[Tensor] = None,  # [H, W, 1]
    min_confidence: float = 0.5,
    min_alpha: float = 0.5,
) -> np.ndarray:
    """[H, W] uint16 object ids of rendered features: argmax class, 0 where unsure or nearly empty."""
    H, W, D = features.shape
    cls, conf = classify(features.reshape(-1, D), head)
    keep = conf >= min_confidence
    if alpha is not None:
        keep &= alpha.reshape(-1) >= min_alpha
    cls = torch.where(keep, cls, torch.zeros_like(cls))
    return space.to_id(cls.cpu().numpy()).reshape(H, W).astype(np.uint16)


def seed_features(
    instance_ids: Optional[np.ndarray], space: LabelSpace, embeddings: Tensor, noise: float = 0.05, seed: int = 0
) -> Tensor:
    """[N, D] initial features: the embedding of each point's class (zero for unknown ids) plus noise."""
    g = torch.Generator().manual_seed(seed)
    if instance_ids is None:
        raise ValueError("seed_features needs instance ids")
    cls = torch.as_tensor(space.to_class(instance_ids))
    base = embeddings[cls]
    return base + noise * torch.randn(base.shape, generator=g)


def unique_ids(label_maps: Sequence[np.ndarray]) -> list[int]:
    """Sorted object ids (> 0) present in some label maps."""
    return LabelSpace.from_label_maps(label_maps).to_list()
