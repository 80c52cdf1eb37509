"""Multi-view consistency of label maps over corresponding pixels: coverage, IDC and PSC.

A correspondence is a pair of continuous pixel positions ``(p in view a, q in view b)`` that
see the same surface point. Its label in a view is the label of the pixel holding the
position: pixel ``(floor(x), floor(y))`` (pixel centres sit at ``+0.5``). Correspondences that
fall outside either image are ignored.

With ground truth, only correspondences whose two ends carry the same non-zero ground-truth
id count (the pairs the ground truth confirms); this keeps background and the rounding of
correspondence positions at object borders out of the scores, so ground truth scored against
itself gives exactly 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np
from scipy.optimize import linear_sum_assignment

from mastsam_splat.types import Matches


@dataclass
class Correspondences:
    """Corresponding pixel positions between view ``a`` and view ``b`` of a sequence."""

    a: int
    """Index of the first view."""
    b: int
    """Index of the second view."""
    xy_a: np.ndarray
    """[M, 2] float pixel positions in view a."""
    xy_b: np.ndarray
    """[M, 2] float pixel positions in view b."""

    def __post_init__(self) -> None:
        self.xy_a = np.asarray(self.xy_a, dtype=np.float64).reshape(-1, 2)
        self.xy_b = np.asarray(self.xy_b, dtype=np.float64).reshape(-1, 2)
        if len(self.xy_a) != len(self.xy_b):
            raise ValueError(
                f"correspondences {self.a}->{self.b}: {len(self.xy_a)} positions in a, {len(self.xy_b)} in b"
            )

    @classmethod
    def from_matches(cls, a: int, b: int, matches: Matches) -> "Correspondences":
        """Wrap a matcher's output for views ``a`` and ``b``."""
        return cls(a=a, b=b, xy_a=matches.xy_a, xy_b=matches.xy_b)

    def __len__(self) -> int:
        return len(self.xy_a)


@dataclass
class PairConsistency:
    """Correspondence counts of one view pair."""

    a: int
    b: int
    total: int
    """Correspondences in the evaluated domain (inside both images, confirmed by ground truth if given)."""
    labelled: int
    """Of those, how many carry a predicted label on both ends."""
    same_id: int
    """Of the labelled ones, how many carry the same predicted id on both ends."""
    matched: int
    """Of the labelled ones, how many agree after the best one-to-one matching of the two views' ids."""


@dataclass
class ConsistencyScores:
    """Coverage, IDC and PSC pooled over every correspondence of every view pair.

    - ``coverage = sum(labelled) / sum(total)``
    - ``idc = sum(same_id) / sum(labelled)``
    - ``psc = sum(matched) / sum(labelled)``

    A ratio with a zero denominator is ``nan``.
    """

    coverage: float
    idc: float
    psc: float
    num_view_pairs: int
    num_correspondences: int
    pairs: list[PairConsistency]

    @classmethod
    def from_pairs(cls, pairs: list[PairConsistency]) -> "ConsistencyScores":
        total = sum(p.total for p in pairs)
        labelled = sum(p.labelled for p in pairs)
        same = sum(p.same_id for p in pairs)
        matched = sum(p.matched for p in pairs)
        return cls(
            coverage=_ratio(labelled, total),
            idc=_ratio(same, labelled),
            psc=_ratio(matched, labelled),
            num_view_pairs=len(pairs),
            num_correspondences=total,
            pairs=pairs,
        )


def _ratio(num: int, den: int) -> float:
    return float(num) / float(den) if den > 0 else float("nan")


