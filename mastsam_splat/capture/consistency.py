"""How many verified feature matches a reconstruction explains: a check against folded models.

On repeated texture (a tiled floor, a façade) incremental SfM can register images with a wrong
pose that still fits its own 2D-3D matches, folding the reconstruction. The pairwise matches the
geometric verification kept disagree with such a pose: under the model's relative pose of two
images, their inlier matches must satisfy the epipolar constraint. The support of a model is the
number of verified inlier matches between its registered images whose Sampson error under the
model's cameras is within a pixel threshold. A folded model explains fewer of them. It can
contradict whole pairs (image pairs most of whose verified matches its poses do not explain), but
a fold of a forward walk over flat ground explains most matches of every pair, and a correct model
of a real capture contradicts many weak pairs (lens and matching noise near the threshold), so
the count of contradicted pairs judges no model alone: ``sfm`` compares the support of mapping
runs on the same matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Support:
    """Verified matches between registered images, and how many the model's poses explain."""

    explained: int
    total: int
    pairs: int
    """Verified pairs between registered images."""
    contradicted: int
    """Pairs of which the model explains less than half of the verified matches."""

    @property
    def fraction(self) -> float:
        return self.explained / max(self.total, 1)

    @property
    def contradicted_fraction(self) -> float:
        return self.contradicted / max(self.pairs, 1)


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])


def sampson_errors(essential: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Sampson distances [N] of normalised image points ``x1`` -> ``x2`` [N, 2] under ``essential``."""
    h1 = np.concatenate([x1, np.ones((len(x1), 1))], axis=1)
    h2 = np.concatenate([x2, np.ones((len(x2), 1))], axis=1)
    ex1 = h1 @ essential.T
    etx2 = h2 @ essential
    num = np.einsum("ij,ij->i", h2, ex1) ** 2
    den = ex1[:, 0] ** 2 + ex1[:, 1] ** 2 + etx2[:, 0] ** 2 + etx2[:, 1] ** 2
    return np.sqrt(num / np.maximum(den, 1e-30))


def model_support(database: Path, reconstruction: Any, max_error_px: float = 4.0) -> Support:
    """Support of ``reconstruction`` by the verified matches in the COLMAP ``database``."""
    import pycolmap

    images = {i: reconstruction.images[i] for i in reconstruction.reg_image_ids()}
    poses = {}
    for image_id, image in images.items():
        pose = image.cam_from_world()
        poses[image_id] = (pose.rotation.matrix(), np.asarray(pose.translation))
    explained = total = pairs = contradicted = 0
    keypoints: dict[int, np.ndarray] = {}
    db = pycolmap.Database.open(database)
    try:
        pair_ids, _ = db.read_two_view_geometry_num_inliers()
        for pair_id in pair_ids:
            a, b = pycolmap.pair_id_to_image_pair(int(pair_id))
            if a not in images or b not in images:
                continue
            matches = np.asarray(db.read_two_view_geometry(a, b).inlier_matches)
            if len(matches) == 0:
                continue
            for i in (a, b):
                if i not in keypoints:
                    camera = reconstruction.cameras[images[i].camera_id]
                    keypoints[i] = camera.cam_from_img(np.asarray(db.read_keypoints(i))[:, :2].astype(np.float64))
            (ra, ta), (rb, tb) = poses[a], poses[b]
            rotation = rb @ ra.T
            translation = tb - rotation @ ta
            norm = np.linalg.norm(translation)
            essential = _skew(translation / max(norm, 1e-12)) @ rotation
            errors = sampson_errors(essential, keypoints[a][matches[:, 0]], keypoints[b][matches[:, 1]])
            focal = float(np.mean(reconstruction.cameras[images[b].camera_id].focal_length))
            good = int((errors * focal <= max_error_px).sum())
            explained += good
            total += len(matches)
            pairs += 1
            contradicted += int(2 * good < len(matches))
    finally:
        db.close()
    return Support(explained, total, pairs, contradicted)
