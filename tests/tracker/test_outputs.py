"""Output files of a tracker run: the contact sheet keeps only its tiles in memory and shows the same frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mastsam_splat.tracker.outputs import CONTACT_SHEET, contact_sheet, overlay, sheet_tiles, write_outputs
from mastsam_splat.tracker.results import FrameReport, TrackResult
from mastsam_splat.types import Frame


def test_sheet_tiles_spread_over_the_sequence() -> None:
    assert sheet_tiles(5).tolist() == [0, 1, 2, 3, 4]
    tiles = sheet_tiles(100)
    assert len(tiles) == 24 and tiles[0] == 0 and tiles[-1] == 99
    assert np.all(np.diff(tiles) >= 4)


def test_written_sheet_equals_the_sheet_of_every_overlay(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames, labels = [], []
    for i in range(30):
        frames.append(Frame(image=rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), name=f"f{i:02d}", index=i))
        labels.append(rng.integers(0, 4, (24, 32)).astype(np.uint16))
    result = TrackResult(
        labels=labels,
        reports=[FrameReport(index=f.index, name=f.name) for f in frames],
        points_source="none",
        cloud_xyz=np.zeros((0, 3)),
        cloud_rgb=np.zeros((0, 3), np.uint8),
        cloud_ids=np.zeros(0, np.int64),
    )
    write_outputs(tmp_path, frames, result, {}, {})
    written = cv2.imread(str(tmp_path / CONTACT_SHEET))[:, :, ::-1]
    every = contact_sheet([overlay(f.image, l) for f, l in zip(frames, labels)], [f.name for f in frames])
    np.testing.assert_array_equal(written, every)
