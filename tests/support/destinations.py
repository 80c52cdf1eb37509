"""A read-only folder for tests, also when the tests run as root (who may write anywhere)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def unwritable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``folder`` made read-only for the block; as root the write probe is told it is not writable."""
    from mastsam_splat.io import destinations

    folder.mkdir(parents=True, exist_ok=True)
    mode = folder.stat().st_mode & 0o777
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = destinations.can_create_in
        monkeypatch.setattr(destinations, "can_create_in", lambda p: Path(p).resolve() != folder.resolve() and real(p))
    try:
        yield folder
    finally:
        folder.chmod(mode)
