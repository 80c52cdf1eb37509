"""Frames of a loaded scene decode their pixels on access: same arrays as reading every file up front, bounded cache."""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from mastsam_splat.io import load_scene
from mastsam_splat.io.frame_files import CACHE_FRAMES, FileFrame
from mastsam_splat.io.scene import read_depth, read_image


def _dataset(root: Path, n: int, h: int = 12, w: int = 16) -> None:
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        assert cv2.imwrite(str(root / "images" / f"f{i:03d}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        assert cv2.imwrite(str(root / "depth" / f"f{i:03d}.png"), rng.integers(1, 5000, (h, w), dtype=np.uint16))
        c2w = np.eye(4)
        c2w[0, 3] = i
        frames.append({"file_path": f"images/f{i:03d}.png", "depth_file_path": f"depth/f{i:03d}.png",
                       "transform_matrix": c2w.tolist()})
    meta = {"fl_x": 20.0, "fl_y": 20.0, "cx": w / 2, "cy": h / 2, "w": w, "h": h, "frames": frames}
    (root / "transforms.json").write_text(json.dumps(meta))


def test_frames_read_on_access_equal_the_files_in_any_order(tmp_path: Path) -> None:
    n = 3 * CACHE_FRAMES
    _dataset(tmp_path, n)
    scene = load_scene(tmp_path)
    assert all(isinstance(f, FileFrame) for f in scene.frames)
    order = list(range(n)) + list(range(n - 1, -1, -1)) + list(np.random.default_rng(1).permutation(n))
    for t in order:
        frame = scene.frames[t]
        assert (frame.height, frame.width) == (12, 16)
        np.testing.assert_array_equal(frame.image, read_image(tmp_path / "images" / f"f{t:03d}.png"))
        np.testing.assert_array_equal(frame.depth, read_depth(tmp_path / "depth" / f"f{t:03d}.png"))
        assert frame.image.dtype == np.uint8 and frame.depth.dtype == np.float32


def test_the_reader_keeps_a_bounded_number_of_decoded_arrays(tmp_path: Path) -> None:
    n = 4 * CACHE_FRAMES
    _dataset(tmp_path, n)
    scene = load_scene(tmp_path)
    reader = scene.frames[0]._files
    for frame in scene.frames:
        assert frame.image is frame.image  # cached while recent: one decode per use
        frame.depth
    assert len(reader._cache) <= 2 * CACHE_FRAMES
    before = reader.decoded
    assert scene.has_cameras and [f.width for f in scene.frames] == [16] * n
    assert reader.decoded == before  # cameras and sizes need no pixels


class _SlowLookups(OrderedDict):
    """A cache whose look-ups yield to other threads before returning: a look-up then a reorder, unguarded, would
    find its entry evicted by another thread in between."""

    def get(self, key, default=None):
        value = super().get(key, default)
        time.sleep(0.0002)
        return value


def test_threads_reading_frames_together_get_the_files(tmp_path: Path) -> None:
    """The tracker's worker segments frames ahead while the tracker reads others: the cache is shared by threads."""
    n = 3 * CACHE_FRAMES
    _dataset(tmp_path, n)
    scene = load_scene(tmp_path)
    reader = scene.frames[0]._files
    reader._cache = _SlowLookups(reader._cache)
    expected = [read_image(tmp_path / "images" / f"f{t:03d}.png") for t in range(n)]
    errors: list[BaseException] = []

    def read(seed: int) -> None:
        try:
            for t in np.random.default_rng(seed).integers(0, n, 200).tolist():
                np.testing.assert_array_equal(scene.frames[t].image, expected[t])
                scene.frames[t].depth
        except BaseException as error:  # (reported by the test's thread)
            errors.append(error)

    threads = [threading.Thread(target=read, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(reader._cache) <= 2 * CACHE_FRAMES


def test_pinned_and_replaced_frames_hold_their_arrays(tmp_path: Path) -> None:
    _dataset(tmp_path, 2)
    frame = load_scene(tmp_path).frames[1]
    copy = replace(frame, depth=None)
    assert copy.depth is None and copy.camera is frame.camera
    np.testing.assert_array_equal(copy.image, frame.image)
    frame.depth = np.zeros((12, 16), np.float32)
    assert not frame.depth.any()


def test_image_folder_frames_read_on_access(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = [rng.integers(0, 255, (10, 14, 3), dtype=np.uint8) for _ in range(CACHE_FRAMES + 3)]
    for i, image in enumerate(images):
        assert cv2.imwrite(str(tmp_path / f"{i:02d}.png"), image[:, :, ::-1])
    scene = load_scene(tmp_path)
    for i in (0, len(images) - 1, 1, 0):
        np.testing.assert_array_equal(scene.frames[i].image, images[i])
        assert scene.frames[i].depth is None and scene.frames[i].camera is None
