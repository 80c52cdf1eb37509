"""Consistency and ground-truth metrics of multi-view label maps (reported by ``mastsam eval``).

- ``consistency``: coverage, IDC and PSC over corresponding pixels of view pairs.
- ``ground_truth``: per-view mIoU, consistent mIoU and id switches.
- ``granularity``: segments per frame and mean segment area.
- ``evaluate``: all of them at once (``evaluate``, ``EvalResult``, ``MetricsConfig``).
- ``sfm_tracks``: coverage, IDC and PSC over the tracks of a COLMAP model, binned by frame gap.
"""

from mastsam_splat.metrics.consistency import (
    ConsistencyScores,
    Correspondences,
    PairConsistency,
    consistency_scores,
    matched_overlap,
    pair_consistency,
)
from mastsam_splat.metrics.evaluate import EvalResult, MetricsConfig, evaluate, geometric_correspondences, view_pairs
from mastsam_splat.metrics.granularity import Granularity, granularity
from mastsam_splat.metrics.ground_truth import (
    BestMatches,
    IdSwitches,
    MIoUScores,
    OverlapTable,
    best_matches,
    consistent_miou,
    id_switches,
    overlap_table,
    per_view_miou,
    switches_of,
)
from mastsam_splat.metrics.sfm_tracks import SfmConsistency, SfmTracksConfig, sfm_consistency

__all__ = [
    "BestMatches",
    "ConsistencyScores",
    "Correspondences",
    "EvalResult",
    "Granularity",
    "IdSwitches",
    "MIoUScores",
    "MetricsConfig",
    "OverlapTable",
    "PairConsistency",
    "SfmConsistency",
    "SfmTracksConfig",
    "best_matches",
    "consistency_scores",
    "consistent_miou",
    "evaluate",
    "geometric_correspondences",
    "granularity",
    "id_switches",
    "matched_overlap",
    "overlap_table",
    "pair_consistency",
    "per_view_miou",
    "sfm_consistency",
    "switches_of",
    "view_pairs",
]
