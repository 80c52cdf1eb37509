"""Overlap filtering: every pixel belongs to at most one id.

Two situations:
- automatic masks (which may nest, e.g. an object and its parts) are made disjoint by
  painting them from large to small, so finer segments stay visible;
- prompted masks of tracked ids are first checked for near-duplicates (two ids that now
  segment the same thing: the newer id is merged into the older one, unless the two were seen
  side by side before, two objects, and the newer one's prompt only strayed), then each pixel
  claimed by several ids goes to the id with the nearest positive prompt, weighted by the
  masks' scores (the id whose own points support that pixel most).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import cv2
import numpy as np

from mastsam_splat.errors import check_option
from mastsam_splat.tracker.prompting import Prompt
from mastsam_splat.types import Mask


@dataclass
class OverlapConfig:
    """When two tracked ids count as one (near-duplicate prompted masks)."""

    merge_iou: float = 0.8
    """Prompted masks of two ids overlapping with IoU above this are merged into the older id."""
    apart_share: float = 0.5
    """Two ids both present (``min_area`` pixels each) in at least this share of the earlier frames showing the
    younger one, and in two frames or more, were seen side by side: they are not merged on one frame's
    near-duplicate masks, the younger id's mask is left out of the frame instead (its prompt strayed onto the
    older id's object, as after a wide-baseline step). Above 1: every near-duplicate pair merges."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_option(0 < self.merge_iou <= 1, "tracker.overlap.merge-iou", "in (0, 1]", self.merge_iou)
        check_option(self.apart_share > 0, "tracker.overlap.apart-share", "> 0", self.apart_share)


def _bbox(mask: np.ndarray) -> Optional[tuple[int, int, int, int]]:
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of the pixels of boolean ``mask`` [H, W] (``None`` when empty)."""
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))  # (OpenCV: one vectorised pass)
    if w == 0:
        return None
    return y, y + h, x, x + w


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks [H, W] (0 when both are empty)."""
    inter = np.count_nonzero(a & b)
    union = np.count_nonzero(a | b)
    return inter / union if union else 0.0


def pairwise_iou(
    masks: Sequence[np.ndarray],
    above: Optional[float] = None,
    boxes: Optional[Sequence[Optional[tuple[int, int, int, int]]]] = None,
) -> np.ndarray:
    """[N, N] IoU of boolean masks, computed only where bounding boxes overlap (the pairs whose boxes overlap are
    found for all pairs at once; only their pixels are compared).

    With ``above``, only the pairs whose IoU may exceed it are compared (the others read 0): a pair's intersection
    is at most the smaller area and the overlap of the boxes, and the IoU grows with the intersection, so the IoU
    at that bound (the same division) is at least the pair's own. ``boxes``: a box (``Mask.box``) holding every
    pixel of each mask where known (``None``: found here); the pixels are counted inside them."""
    n = len(masks)
    out = np.zeros((n, n))
    if n < 2:
        return out
    known = list(boxes) if boxes is not None else [None] * n
    found = [_bbox(m) if b is None else b for m, b in zip(masks, known)]
    areas = [
        int(np.count_nonzero(m if b is None else m[b[0] : b[1], b[2] : b[3]])) for m, b in zip(masks, found)
    ]
    box = np.array([b if b is not None else (0, 0, 0, 0) for b in found], dtype=np.int64).reshape(n, 4)
    r0 = np.maximum(box[:, None, 0], box[None, :, 0])
    r1 = np.minimum(box[:, None, 1], box[None, :, 1])
    c0 = np.maximum(box[:, None, 2], box[None, :, 2])
    c1 = np.minimum(box[:, None, 3], box[None, :, 3])
    overlapping = np.triu((r0 < r1) & (c0 < c1), k=1)  # (an empty mask's box is empty)
    pairs = np.nonzero(overlapping)
    if above is not None:
        size = np.array(areas, dtype=np.int64)
        i, j = pairs
        most = np.minimum(np.minimum(size[i], size[j]), (r1[i, j] - r0[i, j]) * (c1[i, j] - c0[i, j]))
        union = size[i] + size[j] - most
        may = most > 0  # (the boxes overlap: the union holds at least one pixel)
        may[may] = most[may] / union[may] > above
        pairs = (i[may], j[may])
    for i, j in zip(*(k.tolist() for k in pairs)):
        rows, cols = slice(int(r0[i, j]), int(r1[i, j])), slice(int(c0[i, j]), int(c1[i, j]))
        inter = np.count_nonzero(masks[i][rows, cols] & masks[j][rows, cols])
        union = areas[i] + areas[j] - inter
        out[i, j] = out[j, i] = inter / union if union else 0.0
    return out


