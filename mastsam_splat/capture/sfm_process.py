"""Structure from motion in a child process, so that SIGINT and SIGTERM stop it cleanly.

pycolmap's incremental mapping installs glog's failure-signal handler for SIGTERM while it runs:
the signal then prints a C++ stack trace and ends the process at once, before any Python clean-up
(the staging folder of the dataset being written stays behind). Its C++ stages also hold the
main thread for minutes, so a Python handler could only run after them. Here the stages run in a
spawned child that blocks both signals (its threads inherit the mask) while the parent waits in
Python: a signal raises :class:`~mastsam_splat.errors.Interrupted` in the parent at once, the child
is killed, and the caller's staging folder rolls back. A crash of the native code becomes an
error in the parent instead of ending it, and the memory of the SfM stages is returned when the
child ends. The child ends by itself when its parent disappears.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Optional, Sequence

from mastsam_splat.capture.sfm import SfmOptions, SfmResult, run_sfm
from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import signals_deferred

MODEL_FOLDER = "model"
"""Folder of the SfM work folder the child writes the kept reconstruction into."""
PARENT_POLL_SECONDS = 1.0


def run_sfm_in_child(
    image_dir: Path,
    names: Sequence[str],
    size: tuple[int, int],
    work_dir: Path,
    options: Optional[SfmOptions] = None,
    progress: bool = True,
) -> SfmResult:
    """:func:`~mastsam_splat.capture.sfm.run_sfm` in a spawned child process (same arguments and
    result; its errors are raised here)."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (sender, Path(image_dir), list(names), tuple(size), Path(work_dir), options, progress, os.getpid())
    child = context.Process(target=_child_main, args=args, name="mastsam-sfm", daemon=True)
    try:
        with signals_deferred():  # the child starts with both signals blocked
            child.start()
        sender.close()
        outcome = _wait_for(receiver, child)
    finally:
        sender.close()
        if child.pid is not None:
            if child.is_alive():
                child.kill()
            child.join()
        receiver.close()
    if outcome[0] == "error":
        raise outcome[1]
    _, registered, unregistered = outcome
    import pycolmap

    reconstruction = pycolmap.Reconstruction(str(Path(work_dir) / MODEL_FOLDER))
    return SfmResult(reconstruction, registered, unregistered)


def _wait_for(receiver: Connection, child: Any) -> tuple:
    """The child's message; a child that ends without one is an error naming its exit status."""
    wait([receiver, child.sentinel])
    if receiver.poll():
        try:
            return receiver.recv()
        except EOFError:
            pass
    child.join()
    code = child.exitcode
    how = f"signal {-code} ({signal.Signals(-code).name})" if code is not None and code < 0 else f"status {code}"
    raise RuntimeError(f"structure from motion stopped with {how} before reporting a result")


def _child_main(
    sender: Connection,
    image_dir: Path,
    names: list[str],
    size: tuple[int, int],
    work_dir: Path,
    options: Optional[SfmOptions],
    progress: bool,
    parent: int,
) -> None:
    """Run SfM, write the kept model, and send ``("ok", registered, unregistered)`` or ``("error", exc)``."""
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    try:
        result = run_sfm(image_dir, names, size, work_dir, options, progress=progress)
        model = work_dir / MODEL_FOLDER
        model.mkdir()
        result.reconstruction.write(str(model))
        message: tuple = ("ok", result.registered, result.unregistered)
    except Exception as exc:  # noqa: BLE001 - every error goes to the parent, which raises it
        message = ("error", _picklable(exc))
    sender.send(message)
    sender.close()


def _picklable(exc: Exception) -> Exception:
    """``exc`` with the child's traceback as a note, or a RuntimeError carrying it when ``exc`` cannot be pickled."""
    text = "".join(traceback.format_exception(exc))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to pickle
        return RuntimeError(f"structure from motion failed in its child process:\n{text}")
    if not isinstance(exc, InputError):
        exc.add_note(f"in the structure-from-motion child process:\n{text}")
    return exc


def _exit_with_parent(parent: int) -> None:
    """End this process once the parent is gone (killed without a chance to stop the child)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
