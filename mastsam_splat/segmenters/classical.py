"""Weight-free segmenter: graph-based superpixels merged into object-sized regions.

``prepare`` over-segments the image into superpixels (Felzenszwalb's graph segmentation, or
SLIC), builds their region adjacency graph with colour and boundary-contrast statistics, and
merges it greedily down to one region with ``skimage.graph.merge_hierarchical``, recording every
merge: the result is a merge tree whose nodes are image regions.

- ``auto`` cuts the tree at ``merge_threshold``: each region is one mask.
- ``prompt`` takes, for each positive point, the largest region of the tree that holds the point,
  lies below ``merge_threshold`` and holds no negative point; the mask is the union of these
  regions. A superpixel holding both a positive and a negative point is split between them by
  distance. After ``prepare`` a prompt is only table look-ups over the tree.

Scores measure boundary contrast: the mean colour step across the region's boundary against
the mean colour step between neighbouring pixels inside it, mapped to [0, 1].
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterable, Literal, Optional

import cv2
import numpy as np
from scipy.ndimage import find_objects

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters.base import check_image, empty_mask, points_in_image
from mastsam_splat.types import Mask

# Image area (320 x 240) at which the pixel-sized parameters below are stated; other sizes scale them.
_REFERENCE_AREA = 320 * 240


@dataclass
class ClassicalSegmenterConfig:
    """Settings of the weight-free superpixel segmenter."""

    superpixels: Literal["felzenszwalb", "slic"] = "felzenszwalb"
    """Over-segmentation the merge tree starts from."""
    felzenszwalb_scale: float = 100.0
    """Felzenszwalb ``scale`` at 320x240 (larger: bigger superpixels); scaled with the image side."""
    felzenszwalb_sigma: float = 0.8
    """Gaussian smoothing (pixels at 320x240) applied by Felzenszwalb before segmenting."""
    slic_segments: int = 400
    """Approximate number of SLIC superpixels."""
    slic_compactness: float = 10.0
    """SLIC colour/space trade-off (larger: more compact superpixels)."""
    max_side: int = 640
    """Images whose longer side exceeds this are segmented at this size and the masks scaled back
    (nearest neighbour); 0: always segment at full size."""
    smoothing_sigma: float = 1.0
    """Gaussian blur (pixels at 320x240) before measuring colours, so texture and noise weigh less."""
    colour_weight: float = 0.5
    """Merge cost mix: this weight on the difference of mean Lab colours, the rest on the mean Lab
    step across the shared boundary."""
    merge_threshold: float = 10.0
    """Merge cost (Lab units) at which merging stops; larger gives fewer, bigger regions."""
    small_region_fraction: float = 0.003
    """Regions smaller than this fraction of the image merge first (their cost is scaled down)."""
    min_area_fraction: float = 0.002
    """Automatic masks smaller than this fraction of the image are dropped."""

    def setup(self) -> "ClassicalSegmenter":
        """Build the segmenter with these settings."""
        return ClassicalSegmenter(self)


@dataclass
class _MergeTree:
    """Binary merge tree over ``n`` superpixels; nodes ``0..n-1`` are superpixels, later ones merges."""

    parent: np.ndarray
    """[M] parent node, -1 at a root."""
    level: np.ndarray
    """[M] merge cost at which the node formed (running maximum, so it never decreases upwards)."""
    order: np.ndarray
    """[n] superpixels in tree order: every node's superpixels are ``order[start:stop]``."""
    start: np.ndarray
    """[M]"""
    stop: np.ndarray
    """[M]"""

    _lists: Optional[tuple[list[int], list[float]]] = field(default=None, init=False, repr=False, compare=False)
    _spans: Optional[tuple[list[int], list[int], list[int]]] = field(
        default=None, init=False, repr=False, compare=False
    )

    def leaves(self, node: int) -> np.ndarray:
        return self.order[self.start[node] : self.stop[node]]

    def lists(self) -> tuple[list[int], list[float]]:
        """``parent`` and ``level`` as plain lists (the walks of ``prompt`` are faster on them), made once."""
        if self._lists is None:
            self._lists = (self.parent.tolist(), self.level.tolist())
        return self._lists

    def spans(self) -> tuple[list[int], list[int], list[int]]:
        """``start`` and ``stop`` as plain lists, and the position of each superpixel in ``order``, made once: a node
        holds superpixel ``s`` exactly when ``start[node] <= position[s] < stop[node]``."""
        if self._spans is None:
            position = np.empty(len(self.order), dtype=np.int64)
            position[self.order] = np.arange(len(self.order))
            self._spans = (self.start.tolist(), self.stop.tolist(), position.tolist())
        return self._spans


