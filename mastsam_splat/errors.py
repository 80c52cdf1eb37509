"""User-facing errors: bad input that the user can fix, reported without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union


class InputError(Exception):
    """Bad input (a file, folder or option); the message names it and says what is wrong."""

    def __init__(self, message: str, path: Optional[Union[str, Path]] = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)
