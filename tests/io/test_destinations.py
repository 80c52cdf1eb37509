"""Output locations are checked before any work: not a file, not under a file, writable, not the images' folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mastsam_splat.errors import InputError
from mastsam_splat.io import destinations
from mastsam_splat.io.destinations import check_output_file, check_writable_dir


def make_unwritable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only folder; as root (who may write anywhere) the write probe is told so."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = destinations.can_create_in
        monkeypatch.setattr(destinations, "can_create_in", lambda p: Path(p) != folder and real(p))


def test_new_and_existing_folders_are_accepted(tmp_path: Path) -> None:
    assert check_writable_dir(tmp_path / "a" / "b", "--output-dir") == tmp_path / "a" / "b"
    check_writable_dir(tmp_path, "--output-dir")
    assert not (tmp_path / "a").exists()
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_a_file_or_a_path_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(InputError, match=r"--output-dir is a file, not a folder"):
        check_writable_dir(tmp_path / "f.txt", "--output-dir")
    with pytest.raises(InputError, match=r"--output-dir cannot be created: .*f.txt is a file") as info:
        check_writable_dir(tmp_path / "f.txt" / "out" / "x", "--output-dir")
    assert info.value.path == tmp_path / "f.txt" / "out" / "x"


def test_an_unwritable_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    make_unwritable(locked, monkeypatch)
    try:
        with pytest.raises(InputError, match=r"--output-dir cannot be written: .*locked is not writable"):
            check_writable_dir(locked / "out", "--output-dir")
        with pytest.raises(InputError, match="is not writable"):
            check_writable_dir(locked, "--output-dir")
        with pytest.raises(InputError, match=r"pass --cache DIR"):
            check_writable_dir(locked / "cache", "--cache", hint="pass --cache DIR")
    finally:
        locked.chmod(0o755)


def test_staged_folders_need_a_writable_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parent = tmp_path / "p"
    (parent / "out").mkdir(parents=True)
    make_unwritable(parent, monkeypatch)
    try:
        check_writable_dir(parent / "out", "--output-dir")
        with pytest.raises(InputError, match="not writable"):
            check_writable_dir(parent / "out", "--output-dir", staged=True)
    finally:
        parent.chmod(0o755)


def test_the_input_images_folder_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with pytest.raises(InputError, match="folder of the input images"):
        check_writable_dir(images, "--output-dir", inputs=[images])
    with pytest.raises(InputError, match="folder of the input images"):
        check_writable_dir(tmp_path / "." / "images", "--output-dir", inputs=[images.resolve()])
    check_writable_dir(images / "labels", "--output-dir", inputs=[images])


def test_output_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_output_file(tmp_path / "new" / "m.json", "--json") == tmp_path / "new" / "m.json"
    with pytest.raises(InputError, match=r"--json is a folder; give a file name, e.g. .*metrics.json"):
        check_output_file(tmp_path, "--json", example="metrics.json")
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match=r"--json cannot be created: .*f is a file"):
        check_output_file(tmp_path / "f" / "m.json", "--json")
    locked = tmp_path / "locked"
    make_unwritable(locked, monkeypatch)
    try:
        with pytest.raises(InputError, match="not writable"):
            check_output_file(locked / "m.json", "--json")
    finally:
        locked.chmod(0o755)
