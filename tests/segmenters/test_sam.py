"""The SAM backend with a tiny randomly initialised Sam built from segment-anything's own classes.

The model is saved as a checkpoint file and loaded through ``make_segmenter("sam", ...)``, the
path users take; only the architecture comes from a test entry in ``SAM_ARCHITECTURES``.
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from segment_anything import SamAutomaticMaskGenerator, SamPredictor  # noqa: E402
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer  # noqa: E402

from mastsam_splat.errors import InputError  # noqa: E402
from mastsam_splat.segmenters import SamSegmenterConfig, make_segmenter  # noqa: E402
from mastsam_splat.segmenters.sam import SAM_ARCHITECTURES, SamSegmenter, load_sam  # noqa: E402


def tiny_sam(width: int = 32, img_size: int = 64) -> Sam:
    """A SAM with the real architecture at toy size: 64 px input, 8x8 embedding, width 32."""
    torch.manual_seed(0)
    patch = 8
    grid = img_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=width,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=32,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(grid, grid), input_image_size=(img_size, img_size), mask_in_chans=4
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    ).eval()


@pytest.fixture
def tiny_checkpoint(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setitem(SAM_ARCHITECTURES, "tiny", tiny_sam)
    monkeypatch.setitem(SAM_ARCHITECTURES, "tiny_wide", partial(tiny_sam, width=48))
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_sam().state_dict(), path)
    return path


def tiny_config(checkpoint: Path, **overrides) -> SamSegmenterConfig:
    settings = dict(
        checkpoint=checkpoint,
        model_type="tiny",
        device="cpu",
        points_per_side=4,
        pred_iou_thresh=0.0,
        stability_score_thresh=0.0,
    )
    settings.update(overrides)
    return SamSegmenterConfig(**settings)


def photo(height: int = 48, width: int = 80) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = np.full((height, width, 3), 60, dtype=np.uint8)
    image[10:35, 15:40] = (220, 60, 40)
    image[20:45, 50:75] = (40, 90, 210)
    return np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)


def count_encoder_calls(model: Sam) -> list[int]:
    calls = [0]
    forward = model.image_encoder.forward

    def counted(x):
        calls[0] += 1
        return forward(x)

    model.image_encoder.forward = counted
    return calls


def test_loads_checkpoint_through_registry(tiny_checkpoint):
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint))
    assert isinstance(segmenter, SamSegmenter)
    saved = torch.load(tiny_checkpoint, weights_only=True)
    loaded = segmenter.model.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert segmenter.model.device.type == "cpu"
    # The config's own setup() reaches the same backend.
    assert isinstance(tiny_config(tiny_checkpoint).setup(), SamSegmenter)


def test_one_encoder_call_per_frame(tiny_checkpoint):
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint))
    calls = count_encoder_calls(segmenter.model)
    image = photo()
    state = segmenter.prepare(image)
    assert calls[0] == 1
    masks = segmenter.auto(state)
    for xy in ([[20.5, 20.5]], [[60.0, 30.0], [55.0, 25.0]], [[5.0, 5.0]]):
        segmenter.prompt(state, np.array(xy), np.array([[70.0, 40.0]]))
    segmenter.auto(state)
    assert calls[0] == 1
    assert len(masks) > 0
    segmenter.prepare(photo(40, 40))
    assert calls[0] == 2


def test_auto_matches_stock_generator(tiny_checkpoint):
    config = tiny_config(tiny_checkpoint)
    segmenter = make_segmenter("sam", config)
    image = photo()
    masks = segmenter.auto(segmenter.prepare(image))
    stock = SamAutomaticMaskGenerator(
        segmenter.model,
        points_per_side=config.points_per_side,
        points_per_batch=config.points_per_batch,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        box_nms_thresh=config.box_nms_thresh,
    ).generate(image)
    assert len(masks) == len(stock) > 0
    for ours, ref in zip(masks, stock):
        assert ours.segmentation.shape == image.shape[:2] and ours.segmentation.dtype == bool
        assert np.array_equal(ours.segmentation, ref["segmentation"])
        assert ours.area == ref["area"]
        assert ours.score == pytest.approx(min(max(ref["predicted_iou"], 0.0), 1.0))


def test_prompt_matches_stock_predictor(tiny_checkpoint):
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint))
    image = photo()
    state = segmenter.prepare(image)
    reference = SamPredictor(segmenter.model)
    reference.set_image(image)

    pos, neg = np.array([[20.5, 20.5], [30.5, 25.5]]), np.array([[60.5, 30.5]])
    mask = segmenter.prompt(state, pos, neg)
    ref_masks, ref_iou, _ = reference.predict(
        point_coords=np.concatenate([pos, neg]) - 0.5, point_labels=np.array([1, 1, 0]), multimask_output=False
    )
    assert np.array_equal(mask.segmentation, ref_masks[0])
    assert 0.0 <= mask.score <= 1.0 and mask.area == int(ref_masks[0].sum())

    # A single positive click picks the best of SAM's three candidates.
    single = segmenter.prompt(state, pos[:1])
    ref_masks, ref_iou, _ = reference.predict(point_coords=pos[:1] - 0.5, point_labels=np.array([1]))
    assert np.array_equal(single.segmentation, ref_masks[int(np.argmax(ref_iou))])


def test_prompts_while_another_image_is_segmented_in_a_worker(tiny_checkpoint):
    """The tracker segments the next frames in a worker thread while it prompts on the current one: each side has its
    own predictor, so the prompts' masks and the automatic masks are those of running them in turn."""
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint))
    assert segmenter.concurrent and segmenter.predictor is not segmenter.auto_predictor
    current, following = photo(), photo(40, 64)[:, ::-1].copy()
    state = segmenter.prepare(current)
    clicks = [np.array([[20.5, 20.5]]), np.array([[60.5, 30.5], [55.5, 25.5]]), np.array([[5.5, 40.5]])]
    expected = [segmenter.prompt(state, xy).segmentation for xy in clicks]
    expected_auto = [m.segmentation for m in segmenter.auto(segmenter.prepare(following))]
    autos: list = []

    def segment_following() -> None:
        autos.extend(segmenter.auto(segmenter.prepare(following)) for _ in range(3))

    worker = threading.Thread(target=segment_following)
    worker.start()
    prompted = []
    while worker.is_alive() or not prompted:
        prompted.append([segmenter.prompt(state, xy).segmentation for xy in clicks])
    worker.join()
    assert all(np.array_equal(a, b) for masks in prompted for a, b in zip(masks, expected))
    assert len(autos) == 3
    for masks in autos:
        assert len(masks) == len(expected_auto)
        assert all(np.array_equal(m.segmentation, e) for m, e in zip(masks, expected_auto))


