"""Consistency of label images over SfM tracks: a score for captures without ground truth.

Every 3D point of a COLMAP model is seen in the images of its track; each pair of those images
gives one correspondence (the point's keypoints in the two views) that the reconstruction has
verified: the point is visible in both. Coverage, IDC and PSC are those of ``consistency``,
pooled per view pair, and reported for near view pairs (frame gap <= ``near_gap``), far ones
(gap >= ``far_gap``) and all of them; the gap is the distance in the dataset's frame order. Long
tracks contribute at most ``max_pairs_per_point`` image pairs, sampled with a fixed seed.

Granularity is reported with the scores: fewer, bigger segments are trivially more consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Optional, Sequence

import numpy as np

from mastsam_splat.metrics.consistency import ConsistencyScores, PairConsistency, label_consistency, pixel_indices
from mastsam_splat.metrics.granularity import granularity, largest_segment_share

if TYPE_CHECKING:
    from mastsam_splat.io.colmap import FrameTracks

BINS = ("near", "far", "all")


@dataclass
class SfmTracksConfig:
    """How track correspondences are drawn and binned."""

    max_pairs_per_point: int = 32
    """A point seen in more image pairs than this contributes this many, drawn at random."""
    near_gap: int = 3
    """View pairs at most this many frames apart are "near"."""
    far_gap: int = 15
    """View pairs at least this many frames apart are "far"."""
    seed: int = 0
    """Seed of the pair sampling."""
    points: Literal["all", "even", "odd"] = "all"
    """Score over every point of the model, or over the points with an even / odd index only: a tracker given the
    other half as 3D evidence is then graded on points it was not given."""


@dataclass
class TrackCorrespondences:
    """Correspondences from tracks: observation rows ``obs_a[i]`` and ``obs_b[i]`` of one point,
    in frames ``a[i] < b[i]``."""

    obs_a: np.ndarray
    obs_b: np.ndarray
    a: np.ndarray
    b: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


@dataclass
class SfmConsistency:
    """Coverage / IDC / PSC over track correspondences per gap bin, with granularity."""

    near: ConsistencyScores
    far: ConsistencyScores
    all: ConsistencyScores
    segments_per_frame: float
    largest_segment_share: float
    """Mean over frames of the largest segment's share of the image."""
    mean_segment_area: float
    num_points: int
    """3D points giving at least one correspondence (seen inside two frames or more)."""
    frames_in_model: int
    num_frames: int

    def to_dict(self) -> dict[str, Any]:
        """Flat snake_case metrics (``nan`` becomes ``None``)."""
        out: dict[str, Any] = {}
        for name in BINS:
            scores: ConsistencyScores = getattr(self, name)
            out[f"sfm_coverage_{name}"] = _optional(scores.coverage)
            out[f"sfm_idc_{name}"] = _optional(scores.idc)
            out[f"sfm_psc_{name}"] = _optional(scores.psc)
            out[f"sfm_correspondences_{name}"] = scores.num_correspondences
            out[f"sfm_view_pairs_{name}"] = scores.num_view_pairs
        out["segments_per_frame"] = _optional(self.segments_per_frame)
        out["largest_segment_share"] = _optional(self.largest_segment_share)
        out["mean_segment_area"] = _optional(self.mean_segment_area)
        out["sfm_points"] = self.num_points
        out["sfm_frames_in_model"] = self.frames_in_model
        return out


def _optional(value: float) -> Optional[float]:
    return None if math.isnan(value) else float(value)


