"""CPU thread counts that leave room for the other processes on the machine.

Torch and OpenMP start one worker thread per core. When another job already keeps cores busy,
those workers wait on each other at every parallel region and spin while they wait, so a run
becomes many times slower instead of sharing the machine. Heavy CPU work here runs with one
thread per core that is idle when the work starts (at least one), unless the user chose a count
(an explicit option, or ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator, Optional

SAMPLE_SECONDS = 0.1
"""How long the machine's CPU use is sampled to count busy cores."""


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> Optional[tuple[int, int]]:
    """(busy, total) jiffies of the whole machine from /proc/stat, or None where it is not readable."""
    try:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_cores(sample_s: float = SAMPLE_SECONDS) -> float:
    """How many cores other work keeps busy now: /proc/stat sampled over ``sample_s`` (this process
    sleeps meanwhile), else the 1-minute load average."""
    first = _cpu_times()
    if first is not None:
        time.sleep(sample_s)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            share = (second[0] - first[0]) / (second[1] - first[1])
            return share * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def worker_threads(requested: Optional[int] = None) -> int:
    """Threads for heavy CPU work: ``requested``, else ``OMP_NUM_THREADS``, else the idle cores (>= 1)."""
    if requested is not None:
        return max(1, int(requested))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = available_cores()
    return max(1, min(cores, cores - int(busy_cores() + 0.5)))


@contextlib.contextmanager
def cpu_threads(requested: Optional[int] = None) -> Iterator[int]:
    """Run the block with :func:`worker_threads` threads in OpenCV and torch; restore them afterwards.

    Torch is not imported for this: when the block imports it, ``OMP_NUM_THREADS`` (set for the
    block) gives it the same count.
    """
    import cv2

    threads = worker_threads(requested)
    torch = sys.modules.get("torch")
    before_torch = torch.get_num_threads() if torch is not None else None
    before_cv2 = cv2.getNumThreads()
    before_env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    cv2.setNumThreads(threads)
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        cv2.setNumThreads(before_cv2)
        if before_torch is not None:
            torch.set_num_threads(before_torch)
        if before_env is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = before_env
