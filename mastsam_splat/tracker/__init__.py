"""The MastSAM tracker: consistent ids across frames from a segmenter and a matcher.

One module per step, each with its own config: ``representatives`` (K-Means), ``propagation``,
``prompting``, ``rejection``, ``overlap``, ``consensus``, ``new_regions``, ``memory`` (3D
re-identification), ``anchor`` (3D evidence), ``jumps``, ``refine``, ``hierarchy``,
``consolidate`` and ``parts3d`` (segments named after 3D parts), with ``tracker`` tying them together, ``config`` (``TrackerConfig`` nests the
step configs), ``results`` (what a run gives back), ``outputs`` / ``pointcloud`` writing the
results, ``cache`` reusing them and ``job`` the one run behind ``mastsam track``, ``mastsam lift``
and the Nerfstudio datamanager.
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
from mastsam_splat.tracker.config import TrackerConfig
from mastsam_splat.tracker.results import FrameReport, TrackResult
from mastsam_splat.tracker.tracker import MastSAMTracker

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
