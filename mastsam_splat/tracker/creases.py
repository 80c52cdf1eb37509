"""Faces of one solid: ids that meet along a convex edge of continuous depth.

A segmenter that cuts by colour cuts a box's faces apart where their shading changes across the edge, and the
tracker then follows each face under its own id. As the camera moves round the solid, one face shrinks
while the next grows, so no single id covers the part in every view. In frames with a depth map the two ids'
shared boundary tells why they were cut: on either side of an edge of one solid the depth is continuous and
the surface turns away from the camera (a convex edge: each side lies behind the other side's tangent plane),
while a cut drawn by material lies on a smooth surface (normals agree), one object standing on another meets
it in a concave corner, and an occlusion boundary is a step in depth. Pairs that meet along a convex edge in
``min_frames`` frames, and in ``share`` of the frames where their boundary is measured at all, are merged after
the sequence.

The sides of the boundary are sampled ``offset`` pixels into each id, where the normals (cross products of
the depth map's finite differences) are not blurred by the edge itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mastsam_splat.errors import check_fraction, check_option


@dataclass
class CreaseConfig:
    """Merging ids that meet along a convex edge of one solid (frames with a depth map)."""

    enabled: bool = True
    """After the sequence, merge ids whose shared boundary is a convex edge with continuous depth (a solid's faces
    that the segmenter cut apart)."""
    min_angle: float = 40.0
    """Smallest angle (degrees) between the normals on the two sides of an edge."""
    max_depth_step: float = 0.02
    """Largest depth step across the boundary, relative to the depth (larger: an occlusion boundary)."""
    min_frames: int = 3
    """Frames in which two ids must meet along a convex edge."""
    share: float = 0.75
    """Fraction of the frames where the two ids' boundary is measured in which it must be a convex edge: two faces
    of one solid meet along its edge whenever they meet, while an id that strayed onto a neighbour's solid for a
    few frames meets it elsewhere in depth steps."""
    min_samples: int = 10
    """Boundary samples (pixel pairs across the boundary with both sides measured) for a frame to count."""
    edge_share: float = 0.3
    """Fraction of a frame's boundary samples that must lie on a convex edge for the ids to meet along one there
    (a segmenter's cut follows the edge only in part, wandering onto either face)."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(0 < self.min_angle < 180, "tracker.creases.min-angle", "in (0, 180)", self.min_angle)
        check_option(self.max_depth_step > 0, "tracker.creases.max-depth-step", "> 0", self.max_depth_step)
        check_option(self.min_frames >= 1, "tracker.creases.min-frames", ">= 1", self.min_frames)
        check_fraction(self.share, "tracker.creases.share")
        check_fraction(self.edge_share, "tracker.creases.edge-share")
        check_option(self.min_samples >= 1, "tracker.creases.min-samples", ">= 1", self.min_samples)


PAIR_TABLE = 1 << 22
"""Largest id-pair code counted with a table (``np.bincount``) rather than by sorting."""


def camera_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """[H, W, 3] camera-space points of a z-depth map (pixel centres)."""
    h, w = depth.shape
    u = (np.arange(w) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(h) + 0.5 - K[1, 2]) / K[1, 1]
    z = depth.astype(np.float64)
    return np.stack([u[None, :] * z, v[:, None] * z, z], axis=-1)


def surface_normals(points: np.ndarray) -> np.ndarray:
    """[H, W, 3] unit normals facing the camera from central differences of ``points`` (NaN on the image border
    and where the depth is unknown)."""
    h, w = points.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w]
    return normals_at(points, rows.ravel(), cols.ravel()).reshape(points.shape)


