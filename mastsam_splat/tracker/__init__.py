"""The MastSAM tracker: consistent ids across frames from a segmenter and a matcher.

One module per step: ``representatives`` (K-Means), ``propagation``, ``prompting``,
``rejection``, ``overlap``, ``new_regions``, ``memory`` (3D re-identification), with
``tracker`` tying them together, ``outputs`` / ``pointcloud`` writing the results, ``cache``
reusing them, and ``command`` the ``mastsam track`` CLI.
"""

from mastsam_splat.tracker.tracker import FrameReport, MastSAMTracker, TrackerConfig, TrackResult

__all__ = ["FrameReport", "MastSAMTracker", "TrackResult", "TrackerConfig"]
