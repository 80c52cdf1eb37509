"""MASt3R matcher: checkpoint errors and (with mast3r installed) a tiny model through the real code."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from support.analytic_views import look_at, render, stereo_pair
from support.tiny_mast3r import TINY_ARGS, save_tiny_mast3r

from mastsam_splat.errors import InputError
from mastsam_splat.matchers import make_matcher


# --- checkpoint errors (no mast3r needed) ---------------------------------------------------------


def test_missing_checkpoint_explains_how_to_get_it(tmp_path):
    with pytest.raises(InputError, match="download.europe.naverlabs.com.*git clone --recursive"):
        make_matcher("mast3r")
    missing = tmp_path / "MASt3R.pth"
    with pytest.raises(InputError, match="MASt3R.pth.*not found.*MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"):
        make_matcher("mast3r", {"checkpoint": missing})


def _save(path: Path, payload) -> Path:
    import torch

    torch.save(payload, path)
    return path


def test_truncated_checkpoint(tmp_path):
    import torch

    path = _save(
        tmp_path / "full.pth", {"args": argparse.Namespace(model=TINY_ARGS), "model": {"w": torch.zeros(4096)}}
    )
    data = path.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.pth.*truncated"):
        make_matcher("mast3r", {"checkpoint": cut})


def test_wrong_model_type(tmp_path):
    import torch

    dust3r = _save(
        tmp_path / "dust3r.pth",
        {"args": argparse.Namespace(model="AsymmetricCroCo3DStereo(enc_depth=2)"), "model": {"w": torch.zeros(2)}},
    )
    with pytest.raises(InputError, match="dust3r.pth.*AsymmetricCroCo3DStereo checkpoint, not a MASt3R"):
        make_matcher("mast3r", {"checkpoint": dust3r})
    sam_like = _save(tmp_path / "sam_vit_b.pth", {"image_encoder.patch_embed.proj.weight": torch.zeros(2)})
    with pytest.raises(InputError, match="sam_vit_b.pth.*not a MASt3R checkpoint"):
        make_matcher("mast3r", {"checkpoint": sam_like})


def test_bad_repo_or_missing_package(tmp_path):
    import torch

    ckpt = _save(tmp_path / "m.pth", {"args": argparse.Namespace(model=TINY_ARGS), "model": {"w": torch.zeros(2)}})
    with pytest.raises(InputError, match="not a clone of github.com/naver/mast3r"):
        make_matcher("mast3r", {"checkpoint": ckpt, "repo": tmp_path})
    if importlib.util.find_spec("mast3r") is None:
        with pytest.raises(InputError, match="could not be imported.*git clone --recursive"):
            make_matcher("mast3r", {"checkpoint": ckpt})


# --- a tiny randomly initialised MASt3R, through the real code (needs the mast3r clone) -----------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    pytest.importorskip("mast3r.model")
    return save_tiny_mast3r(tmp_path_factory.mktemp("mast3r") / "tiny_mast3r.pth")


def test_tiny_model_end_to_end(tiny_checkpoint):
    matcher = make_matcher("mast3r", {"checkpoint": tiny_checkpoint, "image_size": 128, "device": "cpu"})
    a, _ = stereo_pair(320, 240)
    b = render(look_at([0.5, 0.15, 0.3], [0.0, 0.1, 6.0], 200, 300), "portrait")  # other size and aspect
    matches = matcher.match(a, b)
    assert len(matches) > 20
    for xy, frame in ((matches.xy_a, a), (matches.xy_b, b)):
        assert np.all(xy >= 0) and np.all(xy[:, 0] < frame.width) and np.all(xy[:, 1] < frame.height)
        # Coordinates are network pixel centres mapped back to the original.
        tf = matcher.input_transform(frame)
        net = tf.to_network(xy)
        np.testing.assert_allclose(net - np.floor(net), 0.5, atol=1e-4)
    assert np.all((matches.confidence >= 0) & (matches.confidence <= 1))
    assert matches.pts3d_a.shape == (len(matches), 3) and np.isfinite(matches.pts3d_b).all()


def test_checkpoint_missing_weights(tiny_checkpoint, tmp_path):
    import torch

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    ckpt["model"].pop(min(ckpt["model"]))
    partial = _save(tmp_path / "partial.pth", ckpt)
    with pytest.raises(InputError, match="partial.pth.*lacks 1 weights"):
        make_matcher("mast3r", {"checkpoint": partial})


def test_pointmap_confidence_filter_drops_unsure_3d_points_only(tiny_checkpoint):
    from mastsam_splat.tracker.points3d import matched_points

    a, b = stereo_pair(320, 240)
    settings = {"checkpoint": tiny_checkpoint, "image_size": 128, "device": "cpu"}
    everything = make_matcher("mast3r", {**settings, "min_pointmap_conf": 1.0}).match(a, b)
    nothing = make_matcher("mast3r", {**settings, "min_pointmap_conf": 1e30}).match(a, b)
    assert np.isfinite(everything.pts3d_a).all() and np.isnan(nothing.pts3d_a).all() and np.isnan(nothing.pts3d_b).all()
    # The 2D matches are the same whatever the filter: they still carry masks between frames.
    np.testing.assert_array_equal(everything.xy_a, nothing.xy_a)
    np.testing.assert_array_equal(everything.confidence, nothing.confidence)
    assert len(matched_points(nothing)[0].xyz) == 0
    # In between, the points kept are exactly those the all-keeping run has at those matches.
    matcher = make_matcher("mast3r", settings)
    assert matcher.config.min_pointmap_conf == 1.5
    middle = make_matcher("mast3r", {**settings, "min_pointmap_conf": 1.0 + 1e-3}).match(a, b)
    kept = np.isfinite(middle.pts3d_a).all(axis=1)
    np.testing.assert_allclose(middle.pts3d_a[kept], everything.pts3d_a[kept])


def test_repo_option_imports_the_clone(tiny_checkpoint):
    import mast3r

    clone = Path(mast3r.__file__).resolve().parents[1]
    matcher = make_matcher("mast3r", {"checkpoint": tiny_checkpoint, "repo": clone, "device": "cpu"})
    assert matcher.config.repo == clone


def test_a_folder_given_as_checkpoint_is_named_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder, not a checkpoint file") as err:
        make_matcher("mast3r", {"checkpoint": tmp_path})
    assert err.value.path == tmp_path


def test_install_help_names_the_repo_option_and_the_minimal_install():
    from mastsam_splat.matchers.mast3r import INSTALL_HELP

    assert "--mast3r-repo PATH" in INSTALL_HELP and "pip install einops huggingface_hub" in INSTALL_HELP
    assert "requirements.txt" not in INSTALL_HELP  # MASt3R's own lists bring numpy 2, a second OpenCV and gradio


def test_too_small_image_size_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="image size"):
        make_matcher("mast3r", {"checkpoint": tmp_path / "m.pth", "image_size": 8})


def test_track_command_passes_the_mast3r_settings(tmp_path):
    from mastsam_splat.cli.track import TrackCommand

    command = TrackCommand(
        data=tmp_path, output_dir=tmp_path / "out", matcher="mast3r", mast3r_checkpoint=tmp_path / "m.pth",
        mast3r_repo=tmp_path / "mast3r", mast3r_image_size=384, mast3r_min_conf=2.0,
    )  # fmt: skip
    config = command.job().matcher_config
    assert (config.checkpoint, config.repo, config.image_size, config.min_pointmap_conf) == (
        tmp_path / "m.pth", tmp_path / "mast3r", 384, 2.0
    )  # fmt: skip


def test_plugin_tracking_config_passes_the_backend_settings(tmp_path):
    pytest.importorskip("nerfstudio")
    from nerfstudio_plugin.tracking import TrackingConfig, tracking_job

    config = TrackingConfig(
        segmenter="sam", sam_checkpoint=tmp_path / "s.pth", sam_points_per_side=8, sam_crop_n_layers=1,
        matcher="mast3r", mast3r_checkpoint=tmp_path / "m.pth", mast3r_repo=tmp_path, mast3r_image_size=224,
        mast3r_min_conf=1.2,
    )  # fmt: skip
    job = tracking_job(config, [], tmp_path)
    assert (job.segmenter_config.points_per_side, job.segmenter_config.crop_n_layers) == (8, 1)
    assert (job.matcher_config.repo, job.matcher_config.image_size, job.matcher_config.min_pointmap_conf) == (
        tmp_path, 224, 1.2
    )  # fmt: skip
