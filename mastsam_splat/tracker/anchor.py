"""3D-anchored association: every id's 3D evidence votes on which automatic segment carries which id.

The propagation chain carries ids from one frame to the next, so its errors add up over a wide
baseline or a 360° orbit. The 3D evidence does not drift: every id keeps the voxels its 3D
points fell into, with how often it was seen there (``evidence.AnchorEvidence``). In a new frame
with a camera, each voxel's owner (the id seen there most often) is projected into the image
where it is visible (``evidence_image.project_evidence``). That evidence label image's pixels vote
on the frame's automatic segments (``anchor_labels``):

- an id the propagation chain carried whose pixels' votes name another id (``share`` of them)
  is renamed to that id, whatever the chain said: drift is repaired, not passed on;
- a segment held by one id whose votes name another id (``reassign``; the named id may hold
  other segments of the frame) goes to that id: the chain carried a wrong id onto that segment
  only, which renaming the whole id would not repair;
- a segment the chain left (mostly) unlabelled, seen before over most of its area, whose votes
  agree on an id absent from the frame takes that id near its evidence (an id that is present
  is left to the gap filling and the memory: the segment may be a finer cut of it);
- with ``split``, a segment held by one id whose votes are split between a few ids that each hold
  ``split_share`` of them (the segmenter merged what the evidence knows as several ids) is split
  between them, every pixel taking the id of the nearest evidence pixel inside the segment;
- otherwise the chain's labels stay.

Ids whose evidence is mostly voxels owned by an older id are that object seen under a second id
(``evidence_merges``); they are merged in every frame so far.

After the sequence the evidence is complete, and frames visited early are checked again
(``retroactive``, ``reassign_segments`` with the ids of one object pooled): a segment held by one
object whose evidence names another takes that object's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.ndimage import distance_transform_edt, find_objects

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.evidence import MAX_ROWS, AnchorEvidence
from mastsam_splat.tracker.nearest_feature import feature_transform_near
from mastsam_splat.tracker.segment_table import SegmentTable, id_segment_table, segment_count


@dataclass
class AnchorConfig:
    """The 3D-anchored association of ids with automatic segments."""

    enabled: bool = True
    """Let every id's 3D evidence, projected into frames with a camera, vote on which segment carries which id
    (part of the 3D memory: off when the memory is off)."""
    voxel_fraction: float = 0.01
    """Evidence voxel size as a fraction of the first frame's median viewing distance."""
    depth_tolerance: float = 0.02
    """A projected voxel is visible when its depth is within this fraction (or one voxel) of the surface in front."""
    zbuffer_cell: int = 4
    """Cell size (pixels) of the evidence z-buffer used when the frame has no depth map."""
    footprint: bool = True
    """In frames without a depth map, draw every visible voxel over the pixels it covers at its depth (a disc as
    wide as the voxel, at most ``max_footprint_fraction`` of the image diagonal across) rather than on one pixel:
    sparse 3D points (triangulated matches) then vote on the surface they sample, not on a few scattered pixels.
    Where discs overlap a pixel takes the voxel whose projection is nearest. (Points from a depth map already
    sample every few pixels.)"""
    max_footprint_fraction: float = 0.02
    """Widest footprint of one voxel, as a fraction of the image diagonal."""
    max_rows: int = MAX_ROWS
    """(voxel, id) rows the evidence holds (16 bytes each, and about as much again for what is derived from them)
    before the rows of ids seen less often than a voxel's owner are thinned out (every voxel keeps its owner):
    bounds its memory on long captures."""
    rename: bool = True
    """Rename an id of the propagation chain whose pixels' evidence names another id."""
    assign: bool = True
    """Give segments the chain leaves unlabelled to the id their evidence names."""
    reassign: bool = True
    """In frames without a depth map, give a segment held by one id to the other id its evidence names (present
    elsewhere in the frame or not): the chain carried a wrong id onto that segment only, so renaming the whole id
    would not repair it. With a depth map the chain's correspondences are dense and the segments' ids are left to
    it (there, reassigning coarsened the object level)."""
    reassign_purity: float = 0.9
    """Only voxels whose owner holds at least this share of their observations vote on reassigning a segment
    (voxels the chain has labelled both ways, as on the border of two objects or a thin object lying on another,
    do not decide)."""
    retroactive: bool = True
    """After the sequence, check every frame without a depth map again as ``reassign`` does, against the evidence
    of the whole sequence and with the votes of one object's ids pooled: a segment of a frame visited early,
    labelled before later views showed which object its surface belongs to, takes the id the completed evidence
    names. Its votes decide at ``min_coverage`` of what the frame's evidence density puts on the segment."""
    retroactive_sfm: bool = False
    """Also run the check after the sequence (``retroactive``) when the 3D points are the capture's SfM points. Off:
    every view of a point votes on it there, so the pooled votes spread a merge most views show (the segmenter
    joining two surfaces, or the chain carrying one id over both) onto the views that kept them apart; on kitchen
    and fox the largest object grew from 0.53 to 0.68 and from 0.54 to 0.58 of the view with it."""
    retroactive_share: float = 0.6
    """A segment goes to the object holding at least this fraction of its votes in the check after the sequence
    (its holder at most the rest): every view has voted by then, and only pure voxels vote."""
    split: bool = False
    """Split a segment held by one id between the several ids its evidence names (off: where the segmenter is
    coarser than the evidence, the evidence's own boundaries are rarely better than the chain's)."""
    reach_fraction: float = 0.02
    """Unlabelled pixels take an id only this close (fraction of the image diagonal) to its evidence: the rest
    of a segment is content seen for the first time."""
    assign_min_seen: float = 0.6
    """An unlabelled segment takes an id only when its evidence covers at least this fraction of it, relative to
    the evidence density on the frame's labelled pixels (a segment mostly seen for the first time is left to the
    new regions)."""
    min_votes: int = 6
    """Fewest evidence pixels in a segment for its votes to decide."""
    min_coverage: float = 0.05
    """Fewest evidence pixels, as a fraction of the segment's area, for its votes to decide. For giving a segment to
    an absent id the fraction is scaled by the frame's evidence density (the share of its labelled pixels carrying
    evidence), so a few triangulated points can bring an id back as a dense depth map does; renaming a carried id
    keeps the plain fraction (a handful of sparse votes overruling the chain's id repairs less than it breaks)."""
    share: float = 0.7
    """A segment goes to the id holding at least this fraction of its evidence votes."""
    split_share: float = 0.2
    """Ids holding at least this fraction of a segment's votes (together ``share``) split the segment."""
    merge_overlap: float = 0.9
    """An id whose evidence voxels are at least this fraction owned by one older id is merged into it."""
    merge_min_voxels: int = 8
    """Ids with fewer evidence voxels are not merged by their evidence."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_fraction(self.max_footprint_fraction, "tracker.anchor.max-footprint-fraction")
        check_option(self.max_rows >= 1, "tracker.anchor.max-rows", ">= 1", self.max_rows)
        check_fraction(self.reassign_purity, "tracker.anchor.reassign-purity")
        check_fraction(self.retroactive_share, "tracker.anchor.retroactive-share")


@dataclass
class AnchorResult:
    """Labels after the 3D vote and what it changed."""

    labels: np.ndarray
    """[H, W] int64."""
    assigned: int = 0
    """Unlabelled segments given to the (absent) id their 3D votes agree on."""
    overruled: int = 0
    """Ids of the propagation chain renamed to the id their 3D votes agree on."""
    split: int = 0
    """Segments split between the ids their 3D votes name."""
    ids: list[int] = field(default_factory=list)
    """Ids given to segments (by agreement or split)."""


def _evidence_ids(evidence: np.ndarray, voted: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pixels of ``evidence`` [H, W] that vote, its ids [E] (0 first) and each voting pixel's index into them
    (``compact_ids`` of the evidence, counted over the voting pixels only); ``voted``: ``evidence > 0`` when the
    caller has it."""
    voted = evidence > 0 if voted is None else voted
    values = evidence[voted]
    counts = np.bincount(values)
    ids = np.flatnonzero(counts)
    if len(ids) == 0 or ids[0] != 0:
        ids = np.r_[0, ids]
    lut = np.zeros(max(len(counts), 1), dtype=np.int64)
    lut[ids] = np.arange(len(ids))
    return voted, ids, lut[values]


