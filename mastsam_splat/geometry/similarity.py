"""Similarity transforms (scale, rotation, translation): fitting one to point pairs, and comparing
camera poses up to one (an SfM reconstruction is defined only up to a similarity of the world)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mastsam_splat.types import Camera


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Similarity transform [4, 4] (scale, rotation, translation) best mapping ``src`` [N, 3] onto ``dst`` [N, 3]."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2, 2] = -1
    rot = u @ sign @ vt
    var = (s**2).sum() / len(src)
    scale = float(np.trace(np.diag(sig) @ sign) / var) if var > 0 else 1.0
    out = np.eye(4)
    out[:3, :3] = scale * rot
    out[:3, 3] = mu_d - scale * rot @ mu_s
    return out


def apply(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a [4, 4] transform to points [N, 3]."""
    return points @ transform[:3, :3].T + transform[:3, 3]


@dataclass
class PoseErrors:
    """Errors of estimated cameras against reference cameras after the best similarity alignment."""

    rotation_deg: np.ndarray
    """[N] angle of the relative rotation of each camera, degrees."""
    centre: np.ndarray
    """[N] distance between aligned and reference camera centres, in reference units."""
    scene_size: float
    """Largest distance between two reference camera centres (the scale errors are read against)."""

    @property
    def median_rotation_deg(self) -> float:
        return float(np.median(self.rotation_deg))

    @property
    def median_centre_fraction(self) -> float:
        """Median centre error as a fraction of ``scene_size``."""
        return float(np.median(self.centre) / max(self.scene_size, 1e-12))


def _centres_and_axes(cameras: Sequence[Camera]) -> np.ndarray:
    """Camera centres [N, 3] followed by one point ahead of each camera [N, 3], at the distance of
    the centres' spread: the points fix the alignment's rotation even when the centres lie on a line."""
    centres = np.stack([c.center for c in cameras])
    spread = float(np.sqrt(((centres - centres.mean(axis=0)) ** 2).sum(axis=1).mean()))
    axes = np.stack([c.world_to_cam[2, :3] for c in cameras])  # optical axes in world coordinates
    return np.concatenate([centres, centres + max(spread, 1e-12) * axes])


def align_cameras(source: Sequence[Camera], target: Sequence[Camera]) -> np.ndarray:
    """Similarity [4, 4] best mapping the world of the ``source`` cameras onto that of the matching ``target`` ones
    (Umeyama on the camera centres and a point ahead of each camera; needs >= 3 cameras)."""
    if len(source) != len(target) or len(source) < 3:
        raise ValueError(f"need >= 3 matching cameras, got {len(source)} and {len(target)}")
    return umeyama(_centres_and_axes(source), _centres_and_axes(target))


def pose_errors(estimated: Sequence[Camera], reference: Sequence[Camera]) -> PoseErrors:
    """Align ``estimated`` cameras onto ``reference`` ones by a similarity (Umeyama on the camera centres
    and a point ahead of each camera; needs >= 3 cameras), then compare orientations and centres."""
    transform = align_cameras(estimated, reference)
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rotation = transform[:3, :3] / scale
    est = np.stack([c.center for c in estimated])
    ref = np.stack([c.center for c in reference])
    aligned = apply(transform, est)
    angles = []
    for e, r in zip(estimated, reference):
        # World-to-camera rotations: R_ref ~ R_est @ rotation^T once the world is aligned.
        relative = r.world_to_cam[:3, :3] @ (e.world_to_cam[:3, :3] @ rotation.T).T
        cos = np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0)
        angles.append(np.degrees(np.arccos(cos)))
    diffs = ref[:, None, :] - ref[None, :, :]
    return PoseErrors(
        rotation_deg=np.asarray(angles),
        centre=np.linalg.norm(aligned - ref, axis=1),
        scene_size=float(np.sqrt((diffs**2).sum(-1)).max()),
    )
