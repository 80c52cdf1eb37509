"""Pixels of every id in every automatic segment of a frame: the table several steps read their decisions off.

The ids of a label image are few and numbered from 1; its automatic segments are few too. When every (id,
segment) pair of the raw id numbers fits a table no larger than the image, the pixels are counted into that table
in one pass and the rows of the absent ids dropped, instead of first numbering the ids compactly (a count and a
look-up per pixel, ``compact_ids``) and counting those numbers: the same table, for about half the passes over the
image. ``compact_ids`` itself lives here too, for the steps that need each pixel's compact number.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple, Optional

import numpy as np


_counted_segments: tuple[Optional["weakref.ReferenceType[np.ndarray]"], int] = (None, 0)
"""The last frozen segment image counted, and its number of segments."""


def segment_count(auto: np.ndarray) -> int:
    """The number of segments of a segment image ``auto`` [H, W] (segments ``1..n``: its largest value, 0 when
    empty). A frozen image (read-only and owning its pixels, as the tracker holds a frame's segments) is counted
    once: the steps of a frame all ask for the count of one image."""
    global _counted_segments
    held, count = _counted_segments
    if held is not None and held() is auto:
        return count
    count = int(auto.max()) if auto.size else 0
    if auto.base is None and not auto.flags.writeable:
        _counted_segments = (weakref.ref(auto), count)
    return count


def compact_ids(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids present in ``labels`` [H, W] (non-negative ints) with 0 always first, and each pixel's index into them.

    A counting pass instead of a sort: label images hold few distinct ids.
    """
    ids, index, _ = compact_ids_areas(labels)
    return ids, index


def compact_ids_areas(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``compact_ids(labels)`` and the pixels of each of its ids [I] (``np.bincount`` of the indices, from the same
    count)."""
    counts = np.bincount(labels.ravel())
    ids = np.flatnonzero(counts)
    if len(ids) == 0 or ids[0] != 0:
        ids = np.r_[0, ids]
    lut = np.zeros(len(counts), dtype=np.int64)
    lut[ids] = np.arange(len(ids))
    return ids, lut[labels], counts[ids]


class SegmentCodes(NamedTuple):
    """Each pixel's (segment, id) code of a label image over a segment image, and the pixels of every code."""

    ids: np.ndarray
    """[I] the ids the codes number, ascending, 0 first: every id present (absent ones may be listed, with no
    pixels)."""
    code: np.ndarray
    """[H * W] int64 segment * I + the pixel's index into ``ids``."""
    table: np.ndarray
    """[S + 1, I] int64 pixels of each id in each segment (segment 0: no segment)."""


def segment_codes(labels: np.ndarray, auto: np.ndarray, num_segments: int) -> SegmentCodes:
    """``SegmentCodes`` of ``labels`` [H, W] (non-negative ids) over ``auto`` [H, W] (segments ``0..num_segments``):
    for steps that look each pixel's pair up in a table of the pairs (the carried partition's split, the new regions'
    carried ids), computed once for both. When every raw id fits a table no larger than the image, the ids number
    themselves (``0..max``), which spares numbering them compactly first."""
    top = int(labels.max()) + 1 if labels.size else 1
    if labels.size and top * (num_segments + 1) <= labels.size:
        ids = np.arange(top)
        code = np.multiply(auto.ravel(), top, dtype=np.int64)
        code += labels.ravel()
    else:
        ids, index = compact_ids(labels)
        code = auto.ravel() * len(ids) + index.ravel()
    table = np.bincount(code, minlength=(num_segments + 1) * len(ids)).reshape(num_segments + 1, len(ids))
    return SegmentCodes(ids, code, table)


class SegmentTable(NamedTuple):
    """Pixels per (id, segment) of a label image over a segment image."""

    ids: np.ndarray
    """[I] the ids present, ascending, 0 first (``compact_ids``'s ids)."""
    table: np.ndarray
    """[I, S + 1] int64 pixels of each id in each segment (segment 0: no segment)."""


def id_segment_table(labels: np.ndarray, auto: np.ndarray, num_segments: int) -> SegmentTable:
    """``SegmentTable`` of ``labels`` [H, W] (non-negative ids) over ``auto`` [H, W] (segments ``0..num_segments``),
    of any integer types (stored uint16 images are read as they are: the codes are made in int64)."""
    columns = num_segments + 1
    top = int(labels.max()) + 1 if labels.size else 1
    if labels.size and top * columns <= labels.size:
        codes = np.multiply(labels.ravel(), columns, dtype=np.int64)
        codes += auto.ravel()
        raw = np.bincount(codes, minlength=top * columns).reshape(top, columns)
        present = raw.any(axis=1)
        present[0] = True
        ids = np.flatnonzero(present)
        return SegmentTable(ids, raw[ids])
    ids, index = compact_ids(labels)
    table = np.bincount(index.ravel() * columns + auto.ravel(), minlength=len(ids) * columns)
    return SegmentTable(ids, table.reshape(len(ids), columns))


def gaps_given(
    counted: SegmentTable, target: np.ndarray, auto: np.ndarray, pixels: np.ndarray, values: np.ndarray
) -> SegmentTable:
    """``id_segment_table`` of a label image after, in the image ``counted`` counts, the unlabelled pixels of every
    segment ``s`` with ``target[s] > 0`` took the id ``target[s]``, and the unlabelled ``pixels`` [K] (flat indices,
    in other segments) took ``values`` [K] (0: still unlabelled): the segments' unlabelled pixels move whole, from the
    table, and only the pixels given ids one by one are counted."""
    moved = np.flatnonzero(np.asarray(target) > 0)
    if len(moved):
        given = np.asarray(target, dtype=np.int64).take(moved)
        ids = _ids_with(counted.ids, given)
        table = np.zeros((len(ids), counted.table.shape[1]), dtype=np.int64)
        table[_rows_of(ids, counted.ids)] = counted.table
        table[_rows_of(ids, given), moved] += table[0, moved]  # (each segment once: no repeated cell)
        table[0, moved] = 0
        counted = _present_rows(ids, table)
    values = np.asarray(values)
    filled = np.flatnonzero(values)  # (the pixels left at 0 change nothing)
    if len(filled) == 0:
        return counted
    return _moved(counted, np.ravel(auto).take(np.asarray(pixels).take(filled)), None, values.take(filled))


def segments_given(counted: SegmentTable, target: np.ndarray) -> SegmentTable:
    """``id_segment_table`` of a label image after every pixel of each segment ``s`` with ``target[s] >= 0`` took the
    id ``target[s]`` (the image ``counted`` counts, otherwise unchanged), from the table alone: a segment's column
    moves whole to its new id's row."""
    moved = np.flatnonzero(target >= 0)
    if len(moved) == 0:
        return counted
    given = np.asarray(target, dtype=np.int64).take(moved)
    ids = np.union1d(counted.ids, given)
    table = np.zeros((len(ids), counted.table.shape[1]), dtype=np.int64)
    table[np.searchsorted(ids, counted.ids)] = counted.table
    area = counted.table[:, moved].sum(axis=0)
    table[:, moved] = 0
    table[np.searchsorted(ids, given), moved] = area
    return _present_rows(ids, table)


def pixels_changed(
    counted: SegmentTable, auto: np.ndarray, changed: np.ndarray, old: np.ndarray, new: np.ndarray
) -> SegmentTable:
    """``id_segment_table`` of a label image after its pixels ``changed`` [K] (flat indices) went from the ids ``old``
    to ``new`` ([K] each) in the image ``counted`` counts, from those pixels alone."""
    if len(changed) == 0:
        return counted
    return _moved(counted, np.ravel(auto).take(changed), np.asarray(old), np.asarray(new))


def _moved(counted: SegmentTable, segment: np.ndarray, old: Optional[np.ndarray], new: np.ndarray) -> SegmentTable:
    """The table ``counted`` after pixels of the segments ``segment`` [K] went from the ids ``old`` [K] (``None``:
    all unlabelled) to ``new`` [K]."""
    columns = counted.table.shape[1]
    ids = _ids_with(counted.ids, new)
    table = np.zeros((len(ids), columns), dtype=np.int64)
    table[_rows_of(ids, counted.ids)] = counted.table
    flat = table.reshape(-1)
    size = len(ids) * columns
    if old is None:  # (all leave id 0's row)
        table[0] -= np.bincount(segment, minlength=columns)
    else:
        flat -= np.bincount(_rows_of(ids, old) * columns + segment, minlength=size)
    flat += np.bincount(_rows_of(ids, new) * columns + segment, minlength=size)
    return _present_rows(ids, table)


def _ids_with(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The ids ``ids`` (ascending) and those among ``values`` (non-negative), ascending: by a count when all are label
    ids (16-bit), which costs less than sorting the values (the pixels of a frame)."""
    if values.size == 0:
        return ids
    if values.dtype.kind not in "iu" or int(values.min()) < 0 or int(values.max()) > np.iinfo(np.uint16).max:
        return np.union1d(ids, values)
    present = np.zeros(max(int(ids[-1]), int(values.max())) + 1, dtype=bool)
    present[ids] = True
    present[np.flatnonzero(np.bincount(values))] = True
    return np.flatnonzero(present)


def _rows_of(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The index into ``ids`` (ascending) of each of ``values`` (all among them): by a look-up table when the ids
    are label ids (16-bit), else by a binary search."""
    if int(ids[-1]) > np.iinfo(np.uint16).max:
        return np.searchsorted(ids, values)
    row = np.zeros(int(ids[-1]) + 1, dtype=np.int64)
    row[ids] = np.arange(len(ids))
    return row.take(values)


def _present_rows(ids: np.ndarray, table: np.ndarray) -> SegmentTable:
    """The table without the rows of ids left with no pixel (id 0's row stays), as ``id_segment_table`` lists them."""
    keep = table.any(axis=1)
    keep[0] = True
    if keep.all():
        return SegmentTable(ids, table)
    return SegmentTable(ids[keep], table[keep])


def id_member(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(values, ids)`` of integer ids: one look-up in a table of the ids when all are non-negative and
    small (label images: at most 16-bit ids), else by sorting."""
    values, ids = np.asarray(values), np.asarray(ids)
    if values.size == 0 or ids.size == 0 or values.dtype.kind not in "iu" or ids.dtype.kind not in "iu":
        return np.isin(values, ids)
    top = max(int(values.max()), int(ids.max()))
    if top > np.iinfo(np.uint16).max or min(int(values.min()), int(ids.min())) < 0:
        return np.isin(values, ids)
    member = np.zeros(top + 1, dtype=bool)
    member[ids] = True
    return member[values]


def without_ids(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.where(np.isin(values, ids), 0, values)`` as int64, by one look-up in a table of the ids when all are
    non-negative and small (label images), else by sorting."""
    values, ids = np.asarray(values), np.asarray(ids)
    if values.size and ids.size and values.dtype.kind in "iu" and ids.dtype.kind in "iu":
        top = max(int(values.max()), int(ids.max()))
        if top <= np.iinfo(np.uint16).max and min(int(values.min()), int(ids.min())) >= 0:
            table = np.arange(top + 1, dtype=np.int64)
            table[ids] = 0
            return table[values]
    return np.where(np.isin(values, ids), 0, values).astype(np.int64, copy=False)
