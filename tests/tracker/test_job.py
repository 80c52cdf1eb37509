"""One tracker run into a folder: staged writes, leftovers of killed runs, warnings for failed matching."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import mastsam_splat.tracker.outputs as outputs_module
from mastsam_splat.io.atomic import STAGING_MARKER, writer_tag
from mastsam_splat.tracker import TrackerConfig
from mastsam_splat.tracker.cache import MANIFEST
from mastsam_splat.tracker.job import TrackingJob, track_to_folder
from mastsam_splat.tracker.outputs import REPORT_FILE
from mastsam_splat.tracker.view_order import ViewOrderConfig
from support.planar_scene import sequence


@pytest.fixture(scope="module")
def frames():
    return sequence([0.0, 0.2, 0.4, 0.6])


def listing(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_an_interrupted_write_leaves_the_previous_result(frames, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    job = TrackingJob()
    track_to_folder(frames, job, out, source="a")
    before = listing(out)
    original = outputs_module.write_label_image
    calls = []

    def interrupted_writer(path, labels):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(path, labels)

    monkeypatch.setattr(outputs_module, "write_label_image", interrupted_writer)
    with pytest.raises(KeyboardInterrupt):
        track_to_folder(frames, job, out, source="a", recompute=True)
    assert len(calls) == 3
    assert listing(out) == before  # the earlier results, untouched, and no staging folder
    assert not list(tmp_path.rglob(".*"))
    # the earlier results are still complete: a normal run reuses them
    assert track_to_folder(frames, job, out, source="a").status == "reused"


def test_changed_settings_replace_exactly_the_earlier_files(frames, tmp_path: Path) -> None:
    out = tmp_path / "out"
    track_to_folder(frames, TrackingJob(), out, source="a")
    (out / "masks" / "notes.txt").write_text("the user's")
    (out / "mine.txt").write_text("the user's")
    run = track_to_folder(frames[:2], TrackingJob(), out, source="a")
    assert run.status == "computed" and run.reason == "input changed"
    assert sorted(p.name for p in (out / "masks").iterdir()) == [f"{frames[0].name}.png", f"{frames[1].name}.png", "notes.txt"]
    assert (out / "mine.txt").is_file()


def test_a_killed_run_is_cleaned_up_by_the_next_one(frames, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    out = tmp_path / "out"
    stale = out / f".mastsam.{writer_tag(proc.pid)}.abcdefgh.partial"
    (stale / "masks").mkdir(parents=True)
    (stale / STAGING_MARKER).write_bytes(b"")
    (stale / "masks" / "frame_0000.png").write_bytes(b"half")
    sibling = tmp_path / f".out.{writer_tag(proc.pid)}.abcdefgh.partial"
    sibling.mkdir()
    (sibling / STAGING_MARKER).write_bytes(b"")
    run = track_to_folder(frames, TrackingJob(), out, source="a")
    assert run.status == "computed"
    assert not stale.exists() and not sibling.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and all((out / f).is_file() for f in manifest["files"])


def test_failed_matching_is_reported_with_the_frame_names(frames, tmp_path: Path) -> None:
    blank = replace(frames[2], image=np.full_like(frames[2].image, 128), name="blank")
    seq = [frames[0], frames[1], blank, frames[3]]
    heard: list[str] = []
    in_file_order = TrackingJob(tracker=TrackerConfig(view_order=ViewOrderConfig(order="sequence")))
    run = track_to_folder(seq, in_file_order, tmp_path / "out", source="a", on_warning=heard.append)
    assert heard == run.warnings and len(heard) == 2
    assert f"{frames[1].name} and blank (0 matches)" in heard[0]
    assert f"blank and {frames[3].name} (0 matches)" in heard[1]
    report = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert report["warnings"] == heard
    # a sequence that matches everywhere has no warning
    run = track_to_folder(frames, TrackingJob(), tmp_path / "ok", source="b")
    assert run.warnings == [] and json.loads((tmp_path / "ok" / REPORT_FILE).read_text())["warnings"] == []


def test_independent_mode_without_matching_does_not_warn(frames, tmp_path: Path) -> None:
    job = TrackingJob(tracker=TrackerConfig(mode="independent"))
    blank = replace(frames[2], image=np.full_like(frames[2].image, 128), name="blank")
    run = track_to_folder([frames[0], blank], job, tmp_path / "out", source="a")
    assert run.warnings == []


def test_independent_mode_matched_for_3d_points_does_not_warn(frames, tmp_path: Path) -> None:
    """Without depth, posed frames are still matched (SIFT triangulates the point cloud); fresh ids are no failure."""
    job = TrackingJob(tracker=TrackerConfig(mode="independent"))
    posed = [replace(f, depth=None) for f in frames[:3]]
    run = track_to_folder(posed, job, tmp_path / "out", source="a")
    assert run.result is not None and run.result.points_source == "matches"
    assert all("match" in r.seconds for r in run.result.reports[1:])
    assert run.warnings == []
