"""The tracker cache keys on content: model files and backend code, not just their paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mastsam_splat.tracker import TrackerConfig
from mastsam_splat.tracker.cache import (
    MANIFEST,
    ResultCache,
    code_fingerprint,
    config_fingerprint,
    file_fingerprint,
)
from mastsam_splat.tracker.job import TrackingJob


def replace_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_file_fingerprint_sees_content_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(bytes(300_000))
    first = file_fingerprint(path)
    replace_keeping_size_and_mtime(path, bytes(299_999) + b"\x01")  # last block differs
    assert file_fingerprint(path) != first
    second = file_fingerprint(path)
    os.utime(path, ns=(0, 10**9))
    assert file_fingerprint(path) != second
    assert file_fingerprint(tmp_path / "missing") == {"missing": True}


@pytest.mark.parametrize("backend", ["sam", "mast3r"])
def test_a_replaced_checkpoint_at_the_same_path_changes_the_fingerprint(tmp_path: Path, backend: str) -> None:
    ckpt = tmp_path / "weights.pth"
    ckpt.write_bytes(b"\x00" * 4096)
    options = {"sam_checkpoint": ckpt} if backend == "sam" else {"mast3r_checkpoint": ckpt}
    segmenter, matcher = ("sam", "sift") if backend == "sam" else ("classical", "mast3r")

    def fingerprint() -> str:
        return config_fingerprint(TrackingJob.from_options(segmenter, matcher, TrackerConfig(), **options).fingerprint())

    before = fingerprint()
    assert fingerprint() == before
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    ckpt.write_bytes(png)  # a PNG in place of the model
    assert fingerprint() != before


def test_the_backend_code_is_part_of_the_fingerprint() -> None:
    fingerprint = TrackingJob().fingerprint()
    assert fingerprint["segmenter"]["code"] == code_fingerprint("mastsam_splat.segmenters.classical")
    assert fingerprint["matcher"]["code"] == code_fingerprint("mastsam_splat.matchers.sift")
    assert len(fingerprint["segmenter"]["code"]) == 32
    assert code_fingerprint("mastsam_splat.segmenters.sam") != code_fingerprint("mastsam_splat.segmenters.classical")


def test_the_cache_recomputes_after_a_checkpoint_is_replaced(tmp_path: Path) -> None:
    ckpt = tmp_path / "sam.pth"
    ckpt.write_bytes(b"\x01" * 2048)
    out = tmp_path / "out"

    def cache() -> ResultCache:
        job = TrackingJob.from_options("sam", "sift", TrackerConfig(), sam_checkpoint=ckpt)
        return ResultCache(out, source="/data", input_hash="frames", config_hash=config_fingerprint(job.fingerprint()))

    out.mkdir()
    (out / "masks").mkdir()
    (out / "masks" / "a.png").write_bytes(b"x")
    cache().finish(["masks/a.png"])
    assert (out / MANIFEST).is_file() and cache().decide(["masks"]).action == "reuse"
    replace_keeping_size_and_mtime(ckpt, b"\x02" * 2048)
    decision = cache().decide(["masks"])
    assert decision.action == "compute" and decision.reason == "config changed"
    assert "masks/a.png" in decision.replace


def test_the_plugin_tracker_cache_sees_replaced_checkpoints(tmp_path: Path) -> None:
    pytest.importorskip("nerfstudio")
    from nerfstudio_plugin.tracking import TrackingConfig, tracking_job

    ckpt = tmp_path / "mast3r.pth"
    ckpt.write_bytes(b"\x01" * 2048)
    config = TrackingConfig(matcher="mast3r", mast3r_checkpoint=ckpt)
    before = config_fingerprint(tracking_job(config, [], tmp_path).fingerprint())
    replace_keeping_size_and_mtime(ckpt, b"\x03" * 2048)
    assert config_fingerprint(tracking_job(config, [], tmp_path).fingerprint()) != before