def test_prompt_without_positive_is_empty(tiny_checkpoint):
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint))
    calls = count_encoder_calls(segmenter.model)
    state = segmenter.prepare(photo())
    mask = segmenter.prompt(state, np.array([[500.0, 5.0]]), np.array([[5.0, 5.0]]))
    assert mask.area == 0 and mask.score == 0.0 and mask.segmentation.shape == (48, 80)
    assert calls[0] == 1


def test_missing_checkpoint_says_where_to_download(tmp_path):
    with pytest.raises(InputError, match=r"https://dl\.fbaipublicfiles\.com/segment_anything/sam_vit_b_01ec64\.pth"):
        make_segmenter("sam", SamSegmenterConfig(checkpoint=tmp_path / "nope.pth", model_type="vit_b"))
    with pytest.raises(InputError, match=r"sam_vit_h_4b8939\.pth"):
        make_segmenter("sam", SamSegmenterConfig())


def test_truncated_or_garbage_checkpoint(tiny_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(tiny_checkpoint.read_bytes()[: tiny_checkpoint.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as err:
        load_sam(truncated, "tiny", "cpu")
    assert err.value.path == truncated
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="truncated"):
        load_sam(garbage, "tiny", "cpu")
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"a": 1}}, wrapped)
    with pytest.raises(InputError, match="state dict"):
        load_sam(wrapped, "tiny", "cpu")