def pixel_indices(xy: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns and an inside-the-image mask for continuous positions ``xy`` [M, 2]."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    finite = np.all(np.isfinite(xy), axis=1)
    cols = np.floor(np.where(finite, xy[:, 0], -1.0)).astype(np.int64)
    rows = np.floor(np.where(finite, xy[:, 1], -1.0)).astype(np.int64)
    inside = finite & (cols >= 0) & (cols < shape[1]) & (rows >= 0) & (rows < shape[0])
    return rows, cols, inside


def matched_overlap(labels_a: np.ndarray, labels_b: np.ndarray) -> int:
    """Largest number of pairs ``(labels_a[i], labels_b[i])`` kept by a one-to-one id matching.

    Hungarian assignment on the overlap table of the two id sets.
    """
    if labels_a.size == 0:
        return 0
    ids_a, inv_a = np.unique(labels_a, return_inverse=True)
    ids_b, inv_b = np.unique(labels_b, return_inverse=True)
    table = np.bincount(inv_a * len(ids_b) + inv_b, minlength=len(ids_a) * len(ids_b)).reshape(len(ids_a), len(ids_b))
    rows, cols = linear_sum_assignment(table, maximize=True)
    return int(table[rows, cols].sum())


def pair_consistency(
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    xy_a: np.ndarray,
    xy_b: np.ndarray,
    gt_a: Optional[np.ndarray] = None,
    gt_b: Optional[np.ndarray] = None,
    a: int = 0,
    b: int = 1,
) -> PairConsistency:
    """Count labelled / same-id / matched correspondences between two label maps [H, W].

    ``gt_a`` / ``gt_b`` (ground-truth label maps of the same views) restrict the domain to the
    correspondences whose two ends carry the same non-zero ground-truth id.
    """
    rows_a, cols_a, inside_a = pixel_indices(xy_a, labels_a.shape)
    rows_b, cols_b, inside_b = pixel_indices(xy_b, labels_b.shape)
    keep = inside_a & inside_b
    rows_a, cols_a, rows_b, cols_b = rows_a[keep], cols_a[keep], rows_b[keep], cols_b[keep]
    if (gt_a is None) != (gt_b is None):
        raise ValueError("give ground truth for both views or for neither")
    if gt_a is not None and gt_b is not None:
        g_a = gt_a[rows_a, cols_a]
        confirmed = (g_a > 0) & (g_a == gt_b[rows_b, cols_b])
        rows_a, cols_a, rows_b, cols_b = rows_a[confirmed], cols_a[confirmed], rows_b[confirmed], cols_b[confirmed]
    return label_consistency(labels_a[rows_a, cols_a], labels_b[rows_b, cols_b], a=a, b=b)


def label_consistency(values_a: np.ndarray, values_b: np.ndarray, a: int = 0, b: int = 1) -> PairConsistency:
    """Count labelled / same-id / matched correspondences of one view pair from the predicted ids
    at their two ends, ``values_a[i]`` in view a and ``values_b[i]`` in view b (0 = unlabelled)."""
    la = np.asarray(values_a).astype(np.int64).ravel()
    lb = np.asarray(values_b).astype(np.int64).ravel()
    if len(la) != len(lb):
        raise ValueError(f"view pair {a}->{b}: {len(la)} ids in a, {len(lb)} in b")
    both = (la > 0) & (lb > 0)
    total = len(la)
    la, lb = la[both], lb[both]
    return PairConsistency(
        a=a,
        b=b,
        total=int(total),
        labelled=int(both.sum()),
        same_id=int(np.count_nonzero(la == lb)),
        matched=matched_overlap(la, lb),
    )


def consistency_scores(
    label_maps: list[np.ndarray],
    correspondences: Iterable[Correspondences],
    gt_maps: Optional[list[np.ndarray]] = None,
) -> ConsistencyScores:
    """Coverage, IDC and PSC of a sequence of label maps over the given view-pair correspondences."""
    pairs = []
    for corr in correspondences:
        for index in (corr.a, corr.b):
            if not 0 <= index < len(label_maps):
                raise ValueError(f"correspondences refer to view {index}, but there are {len(label_maps)} views")
        pairs.append(
            pair_consistency(
                label_maps[corr.a],
                label_maps[corr.b],
                corr.xy_a,
                corr.xy_b,
                gt_a=None if gt_maps is None else gt_maps[corr.a],
                gt_b=None if gt_maps is None else gt_maps[corr.b],
                a=corr.a,
                b=corr.b,
            )
        )
    return ConsistencyScores.from_pairs(pairs)
