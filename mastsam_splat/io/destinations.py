"""Where outputs go, checked before any work starts.

A run that tracks or trains for minutes and then fails to write (a path under a file, a read-only
dataset, a folder that is really a file) loses all of it; writing results into the folder of the
input images mixes them with the frames, so the next run on that folder reads them as frames.
Every command checks its destinations with these functions first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Union

from mastsam_splat.errors import InputError

PathLike = Union[str, Path]


def can_create_in(folder: PathLike) -> bool:
    """Whether a file can be created in ``folder`` (tried and removed: permission bits lie to root
    and say nothing about read-only file systems)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".mastsam-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if _exists(candidate):
            return candidate
    return Path(path.anchor or ".")


def _writable(folder: Path, option: str, path: Path, hint: str) -> None:
    if not can_create_in(folder):
        tail = f"; {hint}" if hint else ""
        raise InputError(
            f"{option} cannot be written: {folder} is not writable (read-only folder or file system){tail}", path
        )


def check_writable_dir(
    path: PathLike,
    option: str,
    inputs: Iterable[PathLike] = (),
    staged: bool = False,
    hint: str = "",
) -> Path:
    """Check that the folder ``path`` (option ``option``) can be created or written; return it.

    ``inputs``: folders holding input images, which must not receive the output. ``staged``: the
    output is written next to ``path`` and renamed onto it, so its parent must be writable too.
    ``hint`` is appended to the message when a folder is not writable (e.g. which option moves it).
    """
    path = Path(path)
    if _exists(path) and not path.is_dir():
        raise InputError(f"{option} is a file, not a folder", path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise InputError(f"{option} cannot be created: {existing} is a file", path)
    _writable(existing, option, path, hint)
    if staged and existing == path:
        _writable(_nearest_existing(path.parent), option, path, hint)
    resolved = path.resolve()
    for folder in inputs:
        if resolved == Path(folder).resolve():
            raise InputError(
                f"{option} is the folder of the input images; results written there would be read as frames "
                "by the next run; choose another folder",
                path,
            )
    return path


def check_output_file(path: PathLike, option: str, example: str = "out.json") -> Path:
    """Check that the file ``path`` (option ``option``) can be created or replaced; return it."""
    path = Path(path)
    if _exists(path) and path.is_dir():
        raise InputError(f"{option} is a folder; give a file name, e.g. {path / example}", path)
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise InputError(f"{option} cannot be created: {existing} is a file", path)
    _writable(existing, option, path, "")
    return path
