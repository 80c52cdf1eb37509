"""The capture's sparse reconstruction as 3D points of its frames.

A COLMAP model lists, for every 3D point, the views that observed it and where: correspondences
whose visibility SfM verified, across the whole capture, however far apart the views. Attached to
the frames (``Frame.observed``) they give the tracker 3D evidence that links distant views (its
``sfm`` point source). The model's world is the reconstruction's own and the dataset's cameras may
have been moved since (Nerfstudio's dataparsers rotate, centre and scale it), so the points are
carried into the frames' world by the similarity that best maps the model's cameras onto the
frames'. A model whose cameras do not fit the frames' poses is refused: its points would label the
wrong pixels.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

from mastsam_splat.errors import InputError
from mastsam_splat.geometry.similarity import align_cameras, apply, pose_errors
from mastsam_splat.io.colmap import SfmModel, frame_observations, image_frames
from mastsam_splat.types import Frame

MAX_CENTRE_ERROR = 0.01
"""Largest median camera-centre disagreement after alignment, as a fraction of the scene's size."""
MAX_ROTATION_DEG = 2.0
"""Largest median camera-orientation disagreement after alignment (degrees)."""


def attach_sfm_points(frames: Sequence[Frame], model: SfmModel, subset: bool = False) -> list[Frame]:
    """``frames`` with the model's points each observed (``Frame.observed``), in the frames' world.

    Frames need cameras, and at least 3 of them an image in the model, to place the points; otherwise
    the frames are returned as they are. ``subset``: the frames are a selection of the model's images
    (see ``tracks_in_frames``).
    """
    frame_of_image, _ = image_frames(model, frames, subset)
    pairs = [
        (camera, frames[f].camera)
        for camera, f in zip(model.cameras, frame_of_image.tolist())
        if f >= 0 and camera is not None and frames[f].camera is not None
    ]
    if len(pairs) < 3:
        return list(frames)
    model_cameras = [a for a, _ in pairs]
    frame_cameras = [b for _, b in pairs]
    errors = pose_errors(model_cameras, frame_cameras)
    if errors.median_centre_fraction > MAX_CENTRE_ERROR or errors.median_rotation_deg > MAX_ROTATION_DEG:
        raise InputError(
            f"the COLMAP model's cameras do not match the dataset's poses (after the best alignment the median "
            f"camera is {errors.median_centre_fraction:.1%} of the scene away and turned "
            f"{errors.median_rotation_deg:.1f} degrees): it belongs to another reconstruction",
            model.images_file(),
        )
    transform = align_cameras(model_cameras, frame_cameras)
    observed = frame_observations(model, frames, subset)
    out = []
    for frame, points in zip(frames, observed):
        frame = copy.copy(frame)  # a shallow copy: a frame reading its pixels from files keeps doing so
        frame.observed = replace(points, xyz=apply(transform, points.xyz))
        out.append(frame)
    return out
