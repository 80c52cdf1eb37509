"""SIFT feature matching with OpenCV, verified geometrically.

Pipeline: SIFT keypoints + descriptors on each grey image; nearest neighbours a -> b (two
of them, for Lowe's ratio test) and b -> a (mutual check); then a geometric check. When
both frames have cameras the known epipolar geometry is used (Sampson distance, plus
triangulation in front of both cameras, which also gives 3D points); otherwise a
fundamental matrix is fitted robustly (OpenCV USAC MAGSAC++). Nearest neighbours use a FLANN
kd-tree (approximate) for large descriptor sets, where brute force is slow.

Different image sizes in one pair are fine: each frame's keypoints stay in its own pixels.
"""

from __future__ import annotations

from collections import OrderedDict

from dataclasses import dataclass, field
from typing import Literal, Optional

import cv2
import numpy as np

from mastsam_splat.geometry.triangulation import (
    fundamental_from_cameras,
    is_pure_rotation,
    rotation_homography,
    sampson_distance,
    transfer_distance,
    triangulate,
)
from mastsam_splat.matchers.base import check_camera, check_image
from mastsam_splat.types import Frame, Matches


@dataclass
class SiftMatcherConfig:
    """Options of the OpenCV SIFT matcher."""

    max_features: int = 0
    """Keep at most this many keypoints per image (strongest first); 0 keeps all."""
    contrast_threshold: float = 0.04
    """SIFT contrast threshold; lower finds more, weaker keypoints."""
    ratio: float = 0.8
    """Lowe's ratio test: keep a match when nearest / second-nearest distance is below this."""
    mutual: bool = True
    """Keep only matches that are also the nearest neighbour from b back to a."""
    nn: Literal["auto", "flann", "brute"] = "auto"
    """Nearest-neighbour search: FLANN kd-tree (approximate), exact brute force, or FLANN above `flann_above`."""
    flann_above: int = 1000
    """With nn="auto", use FLANN when both images have more descriptors than this."""
    flann_trees: int = 4
    """Number of randomized kd-trees in the FLANN index."""
    flann_checks: int = 32
    """Leaves FLANN visits per query (more: slower and closer to exact)."""
    use_cameras: bool = True
    """When both frames have cameras, filter with their epipolar geometry instead of fitting one."""
    epipolar_threshold: float = 2.0
    """Largest Sampson distance (pixels) to the known epipolar geometry."""
    ransac_threshold: float = 1.0
    """Inlier threshold (pixels) of the robust fundamental-matrix fit."""
    ransac_confidence: float = 0.999
    """Required probability that the robust fit found the best model."""
    ransac_max_iters: int = 10000
    """Iteration cap of the robust fit."""
    min_matches: int = 15
    """Fewer putative matches than this cannot be verified without cameras: no matches are returned."""
    triangulate: bool = True
    """With known cameras, return triangulated world points and drop matches behind either camera."""
    confidence_floor: float = 0.5
    """Confidence of a match right at the ratio threshold; a perfectly distinctive match gets 1."""

    def setup(self) -> "SiftMatcher":
        """Build the matcher with these settings."""
        return SiftMatcher(self)


RECENT_FEATURES = 4
"""How many frames' features the matcher keeps for reuse."""


@dataclass
class _Features:
    xy: np.ndarray  # [N, 2] float64, package pixel convention
    desc: np.ndarray  # [N, 128] float32