@dataclass
class ClassicalState:
    """Per-image work of the classical segmenter, shared by ``auto`` and every ``prompt``."""

    height: int
    width: int
    superpixels: np.ndarray
    """[H, W] int32 superpixel id of every pixel, at the image's own resolution."""
    boxes: list
    """[n] bounding box (a pair of slices into ``superpixels``) of each superpixel."""
    tree: _MergeTree
    edges: np.ndarray
    """[E, 2] adjacent superpixel pairs."""
    edge_step_sum: np.ndarray
    """[E] summed Lab step over the pixel pairs straddling each pair's boundary."""
    edge_step_count: np.ndarray
    """[E] number of those pixel pairs."""
    inner_step_sum: np.ndarray
    """[n] summed Lab step between neighbouring pixels inside each superpixel."""
    inner_step_count: np.ndarray
    """[n]"""
    _corners: Optional[np.ndarray] = field(default=None, init=False, repr=False, compare=False)
    _order_corners: Optional[np.ndarray] = field(default=None, init=False, repr=False, compare=False)
    _score_tables: Optional[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def num_superpixels(self) -> int:
        return len(self.inner_step_sum)

    def order_corners(self) -> np.ndarray:
        """[n, 4] ``box_corners`` in tree order with the stops negated, (row start, -row stop, column start, -column
        stop): the box around a tree node's superpixels is one column-wise minimum over its slice. Made once."""
        if self._order_corners is None:
            corners = self.box_corners()[self.tree.order]
            corners[:, 1::2] *= -1
            self._order_corners = corners
        return self._order_corners

    def score_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``edges``' two columns (contiguous), [2, E] boundary step sums over counts and [2, n] interior step sums over
        counts: the contrast score reads a sum and its count together. Made once."""
        if self._score_tables is None:
            self._score_tables = (
                np.ascontiguousarray(self.edges[:, 0]),
                np.ascontiguousarray(self.edges[:, 1]),
                np.stack([self.edge_step_sum, self.edge_step_count]),
                np.stack([self.inner_step_sum, self.inner_step_count]),
            )
        return self._score_tables

    def box_corners(self) -> np.ndarray:
        """[n, 4] ``boxes`` as (row start, row stop, column start, column stop); a superpixel without pixels has an
        empty box that widens no union ((height, 0, width, 0)). Made on first use (only prompts need it)."""
        if self._corners is None:
            empty = (self.height, 0, self.width, 0)
            self._corners = np.array(
                [empty if b is None else (b[0].start, b[0].stop, b[1].start, b[1].stop) for b in self.boxes],
                dtype=np.int64,
            ).reshape(-1, 4)
        return self._corners


class ClassicalSegmenter:
    """Superpixels + hierarchical region merging (scikit-image); needs no model weights."""

    name = "classical"
    concurrent = True
    """``prepare`` and ``auto`` of one image may run in another thread while ``prompt`` runs on another image's state
    (each image's work lives in its state)."""

    def __init__(self, config: Optional[ClassicalSegmenterConfig] = None) -> None:
        self.config = config or ClassicalSegmenterConfig()
        cfg = self.config
        if cfg.superpixels not in ("felzenszwalb", "slic"):
            raise InputError(f"unknown superpixel method {cfg.superpixels!r}; use felzenszwalb or slic")
        if not cfg.merge_threshold > 0:
            raise InputError(f"merge_threshold must be positive, got {cfg.merge_threshold}")
        if not 0.0 <= cfg.colour_weight <= 1.0:
            raise InputError(f"colour_weight must lie in [0, 1], got {cfg.colour_weight}")

    # ------------------------------------------------------------------ prepare
    def prepare(self, image: np.ndarray) -> ClassicalState:
        image = check_image(image)
        cfg = self.config
        height, width = image.shape[:2]
        work = _resize_to_max_side(image, cfg.max_side)
        sp = self._superpixels(work)  # [h, w] int, 0..n-1
        n = int(sp.max()) + 1

        # Colour steps are measured over a span that grows with the image, so that the merge costs
        # (and merge_threshold) mean the same at every resolution.
        factor = _size_factor(work)
        sigma = cfg.smoothing_sigma * factor
        blurred = cv2.GaussianBlur(work, (0, 0), sigma) if sigma > 0 else work
        lab = cv2.cvtColor(blurred.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)  # [h, w, 3]
        flat_sp = sp.ravel()
        count = np.bincount(flat_sp, minlength=n).astype(np.float64)
        colour_sum = np.stack([np.bincount(flat_sp, lab[..., c].ravel(), minlength=n) for c in range(3)], axis=1)

        edges, edge_sum, edge_count, inner_sum, inner_count = _pixel_steps(sp, lab, n, span=max(1, round(factor)))
        tree = self._merge_tree(sp, count, colour_sum, edges, edge_sum, edge_count)

        if (sp.shape[0], sp.shape[1]) != (height, width):
            rows = np.minimum(((np.arange(height) + 0.5) * sp.shape[0] / height).astype(np.int64), sp.shape[0] - 1)
            cols = np.minimum(((np.arange(width) + 0.5) * sp.shape[1] / width).astype(np.int64), sp.shape[1] - 1)
            sp = sp[rows[:, None], cols[None, :]]
        from scipy import ndimage

        sp = np.ascontiguousarray(sp, dtype=np.int32)
        return ClassicalState(
            height=height,
            width=width,
            superpixels=sp,
            boxes=ndimage.find_objects(sp + 1, max_label=n),
            tree=tree,
            edges=edges,
            edge_step_sum=edge_sum,
            edge_step_count=edge_count,
            inner_step_sum=inner_sum,
            inner_step_count=inner_count,
        )

    def _superpixels(self, image: np.ndarray) -> np.ndarray:
        from skimage.segmentation import felzenszwalb, slic

        cfg = self.config
        factor = _size_factor(image)
        if cfg.superpixels == "felzenszwalb":
            sp = felzenszwalb(
                image,
                scale=cfg.felzenszwalb_scale * factor,
                sigma=cfg.felzenszwalb_sigma * factor,
                min_size=max(4, int(round(20 * factor**2))),
            )
        else:
            sp = slic(
                image,
                n_segments=cfg.slic_segments,
                compactness=cfg.slic_compactness,
                start_label=0,
                channel_axis=-1,
            )
        sp = sp.astype(np.int64)
        present = np.bincount(sp.ravel()) > 0
        return (np.cumsum(present) - 1)[sp]  # consecutive ids 0..n-1

    def _merge_tree(
        self,
        sp: np.ndarray,
        count: np.ndarray,
        colour_sum: np.ndarray,
        edges: np.ndarray,
        edge_sum: np.ndarray,
        edge_count: np.ndarray,
    ) -> _MergeTree:
        """Merge the region adjacency graph down to one region, recording the merge tree."""
        from skimage.graph import RAG, merge_hierarchical

        cfg = self.config
        n = len(count)
        small = max(cfg.small_region_fraction * float(count.sum()), 1.0)
        alpha = cfg.colour_weight

        def cost(graph: RAG, a: int, b: int, step_sum: float, step_count: float) -> float:
            na, nb = graph.nodes[a], graph.nodes[b]
            colour = float(np.linalg.norm(na["colour"] / na["count"] - nb["colour"] / nb["count"]))
            value = alpha * colour + (1.0 - alpha) * step_sum / step_count
            smaller = min(na["count"], nb["count"])
            return value * smaller / small if smaller < small else value

        rag = RAG()
        for i in range(n):
            rag.add_node(i, labels=[i], count=float(count[i]), colour=colour_sum[i].copy())
        for (a, b), s, c in zip(edges.tolist(), edge_sum.tolist(), edge_count.tolist()):
            rag.add_edge(a, b, step_sum=s, step_count=c)
        for a, b, data in rag.edges(data=True):
            data["weight"] = cost(rag, a, b, data["step_sum"], data["step_count"])

        merges: list[tuple[int, int, float]] = []

        def merge_nodes(graph: RAG, src: int, dst: int) -> None:
            merges.append((src, dst, graph[src][dst]["weight"]))
            graph.nodes[dst]["count"] += graph.nodes[src]["count"]
            graph.nodes[dst]["colour"] = graph.nodes[dst]["colour"] + graph.nodes[src]["colour"]

        def edge_data(graph: RAG, src: int, dst: int, nbr: int) -> dict:
            step_sum = step_count = 0.0
            for node in (src, dst):
                if graph.has_edge(node, nbr):
                    step_sum += graph[node][nbr]["step_sum"]
                    step_count += graph[node][nbr]["step_count"]
            weight = cost(graph, dst, nbr, step_sum, step_count)
            return {"step_sum": step_sum, "step_count": step_count, "weight": weight}

        merge_hierarchical(
            sp, rag, thresh=math.inf, rag_copy=False, in_place_merge=True, merge_func=merge_nodes, weight_func=edge_data
        )
        return _tree_from_merges(n, merges)

    # --------------------------------------------------------------------- auto
    def auto(self, state: ClassicalState) -> list[Mask]:
        tree = state.tree
        threshold = self.config.merge_threshold
        parent_level = np.where(tree.parent >= 0, tree.level[np.maximum(tree.parent, 0)], np.inf)
        is_region = (tree.level < threshold) & (parent_level >= threshold)
        region_of = np.empty(state.num_superpixels, dtype=np.int64)
        regions = np.flatnonzero(is_region)
        for k, node in enumerate(regions):
            region_of[tree.leaves(node)] = k
        labels = region_of[state.superpixels]  # [H, W]
        areas = np.bincount(labels.ravel(), minlength=len(regions))
        min_area = self.config.min_area_fraction * state.height * state.width

        boxes = find_objects(labels + 1)  # (each region's box: its mask is compared and read inside it only)
        masks = []
        for k in np.argsort(-areas, kind="stable"):
            if areas[k] < min_area or boxes[k] is None:
                continue
            members = np.zeros(state.num_superpixels, dtype=bool)
            members[tree.leaves(regions[k])] = True
            rows, cols = boxes[k]
            segmentation = np.zeros(labels.shape, dtype=bool)
            segmentation[rows, cols] = labels[rows, cols] == k
            box = (rows.start, rows.stop, cols.start, cols.stop)
            score = _contrast_score(state, members)
            masks.append(Mask(segmentation=segmentation, score=score, area=int(areas[k]), box=box))
        return masks

    # ------------------------------------------------------------------- prompt
    def prompt(self, state: ClassicalState, positive_xy: np.ndarray, negative_xy: Optional[np.ndarray] = None) -> Mask:
        pos = points_in_image(positive_xy, state.width, state.height)
        neg = points_in_image(negative_xy, state.width, state.height)
        if len(pos) == 0:
            return empty_mask(state.height, state.width)
        tree = state.tree
        # (points inside the image have non-negative coordinates: the integer cast is their floor)
        pixel = (np.concatenate([pos, neg]) if len(neg) else pos).astype(np.int64)
        leaf_of = state.superpixels[pixel[:, 1], pixel[:, 0]].tolist()
        pos_leaf, neg_leaf = leaf_of[: len(pos)], leaf_of[len(pos) :]

        # Every region holding a negative point is off limits: its span of the tree order holds a negative point's
        # superpixel (the walks use plain lists: numpy scalars are slow).
        parent, level = tree.lists()
        start, stop, position = tree.spans()
        negative_leaves = set(neg_leaf)
        negative_at = sorted(position[leaf] for leaf in negative_leaves)
        threshold = self.config.merge_threshold
        regions = set()
        shared_leaves = []
        for node in set(pos_leaf):
            if node in negative_leaves:
                shared_leaves.append(node)
                continue
            while True:
                up = parent[node]
                if up < 0 or level[up] >= threshold:
                    break
                first = bisect_left(negative_at, start[up])
                if first < len(negative_at) and negative_at[first] < stop[up]:
                    break
                node = up
            regions.add(node)

        members = np.zeros(state.num_superpixels, dtype=bool)
        for node in regions:
            members[tree.leaves(node)] = True
        rows, cols = _regions_box(state, regions)
        segmentation = _member_pixels(state, members, (rows, cols))
        box = (rows.start, rows.stop, cols.start, cols.stop)
        if shared_leaves:
            pos_leaf_array = np.asarray(pos_leaf)
            neg_leaf_array = np.asarray(neg_leaf)
            for leaf in shared_leaves:
                window = state.boxes[leaf]
                offset = (window[1].start, window[0].start)  # (x, y) of the box corner
                box = (
                    min(box[0], window[0].start),
                    max(box[1], window[0].stop),
                    min(box[2], window[1].start),
                    max(box[3], window[1].stop),
                )
                segmentation[window] |= _nearer_to_positive(
                    state.superpixels[window] == leaf,
                    pos[pos_leaf_array == leaf] - offset,
                    neg[neg_leaf_array == leaf] - offset,
                )
            members[shared_leaves] = True
        return Mask(
            segmentation=segmentation,
            score=_prompt_contrast_score(state, members),
            area=int(np.count_nonzero(segmentation[box[0] : box[1], box[2] : box[3]])),
            box=box,
        )


def _member_pixels(
    state: ClassicalState, members: np.ndarray, box: Optional[tuple[slice, slice]] = None
) -> np.ndarray:
    """[H, W] bool: the pixels of the superpixels ``members`` ([n] bool), i.e. ``members[state.superpixels]``, read
    only inside the box around those superpixels (a prompted region is usually a small part of the image); ``box``:
    that box when the caller knows it."""
    segmentation = np.zeros((state.height, state.width), dtype=bool)
    if box is None:
        chosen = np.flatnonzero(members)
        if len(chosen) == 0:
            return segmentation
        corners = state.box_corners()[chosen]
        box = (slice(corners[:, 0].min(), corners[:, 1].max()), slice(corners[:, 2].min(), corners[:, 3].max()))
    segmentation[box] = np.take(members, state.superpixels[box])
    return segmentation


def _regions_box(state: ClassicalState, regions: Iterable[int]) -> tuple[slice, slice]:
    """The box (row and column slices) around the superpixels of the tree nodes ``regions``: one column-wise minimum
    over each node's slice of ``order_corners``; empty without nodes."""
    corners, tree = state.order_corners(), state.tree
    bounds = [state.height, 0, state.width, 0]
    for node in regions:
        bounds = [min(a, b) for a, b in zip(bounds, corners[tree.start[node] : tree.stop[node]].min(axis=0).tolist())]
    return slice(bounds[0], -bounds[1]), slice(bounds[2], -bounds[3])


def _resize_to_max_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` shrunk (area interpolation) so that its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    size = (max(2, round(width * scale)), max(2, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _size_factor(image: np.ndarray) -> float:
    """Linear size of ``image`` relative to 320 x 240."""
    return math.sqrt(image.shape[0] * image.shape[1] / _REFERENCE_AREA)


def _pixel_steps(
    sp: np.ndarray, lab: np.ndarray, n: int, span: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lab steps across 4-neighbouring pixel pairs, summed per superpixel boundary and per superpixel interior.

    The step of a pair is the Lab distance between the pixels ``span`` apart centred on it (``span=1``:
    the pair itself). Returns ``edges`` [E, 2] (a < b), boundary step sums and counts [E], interior
    step sums and counts [n].
    """
    before, after = (span - 1) // 2, span // 2  # reach beyond the pair on each side
    padded = np.pad(lab, ((before, after), (before, after), (0, 0)), mode="edge")
    h, w = sp.shape
    rows = slice(before, before + h)
    cols = slice(before, before + w)
    step_x = padded[rows, span : span + w - 1] - padded[rows, : w - 1]  # [h, w-1, 3]
    step_y = padded[span : span + h - 1, cols] - padded[: h - 1, cols]  # [h-1, w, 3]
    a = np.concatenate([sp[:, :-1].ravel(), sp[:-1, :].ravel()])
    b = np.concatenate([sp[:, 1:].ravel(), sp[1:, :].ravel()])
    step = np.concatenate(
        [np.linalg.norm(step_x, axis=-1).ravel(), np.linalg.norm(step_y, axis=-1).ravel()]
    ).astype(np.float64)
    inner = a == b
    inner_sum = np.bincount(a[inner], step[inner], minlength=n)
    inner_count = np.bincount(a[inner], minlength=n).astype(np.float64)
    lo = np.minimum(a[~inner], b[~inner])
    hi = np.maximum(a[~inner], b[~inner])
    keys, index = np.unique(lo * n + hi, return_inverse=True)
    edges = np.stack([keys // n, keys % n], axis=1)
    edge_sum = np.bincount(index, step[~inner], minlength=len(keys))
    edge_count = np.bincount(index, minlength=len(keys)).astype(np.float64)
    return edges, edge_sum, edge_count, inner_sum, inner_count


def _tree_from_merges(n: int, merges: list[tuple[int, int, float]]) -> _MergeTree:
    """Build the merge tree from ``(src, dst, cost)`` merges of graph nodes, in merge order."""
    size = n + len(merges)
    parent = np.full(size, -1, dtype=np.int64)
    level = np.zeros(size, dtype=np.float64)
    children = np.full((size, 2), -1, dtype=np.int64)
    current = np.arange(n)  # tree node currently standing for each graph node
    running = 0.0
    for k, (src, dst, cost) in enumerate(merges):
        node = n + k
        running = max(running, float(cost))
        children[node] = (current[src], current[dst])
        parent[children[node]] = node
        level[node] = running
        current[dst] = node

    order: list[int] = []
    start = np.zeros(size, dtype=np.int64)
    stop = np.zeros(size, dtype=np.int64)
    for root in np.flatnonzero(parent < 0).tolist():
        stack = [(root, False)]
        while stack:
            node, closing = stack.pop()
            if node < n:
                start[node] = len(order)
                order.append(node)
                stop[node] = len(order)
            elif closing:
                start[node] = start[children[node, 0]]
                stop[node] = stop[children[node, 1]]
            else:
                stack += [(node, True), (int(children[node, 1]), False), (int(children[node, 0]), False)]
    return _MergeTree(parent=parent, level=level, order=np.asarray(order, dtype=np.int64), start=start, stop=stop)


def _contrast_score(state: ClassicalState, members: np.ndarray) -> float:
    """Boundary contrast of the region made of superpixels ``members`` ([n] bool), in [0, 1].

    ``across / (across + inside)`` with the mean Lab step across the region's boundary and the
    mean step between neighbouring pixels inside it; 0 for a region without a boundary.
    """
    in_a = members[state.edges[:, 0]]
    in_b = members[state.edges[:, 1]]
    crossing = in_a != in_b
    if not crossing.any():
        return 0.0
    across = state.edge_step_sum[crossing].sum() / state.edge_step_count[crossing].sum()
    interior = in_a & in_b
    inside_count = state.inner_step_count[members].sum() + state.edge_step_count[interior].sum()
    inside_sum = state.inner_step_sum[members].sum() + state.edge_step_sum[interior].sum()
    inside = inside_sum / inside_count if inside_count > 0 else 0.0
    return float(across / (across + inside)) if across + inside > 0 else 0.0


def _prompt_contrast_score(state: ClassicalState, members: np.ndarray) -> float:
    """``_contrast_score`` (the same value) from the state's score tables, which give a set's sums and counts in one
    reduction."""
    first, second, edge_table, inner_table = state.score_tables()
    in_a = members.take(first)
    in_b = members.take(second)
    crossing = in_a != in_b
    if not crossing.any():
        return 0.0
    across_sum, across_count = edge_table[:, crossing].sum(axis=1).tolist()
    across = across_sum / across_count
    interior_sum, interior_count = edge_table[:, in_a & in_b].sum(axis=1).tolist()
    member_sum, member_count = inner_table[:, members].sum(axis=1).tolist()
    inside_count = member_count + interior_count
    inside = (member_sum + interior_sum) / inside_count if inside_count > 0 else 0.0
    return across / (across + inside) if across + inside > 0 else 0.0


def _nearer_to_positive(region: np.ndarray, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` ([h, w] bool) whose centre is closer to a positive point than to every negative one."""
    xs = np.arange(region.shape[1], dtype=np.float32) + np.float32(0.5)
    ys = np.arange(region.shape[0], dtype=np.float32) + np.float32(0.5)

    def nearest_sq(points: np.ndarray) -> np.ndarray:  # [h, w] squared distance (float32) to the nearest point
        # (a running minimum over the points, each point's [h, w] distances made from its row and column terms)
        best = np.full((len(ys), len(xs)), np.inf, dtype=np.float32)
        squared = np.empty_like(best)
        for x, y in points.astype(np.float32):
            dx = xs - x
            dy = ys - y
            np.add((dy * dy)[:, None], (dx * dx)[None, :], out=squared)
            np.minimum(best, squared, out=best)
        return best

    return region & (nearest_sq(positive) < nearest_sq(negative))
