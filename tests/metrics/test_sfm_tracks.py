"""Consistency over SfM tracks: exact scores per frame-gap bin, id shuffles, a synthetic scene's
ground truth through a COLMAP model, and ``mastsam eval`` on a capture without ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import load_scene, read_label_dir, write_label_image
from mastsam_splat.io.colmap import FrameTracks, read_sparse_model, tracks_in_frames, write_sparse_model
from mastsam_splat.cli.eval import EvalCommand
from mastsam_splat.metrics import SfmTracksConfig, sfm_consistency
from mastsam_splat.metrics.sfm_tracks import track_correspondences
from mastsam_splat.types import Camera, Frame

pytest.importorskip("pycolmap")

V, S = 20, 10  # frames, label image side


def hand_labels() -> list[np.ndarray]:
    """Left half id 1, right half id 2, top row unlabelled; frames 16.. swap the ids, frame 10 merges them."""
    maps = []
    for t in range(V):
        labels = np.zeros((S, S), dtype=np.uint16)
        labels[1:, :5], labels[1:, 5:] = (2, 1) if t >= 16 else (1, 2)
        if t == 10:
            labels[1:, :] = 1
        maps.append(labels)
    return maps


LEFT, RIGHT, TOP = (2.5, 5.5), (7.5, 5.5), (4.5, 0.5)
HAND_TRACKS = [  # (position, frames observing the point)
    (LEFT, (0, 1, 2)),  # near: gaps 1, 2, 1, same id
    (RIGHT, (0, 3)),  # near: gap 3, same id
    (TOP, (1, 2)),  # near: unlabelled
    (LEFT, (0, 16)),  # far: ids swapped
    (RIGHT, (0, 16)),  # far: ids swapped
    (LEFT, (5, 10)),  # gap 5: same id
    (RIGHT, (5, 10)),  # gap 5: merged into the left id
]


def hand_tracks() -> FrameTracks:
    point, frame, xy = [], [], []
    for p, (pos, frames) in enumerate(HAND_TRACKS):
        for f in frames:
            point.append(p)
            frame.append(f)
            xy.append(pos)
    return FrameTracks(
        frame=np.array(frame), point=np.array(point), xy=np.array(xy, dtype=float), num_frames=V, frames_in_model=V
    )


def check_hand_scores(result) -> None:
    near, far, every = result.near, result.far, result.all
    assert (near.num_correspondences, far.num_correspondences, every.num_correspondences) == (5, 2, 9)
    assert near.coverage == pytest.approx(4 / 5) and near.idc == 1.0 and near.psc == 1.0
    assert far.coverage == 1.0 and far.idc == 0.0 and far.psc == 1.0
    # All: 8 labelled, 5 same id; best matching keeps all but one of the merged pair (5, 10).
    assert every.coverage == pytest.approx(8 / 9)
    assert every.idc == pytest.approx(5 / 8) and every.psc == pytest.approx(7 / 8)
    assert (near.num_view_pairs, far.num_view_pairs, every.num_view_pairs) == (4, 1, 6)
    values = result.to_dict()
    assert values["sfm_idc_far"] == 0.0 and values["sfm_psc_far"] == 1.0
    assert values["sfm_idc_all"] == pytest.approx(5 / 8)
    assert values["segments_per_frame"] == pytest.approx((2 * (V - 1) + 1) / V)
    assert values["largest_segment_share"] == pytest.approx(((V - 1) * 45 + 90) / V / 100)


def test_hand_made_tracks_score_exactly() -> None:
    check_hand_scores(sfm_consistency(hand_labels(), hand_tracks()))


def test_half_of_the_points_can_be_held_out() -> None:
    """``points`` even / odd scores over the points of that index only (the others can be given to a tracker)."""
    even = sfm_consistency(hand_labels(), hand_tracks(), SfmTracksConfig(points="even"))
    assert (even.near.num_correspondences, even.far.num_correspondences, even.all.num_correspondences) == (4, 1, 6)
    assert even.near.coverage == pytest.approx(3 / 4) and even.near.idc == 1.0 and even.far.idc == 0.0
    odd = sfm_consistency(hand_labels(), hand_tracks(), SfmTracksConfig(points="odd"))
    assert (odd.near.num_correspondences, odd.far.num_correspondences, odd.all.num_correspondences) == (1, 1, 3)
    assert odd.all.idc == pytest.approx(2 / 3)


@pytest.mark.parametrize("binary", [True, False])
def test_hand_made_tracks_through_a_colmap_model(tmp_path: Path, binary: bool) -> None:
    tracks = hand_tracks()
    camera = Camera(K=np.eye(3), world_to_cam=np.eye(4), width=S, height=S)
    names = [f"frame_{t:05d}.png" for t in range(V)]
    points = np.zeros((len(HAND_TRACKS), 3))
    folder = write_sparse_model(
        tmp_path / "sparse", names, [camera] * V, points, tracks.point, tracks.frame, tracks.xy, binary=binary
    )
    image = np.zeros((S, S, 3), np.uint8)
    frames = [Frame(image=image, name=Path(n).stem, index=t, file=Path(n)) for t, n in enumerate(names)]
    check_hand_scores(sfm_consistency(hand_labels(), tracks_in_frames(read_sparse_model(folder), frames)))


def test_pair_cap_bounds_cost_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    frame = np.concatenate([np.arange(V), rng.permutation(V)[:4]])
    tracks = FrameTracks(
        frame=frame,
        point=np.repeat([0, 1], [V, 4]),
        xy=rng.uniform(0, S, (len(frame), 2)),
        num_frames=V,
        frames_in_model=V,
    )
    every = track_correspondences(tracks, max_pairs_per_point=1000)
    assert len(every) == V * (V - 1) // 2 + 6
    capped = track_correspondences(tracks, max_pairs_per_point=10, seed=3)
    assert len(capped) == 10 + 6
    assert np.all(capped.a < capped.b)
    again = track_correspondences(tracks, max_pairs_per_point=10, seed=3)
    np.testing.assert_array_equal(capped.obs_a, again.obs_a)
    np.testing.assert_array_equal(capped.obs_b, again.obs_b)
    other = track_correspondences(tracks, max_pairs_per_point=10, seed=4)
    assert not np.array_equal(np.c_[capped.a, capped.b], np.c_[other.a, other.b])


def test_points_seen_twice_in_a_frame_and_outside_the_image() -> None:
    tracks = FrameTracks(
        frame=np.array([0, 0, 1, 2]),
        point=np.array([0, 0, 0, 0]),
        xy=np.array([LEFT, RIGHT, LEFT, (-3.0, 2.0)]),
        num_frames=3,
        frames_in_model=3,
    )
    result = sfm_consistency(hand_labels()[:3], tracks)
    assert result.all.num_correspondences == 1 and result.all.idc == 1.0  # (0, 1); frame 2 is outside


# ---------------------------------------------------------------- synthetic scene


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    from mastsam_splat.synthetic import make_scene
    from mastsam_splat.synthetic.sfm import write_scene_sfm_model

    root = make_scene(tmp_path_factory.mktemp("sfm") / "scene", frames=24, width=80, height=60, seed=0, progress=False)
    write_scene_sfm_model(root)
    write_scene_sfm_model(root, output=root / "colmap" / "sparse" / "0", binary=False)
    return root


def ground_truth(root: Path, level: str = "instances") -> list[np.ndarray]:
    scene = load_scene(root)
    return read_label_dir(root / level, [f.name for f in scene.frames], [(f.height, f.width) for f in scene.frames])


def shuffle_per_view(maps: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Each view's ids renumbered by its own random permutation into a range no other view uses."""
    rng = np.random.default_rng(seed)
    out = []
    for t, labels in enumerate(maps):
        ids = np.unique(labels[labels > 0])
        lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
        lut[ids] = 100 * (t + 1) + rng.permutation(len(ids)) + 1
        out.append(lut[labels].astype(np.uint16))
    return out


