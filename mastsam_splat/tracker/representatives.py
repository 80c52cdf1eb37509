"""Representative points of each tracked mask: K-Means over the mask's confident correspondences.

A few well-spread points summarise where an object is; they are what gets carried to the next
frame. Only pixels that have a confident correspondence are candidates, so every
representative can be propagated.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Iterator, Literal, Optional

import cv2
import numpy as np

from mastsam_splat.errors import check_option
from mastsam_splat.types import Matches

KMeansBackend = Literal["opencv", "sklearn"]

MAX_SAMPLES = 300
"""Most candidates K-Means runs on per id (a random subsample of denser correspondences)."""


@dataclass
class RepresentativesConfig:
    """How many representative points summarise each id, and how they are chosen."""

    area_per_point: float = 0.003
    """Mask area (fraction of the image) per representative point."""
    min_points: int = 3
    """Fewest representatives per id (K-Means k lower bound)."""
    max_points: int = 12
    """Most representatives per id (K-Means k upper bound)."""
    kmeans: KMeansBackend = "opencv"
    """K-Means implementation: opencv (cv2.kmeans, low per-call overhead) or sklearn (scikit-learn KMeans)."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.area_per_point > 0, "tracker.representatives.area-per-point", "> 0", self.area_per_point)
        check_option(self.min_points >= 1, "tracker.representatives.min-points", ">= 1", self.min_points)
        check_option(
            self.max_points >= self.min_points,
            "tracker.representatives.max-points",
            f"at least min-points ({self.min_points})",
            self.max_points,
        )


@dataclass
class Representatives:
    """The representative points of one id in frame ``t``."""

    points: np.ndarray
    """[K, 2] float pixel positions in frame t."""
    match_index: np.ndarray
    """[N] indices (into the matches) of the id's confident correspondences the points were drawn from."""


def num_representatives(area: int, pixels_per_point: float, k_min: int, k_max: int) -> int:
    """How many points summarise a mask of ``area`` pixels: one per ``pixels_per_point``, within ``[k_min, k_max]``."""
    if k_min < 1 or k_max < k_min:
        raise ValueError(f"need 1 <= k_min <= k_max, got k_min={k_min}, k_max={k_max}")
    k = int(round(area / max(pixels_per_point, 1e-9)))
    return min(max(k, k_min), k_max)


