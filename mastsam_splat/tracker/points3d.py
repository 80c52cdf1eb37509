"""3D points of a frame's pixels, for the re-identification memory and the labelled point cloud.

Sources, chosen once per sequence (``choose_source``):
- ``depth``: every frame has a depth map and a camera; pixels on a regular grid are unprojected.
  Exact and dense, and it covers regions just coming into view (which no correspondence with
  the previous frame reaches), so it is preferred when available.
- ``sfm``: the frames carry the points of the capture's sparse reconstruction they observed
  (``Frame.observed``, see geometry/sfm_points.py) and have cameras. Sparse, but SfM verified
  each point's visibility in every view that saw it, and one point links views however far
  apart, so it is preferred to per-pair correspondences.
- ``matches``: the matcher returns 3D points (MASt3R pointmaps, SIFT triangulated with known
  cameras, depth-based matches); points sit at the correspondences' pixels. Per-pair point
  frames are chained into the first pair's frame by a similarity transform fitted on the
  pixels the two pairs of a frame share (identity when the matcher already gives world points).
- ``triangulated``: every frame has a camera; correspondences are triangulated (OpenCV) and
  kept when in front of both cameras with a small reprojection error.
- ``none``: no 3D: no memory, empty point cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from mastsam_splat.geometry.reprojection import pixel_grid
from mastsam_splat.geometry.similarity import apply, umeyama
from mastsam_splat.geometry.triangulation import triangulate
from mastsam_splat.tracker.memory import voxel_coords, voxel_keys
from mastsam_splat.tracker.representatives import match_labels
from mastsam_splat.types import Frame, Matches

PointSource = Literal["auto", "depth", "sfm", "matches", "triangulated", "none"]


@dataclass
class FramePoints:
    """3D points seen at pixels of one frame."""

    xy: np.ndarray
    """[N, 2] float pixel positions."""
    xyz: np.ndarray
    """[N, 3] float world points."""
    _pixels: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Flat pixel index of each point per image shape (-1 outside): several steps of a frame read labels there."""
    _keys: dict[float, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Voxel key of each point per voxel size: the memory, the evidence and the jump checks share them."""
    _finite: Optional[np.ndarray] = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def empty(cls) -> "FramePoints":
        return cls(np.zeros((0, 2)), np.zeros((0, 3)))

    def __len__(self) -> int:
        return len(self.xy)

    def concat(self, other: "FramePoints") -> "FramePoints":
        return FramePoints(np.concatenate([self.xy, other.xy]), np.concatenate([self.xyz, other.xyz]))

    @property
    def finite(self) -> np.ndarray:
        """[N] bool: the points with finite coordinates (computed once)."""
        if self._finite is None:
            self._finite = np.isfinite(self.xyz).all(axis=1)
        return self._finite

    def voxel_keys(self, voxel_size: float) -> np.ndarray:
        """``voxel_keys(voxel_coords(xyz, voxel_size))`` [N] of the points (0, a key no voxel has, where a point is not
        finite); computed once per voxel size (``xyz`` is not changed after construction)."""
        size = float(voxel_size)
        if size not in self._keys:
            finite = self.finite
            if finite.all():
                keys = voxel_keys(voxel_coords(self.xyz, size))
            else:
                keys = np.zeros(len(self.xyz), dtype=np.int64)
                keys[finite] = voxel_keys(voxel_coords(self.xyz[finite], size))
            self._keys[size] = keys
        return self._keys[size]

    def pixel_index(self, shape: tuple[int, int]) -> np.ndarray:
        """Flat index [N] into an image of ``shape`` (H, W) of the pixel holding each point, -1 outside it; computed
        once per shape (``xy`` is not changed after construction)."""
        key = (int(shape[0]), int(shape[1]))
        if key not in self._pixels:
            h, w = key
            x, y = self.xy[:, 0], self.xy[:, 1]
            # floor(x) lies in [0, w) exactly when x does (NaN fails the comparisons); there the floor is the cast.
            inside = np.flatnonzero((x >= 0) & (x < w) & (y >= 0) & (y < h))
            index = np.full(len(self.xy), -1, dtype=np.int64)
            index[inside] = y[inside].astype(np.int64) * w + x[inside].astype(np.int64)
            self._pixels[key] = index
        return self._pixels[key]


def choose_source(frames: Sequence[Frame], requested: PointSource, matcher_name: str) -> str:
    """The 3D source a sequence can use: ``requested`` when possible, or the best available for ``auto``."""
    has_depth = all(f.depth is not None and f.camera is not None for f in frames)
    has_cameras = all(f.camera is not None for f in frames)
    if requested == "depth":
        return "depth" if has_depth else "none"
    has_observed = has_cameras and any(f.observed is not None and len(f.observed) for f in frames)
    if requested == "triangulated":
        return "triangulated" if has_cameras else "none"
    if requested == "sfm":
        return "sfm" if has_observed else "none"
    if requested in ("matches", "none"):
        return requested
    if has_depth:
        return "depth"
    if has_observed:
        return "sfm"
    if matcher_name == "mast3r" or (matcher_name == "sift" and has_cameras):
        return "matches"
    if has_cameras:
        return "triangulated"
    return "none"


def depth_grid_step(width: int, height: int, max_points: int) -> int:
    """Grid spacing (pixels) that samples about ``max_points`` pixels of an image."""
    return max(1, int(np.ceil(np.sqrt(width * height / max(max_points, 1)))))


def depth_points(frame: Frame, max_points: int) -> FramePoints:
    """Unproject about ``max_points`` grid pixels with known depth into world points."""
    if frame.depth is None or frame.camera is None:
        return FramePoints.empty()
    step = depth_grid_step(frame.width, frame.height, max_points)
    xy = pixel_grid(frame.width, frame.height, step)
    depth = frame.depth[np.floor(xy[:, 1]).astype(np.int64), np.floor(xy[:, 0]).astype(np.int64)].astype(np.float64)
    known = np.isfinite(depth) & (depth > 0)
    return FramePoints(xy[known], frame.camera.unproject(xy[known], depth[known]))


def observed_points(frame: Frame) -> FramePoints:
    """The sparse reconstruction's points the frame observed (none when it carries none)."""
    if frame.observed is None:
        return FramePoints.empty()
    return FramePoints(frame.observed.xy, frame.observed.xyz)


def triangulated_points(
    frame_a: Frame, frame_b: Frame, matches: Matches, max_reprojection_error: float
) -> tuple[FramePoints, FramePoints]:
    """Triangulate the correspondences of two posed frames; points for frame a and for frame b."""
    if frame_a.camera is None or frame_b.camera is None or len(matches) == 0:
        return FramePoints.empty(), FramePoints.empty()
    cam_a, cam_b = frame_a.camera, frame_b.camera
    xy_a = matches.xy_a.astype(np.float64)
    xy_b = matches.xy_b.astype(np.float64)
    pts = triangulate(cam_a, cam_b, xy_a, xy_b)
    keep = np.isfinite(pts).all(axis=1)
    for cam, xy in ((cam_a, xy_a), (cam_b, xy_b)):
        proj, z = cam.project(np.where(keep[:, None], pts, 0.0))
        err = np.linalg.norm(proj - xy, axis=1)
        keep &= (z > 0) & np.isfinite(err) & (err <= max_reprojection_error)
    return FramePoints(xy_a[keep], pts[keep]), FramePoints(xy_b[keep], pts[keep])


def matched_points(matches: Matches) -> tuple[FramePoints, FramePoints]:
    """The matcher's own 3D points for frame a and frame b (in the pair's frame)."""
    if matches.pts3d_a is None or len(matches) == 0:
        return FramePoints.empty(), FramePoints.empty()
    pts_a = np.asarray(matches.pts3d_a, dtype=np.float64)
    pts_b = np.asarray(matches.pts3d_b if matches.pts3d_b is not None else matches.pts3d_a, dtype=np.float64)
    ok = np.isfinite(pts_a).all(axis=1) & np.isfinite(pts_b).all(axis=1)
    return (
        FramePoints(matches.xy_a[ok].astype(np.float64), pts_a[ok]),
        FramePoints(matches.xy_b[ok].astype(np.float64), pts_b[ok]),
    )


class PairChain:
    """Brings each pair's 3D points into the first pair's frame.

    Pair ``(t, t+1)`` and pair ``(t-1, t)`` both give points at pixels of frame ``t``; pixels they
    share (within ``pixel_tolerance``) fix the similarity between the two pairs' frames, fitted
    with a RANSAC loop over Umeyama. Without enough shared pixels the previous transform is kept.
    Pairs along a tree of frames pass keys: a pair ``(a, b)`` is then aligned on the points the
    pair that ended at ``a`` gave for ``a``, instead of on the last pair's.
    """

    def __init__(self, pixel_tolerance: float = 1.0, min_shared: int = 12, inlier_fraction: float = 0.02, seed: int = 0):
        self.pixel_tolerance = pixel_tolerance
        self.min_shared = min_shared
        self.inlier_fraction = inlier_fraction
        self.rng = np.random.default_rng(seed)
        self.transform = np.eye(4)
        self._previous_b: Optional[FramePoints] = None
        self._by_key: dict[object, tuple[FramePoints, np.ndarray]] = {}
        self.aligned_pairs = 0

    def add_pair(
        self, points_a: FramePoints, points_b: FramePoints, key_a: object = None, key_b: object = None
    ) -> tuple[FramePoints, FramePoints]:
        """Points of the next pair, in the chain's frame: frame a is the previous pair's frame b, or, with keys,
        the frame b of the pair added with ``key_b == key_a``."""
        previous = self._previous_b
        if key_a is not None and key_a in self._by_key:
            previous, self.transform = self._by_key[key_a]
            self.transform = self.transform.copy()
        if previous is not None and len(previous) and len(points_a):
            dist, idx = cKDTree(previous.xy).query(points_a.xy, distance_upper_bound=self.pixel_tolerance)
            ok = np.isfinite(dist)
            if ok.sum() >= self.min_shared and not self._consistent(points_a.xyz[ok], previous.xyz[idx[ok]]):
                fitted = self._fit(points_a.xyz[ok], previous.xyz[idx[ok]])
                if fitted is not None:
                    self.transform = fitted
                    self.aligned_pairs += 1
        out_a = FramePoints(points_a.xy, apply(self.transform, points_a.xyz))
        out_b = FramePoints(points_b.xy, apply(self.transform, points_b.xyz))
        self._previous_b = out_b
        if key_b is not None:
            self._by_key[key_b] = (out_b, self.transform.copy())
        return out_a, out_b

    def _threshold(self, dst: np.ndarray) -> float:
        extent = float(np.linalg.norm(np.percentile(dst, 95, axis=0) - np.percentile(dst, 5, axis=0)))
        return max(self.inlier_fraction * extent, 1e-9)

    def _consistent(self, src: np.ndarray, dst: np.ndarray) -> bool:
        """Whether the current transform already maps this pair onto the chain (e.g. world points)."""
        return float(np.median(np.linalg.norm(apply(self.transform, src) - dst, axis=1))) < self._threshold(dst)

    def _fit(self, src: np.ndarray, dst: np.ndarray, iterations: int = 64) -> Optional[np.ndarray]:
        """Robust similarity mapping ``src`` (this pair) onto ``dst`` (already in the chain's frame)."""
        threshold = self._threshold(dst)
        best, best_count = None, 0
        for _ in range(iterations):
            pick = self.rng.choice(len(src), 3, replace=False)
            candidate = umeyama(src[pick], dst[pick])
            count = int(np.sum(np.linalg.norm(apply(candidate, src) - dst, axis=1) < threshold))
            if count > best_count:
                best, best_count = candidate, count
        if best is None or best_count < 3:
            return None
        inliers = np.linalg.norm(apply(best, src) - dst, axis=1) < threshold
        return umeyama(src[inliers], dst[inliers])


def labels_at(labels: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Label [N] of the pixel holding each position ``xy`` [N, 2] (0 outside the image)."""
    return match_labels(labels, xy)


def point_labels(labels: np.ndarray, points: FramePoints) -> np.ndarray:
    """Label [N] (int64) of the pixel holding each of ``points`` (0 outside the image): :func:`labels_at` of
    ``points.xy``, from the points' flat pixel indices (found once per frame for all the steps that read labels)."""
    index = points.pixel_index(labels.shape)
    flat = labels.reshape(-1)
    if len(index) == 0 or index.min() >= 0:
        return flat.take(index).astype(np.int64, copy=False)
    out = np.zeros(len(index), dtype=np.int64)
    inside = index >= 0
    out[inside] = flat.take(index[inside])
    return out


def colours_at(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """RGB [N, 3] uint8 of the pixel holding each position ``xy`` [N, 2] (clamped to the image)."""
    h, w = image.shape[:2]
    cols = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, w - 1)
    rows = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, h - 1)
    return image[rows, cols]
