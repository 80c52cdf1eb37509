"""The tracker's configuration: one group of options per step, nested in ``TrackerConfig``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mastsam_splat.errors import check_fraction, check_option
from mastsam_splat.tracker.anchor import AnchorConfig
from mastsam_splat.tracker.consensus import ConsensusConfig
from mastsam_splat.tracker.consolidate import ConsolidationConfig
from mastsam_splat.tracker.creases import CreaseConfig
from mastsam_splat.tracker.hierarchy import HierarchyConfig
from mastsam_splat.tracker.jumps import JumpConfig
from mastsam_splat.tracker.memory import MemoryConfig
from mastsam_splat.tracker.new_regions import NewRegionsConfig
from mastsam_splat.tracker.overlap import OverlapConfig
from mastsam_splat.tracker.parts3d import PartsConfig
from mastsam_splat.tracker.pointcloud import MAX_VOXELS
from mastsam_splat.tracker.points3d import PointSource
from mastsam_splat.tracker.prompting import PromptingConfig
from mastsam_splat.tracker.propagation import PropagationConfig
from mastsam_splat.tracker.refine import RefineConfig
from mastsam_splat.tracker.rejection import RejectionConfig
from mastsam_splat.tracker.representatives import RepresentativesConfig
from mastsam_splat.tracker.view_order import ViewOrderConfig


@dataclass
class TrackerConfig:
    """Parameters of the MastSAM tracker, one group per step (lengths relative to the image so they hold at any
    resolution)."""

    mode: Literal["mastsam", "independent"] = "mastsam"
    """``mastsam``: track ids across frames; ``independent``: per-frame automatic masks with fresh ids
    (the baseline MastSAM is compared with)."""
    confidence_threshold: float = 0.5
    """Correspondences below this confidence are not used for tracking."""
    min_area_fraction: float = 0.001
    """Smallest segment (fraction of the image) kept from automatic masks and accepted as a new id."""
    points: PointSource = "auto"
    """3D source for the memory, the 3D evidence and the point cloud: ``auto`` (depth + cameras, else the points of
    the dataset's COLMAP model each frame observed, else the matcher's 3D points, else triangulation with known
    cameras), ``depth``, ``sfm``, ``matches``, ``triangulated`` or ``none``."""
    max_points_per_frame: int = 20000
    """3D points sampled per frame from depth maps."""
    max_reprojection_error: float = 2.0
    """Triangulated points with a larger reprojection error (pixels) are discarded."""
    cloud_voxel_fraction: float = 0.002
    """Voxel size of the output point cloud as a fraction of its extent."""
    cloud_max_voxels: int = MAX_VOXELS
    """Fine voxels (half the output voxel) the point cloud's summary holds before its voxel doubles: bounds its
    memory on long captures (about 48 bytes each)."""
    seed: int = 0
    """Seed of K-Means and of the robust alignment."""
    segment_ahead: int = 1
    """Frames whose automatic segmentation runs ahead in a worker thread while the tracker works on the current one
    (segmenters that allow it; 0: each frame segmented in turn). The masks are the same either way; with a second
    core or a GPU the tracker's own work overlaps the segmentation. Each frame ahead holds its automatic masks (SAM:
    some hundred full-size masks per frame) until it is tracked."""
    view_order: ViewOrderConfig = field(default_factory=ViewOrderConfig)
    """Step 0: the order frames are visited in and the visited frame each one is matched with."""
    representatives: RepresentativesConfig = field(default_factory=RepresentativesConfig)
    """Step 2: representative points of every id (K-Means over its confident correspondences)."""
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    """Step 3: the representatives follow the correspondences into the next frame."""
    prompting: PromptingConfig = field(default_factory=PromptingConfig)
    """Step 4: point prompts of every id (its points as positives, nearby points of other ids as negatives)."""
    rejection: RejectionConfig = field(default_factory=RejectionConfig)
    """Step 5: ids that lost their points or whose mask misses its prompts are dropped."""
    overlap: OverlapConfig = field(default_factory=OverlapConfig)
    """Step 6: near-duplicate prompted masks are merged."""
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    """Step 6: prompted masks reconciled with the automatic segments; fragment ids merged."""
    new_regions: NewRegionsConfig = field(default_factory=NewRegionsConfig)
    """Step 7: uncovered automatic segments become new ids; small gaps join their tracked id."""
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    """Step 7: 3D re-identification memory."""
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    """Step 6b: every id's 3D evidence votes on which automatic segment carries which id; ids on one object's
    evidence are merged in every frame."""
    jumps: JumpConfig = field(default_factory=JumpConfig)
    """Step 8: ids brought back onto 3D points they have barely seen take a new id (frames with a depth map)."""
    refine: RefineConfig = field(default_factory=RefineConfig)
    """Step 8: ids the automatic segments keep cutting into pieces become one id per piece."""
    consolidation: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    """After the sequence: ids on one 3D surface that never share a frame are merged."""
    creases: CreaseConfig = field(default_factory=CreaseConfig)
    """After the sequence: ids meeting along a convex edge of one solid (its faces, cut apart) are merged."""
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    """The object level above the ids: pieces of a split id, and ids the segments keep holding together."""
    parts: PartsConfig = field(default_factory=PartsConfig)
    """After the sequence (depth maps): every id's segment named after the 3D part it lies on, the surface regions
    the automatic segments never cut apart."""

    def __post_init__(self) -> None:
        """Values out of range stop the command while its options are parsed."""
        check_fraction(self.confidence_threshold, "tracker.confidence-threshold")
        check_fraction(self.min_area_fraction, "tracker.min-area-fraction")
        check_option(self.max_points_per_frame >= 1, "tracker.max-points-per-frame", ">= 1", self.max_points_per_frame)
        check_option(
            self.max_reprojection_error > 0, "tracker.max-reprojection-error", "> 0", self.max_reprojection_error
        )
        check_option(self.cloud_voxel_fraction > 0, "tracker.cloud-voxel-fraction", "> 0", self.cloud_voxel_fraction)
        check_option(self.cloud_max_voxels >= 1, "tracker.cloud-max-voxels", ">= 1", self.cloud_max_voxels)
        check_option(self.segment_ahead >= 0, "tracker.segment-ahead", ">= 0", self.segment_ahead)
