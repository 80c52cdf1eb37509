"""User-facing errors: bad input that the user can fix, reported without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


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