@dataclass
class SiftMatcher:
    """Matches two frames with SIFT; see the module docstring."""

    config: SiftMatcherConfig = field(default_factory=SiftMatcherConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.config.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.config.ratio}")
        if not 0.0 <= self.config.confidence_floor <= 1.0:
            raise ValueError(f"confidence_floor must be in [0, 1], got {self.config.confidence_floor}")
        # Precise upscaling keeps keypoints unbiased (OpenCV's default 2x upscale shifts them by ~0.25 px).
        self._sift = cv2.SIFT_create(
            nfeatures=self.config.max_features,
            contrastThreshold=self.config.contrast_threshold,
            enable_precise_upscale=True,
        )
        # Features of the last few images: a sequence is matched pair by pair (t, t+1), so each
        # frame's features are used twice. Entries hold the image itself, so the id key stays valid.
        self._recent: OrderedDict[int, tuple[np.ndarray, _Features]] = OrderedDict()

    def features(self, frame: Frame) -> _Features:
        """SIFT keypoints (in the package's pixel convention) and descriptors of a frame."""
        key = id(frame.image)
        cached = self._recent.get(key)
        if cached is not None and cached[0] is frame.image:
            self._recent.move_to_end(key)
            return cached[1]
        feats = self._compute_features(frame)
        self._recent[key] = (frame.image, feats)
        while len(self._recent) > RECENT_FEATURES:
            self._recent.popitem(last=False)
        return feats

    def _compute_features(self, frame: Frame) -> _Features:
        check_image(frame)
        grey = cv2.cvtColor(np.ascontiguousarray(frame.image), cv2.COLOR_RGB2GRAY)
        keypoints, desc = self._sift.detectAndCompute(grey, None)
        if desc is None or len(keypoints) == 0:
            return _Features(np.zeros((0, 2)), np.zeros((0, 128), dtype=np.float32))
        # OpenCV puts pixel centres at integers; the package puts them at +0.5.
        xy = np.array([kp.pt for kp in keypoints], dtype=np.float64) + 0.5
        return _Features(xy, desc.astype(np.float32))

    def _knn(self, query: np.ndarray, train: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices [N, k] into ``train`` and distances [N, k] of each query's k nearest neighbours."""
        cfg = self.config
        use_flann = cfg.nn == "flann" or (cfg.nn == "auto" and min(len(query), len(train)) > cfg.flann_above)
        if use_flann:
            matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": cfg.flann_trees}, {"checks": cfg.flann_checks})
        else:
            matcher = cv2.BFMatcher(cv2.NORM_L2)
        knn = matcher.knnMatch(query, train, k=k)
        idx = np.full((len(query), k), -1, dtype=np.int64)
        dist = np.full((len(query), k), np.inf, dtype=np.float64)
        for row in knn:
            for j, m in enumerate(row[:k]):
                idx[m.queryIdx, j] = m.trainIdx
                dist[m.queryIdx, j] = m.distance
        return idx, dist

    def putative(self, fa: _Features, fb: _Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ratio-tested (and mutual) descriptor matches: indices into a [M], into b [M], ratio [M]."""
        cfg = self.config
        if len(fa.desc) < 2 or len(fb.desc) < 2:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0)
        idx_ab, dist_ab = self._knn(fa.desc, fb.desc, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(dist_ab[:, 1] > 0, dist_ab[:, 0] / dist_ab[:, 1], 1.0)
        keep = (idx_ab[:, 0] >= 0) & (idx_ab[:, 1] >= 0) & (ratio < cfg.ratio)
        if cfg.mutual:
            idx_ba, _ = self._knn(fb.desc, fa.desc, 1)
            back = idx_ba[np.clip(idx_ab[:, 0], 0, None), 0]
            keep &= back == np.arange(len(fa.desc))
        ia = np.flatnonzero(keep)
        return ia, idx_ab[ia, 0], ratio[ia]

    def match(self, frame_a: Frame, frame_b: Frame) -> Matches:
        """SIFT correspondences ``frame_a -> frame_b``, geometrically verified."""
        check_camera(frame_a)
        check_camera(frame_b)
        fa, fb = self.features(frame_a), self.features(frame_b)
        ia, ib, ratio = self.putative(fa, fb)
        xy_a, xy_b = fa.xy[ia], fb.xy[ib]
        cfg = self.config
        confidence = 1.0 - (1.0 - cfg.confidence_floor) * np.clip(ratio / cfg.ratio, 0.0, 1.0)
        cam_a, cam_b = frame_a.camera, frame_b.camera
        points: Optional[np.ndarray] = None
        if cfg.use_cameras and cam_a is not None and cam_b is not None:
            keep, points = self.verify_with_cameras(frame_a, frame_b, xy_a, xy_b)
        else:
            keep = self.verify_robust(xy_a, xy_b)
        matches = Matches(xy_a[keep], xy_b[keep], confidence[keep])
        if points is not None:
            matches.pts3d_a = points[keep].astype(np.float32)
            matches.pts3d_b = matches.pts3d_a.copy()
        return matches

    def verify_robust(self, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
        """Inliers [M] bool of a robustly fitted fundamental matrix (none when too few to verify)."""
        cfg = self.config
        keep = np.zeros(len(xy_a), dtype=bool)
        if len(xy_a) < max(cfg.min_matches, 8):
            return keep
        try:
            fund, inliers = cv2.findFundamentalMat(
                xy_a, xy_b, cv2.USAC_MAGSAC, cfg.ransac_threshold, cfg.ransac_confidence, cfg.ransac_max_iters
            )
        except cv2.error:
            # MAGSAC raises instead of returning nothing on degenerate inputs; fall back to plain RANSAC.
            fund, inliers = cv2.findFundamentalMat(
                xy_a, xy_b, cv2.FM_RANSAC, cfg.ransac_threshold, cfg.ransac_confidence, cfg.ransac_max_iters
            )
        if fund is None or inliers is None or fund.shape != (3, 3):
            return keep
        return inliers.ravel().astype(bool)

    def verify_with_cameras(
        self, frame_a: Frame, frame_b: Frame, xy_a: np.ndarray, xy_b: np.ndarray
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Matches [M] bool consistent with the known cameras, and world points [M, 3] when triangulated."""
        cfg = self.config
        cam_a, cam_b = frame_a.camera, frame_b.camera
        assert cam_a is not None and cam_b is not None
        if is_pure_rotation(cam_a, cam_b):
            # No baseline: corresponding pixels are related by the rotation homography, depth is unknown.
            return transfer_distance(rotation_homography(cam_a, cam_b), xy_a, xy_b) <= cfg.epipolar_threshold, None
        keep = sampson_distance(fundamental_from_cameras(cam_a, cam_b), xy_a, xy_b) <= cfg.epipolar_threshold
        if not cfg.triangulate:
            return keep, None
        points = triangulate(cam_a, cam_b, xy_a, xy_b)
        finite = np.isfinite(points).all(axis=1)
        in_front = np.zeros(len(points), dtype=bool)
        z_a = cam_a.world_to_camera_points(points[finite])[:, 2]
        z_b = cam_b.world_to_camera_points(points[finite])[:, 2]
        in_front[finite] = (z_a > 0) & (z_b > 0)
        points[~finite] = 0.0
        return keep & in_front, points
