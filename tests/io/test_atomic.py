"""Atomic folder writes: a finished folder replaces the old one (or only our files in it), a failed one leaves no trace."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

from mastsam_splat.errors import InputError, Interrupted, signals_interrupt
from mastsam_splat.io.atomic import STAGING_MARKER, atomic_dir, atomic_path, signals_deferred, writer_tag


def test_atomic_dir_publishes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as staging:
        (staging / "a.txt").write_text("first")
        assert not target.exists()
    assert (target / "a.txt").read_text() == "first"
    with atomic_dir(target) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as staging:
            (staging / "half.txt").write_text("partial")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_unwritable_parent_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot write the output folder here"):
        with atomic_dir(blocker / "out"):
            pass


def dead_pid() -> int:
    """The id of a process that has ended."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_dir_with_owned_files_keeps_everything_else(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target, owned=[]) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "ours.txt").write_text("1")
        (staging / "old.txt").write_text("1")
    (target / "notes.md").write_text("the user's")
    (target / "sub" / "theirs.txt").write_text("the user's")
    target.chmod(0o750)
    with atomic_dir(target, owned=["sub/ours.txt", "old.txt"]) as staging:
        (staging / "sub").mkdir()
        (staging / "sub" / "ours.txt").write_text("2")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "notes.md",
        "sub",
        "sub/ours.txt",
        "sub/theirs.txt",
    ]
    assert (target / "sub" / "ours.txt").read_text() == "2"
    assert (target.stat().st_mode & 0o777) == 0o750  # the folder itself is kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_new_folder_gets_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_dir(tmp_path / "out", owned=[]) as staging:
            (staging / "a.txt").write_text("x")
    finally:
        os.umask(old)
    assert ((tmp_path / "out").stat().st_mode & 0o777) == 0o750
    assert ((tmp_path / "out" / "a.txt").stat().st_mode & 0o777) == 0o640
    assert not (tmp_path / "out" / STAGING_MARKER).exists()


def test_an_interrupted_block_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target, owned=["a.txt"]) as staging:
            (staging / "a.txt").write_text("new")
            raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"] and (target / "a.txt").read_text() == "old"


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path: Path) -> None:
    tag = writer_tag(dead_pid())
    stale_dir = tmp_path / f".out.{tag}.abcd_123.partial"
    stale_dir.mkdir()
    (stale_dir / STAGING_MARKER).write_bytes(b"")
    (stale_dir / "half.png").write_bytes(b"x")
    stale_file = tmp_path / f".tracks.{tag}.zz9_abcd.tmp.json"
    stale_file.write_text("{")
    foreign_dir = tmp_path / f".out.{tag}.abcd_124.partial"  # no marker: not ours
    other_host = tmp_path / f".out.{'0000' if tag[:4] != '0000' else '0001'}{tag[4:]}.abcd_125.partial"
    other_host.mkdir()  # a writer of another machine sharing the folder
    (other_host / STAGING_MARKER).write_bytes(b"")
    foreign_dir.mkdir()
    live = tmp_path / f".tracks.{writer_tag()}.abcdefgh.tmp.json"  # a writer still running
    live.write_text("{")
    user = tmp_path / ".hidden.tmp"
    user.write_text("mine")
    with atomic_dir(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("x")
    assert not stale_dir.exists() and not stale_file.exists()
    assert foreign_dir.is_dir() and other_host.is_dir() and live.is_file() and user.is_file()


def test_signals_are_held_while_files_are_published(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(Interrupted) as caught:
        with signals_interrupt():
            with atomic_dir(target, owned=[]) as staging:
                (staging / "a.txt").write_text("x")
                with signals_deferred():
                    # To this thread: a process-wide kill may go to another thread, whose handler call
                    # then reaches the main thread at any later point.
                    signal.raise_signal(signal.SIGTERM)  # arrives while held
                    (staging / "b.txt").write_text("y")
                raise AssertionError("not reached: the signal is delivered when released")
    assert caught.value.exit_code == 143
    assert not target.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_interrupt_landing_in_the_clean_up_does_not_leave_the_staging_folder(tmp_path: Path, monkeypatch) -> None:
    import mastsam_splat.io.atomic as atomic

    real_rmtree = atomic.shutil.rmtree
    calls = []

    def interrupted_once(path, ignore_errors=False):
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt  # a signal handler running inside the clean-up
        real_rmtree(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(atomic.shutil, "rmtree", interrupted_once)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(tmp_path / "out") as staging:
            (staging / "a.txt").write_text("x")
            raise RuntimeError("failed")
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_handler_running_as_the_signals_are_blocked_leaves_the_mask_as_it_was(monkeypatch) -> None:
    """A handler may raise right after ``pthread_sigmask`` returns; the signals must not stay blocked."""
    real = signal.pthread_sigmask

    def handler_runs_after_blocking(how, mask):
        previous = real(how, mask)
        if how == signal.SIG_BLOCK and signal.SIGTERM in set(mask):
            raise KeyboardInterrupt  # as a handler for a signal that arrived just before would
        return previous

    before = real(signal.SIG_BLOCK, ())
    monkeypatch.setattr(signal, "pthread_sigmask", handler_runs_after_blocking)
    with pytest.raises(KeyboardInterrupt):
        with signals_deferred():
            raise AssertionError("not reached")
    monkeypatch.undo()
    assert real(signal.SIG_BLOCK, ()) == before


def test_a_signal_arriving_as_the_handlers_are_installed_leaves_the_old_handlers(monkeypatch) -> None:
    real = signal.signal
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def arrives_after_the_first(signum, handler):
        previous = real(signum, handler)
        if signum == signal.SIGINT and handler not in before.values():
            raise KeyboardInterrupt
        return previous

    monkeypatch.setattr(signal, "signal", arrives_after_the_first)
    with pytest.raises(KeyboardInterrupt):
        with signals_interrupt():
            raise AssertionError("not reached")
    monkeypatch.undo()
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_signal_arriving_as_the_temporary_is_made_leaves_nothing(tmp_path: Path, monkeypatch, kind: str) -> None:
    """SIGTERM while ``mkstemp`` / ``mkdtemp`` runs: the temporary they made is removed with the rest."""
    name = "mkstemp" if kind == "file" else "mkdtemp"
    real = getattr(tempfile, name)

    def signalled(*args, **kwargs):
        made = real(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)  # its handler runs as soon as the signal is let through
        return made

    monkeypatch.setattr(tempfile, name, signalled)
    with pytest.raises(Interrupted):
        with signals_interrupt():
            with atomic_path(tmp_path / "out.txt") if kind == "file" else atomic_dir(tmp_path / "out") as staged:
                raise AssertionError(f"not reached: {staged}")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
