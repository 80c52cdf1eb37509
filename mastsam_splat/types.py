"""Core data types shared by every part of mastsam-splat.

Conventions (used everywhere in the package):
- Images are ``uint8`` RGB arrays of shape ``[H, W, 3]``.
- Pixel coordinates are continuous ``(x, y)`` floats: pixel ``(col, row)`` covers
  ``[col, col + 1) x [row, row + 1)`` and its centre is ``(col + 0.5, row + 0.5)`` (the
  convention of Nerfstudio intrinsics and gsplat); the pixel holding ``(x, y)`` is
  ``(floor(x), floor(y))``. Matchers report coordinates in the frame's original resolution.
- Cameras use the OpenCV convention (x right, y down, z forward); ``world_to_cam`` maps world
  points to camera coordinates. Nerfstudio's ``transform_matrix`` (OpenGL camera-to-world) is
  converted on load.
- Depth maps are z-depth (distance along the optical axis) in scene units, ``float32``, with
  ``0`` meaning "no depth".
- Label maps are ``uint16``: ``0`` is "no object", ids are ``> 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

# Flips the y and z camera axes: OpenGL (x right, y up, z back) <-> OpenCV (x right, y down, z forward).
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class Camera:
    """A pinhole camera: intrinsics ``K`` and OpenCV-convention world-to-camera extrinsics."""

    K: np.ndarray
    """[3, 3] intrinsics in pixels."""
    world_to_cam: np.ndarray
    """[4, 4] rigid transform, OpenCV convention."""
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.world_to_cam = np.asarray(self.world_to_cam, dtype=np.float64).reshape(4, 4)
        self.width = int(self.width)
        self.height = int(self.height)

    @property
    def cam_to_world(self) -> np.ndarray:
        """[4, 4] OpenCV camera-to-world transform."""
        rot = self.world_to_cam[:3, :3]
        out = np.eye(4)
        out[:3, :3] = rot.T
        out[:3, 3] = -rot.T @ self.world_to_cam[:3, 3]
        return out

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates, [3]."""
        return self.cam_to_world[:3, 3]

    @classmethod
    def from_opengl_c2w(cls, c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> "Camera":
        """Build from a Nerfstudio/OpenGL camera-to-world matrix (3x4 or 4x4)."""
        c2w4 = np.eye(4)
        c2w4[:3, :] = np.asarray(c2w, dtype=np.float64).reshape(-1, 4)[:3]
        c2w_cv = c2w4 @ OPENGL_TO_OPENCV
        return cls(K=K, world_to_cam=np.linalg.inv(c2w_cv), width=width, height=height)

    def opengl_c2w(self) -> np.ndarray:
        """[4, 4] OpenGL camera-to-world matrix, as Nerfstudio's ``transform_matrix`` stores it."""
        return self.cam_to_world @ OPENGL_TO_OPENCV

    def world_to_camera_points(self, points: np.ndarray) -> np.ndarray:
        """Transform world points [N, 3] into camera coordinates [N, 3]."""
        pts = np.asarray(points, dtype=np.float64)
        return pts @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points [N, 3] to pixel coordinates [N, 2] and z-depths [N]."""
        cam = self.world_to_camera_points(points)
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uvw = cam @ self.K.T
            xy = uvw[:, :2] / uvw[:, 2:3]
        return xy, z

    def unproject(self, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Lift pixel coordinates [N, 2] with z-depths [N] to world points [N, 3]."""
        xy = np.asarray(xy, dtype=np.float64)
        depth = np.asarray(depth, dtype=np.float64)
        rays = np.concatenate([xy, np.ones((len(xy), 1))], axis=1) @ np.linalg.inv(self.K).T
        cam = rays * depth[:, None]
        c2w = self.cam_to_world
        return cam @ c2w[:3, :3].T + c2w[:3, 3]

    def scaled(self, sx: float, sy: Optional[float] = None) -> "Camera":
        """The same camera for an image resized by ``(sx, sy)``."""
        sy = sx if sy is None else sy
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return Camera(K=K, world_to_cam=self.world_to_cam.copy(), width=round(self.width * sx), height=round(self.height * sy))


@dataclass
class ObservedPoints:
    """3D points of a sparse reconstruction (SfM) that one view observed: the reconstruction verified that each
    is visible at its pixel, and every view of a point names it by the same index."""

    xy: np.ndarray
    """[N, 2] float64 pixel positions in the frame."""
    xyz: np.ndarray
    """[N, 3] float64 world positions, in the world of the frame's camera."""
    point: np.ndarray
    """[N] int64 the reconstruction's index of each point."""

    def __len__(self) -> int:
        return len(self.xy)

    def subset(self, keep: np.ndarray) -> "ObservedPoints":
        """The points selected by the mask or index array ``keep``."""
        return ObservedPoints(self.xy[keep], self.xyz[keep], self.point[keep])


@dataclass
class Frame:
    """One view of a scene: its image and whatever geometry is known about it."""

    image: np.ndarray
    """[H, W, 3] uint8 RGB."""
    name: str
    """Stable name of the frame (the image file's stem); label images are stored under it."""
    index: int = 0
    """Position in the sequence."""
    file: Optional[Path] = None
    """Source file, when the frame came from one."""
    camera: Optional[Camera] = None
    depth: Optional[np.ndarray] = None
    """[H, W] float32 z-depth, 0 = unknown."""
    observed: Optional[ObservedPoints] = None
    """Points of the capture's sparse reconstruction this view observed (``None``: no reconstruction given)."""

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass
class Matches:
    """Pixel correspondences between two frames, in each frame's original resolution."""

    xy_a: np.ndarray
    """[M, 2] float32 pixel coordinates in frame a."""
    xy_b: np.ndarray
    """[M, 2] float32 pixel coordinates in frame b."""
    confidence: np.ndarray
    """[M] float32 in [0, 1]."""
    pts3d_a: Optional[np.ndarray] = None
    """[M, 3] 3D points of the matches seen from frame a, in a frame shared by the pair."""
    pts3d_b: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.xy_a = np.asarray(self.xy_a, dtype=np.float32).reshape(-1, 2)
        self.xy_b = np.asarray(self.xy_b, dtype=np.float32).reshape(-1, 2)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        if not (len(self.xy_a) == len(self.xy_b) == len(self.confidence)):
            raise ValueError(
                f"Matches arrays disagree in length: xy_a {len(self.xy_a)}, xy_b {len(self.xy_b)}, "
                f"confidence {len(self.confidence)}"
            )

    def __len__(self) -> int:
        return len(self.xy_a)

    def subset(self, keep: np.ndarray) -> "Matches":
        """The matches selected by a boolean mask or index array."""
        return Matches(
            xy_a=self.xy_a[keep],
            xy_b=self.xy_b[keep],
            confidence=self.confidence[keep],
            pts3d_a=None if self.pts3d_a is None else self.pts3d_a[keep],
            pts3d_b=None if self.pts3d_b is None else self.pts3d_b[keep],
        )

    @classmethod
    def empty(cls) -> "Matches":
        return cls(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0))


