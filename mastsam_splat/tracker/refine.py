"""Granularity refinement: an id the segmenter keeps cutting into pieces becomes one id per piece.

The first view fixes each id's extent: an object the segmenter gave whole there keeps one id even
when later views show its parts, since the parts' correspondences all vote for the whole. When,
for ``frames`` visited frames in a row, an id's pixels are covered by several automatic
segments that each lie inside it (``containment``) and each hold a real share of it
(``min_piece_fraction``), the id is split: one piece keeps the id (``keep``; by default ``evidence``: the piece
holding far more of the id's 3D evidence than the largest piece, else the largest, so two branches of the view
graph that cut one object from different sides keep the id on the same part, and an id carried for a frame or two
onto a larger neighbour stays on its own part; faces of one solid meeting along a convex edge leave it to the
largest; ``seen``: the piece whose surface its 3D evidence has seen far more often; ``largest``), every other
piece becomes a new id, a child of the split id (``split_pieces``; with ``keep="none"`` every piece
gets a new id and the split id names the whole object before the split, ``split_all``). A piece
on which a member of the family absent from the frame owns most of the split id's evidence takes
that member's id instead (``reused_members``): on an orbit, the two branches of the view graph cut
the same object, and the second cut finds the first one's parts in 3D. Parent and children are
one family: fragment merging leaves them apart; after the sequence, members that never share a
frame but share 3D voxels are merged (not a piece with an id it was split from, ``lineal``), and
every frame's pixels of a family are given to the member whose 3D evidence is nearest
(``family_labels``), so frames visited before the split show the pieces too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal, Optional

import cv2
import numpy as np
from scipy.ndimage import find_objects
from scipy.spatial import cKDTree

from mastsam_splat.tracker.segment_table import SegmentTable, id_segment_table, segment_count


@dataclass
class RefineConfig:
    """When an id is split into the pieces the segmenter keeps cutting it into."""

    enabled: bool = True
    """Split an id into one id per piece when the automatic segments keep cutting it (needs the 3D evidence).
    The ids then follow the finest cut the segmenter makes consistently (parts rather than whole objects)."""
    frames: int = 2
    """Visited frames in a row that must show the cut."""
    containment: float = 0.85
    """Fraction of a segment inside the id for it to count as one of the id's pieces."""
    min_piece_fraction: float = 0.15
    """Smallest piece, as a fraction of the id's pixels."""
    min_coverage: float = 0.8
    """Fraction of the id's pixels its pieces must cover together."""
    retroactive: bool = True
    """After the sequence, give every frame's pixels of a split family to the member with the nearest 3D evidence."""
    reuse_share: float = 0.8
    """A piece on which at least this fraction of the split id's 3D points owned by one member of its family, absent
    from the frame, fall takes that member's id instead of a new one: the same part, split off earlier (in another
    branch of the view graph). More than 1: never."""
    reuse_min_fraction: float = 0.1
    """Smallest fraction of the piece's 3D points on known voxels that the member must own."""
    reuse_min_points: int = 8
    """Fewest 3D points on a member's voxels for a piece to take its id."""
    keep: Literal["largest", "seen", "evidence", "none"] = "evidence"
    """Which piece keeps the split id: ``none`` (every piece gets a new id and the split id, the whole object,
    labels only the frames before the split), ``largest``, or ``seen``: the piece whose surface the id's 3D evidence
    has seen most often (the mean count of the id in its 3D points' voxels) when that is ``seen_ratio`` times as
    often as the largest piece's, else the largest piece; ``evidence``: the piece holding most of the id's 3D
    evidence (every voxel the id was seen in, weighted by how often, counts for the piece whose 3D points lie
    nearest) when that is ``evidence_ratio`` times the largest piece's and the two are not faces of one solid (a
    convex edge between them in the frame's depth map), else the largest piece: the id stays on the surface it was
    tracked on over the sequence, whatever the piece's size in this view."""
    seen_ratio: float = 2.0
    """With ``keep="seen"``: how many times as often as the largest piece's surface the id must have seen another
    piece's for that piece to keep the id."""
    evidence_ratio: float = 3.0
    """With ``keep="evidence"``: how many times the largest piece's share of the id's 3D evidence another piece must
    hold to keep the id (nearly even shares say little about which piece the id followed)."""


