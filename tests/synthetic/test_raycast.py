"""Ray-cast labels name the primitives hit: every labelled pixel lies on its object's surface."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.synthetic_scenes import FRAMES, read_depths, read_stack, scene_cameras, surface_distance, unproject_all


def test_instance_ids_are_the_same_objects_in_every_frame(scene_dir: Path) -> None:
    """Each labelled pixel, lifted to 3D, lies on a primitive of the object its id names."""
    info = json.loads((scene_dir / "scene.json").read_text())
    objects = {o["id"]: o for o in info["objects"]}
    cameras = scene_cameras(scene_dir)
    depths = read_depths(scene_dir)
    instances = read_stack(scene_dir, "instances")
    seen = set()
    for t in range(FRAMES):
        points, idx = unproject_all(cameras[t], depths[t])
        ids = instances[t].reshape(-1)[idx]
        np.testing.assert_allclose(points[ids == 0, 2], 0.0, atol=0.01)
        for obj_id in np.unique(ids[ids > 0]):
            sel = points[ids == obj_id]
            dist = np.min([surface_distance(p, sel) for p in objects[obj_id]["primitives"]], axis=0)
            # Depth is quantised to millimetres.
            assert np.quantile(dist, 0.99) < 0.01 and dist.max() < 0.05, (t, obj_id)
            seen.add(int(obj_id))
    assert len(seen) >= 3
