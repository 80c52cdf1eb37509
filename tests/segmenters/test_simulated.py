"""The simulated SAM: seeded, SAM-like granularity changes across views, multimask-style prompts,
frames found by their pixels, and ground truth required."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene
from mastsam_splat.segmenters import make_segmenter
from mastsam_splat.segmenters.simulated import SimulatedSamConfig, SimulatedSamSegmenter


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory) -> Path:
    from mastsam_splat.synthetic import make_scene

    return make_scene(tmp_path_factory.mktemp("sim") / "scene", frames=8, width=120, height=90, seed=2, progress=False)


@pytest.fixture(scope="module")
def frames(scene_dir):
    return load_scene(scene_dir).frames


def auto_masks(segmenter, image) -> list[np.ndarray]:
    return [m.segmentation for m in segmenter.auto(segmenter.prepare(image))]


def same_masks(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_seeded_and_independent_of_order(scene_dir, frames) -> None:
    first = SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir, seed=5))
    second = make_segmenter("simulated", SimulatedSamConfig(data=scene_dir, seed=5))
    assert second.name == "simulated"
    forward = [auto_masks(first, f.image) for f in frames]
    backward = [auto_masks(second, f.image) for f in reversed(frames)][::-1]
    assert all(same_masks(a, b) for a, b in zip(forward, backward))
    other = SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir, seed=6))
    changed = [auto_masks(other, f.image) for f in frames]
    assert any(not same_masks(a, b) for a, b in zip(forward, changed))


def owner(mask: np.ndarray, labels: np.ndarray) -> int:
    values = labels[mask]
    return int(np.bincount(values.astype(np.int64)).argmax()) if values.size else 0


def test_granularity_varies_across_views(scene_dir, frames) -> None:
    segmenter = SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir, seed=0))
    pieces: dict[int, set[int]] = {}
    for f in frames:
        state = segmenter.prepare(f.image)
        masks = segmenter.auto(state)
        counts = np.bincount([owner(m.segmentation, state.instances) for m in masks], minlength=1 << 10)
        for obj, parts in segmenter.object_parts(state).items():
            if len(parts) >= 2 and (state.instances == obj).sum() > 200:
                pieces.setdefault(obj, set()).add(int(counts[obj]))
        assert all(0.85 <= m.score <= 1.0 for m in masks)
    # Some multi-part object comes out whole in one view and in pieces in another.
    assert any(len(counts) > 1 for counts in pieces.values()), pieces


def test_boundary_jitter_and_missed_parts(scene_dir, frames) -> None:
    whole = dict(data=scene_dir, split_probability=0.0, merge_probability=0.0)
    exact = SimulatedSamSegmenter(SimulatedSamConfig(**whole, jitter_px=0, miss_probability=0.0))
    state = exact.prepare(frames[0].image)
    objects = {owner(m.segmentation, state.instances): m.segmentation for m in exact.auto(state)}
    assert set(objects) == set(exact.object_parts(state))
    for obj, mask in objects.items():
        np.testing.assert_array_equal(mask, state.instances == obj)
    noisy = SimulatedSamSegmenter(SimulatedSamConfig(**whole, jitter_px=3))
    areas = [m.area - int((state.instances == owner(m.segmentation, state.instances)).sum()) for m in noisy.auto(state)]
    assert any(a != 0 for a in areas)
    missing = SimulatedSamSegmenter(
        SimulatedSamConfig(
            data=scene_dir, split_probability=1.0, merge_probability=0.0, small_fraction=1.0, miss_probability=1.0
        )
    )
    assert missing.auto(missing.prepare(frames[0].image)) == []


def interior(mask: np.ndarray) -> tuple[float, float]:
    """The pixel centre farthest from the mask's boundary, as (x, y)."""
    row, col = np.unravel_index(np.argmax(ndimage.distance_transform_edt(mask)), mask.shape)
    return col + 0.5, row + 0.5


def test_prompts_choose_part_or_object(scene_dir, frames) -> None:
    segmenter = SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir, jitter_px=0))
    checked = 0
    for f in frames:
        state = segmenter.prepare(f.image)
        for obj, parts in segmenter.object_parts(state).items():
            masks = [(state.parts == p) & (state.instances == obj) for p in parts]
            if len(parts) < 2 or min(m.sum() for m in masks) < 30:
                continue
            whole = state.instances == obj
            a, b = interior(masks[0]), interior(masks[1])
            # One positive: the smallest mask holding it, its part.
            np.testing.assert_array_equal(segmenter.prompt(state, np.array([a])).segmentation, masks[0])
            # Positives on two parts: the object.
            got = segmenter.prompt(state, np.array([a, b]))
            np.testing.assert_array_equal(got.segmentation, whole)
            assert got.score == pytest.approx(0.95)
            # A negative on the other part keeps the part even with a positive there too: most positives, no negative.
            got = segmenter.prompt(state, np.array([a]), np.array([b]))
            np.testing.assert_array_equal(got.segmentation, masks[0])
            got = segmenter.prompt(state, np.array([a, b]), np.array([b]))
            np.testing.assert_array_equal(got.segmentation, masks[0])
            assert got.score == pytest.approx(0.95 / 2)
            checked += 1
        background = state.instances == 0
        empty = segmenter.prompt(state, np.array([interior(background)]))
        assert empty.area == 0 and empty.score == 0.0
        assert segmenter.prompt(state, np.zeros((0, 2))).area == 0
    assert checked >= 2


def test_frames_are_found_by_pixels_or_name(scene_dir, frames) -> None:
    segmenter = SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir))
    assert segmenter.prepare(frames[3].image).name == frames[3].name
    assert segmenter.prepare(frames[3]).index == 3
    assert segmenter.prepare(frames[3].image.copy()).index == 3
    changed = frames[3].image.copy()
    changed[0, 0] ^= 1
    with pytest.raises(InputError, match="not one of the dataset's frames"):
        segmenter.prepare(changed)


def test_needs_ground_truth(scene_dir, tmp_path) -> None:
    with pytest.raises(InputError, match="needs the dataset"):
        SimulatedSamSegmenter(SimulatedSamConfig())
    copy = tmp_path / "copy"
    shutil.copytree(scene_dir, copy)
    shutil.rmtree(copy / "parts")
    with pytest.raises(InputError, match="parts/") as info:
        make_segmenter("simulated", SimulatedSamConfig(data=copy))
    assert info.value.path == copy
    with pytest.raises(InputError, match="at most 1"):
        SimulatedSamSegmenter(SimulatedSamConfig(data=scene_dir, split_probability=0.7, merge_probability=0.5))
