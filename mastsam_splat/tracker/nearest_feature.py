"""The exact Euclidean feature transform (``scipy.ndimage.distance_transform_edt``) of the pixels near the features
only.

Several steps ask, for some pixels, which feature pixel (a projected 3D point, an evidence pixel) is nearest and
whether it lies within a short reach. ``distance_transform_edt`` answers for every pixel of the image, which on a
large frame costs more than the step itself. Its answer for a pixel is the nearest feature, ties going to the one
with the smallest column, then the smallest row (Maurer's algorithm keeps each column's nearest feature, the upper
one on a tie, and the leftmost of those at the least distance along the row). That rule picks the same feature from
any region of the image holding every feature as near as it: over a window that holds the pixel grown by the reach,
a pixel whose nearest feature lies within the reach gets the feature (and distance) the whole image gives it, and a
farther pixel a feature as least as far, also beyond the reach.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.ndimage import distance_transform_edt

Box = tuple[slice, slice]

BAND = 64
"""Rows of the bands ``near_boxes`` cuts the image into."""
JOIN_COLUMNS = 16
"""Two runs of columns of a band this much closer than their windows' margins share one window (a transform's
overhead costs about as much as this many columns of a band)."""


def grown(box: Box, margin: int, shape: tuple[int, int]) -> Box:
    """``box`` grown by ``margin`` pixels on every side, clipped to an image of ``shape``."""
    h, w = shape
    rows, cols = box
    return (
        slice(max(rows.start - margin, 0), min(rows.stop + margin, h)),
        slice(max(cols.start - margin, 0), min(cols.stop + margin, w)),
    )


def reach_margin(reach: float) -> int:
    """Pixels a window grows beyond its box so that it holds every feature within ``reach`` of the box."""
    return int(math.floor(max(float(reach), 0.0))) + 1


def feature_transform_near(
    features: np.ndarray, box: Box, reach: float, return_distances: bool = True
) -> tuple[Optional[np.ndarray], np.ndarray, np.ndarray]:
    """``distance_transform_edt(~features, return_indices=True)`` at the pixels of ``box``: distances (``None``
    without ``return_distances``), nearest feature rows and columns [box] (image coordinates), from a transform of
    ``box`` grown by ``reach`` only. Equal to the whole image's at the pixels whose nearest feature lies within
    ``reach``; elsewhere the feature given is at least as far (none at all, distance ``inf`` and row and column -1,
    when the window holds no feature)."""
    window = grown(box, reach_margin(reach), features.shape)
    rows_in = slice(box[0].start - window[0].start, box[0].stop - window[0].start)
    cols_in = slice(box[1].start - window[1].start, box[1].stop - window[1].start)
    inside = features[window]
    size = (box[0].stop - box[0].start, box[1].stop - box[1].start)
    if not inside.any():
        far = np.full(size, -1, dtype=np.int32)
        return (np.full(size, np.inf) if return_distances else None), far, far.copy()
    out = distance_transform_edt(~inside, return_distances=return_distances, return_indices=True)
    distance, (rows, cols) = out if return_distances else (None, out)
    rows = rows[rows_in, cols_in] + window[0].start
    cols = cols[rows_in, cols_in] + window[1].start
    if distance is not None:
        distance = distance[rows_in, cols_in]
    return distance, rows, cols


def near_boxes(features: np.ndarray, reach: float, band: int = BAND) -> list[Box]:
    """Boxes that together hold every pixel within ``reach`` of a pixel of ``features`` [H, W] (bool): each band of
    ``band`` rows is cut into runs of the columns within the reach of a feature as near as that to the band (runs
    closer than a few columns joined, each box costing a transform of its own), so a transform of the boxes covers
    little more than the features' surroundings wherever they lie."""
    h, w = features.shape
    margin = reach_margin(reach)
    join = 2 * margin + JOIN_COLUMNS  # core gap below which two runs share one window
    has_feature = features.any(axis=1)
    boxes: list[Box] = []
    for top in range(0, h, band):
        bottom = min(top + band, h)
        lo, hi = max(top - margin, 0), min(bottom + margin, h)
        if not has_feature[lo:hi].any():
            continue
        columns = np.flatnonzero(features[lo:hi].any(axis=0))
        cuts = np.flatnonzero(np.diff(columns) > join)
        firsts = np.r_[columns[0], columns[cuts + 1]]
        lasts = np.r_[columns[cuts], columns[-1]]
        for first, last in zip(firsts.tolist(), lasts.tolist()):
            boxes.append((slice(top, bottom), slice(max(first - margin, 0), min(last + margin + 1, w))))
    return boxes