def track_correspondences(
    tracks: FrameTracks, max_pairs_per_point: int = 32, seed: int = 0
) -> TrackCorrespondences:
    """Every pair of distinct frames observing the same point, at most ``max_pairs_per_point`` per point.

    A point seen twice in one frame keeps its first observation there. Points with more pairs
    than the cap get that many pairs drawn uniformly (with replacement) with ``seed``.
    """
    if max_pairs_per_point < 1:
        raise ValueError(f"max_pairs_per_point must be >= 1, got {max_pairs_per_point}")
    num_frames = max(int(tracks.num_frames), 1)
    _, first = np.unique(tracks.point * num_frames + tracks.frame, return_index=True)
    rows = np.sort(first)
    rows = rows[np.lexsort((tracks.frame[rows], tracks.point[rows]))]
    points, starts, lengths = np.unique(tracks.point[rows], return_index=True, return_counts=True)
    num_pairs = lengths * (lengths - 1) // 2

    small = (num_pairs > 0) & (num_pairs <= max_pairs_per_point)
    # Exhaustive pairs of short tracks: position k pairs with positions k+1 .. L-1 of its track.
    pos = np.arange(len(rows)) - np.repeat(starts, lengths)
    in_small = np.repeat(small, lengths)
    following = np.where(in_small, np.repeat(lengths, lengths) - 1 - pos, 0)
    first_of = np.repeat(np.arange(len(rows)), following)
    group_start = np.repeat(np.cumsum(following) - following, following)
    second_of = first_of + 1 + (np.arange(len(first_of)) - group_start)

    # Sampled pairs of long tracks.
    large = np.flatnonzero(num_pairs > max_pairs_per_point)
    rng = np.random.default_rng(seed)
    track = np.repeat(large, max_pairs_per_point)
    length = lengths[track]
    u = rng.integers(0, length)
    v = rng.integers(0, length - 1)
    v = v + (v >= u)
    obs_a = np.concatenate([rows[first_of], rows[starts[track] + u]])
    obs_b = np.concatenate([rows[second_of], rows[starts[track] + v]])
    fa, fb = tracks.frame[obs_a], tracks.frame[obs_b]
    swap = fa > fb
    obs_a, obs_b = np.where(swap, obs_b, obs_a), np.where(swap, obs_a, obs_b)
    return TrackCorrespondences(obs_a=obs_a, obs_b=obs_b, a=np.minimum(fa, fb), b=np.maximum(fa, fb))


def observation_labels(label_maps: Sequence[np.ndarray], tracks: FrameTracks) -> tuple[np.ndarray, np.ndarray]:
    """Predicted id at each observation [O] and whether it lies inside its image [O]."""
    labels = np.zeros(len(tracks.frame), dtype=np.int64)
    inside = np.zeros(len(tracks.frame), dtype=bool)
    order = np.argsort(tracks.frame, kind="stable")
    bounds = np.searchsorted(tracks.frame[order], np.arange(len(label_maps) + 1))
    for f, label_map in enumerate(label_maps):
        obs = order[bounds[f] : bounds[f + 1]]
        if not len(obs):
            continue
        rows, cols, ok = pixel_indices(tracks.xy[obs], label_map.shape)
        labels[obs[ok]] = label_map[rows[ok], cols[ok]]
        inside[obs] = ok
    return labels, inside


def pair_scores(corr: TrackCorrespondences, labels: np.ndarray, num_frames: int) -> list[PairConsistency]:
    """Per view pair counts of the correspondences, from the ids at their observations."""
    key = corr.a.astype(np.int64) * num_frames + corr.b
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    stops = np.append(starts[1:], len(order))
    la, lb = labels[corr.obs_a[order]], labels[corr.obs_b[order]]
    return [
        label_consistency(la[s:e], lb[s:e], a=int(k // num_frames), b=int(k % num_frames))
        for k, s, e in zip(keys.tolist(), starts.tolist(), stops.tolist())
    ]


def sfm_consistency(
    label_maps: Sequence[np.ndarray], tracks: FrameTracks, config: Optional[SfmTracksConfig] = None
) -> SfmConsistency:
    """Score label maps (one per frame, in the frame order of ``tracks``) over the tracks' correspondences."""
    config = config or SfmTracksConfig()
    label_maps = list(label_maps)
    if len(label_maps) != tracks.num_frames:
        raise ValueError(f"{len(label_maps)} label maps for {tracks.num_frames} frames")
    if config.points != "all":
        keep = tracks.point % 2 == (0 if config.points == "even" else 1)
        tracks = replace(tracks, frame=tracks.frame[keep], point=tracks.point[keep], xy=tracks.xy[keep])
    corr = track_correspondences(tracks, config.max_pairs_per_point, config.seed)
    labels, inside = observation_labels(label_maps, tracks)
    keep = inside[corr.obs_a] & inside[corr.obs_b]
    corr = TrackCorrespondences(corr.obs_a[keep], corr.obs_b[keep], corr.a[keep], corr.b[keep])
    pairs = pair_scores(corr, labels, max(len(label_maps), 1))
    gaps = np.array([p.b - p.a for p in pairs], dtype=np.int64)
    grain = granularity(label_maps)
    return SfmConsistency(
        near=ConsistencyScores.from_pairs([p for p, g in zip(pairs, gaps) if g <= config.near_gap]),
        far=ConsistencyScores.from_pairs([p for p, g in zip(pairs, gaps) if g >= config.far_gap]),
        all=ConsistencyScores.from_pairs(pairs),
        segments_per_frame=grain.segments_per_frame,
        largest_segment_share=largest_segment_share(label_maps),
        mean_segment_area=grain.mean_segment_area,
        num_points=int(np.unique(tracks.point[corr.obs_a]).size),
        frames_in_model=tracks.frames_in_model,
        num_frames=tracks.num_frames,
    )
