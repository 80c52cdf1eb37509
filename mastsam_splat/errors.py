"""User-facing errors: bad input that the user can fix, reported without a traceback."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator, Optional, Union


class InputError(Exception):
    """Bad input (a file, folder or option); the message names it and says what is wrong."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


def check_option(ok: bool, option: str, requirement: str, value: object) -> None:
    """Raise :class:`InputError` ``"<option> must be <requirement>, got <value>"`` unless ``ok``.

    Config dataclasses call it from ``__post_init__``, so a value out of range stops the command
    while its options are parsed, before any work, instead of failing deep inside a library.
    """
    if not ok:
        raise InputError(f"{option} must be {requirement}, got {value!r}")


def check_fraction(value: float, option: str) -> None:
    """``value`` lies in [0, 1]."""
    check_option(0.0 <= value <= 1.0, option, "between 0 and 1", value)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; raised where the program is, so that staged writes roll back."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(signal.Signals(self.signum).name)

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by this signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def interrupt_exit_code(exc: KeyboardInterrupt) -> int:
    """Exit status for an interrupt: the signal's, or 130 for a plain KeyboardInterrupt."""
    return exc.exit_code if isinstance(exc, Interrupted) else 128 + int(signal.SIGINT)


@contextlib.contextmanager
def signals_interrupt() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:  # installed inside ``try``: a signal arriving in between still finds the old handlers restored
        for s in previous:
            signal.signal(s, handler)
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, signal.SIG_DFL if h is None else h)  # None: a handler set outside Python
