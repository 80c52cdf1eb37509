"""Compressed label store: composed merges equal relabelling every stored image eagerly (images and their pixel
counts per id), and it stays small."""

from __future__ import annotations

import numpy as np
import pytest

from mastsam_splat.tracker.label_store import LabelStore


def _random_run(seed: int, frames: int = 30, shape: tuple[int, int] = (16, 20)) -> None:
    """Store, overwrite, read and merge at random; the store and a list relabelled eagerly must agree throughout."""
    rng = np.random.default_rng(seed)
    store = LabelStore(frames, cache_size=int(rng.integers(0, 4)))
    eager: list = [None] * frames
    next_id = 1
    for _ in range(120):
        action = rng.random()
        if action < 0.45:
            t = int(rng.integers(frames))
            new = int(rng.integers(1, 6))
            labels = rng.integers(0, next_id + new, shape).astype(np.uint16)
            next_id += new
            store[t] = labels
            eager[t] = labels.copy()
        elif action < 0.75 and next_id > 2:
            lut = np.arange(next_id, dtype=np.int64)
            for src in rng.choice(np.arange(1, next_id), size=min(3, next_id - 1), replace=False):
                lut[src] = int(rng.integers(0, next_id))
            store.relabel(lut)
            eager = [None if x is None else lut[x].astype(np.uint16) for x in eager]
        else:
            t = int(rng.integers(frames))
            got = store[t]
            if eager[t] is None:
                assert got is None
            else:
                got[...] = 0  # a read hands out a copy
        for t in range(frames):
            if eager[t] is None:
                assert store[t] is None and store.counts(t) is None
            else:
                np.testing.assert_array_equal(store[t], eager[t])
                assert store[t].dtype == np.uint16
                if rng.random() < 0.3:  # counted at some point between merges: later counts follow the merges
                    counts = store.counts(t)
                    np.testing.assert_array_equal(counts, np.bincount(eager[t].ravel()))
                    assert counts.dtype == np.int64
    assert store.stored() == [t for t, x in enumerate(eager) if x is not None]
    finished = store.finished()
    assert len(finished) == len(store.stored())
    for got, want in zip(finished, [x for x in eager if x is not None]):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(8))
def test_composed_relabelling_equals_eager_relabelling(seed: int) -> None:
    _random_run(seed)


def test_ids_merged_away_that_come_back_later_are_kept() -> None:
    store = LabelStore(2)
    store[0] = np.array([[1, 2]], np.uint16)
    store.relabel(np.array([0, 1, 1]))  # 2 -> 1
    store[1] = np.array([[2, 1]], np.uint16)  # id 2 shows again in a frame stored after the merge
    store.relabel(np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(store[0], [[1, 1]])
    np.testing.assert_array_equal(store[1], [[2, 1]])


def test_stored_images_take_a_fraction_of_their_size() -> None:
    h, w, frames = 120, 160, 200
    store = LabelStore(frames)
    yy, xx = np.mgrid[:h, :w]
    for t in range(frames):
        store[t] = (1 + (xx + 2 * t) // 40 + 4 * (yy // 30)).astype(np.uint16)  # flat regions, as label images are
        if t % 10 == 9:
            store.relabel(np.r_[0, np.arange(1, 40) // 2 * 2])
    raw = frames * h * w * 2
    assert store.nbytes() < raw / 20
