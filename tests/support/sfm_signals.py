"""A child entry point for ``capture.sfm_process`` that signals its parent from inside pycolmap's mapping.

A test process sets ``sfm_process._child_main`` to ``functools.partial(signalling_child_main, signum)``;
the child process (which imports this module by name) then sends ``signum`` to the parent process
when pycolmap's incremental mapping reports its ``ON_IMAGE``-th registered image, i.e. while the
C++ mapper runs.
"""

from __future__ import annotations

import os
from typing import Any

ON_IMAGE = 3


def signalling_child_main(signum: int, *args: Any) -> None:
    import pycolmap

    from mastsam_splat.capture import sfm_process

    original = pycolmap.incremental_mapping

    def mapping(*a: Any, **k: Any) -> Any:
        inner = k.get("next_image_callback")
        calls = []

        def next_image() -> None:
            calls.append(1)
            if len(calls) == ON_IMAGE:
                os.kill(os.getppid(), signum)
            if inner is not None:
                inner()

        k["next_image_callback"] = next_image
        return original(*a, **k)

    pycolmap.incremental_mapping = mapping
    sfm_process._child_main(*args)


def aborting_child_main(*args: Any) -> None:
    """A child that dies in native code (as a crash of pycolmap would) before reporting anything."""
    os.abort()