@dataclass
class Mask:
    """One binary segment produced by a segmenter."""

    segmentation: np.ndarray
    """[H, W] bool."""
    score: float = 1.0
    """Segmenter's quality estimate in [0, 1]."""
    area: int = -1
    """Number of pixels; computed when not given."""
    box: Optional[tuple[int, int, int, int]] = None
    """(row start, row stop, column start, column stop) of a box holding every pixel of the mask, when its maker
    knows one (``None``: not known): steps that read the mask's pixels read that box only."""

    def __post_init__(self) -> None:
        self.segmentation = np.asarray(self.segmentation, dtype=bool)
        if self.area < 0:
            self.area = int(self.segmentation.sum())

    def window(self) -> tuple[slice, slice]:
        """Rows and columns holding every pixel of the mask (the whole image when ``box`` is not known)."""
        if self.box is None:
            return slice(None), slice(None)
        r0, r1, c0, c1 = self.box
        return slice(r0, r1), slice(c0, c1)


@dataclass
class LabelMap:
    """A label image of one frame: uint16, 0 = no object."""

    labels: np.ndarray
    name: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels)
        if self.labels.ndim != 2:
            raise ValueError(f"label map {self.name!r} must be 2-D, got shape {self.labels.shape}")
        if self.labels.dtype != np.uint16:
            if self.labels.size and (self.labels.min() < 0 or self.labels.max() > np.iinfo(np.uint16).max):
                raise ValueError(f"label map {self.name!r} has ids outside the uint16 range")
            self.labels = self.labels.astype(np.uint16)

    @property
    def ids(self) -> np.ndarray:
        """Sorted object ids present (0 excluded)."""
        ids = np.unique(self.labels)
        return ids[ids > 0]


@dataclass
class Scene:
    """An ordered sequence of frames and where it came from."""

    frames: list[Frame]
    root: Path
    """Folder of the dataset (or the video / image folder)."""
    kind: str
    """"nerfstudio", "images" or "video"."""
    ply_file: Optional[Path] = None
    """Point cloud referenced by the dataset (Nerfstudio ``ply_file_path``), if any."""

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def has_cameras(self) -> bool:
        return all(f.camera is not None for f in self.frames)

    @property
    def has_depth(self) -> bool:
        return all(f.depth is not None for f in self.frames)
