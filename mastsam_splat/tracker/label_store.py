"""Label images of the visited frames, held compressed, with id merges applied when they are read.

A long run keeps every finished label image so that ids merged later can be merged in earlier
frames too. Held as they are, they grow by one uint16 image per frame and every merge rewrites
all of them. Here each image is stored once as its runs (the pixels in row-major order as
(length, id) pairs: label images are large flat regions, so a frame holds a few runs per
hundred pixels), zlib-compressed; a merge (an id lookup table) is composed into the tables of
the stored images instead of being applied to their pixels. Images stored between two merges
share one table, so a merge costs one table lookup per group of such images (``O(groups x
ids)``, no pixel is touched), and a read looks the runs' ids up in the table and repeats each
run's id over its length (no lookup per pixel). The runs of the last few images read or stored
are kept decompressed (``cache_size``), since a frame's parent is usually a recent one. Each
image's pixel count per id is counted once, when first asked for, off its runs, and kept as the
counts of the ids it was stored with: the counts of its current ids (``counts``) go through the
same table.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Optional, Union, overload

import numpy as np

COMPRESSION_LEVEL = 1
"""zlib level of the stored images (label images are large flat regions: level 1 already shrinks them ~20x)."""
CACHE_SIZE = 4
"""Images whose runs are kept decompressed (the frames read most: the parent and the frame just stored)."""


class MergeTables:
    """Id lookup tables composed per group of stored items: items stored between two merges share one group.

    Each merge (a lookup table over the ids so far) is composed into the table of every group in use, so it
    costs ``O(groups x ids)`` however many items (pixels, points) the groups hold; an item's ids are mapped
    through its group's table when it is read. Tables are cast to ``dtype`` after every composition, as the items
    would be if each merge were applied to them in turn.
    """

    def __init__(self, dtype: type = np.uint16) -> None:
        self.dtype = dtype
        self._tables: list[Optional[np.ndarray]] = []
        """Per group: the composed table from the ids stored to the current ones (``None``: identity)."""
        self._members: list[int] = []
        """Per group: how many stored items use it (a group nobody uses is left out of the merges)."""
        self._open: Optional[int] = None
        """The group new items join (no merge since it was opened)."""

    def join(self) -> int:
        """The group of an item stored now."""
        if self._open is None:
            self._tables.append(None)
            self._members.append(0)
            self._open = len(self._tables) - 1
        self._members[self._open] += 1
        return self._open

    def leave(self, group: int) -> None:
        """An item of ``group`` is no longer stored."""
        self._members[group] -= 1
        if self._members[group] == 0 and group != self._open:
            self._tables[group] = None

    def relabel(self, lut: np.ndarray) -> None:
        """Compose ``lut`` (``lut[ids]``) into every group in use."""
        lut = np.asarray(lut)
        if lut.ndim != 1:
            raise ValueError(f"a lookup table is 1-D, got shape {lut.shape}")
        for group, table in enumerate(self._tables):
            if self._members[group] > 0:
                self._tables[group] = (lut if table is None else lut[table]).astype(self.dtype)
        self._open = None

    def apply(self, group: int, ids: np.ndarray) -> np.ndarray:
        """The current ids of ``ids`` stored in ``group`` (a new array)."""
        table = self._tables[group]
        return ids.copy() if table is None else table[ids]

    def counts(self, group: int, ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``np.bincount`` of the current ids of an item stored in ``group`` with pixel ``counts`` [K] of its stored
        ``ids`` [K] (distinct)."""
        table = self._tables[group]
        if len(ids) == 0:
            return np.zeros(0, dtype=np.int64)
        current = ids.astype(np.intp) if table is None else table[ids].astype(np.intp)
        out = np.zeros(int(current.max()) + 1, dtype=np.int64)
        np.add.at(out, current, counts)
        return out

    def nbytes(self) -> int:
        return sum(x.nbytes for x in self._tables if x is not None)


Runs = tuple[np.ndarray, np.ndarray]
"""A label image's runs: lengths [R] (uint32) and the ids as stored [R] (uint16), in row-major pixel order."""


def image_runs(raw: np.ndarray) -> Runs:
    """The runs of a uint16 label image [H, W] (C order)."""
    flat = raw.reshape(-1)
    if flat.size == 0:
        return np.zeros(0, dtype=np.uint32), np.zeros(0, dtype=np.uint16)
    starts = np.flatnonzero(flat[1:] != flat[:-1])
    starts += 1
    lengths = np.diff(starts, prepend=0, append=flat.size).astype(np.uint32)
    return lengths, flat.take(np.r_[0, starts])


