"""Structure from motion in a child process, so that SIGINT and SIGTERM stop it cleanly.

pycolmap's incremental mapping installs glog's failure-signal handler for SIGTERM while it runs:
the signal then prints a C++ stack trace and ends the process at once, before any Python clean-up
(the staging folder of the dataset being written stays behind). Its C++ stages also hold the
main thread for minutes, so a Python handler could only run after them. Here the stages run in a
child Python process (``python -c CHILD_COMMAND REQUEST``: unlike multiprocessing's spawn it
does not re-import the caller's main script, e.g. all of ``ns-train``) that starts with both
signals blocked (its threads inherit the mask), while the parent waits in Python: a signal raises
:class:`~mastsam_splat.errors.Interrupted` in the parent at once, the child is killed, and the
caller's staging folder rolls back. A crash of the native code becomes an error in the parent
instead of ending it, and the memory of the SfM stages is returned when the child ends. The
child ends by itself when its parent disappears.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Optional, Sequence

from mastsam_splat.capture.sfm import SfmOptions, SfmResult, run_sfm
from mastsam_splat.errors import InputError
from mastsam_splat.io.atomic import signals_deferred

MODEL_FOLDER = "model"
"""Folder of the SfM work folder the child writes the kept reconstruction into."""
REQUEST_FILE = "sfm_request.pkl"
RESULT_FILE = "sfm_result.pkl"
PARENT_POLL_SECONDS = 1.0
CHILD_COMMAND = "import sys; from mastsam_splat.capture.sfm_process import main; main(sys.argv[1])"


def run_sfm_in_child(
    image_dir: Path,
    names: Sequence[str],
    size: tuple[int, int],
    work_dir: Path,
    options: Optional[SfmOptions] = None,
    progress: bool = True,
) -> SfmResult:
    """:func:`~mastsam_splat.capture.sfm.run_sfm` in a child process (same arguments and result;
    its errors are raised here)."""
    work_dir = Path(work_dir)
    request, result = work_dir / REQUEST_FILE, work_dir / RESULT_FILE
    arguments = (Path(image_dir), list(names), tuple(size), work_dir, options, progress)
    request.write_bytes(pickle.dumps((_child_main, arguments, os.getpid())))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    command = [sys.executable, "-c", CHILD_COMMAND, str(request)]
    child: Optional[subprocess.Popen] = None
    try:
        with signals_deferred():  # the child starts with both signals blocked
            child = subprocess.Popen(command, env=env)
        child.wait()
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    assert child is not None
    if not result.is_file():
        code = child.returncode
        how = f"signal {-code} ({signal.Signals(-code).name})" if code < 0 else f"status {code}"
        raise RuntimeError(f"structure from motion stopped with {how} before reporting a result")
    outcome = pickle.loads(result.read_bytes())
    if outcome[0] == "error":
        raise outcome[1]
    _, registered, unregistered, mapping_runs = outcome
    import pycolmap

    reconstruction = pycolmap.Reconstruction(str(work_dir / MODEL_FOLDER))
    return SfmResult(reconstruction, registered, unregistered, mapping_runs=mapping_runs)


def _child_main(
    image_dir: Path,
    names: list[str],
    size: tuple[int, int],
    work_dir: Path,
    options: Optional[SfmOptions],
    progress: bool,
) -> None:
    """Run SfM, write the kept model, and leave ``("ok", registered, unregistered, mapping_runs)`` or
    ``("error", exc)`` in the result file."""
    try:
        sfm = run_sfm(image_dir, names, size, work_dir, options, progress=progress)
        model = work_dir / MODEL_FOLDER
        model.mkdir()
        sfm.reconstruction.write(str(model))
        outcome: tuple = ("ok", sfm.registered, sfm.unregistered, sfm.mapping_runs)
    except Exception as exc:  # noqa: BLE001 - every error goes to the parent, which raises it
        outcome = ("error", _picklable(exc))
    partial = work_dir / (RESULT_FILE + ".partial")
    partial.write_bytes(pickle.dumps(outcome))
    partial.rename(work_dir / RESULT_FILE)


def _picklable(exc: Exception) -> Exception:
    """``exc`` (unexpected ones with the child's traceback as a note), or a RuntimeError carrying
    that traceback when ``exc`` cannot be pickled."""
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


def main(request: str) -> None:
    """Child process: run the function and arguments the file ``request`` holds, the signals blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
    function, arguments, parent = pickle.loads(Path(request).read_bytes())
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    function(*arguments)
