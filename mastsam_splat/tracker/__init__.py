"""The MastSAM tracker: consistent ids across frames from a segmenter and a matcher.

One module per step, each with its own config: ``representatives`` (K-Means), ``propagation``,
``prompting``, ``rejection``, ``overlap``, ``consensus``, ``new_regions``, ``memory`` (3D
re-identification) and ``consolidate``, with ``tracker`` tying them together (``TrackerConfig``
nests the step configs), ``outputs`` / ``pointcloud`` writing the results, ``cache`` reusing
them, and ``command`` the ``mastsam track`` CLI.
"""

from mastsam_splat.tracker.consensus import ConsensusConfig
from mastsam_splat.tracker.consolidate import ConsolidationConfig
from mastsam_splat.tracker.memory import MemoryConfig
from mastsam_splat.tracker.new_regions import NewRegionsConfig
from mastsam_splat.tracker.overlap import OverlapConfig
from mastsam_splat.tracker.prompting import PromptingConfig
from mastsam_splat.tracker.propagation import PropagationConfig
from mastsam_splat.tracker.rejection import RejectionConfig
from mastsam_splat.tracker.representatives import RepresentativesConfig
from mastsam_splat.tracker.tracker import FrameReport, MastSAMTracker, TrackerConfig, TrackResult

__all__ = [
    "ConsensusConfig",
    "ConsolidationConfig",
    "FrameReport",
    "MastSAMTracker",
    "MemoryConfig",
    "NewRegionsConfig",
    "OverlapConfig",
    "PromptingConfig",
    "PropagationConfig",
    "RejectionConfig",
    "RepresentativesConfig",
    "TrackResult",
    "TrackerConfig",
]