def pieces(
    labels: np.ndarray,
    auto: np.ndarray,
    config: RefineConfig,
    min_area: int,
    counted: Optional[SegmentTable] = None,
) -> dict[int, list[int]]:
    """For every id of ``labels`` [H, W] cut into pieces by ``auto`` [H, W]: its pieces' segment numbers, largest
    first (``counted``: their ``id_segment_table`` when the caller has it)."""
    num_segments = segment_count(auto)
    if num_segments < 2:
        return {}
    ids, table = id_segment_table(labels, auto, num_segments) if counted is None else counted
    if len(ids) < 2:
        return {}
    id_area = table.sum(axis=1)
    seg_area = table.sum(axis=0)
    rows = table[:, 1:]  # every id's pixels in every segment, all tested at once
    inside = (rows >= config.containment * seg_area[1:]) & (rows >= config.min_piece_fraction * id_area[:, None])
    inside &= rows >= min_area
    inside[0] = False
    cut = (inside.sum(axis=1) >= 2) & (np.where(inside, rows, 0).sum(axis=1) >= config.min_coverage * id_area)
    out: dict[int, list[int]] = {}
    for k in np.flatnonzero(cut).tolist():
        found = np.flatnonzero(inside[k]) + 1
        out[int(ids[k])] = sorted(found.tolist(), key=lambda s: (-int(table[k, s]), s))
    return out


class Refiner:
    """Counts, per id, the visited frames in a row that cut it, and records the families split so far."""

    def __init__(self, config: RefineConfig) -> None:
        self.config = config
        self._streak: dict[int, int] = {}
        self.parent: dict[int, int] = {}
        """Child id -> the id it was split from (its family's root)."""
        self.retired: set[int] = set()
        """Ids split into pieces that kept none of them (they name the whole object before the split)."""

    def due(
        self, labels: np.ndarray, auto: np.ndarray, min_area: int, counted: Optional[SegmentTable] = None
    ) -> dict[int, list[int]]:
        """This frame's cuts; returns the ids to split now, with their pieces' segment numbers (``counted``: see
        ``pieces``)."""
        if not self.config.enabled:
            return {}
        cut = pieces(labels, auto, self.config, min_area, counted)
        streak = {i: self._streak.get(i, 0) + 1 for i in cut}
        self._streak = streak
        ready = {i: segs for i, segs in cut.items() if streak[i] >= max(self.config.frames, 1)}
        for i in ready:
            del self._streak[i]
        return ready

    def record(self, parent: int, child: int) -> None:
        """``child`` was split off ``parent``."""
        self.parent[child] = parent

    def _ancestors(self, obj_id: int) -> list[int]:
        out: list[int] = []
        while obj_id in self.parent and self.parent[obj_id] not in out:
            obj_id = self.parent[obj_id]
            out.append(obj_id)
        return out

    def root(self, obj_id: int) -> int:
        """The oldest id of ``obj_id``'s family."""
        ancestors = self._ancestors(obj_id)
        return ancestors[-1] if ancestors else obj_id

    def retire(self, obj_id: int) -> None:
        self.retired.add(obj_id)

    def lineal(self, a: int, b: int) -> bool:
        """Whether one id was split (directly or further up) from the other: a whole and its part."""

        return a in self._ancestors(b) or b in self._ancestors(a)

    def related(self, a: int, b: int) -> bool:
        """Whether two ids belong to one split family."""
        return self.root(a) == self.root(b) and (a in self.parent or b in self.parent)

    def families(self) -> dict[int, list[int]]:
        """Root -> every member (root included)."""
        out: dict[int, list[int]] = {}
        for child in self.parent:
            out.setdefault(self.root(child), []).append(child)
        return {root: [root, *sorted(children)] for root, children in out.items()}

    def relabel(self, lut: np.ndarray) -> None:
        """Follow an id mapping (merges) in the recorded families."""
        parent: dict[int, int] = {}
        for child, root in self.parent.items():
            c, r = int(lut[child]) if child < len(lut) else child, int(lut[root]) if root < len(lut) else root
            if c != r:
                parent[c] = r
        self.parent = parent
        self.retired = {int(lut[i]) if i < len(lut) else i for i in self.retired}


