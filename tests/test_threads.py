"""Thread counts for heavy CPU work follow the idle cores, a user's choice wins."""

from __future__ import annotations

import os

import pytest

from mastsam_splat import threads


def test_idle_cores_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.2)
    assert threads.worker_threads() == 8
    monkeypatch.setattr(threads, "busy_cores", lambda: 5.6)
    assert threads.worker_threads() == 2
    monkeypatch.setattr(threads, "busy_cores", lambda: 30.0)
    assert threads.worker_threads() == 1


def test_user_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "busy_cores", lambda: 30.0)
    assert threads.worker_threads(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert threads.worker_threads() == 4


def test_cpu_threads_restores_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with threads.cpu_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_busy_cores_is_a_count() -> None:
    assert 0.0 <= threads.busy_cores(0.02) <= (os.cpu_count() or 1) + 1e-9
