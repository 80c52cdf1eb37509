"""Atomic writes: write under a temporary name in the same folder, then rename.

A reader never sees a half-written file or folder, a failure leaves no partial output, and
SIGINT/SIGTERM cannot split the final renames (they are delivered once the renames are done).
Temporary names carry the writer's host and process id (``.<name>.<host>-<pid>.<random>.tmp<suffix>``
for files, ``.<name>.<host>-<pid>.<random>.partial`` for folders, which also hold a marker file), so
that the next write into the folder removes the leftovers of a killed writer of this machine and
nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

from mastsam_splat.errors import InputError

PathLike = Union[str, Path]

STAGING_MARKER = ".mastsam-staging"
"""File inside every staging folder (removed before the folder is published)."""
MERGE_STAGING = "mastsam"
"""Name part of the staging folder made inside an existing output folder."""
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{4})-(?P<pid>\d+)\.[a-z0-9_]{8}\.(?P<kind>tmp.*|partial)$")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends (no-op off the main thread or without signal masks)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    # Read the mask before changing it: a handler may run right after any call returns, and one
    # raising between blocking and ``try`` would leave the signals blocked for good.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _clean_up(action: Callable[[], None]) -> None:
    """Run a clean-up to its end even when an interrupt lands in it, then raise that interrupt.

    A signal released just before (e.g. by :func:`signals_deferred`) may run its handler a few
    bytecodes later, inside the clean-up; the clean-up is then run again rather than left half-done.
    """
    interrupt: Optional[BaseException] = None
    while True:
        try:
            with signals_deferred():
                action()
        except KeyboardInterrupt as exc:
            interrupt = exc
            continue
        break
    if interrupt is not None:
        raise interrupt


def writer_tag(pid: Optional[int] = None) -> str:
    """``<host>-<pid>``: this machine (4 hex digits of its name's hash) and a process (default: this one)."""
    host = hashlib.blake2b(socket.gethostname().encode(), digest_size=2).hexdigest()
    return f"{host}-{os.getpid() if pid is None else pid}"


def _temp_prefix(name: str) -> str:
    return f".{name}.{writer_tag()}."


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def clean_stale_temporaries(folder: PathLike) -> list[Path]:
    """Remove the temporary files and staging folders that killed writers left in ``folder``.

    Only names of this module's pattern whose process (on this machine) is gone are removed, and a
    folder only when it holds the staging marker. Returns what was removed.
    """
    folder = Path(folder)
    host = writer_tag().split("-")[0]
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or match["host"] != host or _pid_alive(int(match["pid"])):
            continue
        try:
            if match["kind"] == "partial":
                if entry.is_dir() and not entry.is_symlink() and (entry / STAGING_MARKER).is_file():
                    shutil.rmtree(entry)
                    removed.append(entry)
            elif entry.is_file() and not entry.is_symlink():
                entry.unlink()
                removed.append(entry)
        except OSError:
            continue
    return removed


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps ``path``'s suffix so that libraries choosing a format by
    extension (OpenCV, PIL, plyfile) behave the same.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp: Optional[Path] = None
    try:
        with signals_deferred():  # an interrupt lands once ``tmp`` names the file, so the clean-up finds it
            fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(path.stem), suffix=f".tmp{path.suffix}", dir=path.parent)
            os.close(fd)
            tmp = Path(tmp_name)
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the file normal permissions
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            made = tmp
            _clean_up(lambda: made.unlink(missing_ok=True))
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _make_staging(parent: Path, name: str) -> Path:
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(name), suffix=".partial", dir=parent))
    staging.chmod(0o777 & ~_current_umask())  # mkdtemp creates 0700; give the folder normal permissions
    (staging / STAGING_MARKER).write_bytes(b"")
    return staging


@contextlib.contextmanager
def atomic_dir(path: PathLike, owned: Optional[Iterable[str]] = None, last: Sequence[str] = ()) -> Iterator[Path]:
    """Yield a fresh staging folder; if the block succeeds its files appear at ``path`` together.

    ``owned=None``: a previous folder at ``path`` is replaced as a whole (moved aside, replaced,
    removed). ``owned`` given: a previous folder is kept (with its permissions and every file
    not named) and the staged files are moved into it; of its earlier files only those named in
    ``owned`` (paths relative to ``path``) are removed, so files the project did not write stay.
    ``last`` names staged files moved after all others (e.g. a manifest saying the rest is done).
    When the block fails the staging folder is removed and ``path`` is untouched. Callers decide
    beforehand whether ``path`` may be replaced.
    """
    path = Path(path)
    merge = owned is not None and path.is_dir()
    staging: Optional[Path] = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temporaries(path.parent)
            if merge:
                clean_stale_temporaries(path)
            with signals_deferred():  # an interrupt lands once ``staging`` names the folder, so the clean-up finds it
                staging = _make_staging(path, MERGE_STAGING) if merge else _make_staging(path.parent, path.name)
        except OSError as exc:
            raise InputError(f"cannot write the output folder here ({exc.strerror or exc})", path) from None
        yield staging
        with signals_deferred():
            (staging / STAGING_MARKER).unlink()
            if merge:
                _merge_into(staging, path, owned or (), last)
                shutil.rmtree(staging, ignore_errors=True)
            else:
                _replace_dir(staging, path)
    except BaseException:
        if staging is not None:
            made = staging
            _clean_up(lambda: shutil.rmtree(made, ignore_errors=True))
        raise


def staged_files(folder: Path) -> list[str]:
    """Every file under ``folder`` but the staging marker, relative to it, sorted."""
    files = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(f for f in files if f != STAGING_MARKER)


def _merge_into(staging: Path, path: Path, owned: Iterable[str], last: Sequence[str]) -> None:
    new = staged_files(staging)
    for rel in new:
        target = path / rel
        if target.is_dir() and not target.is_symlink():
            raise InputError(f"a folder is in the way of the output file {rel}; move it away", target)
        for parent in Path(rel).parents:
            if parent != Path(".") and (path / parent).exists() and not (path / parent).is_dir():
                raise InputError(f"a file is in the way of the output folder {parent}; move it away", path / parent)
    root = path.resolve()
    keep = set(new)
    for rel in owned:
        target = path / rel
        if rel in keep or root not in target.resolve().parents:
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        _prune_empty_parents(target.parent, path)
    ordered = [rel for rel in new if rel not in last] + [rel for rel in last if rel in keep]
    for rel in ordered:
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)


def _prune_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _replace_dir(staging: Path, path: Path) -> None:
    if not path.exists():
        os.replace(staging, path)
        return
    old = Path(tempfile.mkdtemp(prefix=_temp_prefix(path.name), suffix=".old", dir=path.parent))
    old.rmdir()
    os.replace(path, old)
    try:
        os.replace(staging, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)
