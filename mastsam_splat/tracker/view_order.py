"""View order: the order the tracker visits the frames in, and the already-visited frame each one is matched with.

In file order every frame is matched with the previous file, which may show little of it (a
shuffled capture, a path that comes back on itself). Along the view graph, frames are visited
by a maximum-overlap spanning tree (Prim's algorithm): the next frame is the unvisited one that
overlaps most with any visited frame, and that frame (its tree parent) is the one it is matched
with. Overlap comes from the capture's SfM model when every frame carries its points (the number of
points two frames both observed: the frame the model links most to a new one gives it the most
correspondences), else from the cameras when every frame has one (camera-centre distance relative
to the median nearest-neighbour spacing, plus the angle between viewing directions), otherwise
from the number of matches between downscaled copies of the frames; there, frames adjacent in name order
(consecutive video frames, photos numbered as taken) count their matches ``neighbour_weight`` (2) times, so the
tree follows the capture unless another frame matches more than twice as much: on a video a frame that comes back into view
would otherwise hang a whole stretch of frames off a distant parent. The tree starts at the
frame whose name sorts first (its automatic masks give the first ids) and ties go to the frame
whose name sorts first, so the visit, and with it the ids, do not depend on the order the frames
were given in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import numpy as np

from mastsam_splat.errors import check_option
from mastsam_splat.types import Frame

ViewOrderKind = Literal["sequence", "view_graph"]


@dataclass
class ViewOrderConfig:
    """Order of the frames the tracker visits."""

    order: ViewOrderKind = "view_graph"
    """``sequence``: file order, each frame matched with the previous one; ``view_graph``: along a spanning tree of
    view overlap, each frame matched with its most overlapping already-visited frame."""
    direction_weight: float = 2.0
    """Weight of the viewing-direction difference (1 - cos) against the centre distance (in units of the median
    spacing between neighbouring cameras)."""
    shared_points: bool = True
    """When every frame carries points of the capture's SfM model, rank overlap by the points two frames both
    observed (before cameras and matches): the parent is the visited frame the model links most to it."""
    match_max_side: int = 160
    """Without cameras: longest side (pixels) of the copies the frames are matched on to measure overlap."""
    neighbour_weight: float = 2.0
    """Without cameras: factor on the match count of frames adjacent in name order; 1 ranks every pair by its
    matches alone."""
    match_max_frames: int = 80
    """Without cameras: above this many frames the overlap is not measured (every pair would be matched) and the
    file order is kept."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(self.neighbour_weight >= 1.0, "tracker.view-order.neighbour-weight", ">= 1", self.neighbour_weight)


@dataclass
class ViewOrder:
    """Visiting order (original frame indices) and each frame's tree parent (``None`` for the first)."""

    order: list[int]
    parent: dict[int, Optional[int]]
    source: str
    """What the overlap came from: ``sequence``, ``tracks``, ``cameras`` or ``matches``."""


def sequence_order(n: int) -> ViewOrder:
    """File order, each frame with the previous one as its parent."""
    return ViewOrder(list(range(n)), {t: (t - 1 if t > 0 else None) for t in range(n)}, "sequence")


def pose_distances(frames: Sequence[Frame], direction_weight: float) -> np.ndarray:
    """Symmetric [N, N] view distance from camera centres and viewing directions (all frames have cameras)."""
    centres = np.stack([f.camera.center for f in frames])  # type: ignore[union-attr]
    forward = np.stack([f.camera.cam_to_world[:3, 2] for f in frames])  # type: ignore[union-attr]
    forward /= np.maximum(np.linalg.norm(forward, axis=1, keepdims=True), 1e-12)
    gap = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    n = len(frames)
    if n > 1:
        nearest = np.sort(gap + np.diag(np.full(n, np.inf)), axis=1)[:, 0]
        scale = float(np.median(nearest[np.isfinite(nearest)])) if np.isfinite(nearest).any() else 1.0
    else:
        scale = 1.0
    scale = scale if scale > 1e-12 else 1.0
    angle = 1.0 - np.clip(forward @ forward.T, -1.0, 1.0)
    return gap / scale + direction_weight * angle


