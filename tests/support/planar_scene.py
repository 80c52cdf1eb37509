"""Small posed scenes for tracker tests: flat coloured objects on a plane, seen by a sliding camera.

The plane is z = ``DEPTH`` in world coordinates; the camera looks along +z (OpenCV) and slides
along x, so an object can leave the view and come back. Every frame has an exact depth map and
camera, which the geometric matcher and the 3D memory use.
"""

from __future__ import annotations

import numpy as np

from mastsam_splat.types import Camera, Frame

WIDTH, HEIGHT = 96, 72
FOCAL = 80.0
DEPTH = 5.0
BACKGROUND = (90, 90, 90)

# (x0, x1, y0, y1) rectangles on the plane, world units, and their colours.
OBJECTS = [
    ((-1.6, -0.8, -0.9, 0.3), (220, 40, 40)),
    ((0.2, 1.2, -0.4, 0.8), (40, 60, 220)),
    ((-0.4, 0.2, 0.6, 1.4), (40, 200, 60)),
]


def camera_at(tx: float) -> Camera:
    K = np.array([[FOCAL, 0.0, WIDTH / 2], [0.0, FOCAL, HEIGHT / 2], [0.0, 0.0, 1.0]])
    w2c = np.eye(4)
    w2c[0, 3] = -tx
    return Camera(K=K, world_to_cam=w2c, width=WIDTH, height=HEIGHT)


def render(tx: float, objects=OBJECTS, index: int = 0) -> Frame:
    """The frame seen from camera position ``(tx, 0, 0)``, with its ground-truth object ids in ``frame.gt``."""
    cam = camera_at(tx)
    cols, rows = np.meshgrid(np.arange(WIDTH) + 0.5, np.arange(HEIGHT) + 0.5)
    x = (cols - cam.K[0, 2]) / FOCAL * DEPTH + tx
    y = (rows - cam.K[1, 2]) / FOCAL * DEPTH
    image = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    gt = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    for k, ((x0, x1, y0, y1), colour) in enumerate(objects, start=1):
        inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        image[inside] = colour
        gt[inside] = k
    depth = np.full((HEIGHT, WIDTH), DEPTH, dtype=np.float32)
    frame = Frame(image=image, name=f"frame_{index:05d}", index=index, camera=cam, depth=depth)
    frame.gt = gt  # type: ignore[attr-defined]
    return frame


def sequence(positions: list[float], objects=OBJECTS) -> list[Frame]:
    return [render(tx, objects, i) for i, tx in enumerate(positions)]


def id_of(labels: np.ndarray, gt: np.ndarray, obj: int) -> int:
    """The predicted id covering most of ground-truth object ``obj`` (0 when it is not visible)."""
    pixels = labels[gt == obj]
    if pixels.size == 0:
        return 0
    ids, counts = np.unique(pixels, return_counts=True)
    return int(ids[np.argmax(counts)])
