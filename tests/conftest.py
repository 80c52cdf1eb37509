"""Checks every test gets: it leaves the process's signal mask as it found it.

A test that left SIGINT or SIGTERM blocked in the main thread would silently change every later
test that signals this process or starts a child (children inherit the mask).
"""

from __future__ import annotations

import signal
import threading

import pytest


def _blocked() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


@pytest.fixture(autouse=True)
def _signal_mask_unchanged():
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = _blocked()
    yield
    after = _blocked()
    if after != before:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        added = sorted(signal.Signals(s).name for s in after - before)
        pytest.fail(f"the test left the signal mask changed (newly blocked: {added})")