def _vote_table(
    groups: np.ndarray,
    evidence: np.ndarray,
    num_groups: int,
    indexed: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Votes [G, E] of the evidence pixels of each group (pixels labelled ``groups``) and the evidence ids [E];
    ``indexed``: ``_evidence_ids(evidence)`` when already computed."""
    voted, ids, voted_index = _evidence_ids(evidence) if indexed is None else indexed
    return _votes(groups[voted], voted_index, num_groups, len(ids)), ids


def _votes(group_of_vote: np.ndarray, voted_index: np.ndarray, num_groups: int, num_ids: int) -> np.ndarray:
    """``_vote_table``'s votes [G, E] from each voting pixel's group and evidence index (column 0 cleared)."""
    table = np.bincount(group_of_vote * num_ids + voted_index, minlength=num_groups * num_ids)
    table = table.reshape(num_groups, num_ids)
    table[:, 0] = 0
    return table


def _evidence_density(seen: np.ndarray, evidence: np.ndarray, voted: Optional[np.ndarray] = None) -> float:
    """Share of the ``seen`` (labelled) pixels that carry ``evidence``: how dense the frame's 3D evidence is
    (``voted``: ``evidence > 0`` when the caller has it)."""
    voted = evidence > 0 if voted is None else voted
    return float(np.count_nonzero(seen & voted)) / max(int(np.count_nonzero(seen)), 1)


def anchor_labels(
    labels: np.ndarray,
    auto: np.ndarray,
    evidence: np.ndarray,
    config: AnchorConfig,
    pure: Optional[np.ndarray] = None,
    counted: Optional[SegmentTable] = None,
) -> AnchorResult:
    """``labels`` [H, W] after the 3D votes of ``evidence`` [H, W] (0: none) on its ids and on ``auto``'s segments;
    ``pure`` [H, W] is the evidence of the voxels pure enough to reassign segments (``None``: no reassignment);
    ``counted``: ``id_segment_table(labels, auto)`` when the caller has it.

    1. ids: an id of ``labels`` whose pixels' evidence names another id (``share`` of the votes, its own
       id at most ``1 - share``) is renamed to that id: the propagation chain carried the wrong id;
    2. segments the labels leave (mostly) unlabelled, seen before, take the absent id their votes agree on,
       near its evidence (``assign``);
    3. segments held by one id whose votes name several ids each holding ``split_share`` are split (``split``).

    The labels given back are a new array, or ``labels`` itself (as int64) when nothing changed.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = labels
    result = AnchorResult(out)
    voted = evidence > 0
    if not voted.any():
        return result
    num_segments = segment_count(auto)
    # the chain's ids over the segments: the ids and their areas, each segment's area and labelled pixels, and the
    # reassignment's holders
    counted = id_segment_table(labels, auto, num_segments) if counted is None else counted
    chain_ids, area = counted.ids, counted.table.sum(axis=1)
    seen_pixels = labels.size - int(area[0])  # (the ids start with 0)
    # each voting pixel's index into the chain's ids: its votes are all the steps below read of the labels
    chain_lut = np.zeros(int(chain_ids[-1]) + 1, dtype=np.int64)
    chain_lut[chain_ids] = np.arange(len(chain_ids))
    chain_of_vote = chain_lut.take(labels[voted])
    # (``_evidence_density``: the share of the labelled pixels carrying evidence)
    density = float(np.count_nonzero(chain_of_vote)) / max(seen_pixels, 1)
    coverage = config.min_coverage * (min(density, 1.0) if seen_pixels else 1.0)
    indexed = _evidence_ids(evidence, voted)
    ids = indexed[1]
    table = _votes(chain_of_vote, indexed[2], len(chain_ids), len(ids))
    if config.rename and len(chain_ids) > 1:
        # Every id's votes at once: its most voted evidence id (the first of the largest count: the largest share)
        # and the shares of that id and of its own id.
        votes = table.sum(axis=1)
        best = np.argmax(table, axis=1)
        rows = np.arange(len(chain_ids))
        own = np.minimum(np.searchsorted(ids, chain_ids), len(ids) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            best_share = table[rows, best] / votes
            own_share = np.where(ids[own] == chain_ids, table[rows, own] / votes, 0.0)
        rename = (
            (votes >= config.min_votes)
            & (votes >= config.min_coverage * area)
            & (ids[best] != chain_ids)
            & (best_share >= config.share)
            & (own_share <= 1.0 - config.share)
        )
        rename[0] = False
        renamed_rows = np.flatnonzero(rename)
        if len(renamed_rows):
            renamed = chain_ids.copy()
            renamed[renamed_rows] = ids[best[renamed_rows]]
            result.overruled = len(renamed_rows)
            result.ids.extend(int(i) for i in ids[best[renamed_rows]])
            chain_lut[chain_ids] = renamed  # (each id's new id, looked up per pixel)
            out = chain_lut.take(labels)
    if num_segments == 0:
        result.labels = out
        return result
    table, ids = _vote_table(auto, evidence, num_segments + 1, indexed)
    votes = table.sum(axis=1)
    seg_area = counted.table.sum(axis=0)
    labelled = seg_area - counted.table[0]  # (row 0: id 0)
    if config.reassign and pure is not None:
        out, moved = reassign_segments(out, auto, pure, config, counted=counted if out is labels else None)
        result.overruled += len(moved)
        result.ids.extend(moved)
    decided = (votes >= config.min_votes) & (votes >= coverage * seg_area)
    decided[0] = False
    best = np.argmax(table, axis=1)
    best_share = table[np.arange(len(table)), best] / np.maximum(votes, 1)
    uncovered = labelled < 0.5 * seg_area
    if config.assign:
        enough = votes >= config.assign_min_seen * density * seg_area
        assign = np.flatnonzero(decided & uncovered & enough & (best_share >= config.share))
        if len(assign):  # of those, the segments whose id is absent from the labels
            if out is labels:  # (the ids present: those counted already)
                present = set(chain_ids[area > 0].tolist())
            else:
                present = set(np.flatnonzero(np.bincount(out.ravel())).tolist())
            assign = assign[np.array([int(ids[best[s]]) not in present for s in assign.tolist()], dtype=bool)]
        if len(assign):
            reach = max(config.reach_fraction * float(np.hypot(*auto.shape)), 2.0)
            target = np.zeros(num_segments + 1, dtype=np.int64)
            target[assign] = ids[best[assign]]
            wanted = target[auto]
            out = _assign_near_evidence(out, wanted, labels > 0, evidence, voted, reach)
            result.assigned = len(assign)
            result.ids.extend(int(i) for i in target[assign])
    if config.split:
        for seg in np.flatnonzero(decided & ~uncovered).tolist():
            shares = table[seg] / votes[seg]
            named = np.flatnonzero(shares >= config.split_share)
            if len(named) < 2 or shares[named].sum() < config.share:
                continue
            inside = auto == seg
            held = out[inside]
            if np.bincount(held).max() < config.share * len(held):
                continue  # the chain already splits the segment
            seeds = np.where(inside & np.isin(evidence, ids[named]), evidence, 0)
            _, (rows, cols) = distance_transform_edt(seeds == 0, return_indices=True)
            if out is labels:
                out = labels.copy()
            out[inside] = seeds[rows[inside], cols[inside]]
            result.split += 1
            result.ids.extend(int(i) for i in ids[named])
    result.labels = out
    return result


def _assign_near_evidence(
    labels: np.ndarray, wanted: np.ndarray, seen: np.ndarray, evidence: np.ndarray, voted: np.ndarray, reach: float
) -> np.ndarray:
    """``labels`` [H, W] with every unlabelled (not ``seen``) pixel of a ``wanted`` id (0: none) [H, W] given that id
    where the nearest ``evidence`` pixel (``voted``: ``evidence > 0``) is that id's and within ``reach`` pixels.
    The distance transform covers the wanted pixels' box grown by the reach only (``feature_transform_near``: the
    nearest evidence of every pixel within the reach is the whole image's)."""
    candidates = (wanted > 0) & ~seen
    box = find_objects(candidates.view(np.uint8), max_label=1)[0]
    if box is None:
        return labels
    distance, rows, cols = feature_transform_near(voted, box, reach)
    if not (rows >= 0).any():
        return labels  # no evidence within the reach of the box
    inner = wanted[box]
    nearest = evidence[rows, cols]
    give = candidates[box] & (nearest == inner) & (distance <= reach)
    out = labels.copy()
    out[box] = np.where(give, inner, labels[box])
    return out


def reassign_segments(
    labels: np.ndarray,
    auto: np.ndarray,
    pure: np.ndarray,
    config: AnchorConfig,
    group: Optional[np.ndarray] = None,
    relative: bool = False,
    counted: Optional[SegmentTable] = None,
) -> tuple[np.ndarray, list[int]]:
    """``labels`` [H, W] with every segment of ``auto`` held by one id given to the other id the ``pure`` evidence
    [H, W] (0: none) on it names, where that evidence is firm (``min_votes`` and ``min_coverage`` of the segment);
    and the ids given (see ``_reassign``).

    ``group`` [I] (id -> the object it belongs to, for every id of ``labels`` and ``pure``) pools the ids of one
    object: a segment held by one object whose evidence names another object (its ids' votes together) takes
    that object's id with the most votes on the segment; a segment whose evidence names another id of its own
    object keeps its id. ``relative`` scales ``min_coverage`` by the frame's evidence density (the share of its
    labelled pixels carrying evidence), as for giving a segment to an absent id: with sparse triangulated points
    a few votes on a segment are all the evidence there is. ``counted``: ``id_segment_table(labels, auto)`` when the
    caller has it."""
    labels = np.asarray(labels, dtype=np.int64)
    num_segments = segment_count(auto)
    if num_segments == 0 or not (pure > 0).any():
        return labels, []
    pooled = pure if group is None else group[pure]
    table, ids = _vote_table(auto, pooled, num_segments + 1)
    votes = table.sum(axis=1)
    if group is None:
        counted = id_segment_table(labels, auto, num_segments) if counted is None else counted
        seg_area = counted.table.sum(axis=0)
    else:
        seg_area = np.bincount(auto.ravel(), minlength=num_segments + 1)
    coverage = config.min_coverage * (min(_evidence_density(labels > 0, pure), 1.0) if relative else 1.0)
    firm = (votes >= config.min_votes) & (votes >= coverage * seg_area)
    if group is None:
        return _reassign(labels, auto, table, ids, firm, config, counted)
    held = group[labels]
    out, moved = _reassign(held, auto, table, ids, firm, config)
    if not moved:
        return labels, []
    changed = out != held
    named = np.zeros(num_segments + 1, dtype=np.int64)
    named[auto[changed]] = out[changed]  # the object each changed segment goes to
    segments = np.flatnonzero(named)
    raw_table, raw_ids = _vote_table(auto, pure, num_segments + 1)
    target = np.zeros(num_segments + 1, dtype=np.int64)
    for seg in segments.tolist():
        members = group[raw_ids] == named[seg]
        members[0] = False
        target[seg] = raw_ids[np.flatnonzero(members)[np.argmax(raw_table[seg, members])]]
    return np.where(changed, target[auto], labels), [int(target[s]) for s in segments.tolist()]


def segment_changes(
    before: np.ndarray, after: np.ndarray, auto: np.ndarray, group: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The segment reassignments between ``before`` and ``after`` [H, W] (ids, with their objects ``group``) over
    ``auto``'s segments: per segment [S + 1] the object that gave it up (0: unchanged) and the id it went to."""
    num_segments = segment_count(auto)
    source = np.zeros(num_segments + 1, dtype=np.int64)
    target = np.zeros(num_segments + 1, dtype=np.int64)
    changed = before != after
    source[auto[changed]] = group[before[changed]]
    target[auto[changed]] = after[changed]
    return source, target


def apply_segment_changes(
    labels: np.ndarray, auto: np.ndarray, group: np.ndarray, source: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """``labels`` [H, W] with the pixels of each segment of ``auto`` held by its ``source`` object given its
    ``target`` id (see ``segment_changes``)."""
    segment_source = source[auto]
    change = (segment_source > 0) & (group[labels] == segment_source)
    return np.where(change, target[auto], labels)


def _reassign(
    labels: np.ndarray,
    auto: np.ndarray,
    table: np.ndarray,
    ids: np.ndarray,
    firm: np.ndarray,
    config: AnchorConfig,
    counted: Optional[SegmentTable] = None,
) -> tuple[np.ndarray, list[int]]:
    """``labels`` with every segment held by one id (``share`` of its labelled pixels, itself most of the segment)
    given to the other id its evidence votes name (``share`` of the ``table`` [S + 1, E] votes over the evidence
    ``ids`` [E], its holder at most ``1 - share``), where the votes are ``firm`` [S + 1]; and the ids given
    (``counted``: ``id_segment_table(labels, auto)`` when the caller has it)."""
    num_segments = len(table) - 1
    held_ids, by_id = id_segment_table(labels, auto, num_segments) if counted is None else counted
    holding = by_id.T.copy()  # [S + 1, I] each segment's pixels of each id
    seg_area = holding.sum(axis=1)
    holding[:, 0] = 0
    holder = np.argmax(holding, axis=1)
    held = holding[np.arange(len(holding)), holder]
    labelled = holding.sum(axis=1)
    votes = np.maximum(table.sum(axis=1), 1)
    best = np.argmax(table, axis=1)
    best_share = table[np.arange(len(table)), best] / votes
    position = {int(i): k for k, i in enumerate(ids.tolist())}
    holders = held_ids[holder].tolist()
    own_votes = np.array([table[s, position[i]] if i in position else 0 for s, i in enumerate(holders)])
    wanted = (
        firm
        & (held >= config.share * labelled)
        & (labelled >= 0.5 * seg_area)
        & (ids[best] != held_ids[holder])
        & (best_share >= config.share)
        & (own_votes <= (1.0 - config.share) * votes)
    )
    wanted[0] = False
    segments = np.flatnonzero(wanted)
    if len(segments) == 0:
        return labels, []
    target = np.zeros(num_segments + 1, dtype=np.int64)
    target[segments] = ids[best[segments]]
    source = np.full(num_segments + 1, -1, dtype=np.int64)
    source[segments] = held_ids[holder[segments]]
    change = labels == source[auto]
    return np.where(change, target[auto], labels), [int(i) for i in target[segments]]


def evidence_merges(evidence: AnchorEvidence, config: AnchorConfig) -> dict[int, int]:
    """Younger id -> older id merges for ids whose evidence voxels mostly belong to one older id.

    An id observed on ``n`` voxels of which at least ``merge_overlap * n`` are owned by one older id
    (seen there more often) is that object seen again under a new id.
    """
    _, owner_ids, _ = evidence.owners()
    if len(owner_ids) == 0:
        return {}
    ids, owner = evidence.shared_rows()  # (a voxel seen by one id is owned by it)
    older = owner < ids
    if not older.any():
        return {}
    per_id = evidence.voxels_per_id()
    pair_ids, pair_owner = ids[older], owner[older]
    # Only an id with enough voxels whose rows under older owners, all together, reach ``merge_overlap`` of its voxels
    # can have one older owner that does: the rows of the others are left out before the pairs are counted.
    under_older = np.bincount(pair_ids, minlength=len(per_id))
    candidate = (per_id >= config.merge_min_voxels) & (under_older >= config.merge_overlap * per_id)
    kept_rows = candidate[pair_ids]
    if not kept_rows.any():
        return {}
    pair_ids, pair_owner = pair_ids[kept_rows], pair_owner[kept_rows]
    base = int(owner_ids.max()) + 1
    pair_keys, counts = np.unique(pair_ids * base + pair_owner, return_counts=True)
    young, old = np.divmod(pair_keys, base)
    voxels = per_id[young]
    kept = (voxels >= config.merge_min_voxels) & (counts >= config.merge_overlap * voxels)
    merges: dict[int, int] = dict(zip(young[kept].tolist(), old[kept].tolist()))
    # Resolve chains (c -> b -> a) to their oldest id.
    for young in list(merges):
        target = merges[young]
        while target in merges:
            target = merges[target]
        merges[young] = target
    return merges
