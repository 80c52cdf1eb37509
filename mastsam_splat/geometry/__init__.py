"""Multi-view geometry: depth + camera correspondences, epipolar constraints, triangulation."""

from mastsam_splat.geometry.reprojection import dense_correspondences, pixel_grid, visible_in
from mastsam_splat.geometry.triangulation import fundamental_from_cameras, sampson_distance, triangulate

__all__ = [
    "dense_correspondences",
    "pixel_grid",
    "visible_in",
    "fundamental_from_cameras",
    "sampson_distance",
    "triangulate",
]