def reused_members(
    segment_of_point: np.ndarray,
    owner_of_point: np.ndarray,
    segments: list[int],
    candidates: list[int],
    config: RefineConfig,
) -> dict[int, int]:
    """Segment -> family member for the pieces of a split (``segments``) on which one of ``candidates``' evidence
    lies: the split id's 3D points (their segment ``segment_of_point`` [N], 0 outside the pieces, and the id owning
    their evidence voxel ``owner_of_point`` [N], 0 where none) owned by the member fall on that piece; each member
    goes to one piece and each piece to one member, the best-supported first."""
    if not candidates or len(segment_of_point) == 0:
        return {}
    known = owner_of_point > 0
    scored = []
    for member in candidates:
        own = owner_of_point == member
        total = int(np.count_nonzero(own & (segment_of_point > 0)))
        for seg in segments:
            votes = int(np.count_nonzero(own & (segment_of_point == seg)))
            seen = int(np.count_nonzero(known & (segment_of_point == seg)))
            if (
                votes >= config.reuse_min_points
                and votes >= config.reuse_share * total
                and votes >= config.reuse_min_fraction * seen
            ):
                scored.append((votes / max(seen, 1), votes, seg, member))
    out: dict[int, int] = {}
    for _, _, seg, member in sorted(scored, reverse=True):
        if seg not in out and member not in out.values():
            out[seg] = member
    return out


def evidence_shares(
    voxel_xyz: np.ndarray, voxel_counts: np.ndarray, point_xyz: np.ndarray, piece_of_point: np.ndarray, pieces: list[int]
) -> dict[int, float]:
    """Piece -> the count of the id's evidence voxels (centres ``voxel_xyz`` [V, 3], integer counts ``voxel_counts``
    [V]) whose nearest 3D point (``point_xyz`` [N, 3], of piece ``piece_of_point`` [N]) lies on the piece; 0 for a
    piece without points. A voxel's count is how often the id was seen there, so the piece the id was tracked on for
    most of the sequence holds most of it, even where this view shows it smaller than the others."""
    *_, (shares, _) = _share_bounds(voxel_xyz, voxel_counts, point_xyz, piece_of_point, pieces)
    return {p: float(share) for p, share in zip(pieces, shares)}


def evidence_holder(
    voxel_xyz: np.ndarray,
    voxel_counts: np.ndarray,
    point_xyz: np.ndarray,
    piece_of_point: np.ndarray,
    pieces: list[int],
    ratio: float,
) -> Optional[int]:
    """The piece of ``pieces`` (largest first) with the largest ``evidence_shares`` (ties: the earlier piece) when it
    is not the first piece, holds some evidence and at least ``ratio`` times the first piece's share; else ``None``.

    Only this comparison is wanted, so the shares are bounded from blocks of voxels first (``_share_bounds``) and the
    search stops as soon as the bounds decide it: far from where two pieces meet, whole blocks of voxels are settled
    by one search per block and piece."""
    bounds = _share_bounds(voxel_xyz, voxel_counts, point_xyz, piece_of_point, pieces, ratio >= 0)
    for low, high in bounds:
        if (low == high).all():  # exact shares (the last bounds always are)
            held = int(np.argmax(low))
            if held == 0 or low[held] <= 0 or low[held] < ratio * low[0]:
                return None
            return pieces[held]
        # (ratio >= 0 here: its products grow with the shares)
        if not any(high[j] > 0 and high[j] >= ratio * low[0] for j in range(1, len(pieces))):
            return None
        held = int(np.argmax(low))
        if held > 0 and low[held] > 0 and low[held] >= ratio * high[0] and (low[held] > np.delete(high, held)).all():
            return pieces[held]
    raise AssertionError("the last bounds are exact")