@pytest.mark.parametrize("model", ["sparse/0", "colmap/sparse/0"])
def test_synthetic_ground_truth_is_consistent(synthetic: Path, model: str) -> None:
    scene = load_scene(synthetic)
    tracks = tracks_in_frames(read_sparse_model(synthetic / model), scene.frames)
    assert tracks.frames_in_model == 24
    result = sfm_consistency(ground_truth(synthetic), tracks)
    for scores in (result.near, result.far, result.all):
        assert scores.num_correspondences > 50
        assert scores.idc == 1.0 and scores.psc == 1.0
    assert result.near.num_view_pairs > result.far.num_view_pairs > 0

    shuffled = sfm_consistency(shuffle_per_view(ground_truth(synthetic), seed=0), tracks)
    for scores in (shuffled.near, shuffled.far, shuffled.all):
        assert scores.idc == 0.0 and scores.psc == 1.0
    assert shuffled.all.coverage == result.all.coverage


def write_masks(folder: Path, names: list[str], maps: list[np.ndarray]) -> None:
    for name, labels in zip(names, maps):
        write_label_image(folder / f"{name}.png", labels)


def test_eval_reports_both_with_ground_truth(synthetic: Path, tmp_path: Path, capsys) -> None:
    names = [f.name for f in load_scene(synthetic).frames]
    write_masks(tmp_path / "track" / "masks", names, ground_truth(synthetic))
    out = tmp_path / "metrics.json"
    EvalCommand(pred=tmp_path / "track", data=synthetic, json=out).main()
    values = json.loads(out.read_text())
    assert values["per_view_miou"] == pytest.approx(1.0) and values["idc"] == pytest.approx(1.0)
    for key in ("sfm_idc_near", "sfm_idc_far", "sfm_idc_all", "sfm_psc_near", "sfm_psc_far", "sfm_psc_all"):
        assert values[key] == 1.0, key
    for key in ("sfm_coverage_near", "sfm_coverage_far", "sfm_coverage_all", "largest_segment_share"):
        assert 0.0 < values[key] <= 1.0, key
    assert values["segments_per_frame"] > 1
    assert values["sfm_model"] == str(synthetic / "sparse" / "0")
    assert values["config"]["sfm"]["far_gap"] == 15
    printed = capsys.readouterr().out
    assert "sfm_idc" in printed and "far >= 15" in printed


