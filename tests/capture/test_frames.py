"""Reading capture frames: EXIF orientation, undecodable files, video frame choice and short videos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from mastsam_splat.capture.frames import FrameSource, open_video, read_upright, video_frames, video_picks
from mastsam_splat.errors import InputError


def _write_video(path, frames: int, size=(64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), 8 * i, np.uint8)
        writer.write(image)
    writer.release()


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :10] = 255  # a white band on the left of the stored pixels
    pil = Image.fromarray(image)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif.get_ifd(0x8769)[0xA405] = 26  # 26 mm equivalent focal length
    pil.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    frame = read_upright(tmp_path / "phone.jpg")
    assert frame.image.shape == (60, 40, 3)
    assert frame.image[:10].mean() > 200 and frame.image[-10:].mean() < 50  # band now on top
    assert frame.focal_length_px == pytest.approx(26 / 36 * 60)


def test_truncated_image_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="could not be decoded"):
        read_upright(tmp_path / "b.png")


def test_video_picks():
    assert video_picks(100, 30.0, fps=3.0, max_frames=None) == list(range(0, 100, 10))
    assert video_picks(100, 30.0, fps=3.0, max_frames=4) == [0, 10, 20, 30]
    assert video_picks(100, 30.0, fps=None, max_frames=5) == [0, 25, 50, 74, 99]
    assert len(video_picks(40, 30.0, fps=None, max_frames=None)) == 40


def test_video_frames_and_a_video_that_ends_early(tmp_path):
    _write_video(tmp_path / "v.avi", 12)
    source, picks = open_video(tmp_path / "v.avi", fps=None, max_frames=4)
    frames = list(video_frames(tmp_path / "v.avi", picks, source))
    assert [f.name for f in frames] == [f"frame_{i:05d}" for i in picks]
    assert source.note is None
    short = FrameSource(path=tmp_path / "v.avi", kind="video", count=3)
    frames = list(video_frames(tmp_path / "v.avi", [0, 6, 20], short))
    assert len(frames) == 2 and "ended after 12 frames" in short.note


def test_unreadable_video_is_refused(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError):
        open_video(tmp_path / "bad.mp4", fps=None, max_frames=None)


def test_photos_are_written_upright_as_jpeg(tmp_path):
    from mastsam_splat.capture.frames import open_images, photo_frames
    from mastsam_splat.capture.prepare import write_frames

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        pil = Image.fromarray(np.full((40, 60, 3), 50 * i, np.uint8))
        exif = pil.getexif()
        exif[0x0112] = 6
        pil.save(photos / f"IMG_{i}.JPG", exif=exif, quality=95)
    source = open_images(photos)
    names, size, focal = write_frames(tmp_path / "out", photo_frames(photos, source), source, None, progress=False)
    assert names == ["IMG_0.jpg", "IMG_1.jpg", "IMG_2.jpg"]
    assert size == (40, 60) and focal is None
    written = cv2.imread(str(tmp_path / "out" / "images" / "IMG_1.jpg"))
    assert written.shape == (60, 40, 3)
    assert cv2.imread(str(tmp_path / "out" / "images_2" / "IMG_1.jpg")).shape == (30, 20, 3)
