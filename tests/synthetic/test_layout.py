"""Scene layouts: parts refine objects, and some objects show several parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.synthetic_scenes import FRAMES, read_stack


def test_parts_refine_instances(scene_dir: Path) -> None:
    info = json.loads((scene_dir / "scene.json").read_text())
    owner = {p["id"]: o["id"] for o in info["objects"] for p in o["parts"]}
    instances = read_stack(scene_dir, "instances")
    parts = read_stack(scene_dir, "parts")
    np.testing.assert_array_equal(parts == 0, instances == 0)
    for part_id in np.unique(parts[parts > 0]):
        assert set(np.unique(instances[parts == part_id])) == {owner[int(part_id)]}
    # Some object shows several parts in one view, so parts really split objects.
    assert any(
        len(np.unique(parts[t][instances[t] == obj])) > 1 for t in range(FRAMES) for obj in np.unique(instances[t]) if obj
    )