def capture_without_ground_truth(synthetic: Path, folder: Path) -> Path:
    """The synthetic scene's images and COLMAP model only: a capture with nothing else known."""
    shutil.copytree(synthetic / "images", folder / "images")
    shutil.copytree(synthetic / "sparse", folder / "sparse")
    return folder


def test_eval_without_ground_truth(synthetic: Path, tmp_path: Path) -> None:
    data = capture_without_ground_truth(synthetic, tmp_path / "capture")
    names = [f.name for f in load_scene(data).frames]
    write_masks(tmp_path / "pred", names, shuffle_per_view(ground_truth(synthetic), seed=1))
    out = tmp_path / "metrics.json"
    EvalCommand(pred=tmp_path / "pred", data=data, json=out).main()
    values = json.loads(out.read_text())
    assert values["per_view_miou"] is None and values["idc"] is None
    assert values["sfm_idc_all"] == 0.0 and values["sfm_psc_all"] == 1.0
    # The model given explicitly, on a dataset that cannot find it, with a stride: a subset of the frames.
    report = EvalCommand(pred=tmp_path / "pred", data=data / "images", sparse=data / "sparse" / "0", stride=2).report()
    assert report.sfm is not None and report.sfm.frames_in_model == 12
    assert report.sfm.all.psc == 1.0 and report.sfm.near.num_view_pairs > 0


def test_eval_refuses_a_model_of_another_capture(synthetic: Path, tmp_path: Path) -> None:
    data = capture_without_ground_truth(synthetic, tmp_path / "capture")
    for image in sorted((data / "images").iterdir()):
        image.rename(image.with_name("img_" + image.name))
    names = [f.name for f in load_scene(data).frames]
    write_masks(tmp_path / "pred", names, ground_truth(synthetic))
    out = tmp_path / "metrics.json"
    with pytest.raises(InputError, match="not frames of the dataset") as info:
        EvalCommand(pred=tmp_path / "pred", data=data, json=out).main()
    assert info.value.path == data / "sparse" / "0" / "images.bin"
    assert not out.exists()
    with pytest.raises(InputError, match="max pairs per point"):
        EvalCommand(pred=tmp_path / "pred", data=data, sfm=SfmTracksConfig(max_pairs_per_point=0)).main()
    with pytest.raises(InputError, match="frame gaps"):
        EvalCommand(pred=tmp_path / "pred", data=data, sfm=SfmTracksConfig(near_gap=0)).main()