def merge_duplicates(
    masks: dict[int, Mask],
    prompts: dict[int, Prompt],
    config: OverlapConfig,
    apart: Optional[Callable[[int, int], bool]] = None,
) -> tuple[dict[int, Mask], dict[int, Prompt], dict[int, int]]:
    """Merge ids whose masks overlap with IoU above ``config.merge_iou`` into the older (smaller) id.

    The surviving id gets the union of both masks and both sets of positive prompts. A pair of ids (the oldest of
    each side's merges) that ``apart`` says are two objects is not merged: the younger one is left out.

    Returns:
        ``(masks, prompts, merged)`` where ``merged`` maps each removed id to the id it joined (the ids left out
        are in neither).
    """
    ids = sorted(masks)
    iou = pairwise_iou([masks[i].segmentation for i in ids], above=config.merge_iou, boxes=[masks[i].box for i in ids])
    parent = {i: i for i in ids}
    left_out: set[int] = set()

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in np.argwhere(np.triu(iou > config.merge_iou, k=1)).tolist():  # (pairs in row-major order)
        ra, rb = root(ids[a]), root(ids[b])
        if ra == rb or ra in left_out or rb in left_out:
            continue
        if apart is not None and apart(min(ra, rb), max(ra, rb)):
            left_out.add(max(ra, rb))
        else:
            parent[max(ra, rb)] = min(ra, rb)
    ids = [i for i in ids if root(i) not in left_out]
    merged = {i: root(i) for i in ids if root(i) != i}
    out_masks: dict[int, Mask] = {}
    out_prompts: dict[int, Prompt] = {}
    for i in ids:
        r = root(i)
        if r not in out_masks:
            # (a merged mask is a new array, the union: the given masks are never written to, nor copied)
            out_masks[r] = masks[i]
            out_prompts[r] = prompts[i]
            continue
        seg = out_masks[r].segmentation | masks[i].segmentation
        out_masks[r] = Mask(
            seg, score=max(out_masks[r].score, masks[i].score), box=_union_box(out_masks[r].box, masks[i].box)
        )
        p = out_prompts[r]
        out_prompts[r] = Prompt(
            positive=np.concatenate([p.positive, prompts[i].positive]),
            negative=p.negative,
        )
    return out_masks, out_prompts, merged


def _union_box(
    a: Optional[tuple[int, int, int, int]], b: Optional[tuple[int, int, int, int]]
) -> Optional[tuple[int, int, int, int]]:
    """A box holding both boxes (``None`` when either is not known)."""
    if a is None or b is None:
        return None
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])


def resolve_overlaps(
    masks: dict[int, Mask], prompts: dict[int, Prompt], shape: tuple[int, int]
) -> np.ndarray:
    """Label image [H, W] (int64) from possibly overlapping masks of tracked ids.

    A pixel claimed by one id gets it; a pixel claimed by several goes to the claimant whose
    nearest positive prompt is closest, the distance divided by ``0.5 + 0.5 * score`` so a
    confident mask wins close calls. Ties go to the older (smaller) id.
    """
    labels = np.zeros(shape, dtype=np.int64)
    if not masks:
        return labels
    ids = sorted(masks)
    # Each mask painted in id order (one masked write each, inside its box) and counted into a small per-pixel tally.
    count = np.zeros(shape, dtype=np.uint8 if len(ids) <= np.iinfo(np.uint8).max else np.int64)
    for i in ids:
        window = masks[i].window()
        segmentation = masks[i].segmentation[window]
        np.copyto(labels[window], i, where=segmentation)
        count[window] += segmentation
    flat = labels.reshape(-1)
    contested_flat = np.flatnonzero(count > 1)
    if len(contested_flat) == 0:
        return labels
    contested = np.stack(np.unravel_index(contested_flat, shape), axis=1)
    xy = contested[:, ::-1].astype(np.float64) + 0.5
    cost = np.full((len(contested), len(ids)), np.inf)
    for column, i in enumerate(ids):
        claims = masks[i].segmentation.reshape(-1)[contested_flat]
        if not claims.any():
            continue
        positive = prompts[i].positive if i in prompts else np.zeros((0, 2))
        if len(positive):
            d = nearest_distance(np.asarray(positive, dtype=np.float64), xy[claims])
        else:
            d = np.full(int(claims.sum()), 1e9)
        cost[claims, column] = d / (0.5 + 0.5 * float(np.clip(masks[i].score, 0.0, 1.0)))
    winner = np.asarray(ids)[np.argmin(cost, axis=1)]
    flat[contested_flat] = winner
    return labels


def nearest_distance(sites: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] Euclidean distance from each of ``points`` [N, 2] to the nearest of ``sites`` [S, 2] (S >= 1).

    By brute force, site by site: prompts are a few points per id, so a running minimum of the squared distances
    (one pass over the points per site, one square root at the end) costs less than a k-d tree per id or a full
    distance table. The squared distances are the same sums the k-d tree and ``cdist`` form, and the square root
    is monotone, so the distances are those ``cKDTree.query`` returns.
    """
    points = np.asarray(points, dtype=np.float64)
    x = np.ascontiguousarray(points[:, 0])
    y = np.ascontiguousarray(points[:, 1])
    best = np.full(len(points), np.inf)
    dy = np.empty(len(points))
    for sx, sy in np.asarray(sites, dtype=np.float64).tolist():
        dx = x - sx
        dx *= dx
        np.subtract(y, sy, out=dy)
        dy *= dy
        dx += dy
        np.minimum(best, dx, out=best)
    return np.sqrt(best, out=best)


def auto_label_image(masks: Sequence[Mask], shape: tuple[int, int], min_area: int) -> np.ndarray:
    """Make automatic masks disjoint as a label image [H, W] (int64, 0 = none, segments 1..n).

    Masks are painted from large to small, so finer segments stay on top; a segment keeps
    what stays visible of its mask when that is at least ``min_area`` pixels. Segments are
    numbered by decreasing visible area (ties by mask size, then score), a stable order for new ids.
    """
    owner = np.zeros(shape, dtype=np.int64)
    masks = [m for m in masks if m.area >= min_area]  # too small to keep: they do not cover anything else
    if not masks:
        return owner
    order = sorted(range(len(masks)), key=lambda i: (-masks[i].area, -masks[i].score, i))
    for rank, i in enumerate(order, start=1):
        window = masks[i].window()  # (a masked write inside the mask's box: most masks are a small part of the image)
        np.copyto(owner[window], rank, where=masks[i].segmentation[window])
    areas = np.bincount(owner.ravel(), minlength=len(order) + 1)
    keep = [r for r in range(1, len(areas)) if areas[r] >= min_area]
    keep.sort(key=lambda r: (-areas[r], r))
    remap = np.zeros(len(areas), dtype=np.int64)
    remap[keep] = np.arange(1, len(keep) + 1)
    return remap[owner]