def test_wrong_model_type(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="does not match SAM model type tiny_wide"):
        load_sam(tiny_checkpoint, "tiny_wide", "cpu")
    # A checkpoint whose encoder width is an official type's names that type.
    state = tiny_sam().state_dict()
    state["image_encoder.pos_embed"] = torch.zeros(1, 64, 64, 768)
    vit_b_like = tmp_path / "vit_b_like.pth"
    torch.save(state, vit_b_like)
    with pytest.raises(InputError, match="holds a vit_b model; pass --sam-model-type vit_b"):
        load_sam(vit_b_like, "tiny", "cpu")
    # Between official types the mismatch is reported before the large model is built.
    built = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SAM_ARCHITECTURES, "vit_h", lambda: built.append(1))
        with pytest.raises(InputError, match="holds a vit_b model; pass --sam-model-type vit_b"):
            load_sam(vit_b_like, "vit_h", "cpu")
    assert not built
    with pytest.raises(InputError, match="unknown SAM model type"):
        load_sam(tiny_checkpoint, "vit_x", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_requested_without_cuda(tiny_checkpoint):
    with pytest.raises(InputError, match="CUDA is not available"):
        make_segmenter("sam", tiny_config(tiny_checkpoint, device="cuda"))


def test_crop_layers_match_stock_generator_and_encode_each_crop(tiny_checkpoint):
    config = tiny_config(tiny_checkpoint, crop_n_layers=1)
    segmenter = make_segmenter("sam", config)
    calls = count_encoder_calls(segmenter.model)
    image = photo()
    state = segmenter.prepare(image)
    masks = segmenter.auto(state)
    assert calls[0] == 1 + 4  # the frame once, then each of the 2x2 crops of layer 1
    stock = SamAutomaticMaskGenerator(
        segmenter.model,
        points_per_side=config.points_per_side,
        pred_iou_thresh=config.pred_iou_thresh,
        stability_score_thresh=config.stability_score_thresh,
        box_nms_thresh=config.box_nms_thresh,
        crop_n_layers=1,
    ).generate(image)
    assert len(masks) == len(stock) > 0
    for ours, ref in zip(masks, stock):
        assert np.array_equal(ours.segmentation, ref["segmentation"])
    # Prompts after the crops decode from the frame's own embedding again.
    reference = SamPredictor(segmenter.model)
    reference.set_image(image)
    pos = np.array([[20.5, 20.5], [30.5, 25.5]])
    ref_masks, _, _ = reference.predict(point_coords=pos - 0.5, point_labels=np.array([1, 1]), multimask_output=False)
    assert np.array_equal(segmenter.prompt(state, pos).segmentation, ref_masks[0])


def test_fewer_points_per_side_decode_fewer_prompts(tiny_checkpoint):
    decoded = []
    segmenter = make_segmenter("sam", tiny_config(tiny_checkpoint, points_per_side=2))
    forward = segmenter.model.mask_decoder.forward

    def counted(*args, **kwargs):
        decoded.append(kwargs["sparse_prompt_embeddings"].shape[0])
        return forward(*args, **kwargs)

    segmenter.model.mask_decoder.forward = counted
    segmenter.auto(segmenter.prepare(photo()))
    assert sum(decoded) == 2 * 2


@pytest.mark.parametrize(
    "setting, value, message",
    [("points_per_side", 0, "points per side"), ("pred_iou_thresh", 1.5, "pred iou thresh"),
     ("stability_score_thresh", -0.1, "stability score thresh"), ("crop_n_layers", -1, "crop layers")],
)  # fmt: skip
def test_bad_automatic_mask_settings_are_input_errors(tiny_checkpoint, setting, value, message):
    with pytest.raises(InputError, match=message):
        make_segmenter("sam", tiny_config(tiny_checkpoint, **{setting: value}))


def test_a_folder_given_as_checkpoint_is_named_a_folder(tmp_path):
    with pytest.raises(InputError, match="is a folder, not a checkpoint file") as err:
        make_segmenter("sam", SamSegmenterConfig(checkpoint=tmp_path, model_type="vit_b"))
    assert err.value.path == tmp_path
    with pytest.raises(InputError, match="SAM checkpoint not found"):
        make_segmenter("sam", SamSegmenterConfig(checkpoint=tmp_path / "missing.pth", model_type="vit_b"))


def test_track_command_passes_the_sam_settings(tmp_path):
    from mastsam_splat.cli.track import TrackCommand

    command = TrackCommand(
        data=tmp_path, output_dir=tmp_path / "out", segmenter="sam", sam_checkpoint=tmp_path / "s.pth",
        sam_model_type="vit_b", sam_points_per_side=16, sam_pred_iou_thresh=0.8, sam_stability_score_thresh=0.9,
        sam_crop_n_layers=1,
    )  # fmt: skip
    config = command.job().segmenter_config
    assert (config.checkpoint, config.model_type) == (tmp_path / "s.pth", "vit_b")
    assert (config.points_per_side, config.pred_iou_thresh, config.stability_score_thresh, config.crop_n_layers) == (
        16, 0.8, 0.9, 1
    )  # fmt: skip
    defaults = TrackCommand(data=tmp_path, output_dir=tmp_path / "out", segmenter="sam").job().segmenter_config
    assert defaults == SamSegmenterConfig(checkpoint=None, model_type="vit_h")
