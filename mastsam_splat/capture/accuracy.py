"""How well a prepared dataset recovered known cameras (synthetic scenes, benchmarks and tests)."""

from __future__ import annotations

from pathlib import Path

from mastsam_splat.geometry.similarity import PoseErrors, pose_errors
from mastsam_splat.io.scene import load_scene


def prepared_pose_errors(prepared: Path, reference: Path) -> PoseErrors:
    """Pose errors of the frames of ``prepared`` against the frames of the same name in ``reference``
    (both Nerfstudio datasets), after aligning the camera centres by a similarity."""
    truth = {frame.name: frame.camera for frame in load_scene(reference).frames}
    frames = load_scene(prepared).frames
    estimated = [frame.camera for frame in frames]
    return pose_errors(estimated, [truth[frame.name] for frame in frames])  # type: ignore[misc]
