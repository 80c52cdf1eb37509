"""Frames whose image and depth map are read from their files when a step uses them.

A scene of a thousand frames would hold a thousand decoded images and depth maps if they were read
up front. A :class:`FileFrame` keeps only what every pass over a scene asks for without pixels
(name, index, file, camera, size); its ``image`` and ``depth`` are decoded on access. The frames of
one scene share a :class:`FrameFiles` reader whose cache keeps the last few decoded arrays, so a
step that uses a frame and its parent decodes each once, and memory stays bounded by the cache,
not by the number of frames. Arrays handed out are shared while cached: treat them as read-only
(assigning ``frame.image`` or ``frame.depth`` pins a value on that frame instead). The cache may be read from
several threads (the tracker segments the frames ahead in a worker).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from mastsam_splat.types import Camera, Frame, ObservedPoints

CACHE_FRAMES = 8
"""Decoded images (and as many depth maps) a scene's reader keeps."""


@dataclass(frozen=True)
class FrameFile:
    """Where one frame's pixels are: its image file and, when it has one, its depth map."""

    image: Path
    depth: Optional[Path] = None
    depth_unit_scale: float = 1.0


class FrameFiles:
    """Decodes the images and depth maps of a scene's frames on request, keeping the last few decoded."""

    def __init__(
        self,
        files: list[FrameFile],
        read_image: Callable[[Path], np.ndarray],
        read_depth: Callable[[Path, float], np.ndarray],
        cache_frames: int = CACHE_FRAMES,
    ) -> None:
        self.files = list(files)
        self._read_image = read_image
        self._read_depth = read_depth
        self.cache_frames = int(cache_frames)
        self._cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        """Guards the cache (decoding runs outside it: two threads may decode one file, each keeping its copy)."""
        self.decoded = 0
        """Arrays decoded so far (cache misses)."""

    def image(self, key: int) -> np.ndarray:
        """[H, W, 3] uint8 RGB of frame ``key``."""
        return self._get("image", key, lambda: self._read_image(self.files[key].image))

    def depth(self, key: int) -> Optional[np.ndarray]:
        """[H, W] float32 depth of frame ``key``, or ``None`` when it has no depth map."""
        entry = self.files[key]
        if entry.depth is None:
            return None
        depth_file = entry.depth
        return self._get("depth", key, lambda: self._read_depth(depth_file, entry.depth_unit_scale))

    def keep(self, kind: str, key: int, array: np.ndarray) -> None:
        """Put an array decoded elsewhere (e.g. while the scene is checked) into the cache."""
        with self._lock:
            self._cache[(kind, key)] = array
            self._cache.move_to_end((kind, key))
            self._trim()

    def _get(self, kind: str, key: int, read: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            cached = self._cache.get((kind, key))
            if cached is not None:
                self._cache.move_to_end((kind, key))
                return cached
        array = read()
        with self._lock:
            self.decoded += 1
        self.keep(kind, key, array)
        return array

    def _trim(self) -> None:
        while len(self._cache) > 2 * max(self.cache_frames, 0):
            self._cache.popitem(last=False)


_UNSET: Any = object()


class FileFrame(Frame):
    """A :class:`Frame` whose ``image`` and ``depth`` are decoded from its files when accessed (see the module
    docstring); everything else is held. Built with :meth:`from_files`; ``dataclasses.replace`` on it gives a
    frame holding the decoded arrays."""

    def __init__(
        self,
        image: Any = _UNSET,
        name: str = "",
        index: int = 0,
        file: Optional[Path] = None,
        camera: Optional[Camera] = None,
        depth: Any = _UNSET,
        observed: Optional[ObservedPoints] = None,
    ) -> None:
        self.name = name
        self.index = index
        self.file = file
        self.camera = camera
        self.observed = observed
        self._files: Optional[FrameFiles] = None
        self._key = -1
        self._size = (0, 0)
        self._image = image
        self._depth = None if depth is _UNSET else depth

    @classmethod
    def from_files(
        cls, files: FrameFiles, key: int, name: str, index: int, size: tuple[int, int], camera: Optional[Camera] = None
    ) -> "FileFrame":
        """Frame ``key`` of ``files``: ``size`` is its (height, width), checked when the scene was loaded."""
        frame = cls(name=name, index=index, file=files.files[key].image, camera=camera)
        frame._files, frame._key, frame._size = files, key, (int(size[0]), int(size[1]))
        frame._depth = _UNSET
        return frame

    @property  # type: ignore[override]
    def image(self) -> np.ndarray:
        if self._image is not _UNSET:
            return self._image
        assert self._files is not None, "a FileFrame needs an image or its files"
        return self._files.image(self._key)

    @image.setter
    def image(self, value: np.ndarray) -> None:
        self._image = value

    @property  # type: ignore[override]
    def depth(self) -> Optional[np.ndarray]:
        if self._depth is not _UNSET:
            return self._depth
        assert self._files is not None
        return self._files.depth(self._key)

    @depth.setter
    def depth(self, value: Optional[np.ndarray]) -> None:
        self._depth = value

    @property
    def height(self) -> int:
        return int(self._image.shape[0]) if self._image is not _UNSET else self._size[0]

    @property
    def width(self) -> int:
        return int(self._image.shape[1]) if self._image is not _UNSET else self._size[1]

    def __repr__(self) -> str:
        return f"FileFrame(name={self.name!r}, index={self.index}, file={self.file}, size={self.width}x{self.height})"