def name_neighbours(names: Sequence[str]) -> np.ndarray:
    """Symmetric [N, N] boolean: the two frames are adjacent when sorted by name (ties by position)."""
    n = len(names)
    ranked = np.argsort(np.asarray(names, dtype=object), kind="stable")
    adjacent = np.zeros((n, n), dtype=bool)
    adjacent[ranked[:-1], ranked[1:]] = True
    return adjacent | adjacent.T


def match_distances(frames: Sequence[Frame], matcher: Any, max_side: int, neighbour_weight: float = 1.0) -> np.ndarray:
    """Symmetric [N, N] view distance from match counts between downscaled copies (fewer matches: farther), the
    counts of frames adjacent in name order multiplied by ``neighbour_weight``."""
    import cv2

    small = []
    for f in frames:
        scale = min(1.0, max_side / max(f.width, f.height))
        image = f.image
        if scale < 1.0:
            size = (max(1, int(round(f.width * scale))), max(1, int(round(f.height * scale))))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        small.append(Frame(image=np.ascontiguousarray(image), name=f.name, index=f.index, file=f.file))
    n = len(frames)
    counts = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            counts[i, j] = counts[j, i] = len(matcher.match(small[i], small[j]))
    counts = np.where(name_neighbours([f.name for f in frames]), counts * neighbour_weight, counts)
    return 1.0 / (1.0 + counts)


def track_distances(frames: Sequence[Frame]) -> np.ndarray:
    """Symmetric [N, N] view distance from the SfM points each pair of frames both observed (fewer: farther)."""
    from scipy.sparse import csr_matrix

    points = [np.unique(f.observed.point) for f in frames]  # type: ignore[union-attr]
    rows = np.repeat(np.arange(len(frames)), [len(p) for p in points])
    cols = np.concatenate(points) if points else np.zeros(0, dtype=np.int64)
    width = int(cols.max()) + 1 if len(cols) else 1
    incidence = csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(frames), width))
    counts = (incidence @ incidence.T).toarray()
    return 1.0 / (1.0 + counts)


def spanning_order(distance: np.ndarray, names: Sequence[str], source: str) -> ViewOrder:
    """Prim's minimum spanning tree over ``distance`` [N, N] from the frame whose name sorts first (ties by name,
    then by position)."""
    n = len(names)
    if n == 0:
        return ViewOrder([], {}, source)
    rank = np.argsort(np.argsort(np.asarray(names, dtype=object), kind="stable"), kind="stable")
    start = int(np.argmin(rank))
    finite = np.where(np.isfinite(distance), distance, np.nanmax(np.where(np.isfinite(distance), distance, 0)) * 10 + 1)
    visited = np.zeros(n, dtype=bool)
    visited[start] = True
    best = finite[start].copy()
    parent_of = np.full(n, start)
    order, parent = [start], {start: None}
    for _ in range(n - 1):
        key = np.where(visited, np.inf, np.round(best, 9))
        candidates = np.flatnonzero(key == key.min())
        nxt = int(candidates[np.argmin(rank[candidates])])
        visited[nxt] = True
        order.append(nxt)
        parent[nxt] = int(parent_of[nxt])
        closer = ~visited & (finite[nxt] < best)
        best[closer] = finite[nxt][closer]
        parent_of[closer] = nxt
    return ViewOrder(order, parent, source)


def view_order(frames: Sequence[Frame], config: ViewOrderConfig, matcher: Optional[Any] = None) -> ViewOrder:
    """The order to visit ``frames`` in and each frame's parent, as ``config.order`` asks and the inputs allow."""
    n = len(frames)
    if config.order == "sequence" or n <= 2:
        return sequence_order(n)
    names = [f.name for f in frames]
    if config.shared_points and all(f.observed is not None and len(f.observed) for f in frames):
        return spanning_order(track_distances(frames), names, "tracks")
    if all(f.camera is not None for f in frames):
        return spanning_order(pose_distances(frames, config.direction_weight), names, "cameras")
    if matcher is not None and n <= config.match_max_frames:
        return spanning_order(match_distances(frames, matcher, config.match_max_side, config.neighbour_weight), names, "matches")
    return sequence_order(n)