def normals_at(points: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[N, 3] unit normals facing the camera at pixels (``rows``, ``cols``) from central differences of ``points``
    [H, W, 3] (NaN on the image border and where the depth around the pixel is unknown); only the boundary's
    samples need them, so the full map is never built."""
    normals = _normals(lambda r, c: tuple(points[r, c, k] for k in range(3)), rows, cols, points.shape[:2])
    return np.stack(normals, axis=-1)


Columns = tuple[np.ndarray, np.ndarray, np.ndarray]
"""The x, y and z coordinates [N] of N vectors: arithmetic on rows of three numbers, which numpy loops over slowly,
done column by column with the same operations in the same order (``np.cross``'s products and differences, sums of
three products left to right as ``np.sum`` adds them), so every value is the row-wise one to the bit."""

PointsAt = Callable[[np.ndarray, np.ndarray], Columns]
"""Camera-space points at pixels (rows [N], cols [N])."""


def _dot(a: Columns, b: Columns) -> np.ndarray:
    """[N] ``np.sum(a * b, axis=-1)`` of vectors held as columns."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normals(point_at: PointsAt, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Columns:
    """``normals_at`` of the points ``point_at`` gives, on an image of ``shape``, as columns."""
    h, w = shape
    out = tuple(np.full(len(rows), np.nan) for _ in range(3))
    inner = (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
    around = _around(point_at, rows[inner], cols[inner])
    known = np.logical_and.reduce([(p[2] > 0) & np.isfinite(p[2]) for p in around])
    index = np.flatnonzero(inner)
    for column, x in zip(out, _facing_normals(around)):
        column[index] = np.where(known, x, np.nan)
    return out


def _around(point_at: PointsAt, r: np.ndarray, c: np.ndarray) -> list[Columns]:
    """The points at pixels (``r``, ``c``) and at their four neighbours: (r, c + 1), (r, c - 1), (r + 1, c), (r - 1, c)."""
    return [point_at(r, c), point_at(r, c + 1), point_at(r, c - 1), point_at(r + 1, c), point_at(r - 1, c)]


def _facing_normals(around: list[Columns]) -> Columns:
    """Unit normals facing the camera from the central differences of ``_around``'s points (NaN-free where those
    are known)."""
    a = tuple(p - q for p, q in zip(around[1], around[2]))
    b = tuple(p - q for p, q in zip(around[3], around[4]))
    n = (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])  # np.cross(a, b)
    length = np.maximum(np.sqrt(_dot(n, n)), 1e-12)  # np.linalg.norm
    n = tuple(x / length for x in n)
    facing = -np.sign(_dot(n, around[0]) + 1e-12)
    return tuple(x * facing for x in n)


def _points_at(depth: np.ndarray, K: np.ndarray, transposed: bool) -> PointsAt:
    """``camera_points(depth, K)[r, c]`` of a few pixels, computed for those pixels only (the same products), as
    columns; ``transposed``: (r, c) index the transposed image."""
    h, w = depth.shape
    u = (np.arange(w) + 0.5 - K[0, 2]) / K[0, 0]
    v = (np.arange(h) + 0.5 - K[1, 2]) / K[1, 1]
    flat = np.ascontiguousarray(depth).reshape(-1)  # pixels gathered by flat index (``take``), not 2-D indexing

    def point_at(rows: np.ndarray, cols: np.ndarray) -> Columns:
        if transposed:
            rows, cols = cols, rows
        z = flat.take(rows * w + cols).astype(np.float64)
        return u.take(cols) * z, v.take(rows) * z, z

    return point_at


def frame_creases(
    labels: np.ndarray, depth: np.ndarray, K: np.ndarray, config: CreaseConfig, offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Id pairs ``[P, 2]`` (smaller id first) meeting in the frame, their boundary samples ``[P]`` (pixel pairs across
    the boundary whose sides are measured, depth steps included) and how many of those lie on a convex edge of
    continuous depth ``[P]``; ``offset``: how far (pixels) each side is sampled from the boundary.

    The camera-space points and normals are computed at the boundary's samples only, never for the whole image.
    """
    z = np.asarray(depth)
    cos_min = np.cos(np.deg2rad(config.min_angle))
    found_a, found_b, found_convex = [], [], []
    width = labels.shape[1]
    flat_labels = np.ascontiguousarray(labels).reshape(-1)
    flat_z = np.ascontiguousarray(z).reshape(-1)
    # pixels whose normal is measured (``normals_at`` is not NaN): inside the image's border, with a known depth there
    # and at its four neighbours; the same pixels in the transposed image, whose neighbours are the same
    known = (z > 0) & np.isfinite(z)
    measurable = np.zeros(z.shape, dtype=bool)
    measurable[1:-1, 1:-1] = known[1:-1, 1:-1] & known[1:-1, 2:] & known[1:-1, :-2] & known[2:, 1:-1] & known[:-2, 1:-1]
    flat_measurable = measurable.reshape(-1)
    for axis in (0, 1):
        lab_shape = labels.shape if axis == 1 else labels.shape[::-1]
        # (r, c) index the image (axis 1) or its transpose (axis 0); pixels are gathered by their flat index
        row_step, col_step = (width, 1) if axis == 1 else (1, width)
        point_at = _points_at(z, K, transposed=axis == 0)
        # boundary pixels found on the image as stored (the vertical pass's in row-major order of the image, not of
        # its transpose: every sample is counted alike whatever the order); unlabelled sides are dropped below
        if axis == 1:
            rows, cols = np.nonzero(labels[:, :-1] != labels[:, 1:])
        else:
            cols, rows = np.nonzero(labels[:-1] != labels[1:])
        left, right = cols - offset, cols + 1 + offset
        inside = (left >= 0) & (right < lab_shape[1])
        rows, cols, left, right = rows[inside], cols[inside], left[inside], right[inside]
        at = rows * row_step + cols * col_step
        ida, idb = flat_labels.take(at), flat_labels.take(at + col_step)
        same = (flat_labels.take(at - offset * col_step) == ida) & (flat_labels.take(at + (1 + offset) * col_step) == idb)
        # both sides labelled, and both sides' normals measured
        same &= (ida > 0) & (idb > 0)
        same &= flat_measurable.take(at - offset * col_step) & flat_measurable.take(at + (1 + offset) * col_step)
        keep = np.flatnonzero(same)
        rows, left, right, ida, idb, at = (x.take(keep) for x in (rows, left, right, ida, idb, at))
        za, zb = flat_z.take(at).astype(np.float64), flat_z.take(at + col_step).astype(np.float64)
        continuous = (za > 0) & (zb > 0) & (np.abs(za - zb) <= config.max_depth_step * np.minimum(za, zb))
        around_a, around_b = _around(point_at, rows, left), _around(point_at, rows, right)
        pa, pb = around_a[0], around_b[0]
        na, nb = _facing_normals(around_a), _facing_normals(around_b)
        finite = np.logical_and.reduce([np.isfinite(x) for x in (*na, *nb)])  # (only depths near overflow fail)
        if not finite.all():
            pa, pb, na, nb = ([x[finite] for x in p] for p in (pa, pb, na, nb))
            ida, idb, continuous = ida[finite], idb[finite], continuous[finite]
        d = tuple(q - p for p, q in zip(pa, pb))
        # convex: depth continuous across the boundary, the normals turn by min_angle and each side lies behind the
        # other side's tangent plane
        convex = continuous & (_dot(na, nb) <= cos_min)
        convex &= (_dot(d, na) < 0) & (_dot(d, nb) > 0)
        found_a.append(np.minimum(ida, idb))
        found_b.append(np.maximum(ida, idb))
        found_convex.append(convex)
    a = np.concatenate(found_a).astype(np.int64)
    b = np.concatenate(found_b).astype(np.int64)
    convex = np.concatenate(found_convex)
    if len(a) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty.reshape(0, 2), empty, empty
    # the pairs in (a, b) order: one key per pair (ids are positive), sorted as the rows would be
    base = int(b.max()) + 1
    codes = a * base + b
    if int(codes.max()) < PAIR_TABLE:
        # few ids: the pairs counted in a table of every code (the distinct codes come out sorted, as np.unique's)
        per_code = np.bincount(codes)
        keys = np.flatnonzero(per_code)
        samples = per_code.take(keys)
        convex_samples = np.bincount(codes, weights=convex).take(keys).astype(np.int64)
        return np.stack(np.divmod(keys, base), axis=1), samples, convex_samples
    keys, inverse = np.unique(codes, return_inverse=True)
    pairs = np.stack(np.divmod(keys, base), axis=1)
    samples = np.bincount(inverse, minlength=len(pairs))
    convex_samples = np.bincount(inverse, weights=convex, minlength=len(pairs)).astype(np.int64)
    return pairs, samples, convex_samples


def frame_edges(
    labels: np.ndarray, depth: np.ndarray, K: np.ndarray, config: CreaseConfig
) -> dict[tuple[int, int], bool]:
    """Id pairs (smaller id first) whose boundary in the frame is measured (``min_samples``), and whether they meet
    along a convex edge there (``edge_share`` of the samples); each side sampled 1% of the image into its id."""
    offset = max(2, int(round(0.01 * max(labels.shape))))
    pairs, samples, convex = frame_creases(labels, depth, K, config, offset)
    return {
        (int(a), int(b)): c >= config.edge_share * n
        for (a, b), n, c in zip(pairs.tolist(), samples.tolist(), convex.tolist())
        if n >= config.min_samples
    }


class CreaseTally:
    """Frames in which each id pair met along a convex edge, and frames in which their boundary was measured."""

    def __init__(self, config: CreaseConfig) -> None:
        self.config = config
        self.met: dict[tuple[int, int], int] = {}
        self.convex: dict[tuple[int, int], int] = {}

    def observe(self, labels: np.ndarray, depth: np.ndarray, K: np.ndarray) -> None:
        """Add one frame's final labels [H, W] with its z-depth map [H, W] and intrinsics [3, 3]."""
        for key, on_edge in frame_edges(labels, depth, K, self.config).items():
            self.met[key] = self.met.get(key, 0) + 1
            if on_edge:
                self.convex[key] = self.convex.get(key, 0) + 1

    def merges(self) -> dict[int, int]:
        """Id -> the oldest id of its group, for every id joined to an older one along convex edges."""
        joined = [
            pair for pair, c in self.convex.items()
            if c >= self.config.min_frames and c >= self.config.share * self.met[pair]
        ]
        return _groups(joined)


def _groups(pairs: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Connected groups of ``pairs``: each id -> the smallest id of its group (ids mapped to themselves left out)."""
    edges = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
    if len(edges) == 0:
        return {}
    ids, index = np.unique(edges, return_inverse=True)
    index = index.reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (index[:, 0], index[:, 1])), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    smallest = np.full(component.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, component, ids)
    return {int(i): int(smallest[g]) for i, g in zip(ids, component) if smallest[g] != i}


def crease_merges(
    labels: Sequence[np.ndarray], depths: Sequence[np.ndarray], intrinsics: Sequence[np.ndarray], config: CreaseConfig
) -> dict[int, int]:
    """Id merges (id -> oldest id of its group) from the final labels of the frames with a depth map."""
    tally = CreaseTally(config)
    for lab, depth, K in zip(labels, depths, intrinsics):
        tally.observe(lab, depth, K)
    return tally.merges()