def match_labels(labels: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Label [M] of the pixel holding each position ``xy`` [M, 2]; 0 outside the image."""
    h, w = labels.shape
    x, y = xy[:, 0], xy[:, 1]
    # floor(x) lies in [0, w) exactly when x does (NaN and infinities fail the comparisons); there the floor is the
    # truncating cast.
    if len(xy) and xy.min() >= 0 and x.max() < w and y.max() < h:  # (a NaN is the minimum: it fails)
        # all inside (the usual case): one cast and one flat look-up
        cells = xy.astype(np.intp)
        return labels.reshape(-1).take(cells[:, 1] * w + cells[:, 0]).astype(np.int64)
    inside = np.flatnonzero((x >= 0) & (x < w) & (y >= 0) & (y < h))
    out = np.zeros(len(xy), dtype=np.int64)
    out[inside] = labels[y[inside].astype(np.int64), x[inside].astype(np.int64)]
    return out


def kmeans_points(
    xy: np.ndarray, k: int, seed: int = 0, max_samples: int = MAX_SAMPLES, backend: KMeansBackend = "opencv"
) -> np.ndarray:
    """``k`` representative points of ``xy`` [N, 2]: K-Means (k-means++ init) centres snapped to the nearest member.

    Snapping keeps every point on a pixel of the mask (a centre of a curved cluster can fall
    outside it) and on a pixel that has a correspondence. Dense correspondences are first
    subsampled to ``max_samples`` candidates, which leaves the clusters unchanged in practice.
    ``backend`` is OpenCV's ``cv2.kmeans`` (default: the tracker runs one small K-Means per id
    per frame, and OpenCV's per-call overhead is several times lower) or scikit-learn's ``KMeans``.
    """
    if len(xy) <= k:
        return xy.astype(np.float64)
    pick = _subsample(len(xy), seed, max_samples)
    if pick is not None:
        xy = xy[pick]
    assignment, centres = _kmeans(xy, k, seed, backend)
    return _snap_to_members(xy, assignment, centres)


def _subsample(count: int, seed: int, max_samples: int) -> Optional[np.ndarray]:
    """Indices of the ``max_samples`` of ``count`` candidates K-Means runs on (``None``: all of them)."""
    if count <= max_samples:
        return None
    return np.random.default_rng(seed).choice(count, max_samples, replace=False)


def _kmeans(xy: np.ndarray, k: int, seed: int, backend: KMeansBackend) -> tuple[np.ndarray, np.ndarray]:
    """K-Means of ``xy`` [N, 2] (N > k, k-means++ init): each position's cluster [N] and the centres [k, 2] (float64).

    OpenCV clusters float32 positions (the matches' own values: no conversion), scikit-learn float64 ones."""
    if backend == "opencv":
        cv2.setRNGSeed(seed)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.1)
        points = np.ascontiguousarray(xy, dtype=np.float32)
        _, assignment, centres = cv2.kmeans(points, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        return assignment.reshape(-1), centres.astype(np.float64)
    if backend == "sklearn":
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km = KMeans(n_clusters=k, n_init=1, max_iter=20, random_state=seed).fit(np.asarray(xy, dtype=np.float64))
        return km.labels_, np.asarray(km.cluster_centers_, dtype=np.float64)
    raise ValueError(f"unknown K-Means backend {backend!r}; use 'opencv' or 'sklearn'")


def _snap_to_members(xy: np.ndarray, assignment: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The member of each cluster nearest its centre (first one on ties); an empty cluster takes the nearest point."""
    return _snap_groups([xy], [assignment], [centres])[0]


def _snap_groups(xy: list[np.ndarray], assignment: list[np.ndarray], centres: list[np.ndarray]) -> list[np.ndarray]:
    """:func:`_snap_to_members` of several clusterings (positions [N_g, 2], clusters [N_g], centres [k_g, 2]) at once.

    All clusters are numbered in one sequence; one stable sort by cluster keeps each cluster's members in their
    order, so the first member at the cluster's least distance is its first nearest one. Clusters without a member
    take the nearest position of their own clustering."""
    sizes = np.array([len(a) for a in xy], dtype=np.int64)
    ks = np.array([len(c) for c in centres], dtype=np.int64)
    first_cluster = np.cumsum(ks) - ks
    total = int(ks.sum())
    points = np.concatenate(xy).astype(np.float64)
    cluster = np.concatenate(assignment).astype(np.int64) + np.repeat(first_cluster, sizes)
    all_centres = np.concatenate(centres).astype(np.float64)
    d = np.sum((points - all_centres[cluster]) ** 2, axis=1)
    # (cluster numbers that fit in uint16 are sorted by radix sort, in the same stable order)
    order = np.argsort(cluster.astype(np.uint16) if total <= np.iinfo(np.uint16).max else cluster, kind="stable")
    ordered_d = d[order]
    count = np.bincount(cluster, minlength=total)
    filled = count > 0
    start = (np.cumsum(count) - count)[filled]  # each non-empty cluster's first row in ``order``
    least = np.minimum.reduceat(ordered_d, start) if len(start) else np.zeros(0)
    at_least = np.flatnonzero(ordered_d == np.repeat(least, count[filled]))
    chosen = np.full(total, -1, dtype=np.int64)
    chosen[filled] = order[at_least[np.searchsorted(at_least, start)]]
    empty = np.flatnonzero(~filled)
    if len(empty):
        group = np.searchsorted(first_cluster, empty, side="right") - 1
        row0 = np.cumsum(sizes) - sizes
        for c, g in zip(empty.tolist(), group.tolist()):
            rows = points[row0[g] : row0[g] + sizes[g]]
            chosen[c] = row0[g] + int(np.argmin(np.sum((rows - all_centres[c]) ** 2, axis=1)))
    snapped = points[chosen]
    return [snapped[f : f + k] for f, k in zip(first_cluster.tolist(), ks.tolist())]


@contextlib.contextmanager
def _quiet_sklearn(backend: KMeansBackend) -> Iterator[None]:
    """Many tiny scikit-learn K-Means problems: one thread and no per-call validation keep the overhead low."""
    if backend != "sklearn":
        yield
        return
    import sklearn
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1), sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        yield


def select_representatives(
    labels: np.ndarray,
    matches: Matches,
    config: RepresentativesConfig,
    confidence_threshold: float,
    image_size: tuple[int, int],
    seed: int = 0,
    areas: Optional[np.ndarray] = None,
) -> dict[int, Representatives]:
    """Representatives of every id of ``labels`` [H, W] that has confident correspondences.

    Args:
        labels: frame t's label image (0 = no object).
        matches: correspondences frame t -> frame t+1 (``xy_a`` in frame t).
        config: points per mask area, bounds on the points per id, K-Means backend.
        confidence_threshold: correspondences below it are not candidates.
        image_size: (width, height) of the image ``config.area_per_point`` is a fraction of.
        areas: ``np.bincount(labels.ravel())`` when the caller has it (counted here otherwise).

    Returns:
        id -> its representatives; ids without a confident correspondence are absent.
    """
    if len(matches) == 0:
        return {}
    confident = np.flatnonzero(matches.confidence >= confidence_threshold)
    if len(confident) == 0:
        return {}
    width, height = image_size
    pixels_per_point = config.area_per_point * height * width
    backend = config.kmeans
    every = len(confident) == len(matches)  # (all confident: the matches themselves, no gather)
    xy_confident = matches.xy_a if every else matches.xy_a[confident]
    ids_of_match = match_labels(labels, xy_confident)
    areas = np.bincount(labels.ravel()) if areas is None else areas
    # (ids of a uint16 label image: sorted as uint16, by radix sort, in the same stable order)
    narrow = len(ids_of_match) > 0 and int(ids_of_match.max()) <= np.iinfo(np.uint16).max
    order = np.argsort(ids_of_match.astype(np.uint16) if narrow else ids_of_match, kind="stable")
    sorted_ids = ids_of_match[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], len(sorted_ids)]
    # every id's matches (indices and positions) as one run of these, in the order of the matches
    matched = order if every else confident[order]
    xy_matched = xy_confident[order]
    found: list[tuple[int, np.ndarray, Optional[np.ndarray]]] = []  # id, its matches, its points (None: clustered)
    members: list[np.ndarray] = []  # each clustered id's K-Means input, its clusters and centres: snapped at once
    clusters: list[np.ndarray] = []
    centres: list[np.ndarray] = []
    with _quiet_sklearn(backend):
        for s, e, obj_id in zip(starts.tolist(), ends.tolist(), sorted_ids[starts].tolist()):
            if obj_id == 0:
                continue
            index = matched[s:e]
            area = int(areas[obj_id]) if obj_id < len(areas) else 0
            k = num_representatives(area, pixels_per_point, config.min_points, config.max_points)
            if e - s <= k:
                found.append((obj_id, index, xy_matched[s:e].astype(np.float64)))
                continue
            pick = _subsample(e - s, seed + obj_id, MAX_SAMPLES)
            xy = xy_matched[s:e] if pick is None else xy_matched[s:e][pick]
            assignment, centre = _kmeans(xy, k, seed + obj_id, backend)
            found.append((obj_id, index, None))
            members.append(xy)
            clusters.append(assignment)
            centres.append(centre)
    snapped = iter(_snap_groups(members, clusters, centres) if members else [])
    return {
        obj_id: Representatives(points=next(snapped) if points is None else points, match_index=index)
        for obj_id, index, points in found
    }
