"""Choosing segmenters by name."""

from __future__ import annotations

import subprocess
import sys
import typing

import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters import (
    SEGMENTER_CONFIGS,
    ClassicalSegmenterConfig,
    SamSegmenterConfig,
    Segmenter,
    SegmenterName,
    make_segmenter,
)
from mastsam_splat.segmenters.classical import ClassicalSegmenter


def test_names():
    assert set(SEGMENTER_CONFIGS) == {"classical", "sam", "simulated"}
    assert typing.get_args(SegmenterName) == tuple(SEGMENTER_CONFIGS)


def test_make_classical_with_defaults_configs_and_mappings():
    default = make_segmenter("classical")
    assert isinstance(default, ClassicalSegmenter) and isinstance(default, Segmenter)
    assert default.name == "classical"
    custom = make_segmenter("classical", ClassicalSegmenterConfig(merge_threshold=7.0))
    assert custom.config.merge_threshold == 7.0
    assert make_segmenter("classical", {"superpixels": "slic"}).config.superpixels == "slic"
    made = ClassicalSegmenterConfig(superpixels="slic").setup()
    assert isinstance(made, ClassicalSegmenter) and made.config.superpixels == "slic"


def test_unknown_name_lists_the_choices():
    with pytest.raises(InputError, match="unknown segmenter 'mask-rcnn'; choose one of: classical, sam"):
        make_segmenter("mask-rcnn")


def test_unknown_option_is_an_input_error():
    with pytest.raises(InputError, match="unknown option.*radius for segmenter 'classical'"):
        make_segmenter("classical", {"radius": 3})


def test_config_of_another_backend_is_refused():
    with pytest.raises(TypeError, match="segmenter 'classical' takes a ClassicalSegmenterConfig, got SamSegmenterConfig"):
        make_segmenter("classical", SamSegmenterConfig())


def test_sam_without_checkpoint_is_an_input_error():
    with pytest.raises(InputError, match="dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"):
        make_segmenter("sam", SamSegmenterConfig(model_type="vit_b"))


def test_package_import_is_light():
    code = (
        "import sys, mastsam_splat.segmenters\n"
        "heavy = [m for m in ('torch', 'segment_anything', 'skimage') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
