"""Two-view geometry from known cameras: epipolar constraint and triangulation.

All pixel coordinates follow the package convention (pixel ``(c, r)`` centred at
``(c + 0.5, r + 0.5)``), which is the convention the cameras' intrinsics use.
"""

from __future__ import annotations

import cv2
import numpy as np

from mastsam_splat.types import Camera


def relative_pose(cam_a: Camera, cam_b: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Rotation [3, 3] and translation [3] taking camera-a coordinates to camera-b coordinates."""
    rel = cam_b.world_to_cam @ cam_a.cam_to_world
    return rel[:3, :3], rel[:3, 3]


def skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix [3, 3] of a vector [3]."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def is_pure_rotation(cam_a: Camera, cam_b: Camera, rel_tol: float = 1e-9) -> bool:
    """Whether the two camera centres coincide (no baseline: no epipolar geometry, no depth)."""
    baseline = np.linalg.norm(cam_a.center - cam_b.center)
    scale = max(np.linalg.norm(cam_a.center), np.linalg.norm(cam_b.center), 1.0)
    return bool(baseline <= rel_tol * scale)


def fundamental_from_cameras(cam_a: Camera, cam_b: Camera) -> np.ndarray:
    """Fundamental matrix [3, 3] with ``x_b^T F x_a = 0`` for corresponding pixels, unit Frobenius norm."""
    rot, t = relative_pose(cam_a, cam_b)
    essential = skew(t) @ rot
    fund = np.linalg.inv(cam_b.K).T @ essential @ np.linalg.inv(cam_a.K)
    norm = np.linalg.norm(fund)
    return fund / norm if norm > 0 else fund


def rotation_homography(cam_a: Camera, cam_b: Camera) -> np.ndarray:
    """Homography [3, 3] mapping pixels of a to b for cameras sharing a centre (``K_b R K_a^-1``)."""
    rot, _ = relative_pose(cam_a, cam_b)
    return cam_b.K @ rot @ np.linalg.inv(cam_a.K)


def _homogeneous(xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.concatenate([xy, np.ones((len(xy), 1))], axis=1)


def sampson_distance(fund: np.ndarray, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """First-order geometric distance [N] in pixels of each pair to the epipolar constraint."""
    pa, pb = _homogeneous(xy_a), _homogeneous(xy_b)
    fa = pa @ fund.T  # epipolar lines in b, [N, 3]
    fb = pb @ fund  # epipolar lines in a, [N, 3]
    num = np.einsum("ij,ij->i", pb, fa)
    den = fa[:, 0] ** 2 + fa[:, 1] ** 2 + fb[:, 0] ** 2 + fb[:, 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.abs(num) / np.sqrt(den)
    return np.where(den > 0, dist, np.inf)


def transfer_distance(homography: np.ndarray, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """Distance [N] in pixels of b between ``xy_b`` and ``homography`` applied to ``xy_a``."""
    proj = _homogeneous(xy_a) @ homography.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mapped = proj[:, :2] / proj[:, 2:3]
    dist = np.linalg.norm(mapped - np.asarray(xy_b, dtype=np.float64).reshape(-1, 2), axis=1)
    return np.where((proj[:, 2] > 0) & np.isfinite(dist), dist, np.inf)


def projection_matrix(cam: Camera) -> np.ndarray:
    """[3, 4] matrix ``K [R | t]`` mapping homogeneous world points to homogeneous pixels."""
    return cam.K @ cam.world_to_cam[:3, :]


def triangulate(cam_a: Camera, cam_b: Camera, xy_a: np.ndarray, xy_b: np.ndarray) -> np.ndarray:
    """World points [N, 3] seen at ``xy_a`` in a and ``xy_b`` in b (linear triangulation, OpenCV).

    Points at infinity come back as non-finite rows.
    """
    xy_a = np.asarray(xy_a, dtype=np.float64).reshape(-1, 2)
    xy_b = np.asarray(xy_b, dtype=np.float64).reshape(-1, 2)
    if len(xy_a) == 0:
        return np.zeros((0, 3))
    homog = cv2.triangulatePoints(projection_matrix(cam_a), projection_matrix(cam_b), xy_a.T, xy_b.T)  # [4, N]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (homog[:3] / homog[3]).T