BLOCK_MIN_VOXELS = 1024
"""Fewest evidence voxels for ``_share_bounds`` to settle voxels by blocks before searching each one's nearest point."""
BLOCK_CELLS = 16
"""Blocks along the evidence's longest side at the first level of ``_share_bounds``; each level halves the blocks."""


def _share_bounds(
    voxel_xyz: np.ndarray,
    voxel_counts: np.ndarray,
    point_xyz: np.ndarray,
    piece_of_point: np.ndarray,
    pieces: list[int],
    by_blocks: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Lower and upper bounds [P] (in the order of ``pieces``) of ``evidence_shares``, tighter at each step; the last
    ones are the shares (both equal).

    A voxel is settled on a piece when it is nearer to the piece's points than to any other's by a margin: for a
    block of voxels with centre ``c``, the distance ``d_k(c)`` from ``c`` to each piece's nearest point is searched
    once, and a voxel ``v`` of the block lies nearer to piece ``a`` than to every other piece ``b`` when
    ``d_b(c) - d_a(c) > 2 |v - c|`` (each distance changes by at most ``|v - c|`` from ``c`` to ``v``), whatever
    point of ``a`` is its nearest. Blocks are halved level by level (``by_blocks``; with at least
    ``BLOCK_MIN_VOXELS`` voxels); the voxels left are searched one by one with the same tree of all the pieces'
    points, so the shares are those of a search per voxel. The unsettled voxels' counts may go to any piece with
    points (the upper bounds). Sums of integer counts: exact in any order."""
    count = len(pieces)
    zeros = np.zeros(count)
    on = np.isin(piece_of_point, pieces)
    if len(voxel_xyz) == 0 or not on.any():
        yield zeros, zeros
        return
    xyz = point_xyz[on]
    ranked = np.argsort(pieces, kind="stable")
    index = ranked[np.searchsorted(np.asarray(pieces)[ranked], piece_of_point[on])]  # position in ``pieces``
    weights = voxel_counts.astype(np.float64)
    shown = np.flatnonzero(np.bincount(index, minlength=count))
    if len(shown) == 1:
        shares = zeros.copy()
        shares[shown[0]] = weights.sum()
        yield shares, shares
        return
    owner = np.full(len(voxel_xyz), -1, dtype=np.intp)
    if by_blocks and len(voxel_xyz) >= BLOCK_MIN_VOXELS:
        low, left = zeros.copy(), weights.sum()
        for settled in _settle_blocks(voxel_xyz, xyz, index, shown, owner):
            low += np.bincount(owner[settled], weights=weights[settled], minlength=count)
            left -= weights[settled].sum()
            high = low.copy()
            high[shown] += left
            yield low.copy(), high
    rest = np.flatnonzero(owner < 0)
    if len(rest):
        _, nearest = cKDTree(xyz).query(voxel_xyz[rest])
        owner[rest] = index[nearest]
    shares = np.bincount(owner, weights=weights, minlength=count)
    yield shares, shares


def _settle_blocks(
    voxel_xyz: np.ndarray, xyz: np.ndarray, piece: np.ndarray, shown: np.ndarray, owner: np.ndarray
) -> Iterator[np.ndarray]:
    """Level by level, write into ``owner`` [V] the piece (of ``shown``; ``piece`` [N] of each point ``xyz`` [N, 3])
    of the voxels ``voxel_xyz`` [V, 3] a block settles (see ``_share_bounds``), yielding their indices; stops when
    blocks hold about one voxel each."""
    offset = np.ascontiguousarray(voxel_xyz.T)  # [3, V]: one coordinate per row
    origin = offset.min(axis=1)
    offset -= origin[:, None]
    sides = offset.max(axis=1)
    extent = float(sides.max())
    if not extent > 0:
        return
    # (trees built fast: their distances are the same whatever their shape)
    trees = [cKDTree(xyz[piece == k], balanced_tree=False, compact_nodes=False) for k in shown]
    size = extent / BLOCK_CELLS
    slack = 1e-9 * extent  # far above the rounding of the distances
    todo: Optional[np.ndarray] = None  # every voxel
    while (todo is None or len(todo)) and size > 1e-6 * extent:  # (voxels at one place never part)
        at = offset if todo is None else offset[:, todo]
        # non-negative: truncation is the floor (any block would do: the test below measures each voxel's offset)
        cell = (at / size).astype(np.int64)
        dims = (sides / size).astype(np.int64) + 1  # (no voxel's cell beyond: truncation keeps the order)
        flat = (cell[0] * dims[1] + cell[1]) * dims[2] + cell[2]
        block, first = _blocks(flat, int(np.prod(dims)))
        if len(first) * len(shown) > at.shape[1]:  # about a search per voxel: search each voxel instead
            return
        centre = (cell[:, first] + 0.5) * size  # [3, B]
        query = (centre + origin[:, None]).T
        dist = np.stack([tree.query(query)[0] for tree in trees])  # [pieces, B]
        nearest = np.argmin(dist, axis=0)
        gap = np.partition(dist, 1, axis=0)
        gap = gap[1] - gap[0]
        at = at - centre[:, block]
        off = np.sqrt(np.einsum("ij,ij->j", at, at))
        done = gap[block] > 2 * (1 + 1e-6) * off + slack
        settled = np.flatnonzero(done) if todo is None else todo[done]
        owner[settled] = shown[nearest[block[done]]]
        yield settled
        todo = np.flatnonzero(~done) if todo is None else todo[~done]
        size /= 2


def _blocks(flat: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """The block [V] of every voxel of flat cell numbers ``flat`` [V] (below ``cells``; blocks: the distinct cells),
    and one voxel [B] of each block."""
    if cells <= 4 * len(flat) + 4096:  # a dense table is cheaper than sorting
        present = np.bincount(flat, minlength=cells) > 0
        number = np.cumsum(present) - 1
        block = number[flat]
        count = int(number[-1]) + 1
    else:
        _, block = np.unique(flat, return_inverse=True)
        block = block.reshape(-1)
        count = int(block.max()) + 1
    first = np.empty(count, dtype=np.intp)
    first[block[::-1]] = np.arange(len(block) - 1, -1, -1)
    return block, first


def split_pieces(labels: np.ndarray, auto: np.ndarray, obj_id: int, segments: list[int], new_ids: list[int]) -> np.ndarray:
    """``labels`` with the pixels of ``obj_id`` in ``segments[1:]`` given ``new_ids`` (one per segment)."""
    out = labels.copy()
    own = labels == obj_id
    for seg, new in zip(segments[1:], new_ids):
        out[own & (auto == seg)] = new
    return out


def split_all(labels: np.ndarray, auto: np.ndarray, obj_id: int, segments: list[int], new_ids: list[int]) -> np.ndarray:
    """``labels`` with the pixels of ``obj_id`` in each of ``segments`` given its id of ``new_ids``, and its pixels
    outside them given the id of the nearest piece: ``obj_id`` leaves the frame."""
    out = labels.copy()
    own = labels == obj_id
    pieces_image = np.zeros(labels.shape, dtype=np.int64)
    for seg, new in zip(segments, new_ids):
        pieces_image[own & (auto == seg)] = new
    if not pieces_image.any():
        return out
    rest = own & (pieces_image == 0)
    if rest.any():
        pieces_image[rest] = nearest_seed(pieces_image, rest)
    out[own] = pieces_image[own]
    return out


def nearest_seed(seeds: np.ndarray, where: Optional[np.ndarray] = None) -> np.ndarray:
    """[H, W] the value of the nearest non-zero pixel of ``seeds`` [H, W] (which holds at least one); only at the
    pixels of ``where`` [H, W] (bool), in row-major order, when given.

    OpenCV's distance transform with one label per seed pixel (a two-pass 5x5 chamfer approximation of the Euclidean
    distance, within about 2% of it): the seed it picks is at most a few percent farther than the nearest one, so
    only pixels almost equally far from two seeds can differ from an exact transform, at a fraction of its cost.
    """
    seeded = seeds != 0
    return _nearest_seed_value(seeded, seeds[seeded], where)


def _nearest_seed_value(seeded: np.ndarray, values: np.ndarray, where: Optional[np.ndarray] = None) -> np.ndarray:
    """``nearest_seed`` of the seeds ``seeded`` [H, W] (bool, at least one) holding ``values`` (row-major order)."""
    _, nearest = cv2.distanceTransformWithLabels(
        (~seeded).view(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # The labels number the seed pixels (the input's zero pixels) in row-major order from 1.
    table = np.zeros(len(values) + 1, dtype=values.dtype)
    table[1:] = values
    return table[nearest] if where is None else table[nearest[where]]


def family_labels(
    labels: np.ndarray, evidence: np.ndarray, members: list[int], receivers: Optional[list[int]] = None
) -> np.ndarray:
    """``labels`` [H, W] with every pixel of the family ``members`` given to the member (of ``receivers``, default
    all members) of the nearest evidence pixel [H, W] (unchanged where no receiver has evidence in the frame)."""
    if not len(members):
        return labels
    return families_labels(labels, evidence, [(list(members), list(members if receivers is None else receivers))])


def families_labels(
    labels: np.ndarray, evidence: np.ndarray, families: list[tuple[list[int], list[int]]]
) -> np.ndarray:
    """``labels`` [H, W] after ``family_labels`` of every ``(members, receivers)`` of ``families`` in turn (families
    are disjoint): each family's pixels and seeds are found with one look-up per pixel for all families, and
    each family's nearest seeds are searched in its own box (its pixels only ever change to its own ids), and a
    family with the evidence of one receiver in the frame gives it every pixel without a search."""
    if not families:
        return labels
    size = max(max(m) for m, _ in families) + 2  # the last entry stands for every larger id
    # family numbers as int32: the per-pixel maps (and their pair codes in ``_boxes``) at half the width of int64
    family_of = np.zeros(size, dtype=np.int32)
    seed_of = np.zeros(size, dtype=np.int32)
    for k, (members, receivers) in enumerate(families, start=1):
        family_of[members] = k
        seed_of[receivers] = k
    in_family = np.take(family_of, labels, mode="clip")
    in_seeds = np.take(seed_of, evidence, mode="clip")
    family_boxes, seed_boxes = _boxes(in_family, in_seeds, len(families))
    out = labels
    for k in range(1, len(families) + 1):
        family_box, seed_box = family_boxes[k - 1], seed_boxes[k - 1]
        if family_box is None or seed_box is None:
            continue
        box = _union(family_box, seed_box)
        seeded = in_seeds[box] == k
        values = evidence[box][seeded]
        if out is labels:
            out = labels.copy()
        inside = in_family[box] == k
        if (values == values[0]).all():  # one receiver has evidence here: it is every pixel's nearest
            out[box][inside] = values[0]
        else:
            out[box][inside] = _nearest_seed_value(seeded, values, inside)
    return out


Box = tuple[slice, slice]


def _boxes(
    first: np.ndarray, second: np.ndarray, count: int
) -> tuple[list[Optional[Box]], list[Optional[Box]]]:
    """``find_objects`` of two label images [H, W] (labels 1..``count``) from one pass over a combined image: the
    box of every (first, second) label pair, each label's box the union of its pairs'."""
    pairs = find_objects(first * (count + 1) + second, max_label=(count + 1) ** 2 - 1)
    out: tuple[list[Optional[Box]], list[Optional[Box]]] = ([None] * count, [None] * count)
    for code, box in enumerate(pairs, start=1):
        if box is None:
            continue
        for boxes, label in zip(out, divmod(code, count + 1)):
            if label:
                held = boxes[label - 1]
                boxes[label - 1] = box if held is None else _union(held, box)
    return out


def _union(a: Box, b: Box) -> Box:
    """The smallest box holding boxes ``a`` and ``b``."""
    rows = slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop))
    return rows, slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop))
