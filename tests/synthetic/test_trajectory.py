"""Cameras of the generated trajectories agree with the rendered depth: surfaces reproject between frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from support.synthetic_scenes import FRAMES, HEIGHT, WIDTH, read_depths, read_stack, scene_cameras, unproject_all


def test_depth_reprojects_onto_same_instance(scene_dir: Path) -> None:
    cameras = scene_cameras(scene_dir)
    depths = read_depths(scene_dir)
    instances = read_stack(scene_dir, "instances")
    checked = 0
    for a, b in [(i, i + 1) for i in range(FRAMES - 1)]:
        # Interior pixels only: a pixel whose 3x3 neighbourhood is one instance.
        inst_a = instances[a]
        uniform = (cv2.dilate(inst_a, np.ones((3, 3))) == inst_a) & (cv2.erode(inst_a, np.ones((3, 3))) == inst_a)
        points, idx = unproject_all(cameras[a], depths[a] * uniform)
        xy, z = cameras[b].project(points)
        col, row = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
        inside = (z > 0) & (col >= 0) & (col < WIDTH) & (row >= 0) & (row < HEIGHT)
        col, row, z, idx = col[inside], row[inside], z[inside], idx[inside]
        depth_b = depths[b][row, col]
        visible = np.abs(depth_b - z) < 0.05 * z  # not occluded in b
        same = instances[b][row, col][visible] == inst_a.reshape(-1)[idx][visible]
        objects = inst_a.reshape(-1)[idx][visible] > 0
        # Most surface seen in a is seen in b (wrong cameras or depth units would give ~0).
        assert visible.mean() > 0.5, (a, b)
        assert same.mean() > 0.99, (a, b, same.mean())
        assert same[objects].mean() > 0.98, (a, b)
        checked += int(objects.sum())
    assert checked > 100