def runs_image(lengths: np.ndarray, ids: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The label image [H, W] of runs (a new array, of ``ids``' dtype)."""
    return np.repeat(ids, lengths).reshape(shape)


class _Stored:
    """One label image as stored: its runs, compressed (lengths then ids), their number, its shape, the table group
    that maps its ids, and (once counted) its stored ids with their pixel counts."""

    __slots__ = ("data", "runs", "shape", "group", "counted")

    def __init__(self, data: bytes, runs: int, shape: tuple[int, int], group: int) -> None:
        self.data = data
        self.runs = runs
        self.shape = shape
        self.group = group
        self.counted: Optional[tuple[np.ndarray, np.ndarray]] = None


class LabelStore:
    """``[H, W]`` uint16 label image (or ``None``) per frame index, compressed, relabelled lazily.

    Indexing reads (``store[t]``, iteration), assignment stores (``store[t] = labels``), and
    :meth:`relabel` maps every stored image through a lookup table, as ``lut[labels]`` would.
    """

    def __init__(self, count: int, cache_size: int = CACHE_SIZE, level: int = COMPRESSION_LEVEL) -> None:
        self._stored: list[Optional[_Stored]] = [None] * count
        self._tables = MergeTables(np.uint16)
        self._raw: OrderedDict[int, Runs] = OrderedDict()
        """Runs of recently used images, decompressed, as stored (before their table)."""
        self.cache_size = int(cache_size)
        self.level = int(level)

    # ------------------------------------------------------------------ sequence
    def __len__(self) -> int:
        return len(self._stored)

    @overload
    def __getitem__(self, t: int) -> Optional[np.ndarray]: ...

    @overload
    def __getitem__(self, t: slice) -> list[Optional[np.ndarray]]: ...

    def __getitem__(self, t: Union[int, slice]) -> Union[Optional[np.ndarray], list[Optional[np.ndarray]]]:
        """The current label image of frame ``t`` (a new array), or ``None`` before it is stored."""
        if isinstance(t, slice):
            return [self[i] for i in range(*t.indices(len(self)))]
        t = self._index(t)
        stored = self._stored[t]
        if stored is None:
            return None
        lengths, ids = self._runs(t, stored)
        return runs_image(lengths, self._tables.apply(stored.group, ids), stored.shape)

    def __setitem__(self, t: int, labels: np.ndarray) -> None:
        """Store the label image of frame ``t`` (replacing the one stored before)."""
        t = self._index(t)
        raw = np.ascontiguousarray(labels, dtype=np.uint16)
        if raw.ndim != 2:
            raise ValueError(f"a label image is [H, W], got shape {raw.shape}")
        self._release(t)
        group = self._tables.join()
        lengths, ids = image_runs(raw)
        data = zlib.compress(lengths.tobytes() + ids.tobytes(), self.level)
        self._stored[t] = _Stored(data, len(ids), (raw.shape[0], raw.shape[1]), group)
        self._cache(t, (lengths, ids))

    def __iter__(self) -> Iterator[Optional[np.ndarray]]:
        for t in range(len(self)):
            yield self[t]

    # ------------------------------------------------------------------ queries
    def stored(self) -> list[int]:
        """Indices of the frames holding a label image, ascending (nothing is decompressed)."""
        return [t for t, s in enumerate(self._stored) if s is not None]

    def counts(self, t: int) -> Optional[np.ndarray]:
        """``np.bincount`` of the current label image of frame ``t`` (pixels per id; its length is the largest id
        present plus one), or ``None`` before it is stored."""
        t = self._index(t)
        stored = self._stored[t]
        if stored is None:
            return None
        if stored.counted is None:
            lengths, ids = self._runs(t, stored)
            raw = np.zeros(int(ids.max()) + 1 if len(ids) else 0, dtype=np.int64)
            np.add.at(raw, ids, lengths)
            present = np.flatnonzero(raw)
            stored.counted = present.astype(np.uint16), raw[present]
        return self._tables.counts(stored.group, *stored.counted)

    def shape(self, t: int) -> Optional[tuple[int, int]]:
        """The shape of frame ``t``'s label image (nothing is decompressed), or ``None`` before it is stored."""
        stored = self._stored[self._index(t)]
        return None if stored is None else stored.shape

    def finished(self) -> "StoredLabels":
        """The stored images in frame order, as a read-only sequence that decompresses on access."""
        return StoredLabels(self, self.stored())

    def nbytes(self) -> int:
        """Bytes held: compressed images, tables and the decompressed cache."""
        data = sum(len(s.data) for s in self._stored if s is not None)
        data += sum(sum(x.nbytes for x in s.counted) for s in self._stored if s is not None and s.counted is not None)
        return data + self._tables.nbytes() + sum(a.nbytes + b.nbytes for a, b in self._raw.values())

    # ------------------------------------------------------------------ merges
    def relabel(self, lut: np.ndarray) -> None:
        """Map every stored image through ``lut`` (``lut[labels]``); ids must lie below ``len(lut)``."""
        self._tables.relabel(lut)

    # ------------------------------------------------------------------ internals
    def _index(self, t: int) -> int:
        t = int(t)
        if t < 0:
            t += len(self._stored)
        if not 0 <= t < len(self._stored):
            raise IndexError(f"frame index {t} out of range for {len(self._stored)} frames")
        return t

    def _runs(self, t: int, stored: _Stored) -> Runs:
        runs = self._raw.get(t)
        if runs is not None:
            self._raw.move_to_end(t)
            return runs
        data = zlib.decompress(stored.data)
        split = 4 * stored.runs  # (uint32 lengths, then uint16 ids)
        runs = np.frombuffer(data[:split], dtype=np.uint32), np.frombuffer(data[split:], dtype=np.uint16)
        self._cache(t, runs)
        return runs

    def _cache(self, t: int, raw: Runs) -> None:
        if self.cache_size <= 0:
            return
        self._raw[t] = raw
        self._raw.move_to_end(t)
        while len(self._raw) > self.cache_size:
            self._raw.popitem(last=False)

    def _release(self, t: int) -> None:
        """Forget the image stored for frame ``t`` (its group loses a member; an unused table is freed)."""
        stored = self._stored[t]
        self._raw.pop(t, None)
        if stored is None:
            return
        self._stored[t] = None
        self._tables.leave(stored.group)


class StoredLabels(Sequence):
    """Read-only label images of the given frames of a :class:`LabelStore`, decompressed when accessed."""

    def __init__(self, store: LabelStore, frames: list[int]) -> None:
        self._store = store
        self._frames = list(frames)

    def __len__(self) -> int:
        return len(self._frames)

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[np.ndarray, list[np.ndarray]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        labels = self._store[self._frames[i]]
        assert labels is not None
        return labels

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self)):
            yield self[k]
