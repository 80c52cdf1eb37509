"""A simulated SAM for benchmarks: masks made from a dataset's ground-truth objects and parts,
with the inconsistencies that make SAM's per-view masks hard to track.

Automatic masks, per view and per object (all draws seeded by ``seed``, the frame and the object,
so a view's masks do not depend on the order frames are segmented in):

- the object is kept whole, or split into its parts (``split_probability``), or some of its
  parts are merged into larger pieces (``merge_probability``, objects of three parts or more);
- each mask's boundary moves by a random dilation or erosion of up to ``jitter_px`` pixels;
- masks smaller than ``small_fraction`` of the image are missed with ``miss_probability``.

Prompts choose the granularity like SAM's multimask output: of the view's parts and objects,
the smallest one that holds every positive point and no negative point (or, when none does, the
smallest holding the most positives and no negative); boundary jitter as above.

The segmenter is given the dataset (``data``) and finds each image's frame by its pixels: an
image that is not exactly one of the dataset's frames is refused. ``prepare`` also takes a
``types.Frame``, identified by its name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mastsam_splat.errors import InputError
from mastsam_splat.segmenters.base import Segmenter, check_image, empty_mask, points_in_image
from mastsam_splat.types import Frame, Mask

GT_FOLDERS = ("instances", "parts")
"""Ground-truth label folders the simulation needs inside the dataset."""


@dataclass
class SimulatedSamConfig:
    """Settings of the simulated SAM (ground-truth masks with SAM-like granularity changes and noise)."""

    data: Optional[Path] = None
    """Dataset whose frames are segmented; it must hold ground-truth instances/ and parts/."""
    seed: int = 0
    """Seed of every random choice."""
    split_probability: float = 0.5
    """Chance, per view and object, that the object comes out as its separate parts."""
    merge_probability: float = 0.2
    """Chance, per view and object of three parts or more, that some of its parts come out merged."""
    jitter_px: int = 2
    """Largest boundary dilation / erosion (pixels) applied to each mask."""
    small_fraction: float = 0.005
    """Masks below this fraction of the image may be missed."""
    miss_probability: float = 0.3
    """Chance that a small automatic mask is missed."""

    def setup(self) -> "SimulatedSamSegmenter":
        """Build the segmenter (loads the dataset's frames and ground truth)."""
        return SimulatedSamSegmenter(self)


@dataclass
class _ViewState:
    """The frame a prepared image is, and its ground truth."""

    index: int
    name: str
    instances: np.ndarray
    parts: np.ndarray


def _digest(image: np.ndarray) -> str:
    image = np.ascontiguousarray(image)
    return hashlib.blake2b(image.tobytes() + repr(image.shape).encode(), digest_size=16).hexdigest()


class SimulatedSamSegmenter(Segmenter):
    """Ground-truth objects and parts of the dataset's frames, re-cut the way SAM would."""

    name = "simulated"
    concurrent = True
    """``prepare`` and ``auto`` of one view may run in another thread while ``prompt`` runs on another view's state
    (the ground truth is read once, at construction)."""

    def __init__(self, config: SimulatedSamConfig) -> None:
        from mastsam_splat.io import load_scene, read_label_dir

        self.config = config
        for key in ("split_probability", "merge_probability", "miss_probability"):
            value = getattr(config, key)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"simulated segmenter: {key} must be in [0, 1], got {value}")
        if config.split_probability + config.merge_probability > 1.0:
            raise InputError("simulated segmenter: split_probability + merge_probability must be at most 1")
        if config.jitter_px < 0:
            raise InputError(f"simulated segmenter: jitter_px must be >= 0, got {config.jitter_px}")
        if config.data is None:
            raise InputError(
                "the simulated segmenter needs the dataset with ground-truth instances/ and parts/ (set its data)"
            )
        scene = load_scene(config.data)
        root = Path(scene.root)
        for folder in GT_FOLDERS:
            if not (root / folder).is_dir():
                raise InputError(
                    f"the simulated segmenter needs ground-truth {folder}/ label images; this dataset has none", root
                )
        names = [f.name for f in scene.frames]
        shapes = [(f.height, f.width) for f in scene.frames]
        self.names = names
        self.instances = read_label_dir(root / "instances", names, shapes)
        self.parts = read_label_dir(root / "parts", names, shapes)
        self.index_of_name = {name: i for i, name in enumerate(names)}
        self.index_of_digest: dict[str, list[int]] = {}
        for i, frame in enumerate(scene.frames):
            self.index_of_digest.setdefault(_digest(frame.image), []).append(i)
        self.root = root

    # ------------------------------------------------------------------ frames
    def frame_index(self, image: Union[np.ndarray, Frame]) -> int:
        """The dataset frame an image is: by name for a ``Frame``, by its exact pixels for an array."""
        if isinstance(image, Frame):
            if image.name not in self.index_of_name:
                raise InputError(f"frame {image.name!r} is not a frame of the simulated segmenter's dataset", self.root)
            return self.index_of_name[image.name]
        found = self.index_of_digest.get(_digest(image), [])
        if not found:
            raise InputError(
                "image is not one of the dataset's frames (the simulated segmenter finds a frame by its exact "
                "pixels; resized or re-encoded images cannot be matched)",
                self.root,
            )
        if len(found) > 1 and any(
            not np.array_equal(self.parts[found[0]], self.parts[i])
            or not np.array_equal(self.instances[found[0]], self.instances[i])
            for i in found[1:]
        ):
            raise InputError(
                f"image matches frames {[self.names[i] for i in found]} whose ground truth differs; pass the Frame",
                self.root,
            )
        return found[0]

    def prepare(self, image: Union[np.ndarray, Frame]) -> _ViewState:
        pixels = check_image(image.image if isinstance(image, Frame) else image)
        index = self.frame_index(image if isinstance(image, Frame) else pixels)
        if self.instances[index].shape != pixels.shape[:2]:
            raise InputError(f"frame {self.names[index]!r} has another size than its ground truth", self.root)
        return _ViewState(index=index, name=self.names[index], instances=self.instances[index], parts=self.parts[index])

    # ------------------------------------------------------------------ masks
    def _rng(self, state: _ViewState, *keys: int) -> np.random.Generator:
        return np.random.default_rng([int(self.config.seed), state.index, *keys])

    def _jitter(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Dilate or erode by a random radius up to ``jitter_px``; an erosion that empties the mask is skipped."""
        from scipy import ndimage

        radius = int(rng.integers(-self.config.jitter_px, self.config.jitter_px + 1)) if self.config.jitter_px else 0
        if radius > 0:
            return ndimage.binary_dilation(mask, iterations=radius)
        if radius < 0:
            eroded = ndimage.binary_erosion(mask, iterations=-radius)
            return eroded if eroded.any() else mask
        return mask

    def object_parts(self, state: _ViewState) -> dict[int, list[int]]:
        """Object id -> its part ids visible in the view (a part belongs to the object covering most of it)."""
        inst = state.instances.ravel().astype(np.int64)
        part = state.parts.ravel().astype(np.int64)
        keep = (inst > 0) & (part > 0)
        pairs, counts = np.unique(np.stack([part[keep], inst[keep]]), axis=1, return_counts=True)
        owner: dict[int, tuple[int, int]] = {}
        for (p, o), c in zip(pairs.T.tolist(), counts.tolist()):
            if p not in owner or c > owner[p][1]:
                owner[p] = (o, c)
        out: dict[int, list[int]] = {int(o): [] for o in np.unique(inst[inst > 0]).tolist()}
        for p, (o, _) in sorted(owner.items()):
            out[o].append(p)
        return out

    def _groups(self, parts: list[int], rng: np.random.Generator) -> list[list[int]]:
        """How an object's parts come out in this view: split (one group per part), partly merged
        (runs of neighbouring part ids, at least two groups and fewer than parts), or whole."""
        draw = rng.random()
        n = len(parts)
        if n >= 2 and draw < self.config.split_probability:
            return [[p] for p in parts]
        if n >= 3 and draw < self.config.split_probability + self.config.merge_probability:
            cuts = np.sort(rng.choice(np.arange(1, n), size=int(rng.integers(1, n - 1)), replace=False))
            return [list(g) for g in np.split(np.array(parts), cuts)]
        return [parts]

    def auto(self, state: _ViewState) -> list[Mask]:
        h, w = state.instances.shape
        small = self.config.small_fraction * h * w
        masks = []
        for obj, parts in self.object_parts(state).items():
            rng = self._rng(state, obj)
            for group in self._groups(parts, rng) if parts else [[]]:
                region = state.instances == obj
                if len(group) < len(parts):
                    region &= np.isin(state.parts, group)
                region = self._jitter(region, rng)
                area = int(region.sum())
                missed = rng.random() < self.config.miss_probability
                if area == 0 or (area < small and missed):
                    continue
                masks.append(Mask(segmentation=region, score=float(rng.uniform(0.85, 1.0)), area=area))
        return sorted(masks, key=lambda m: -m.area)

    def candidates(self, state: _ViewState) -> list[tuple[str, int, np.ndarray]]:
        """The view's parts and objects as ``(kind, id, mask)``, the multimask levels a prompt chooses from."""
        out = []
        for obj, parts in self.object_parts(state).items():
            out.extend(("part", p, (state.parts == p) & (state.instances == obj)) for p in parts)
            out.append(("object", obj, state.instances == obj))
        return out

    def choose(
        self, state: _ViewState, positive_xy: np.ndarray, negative_xy: Optional[np.ndarray] = None
    ) -> Optional[tuple[str, int, np.ndarray, float]]:
        """The candidate a prompt selects, with the share of positives it holds; ``None`` when none fits."""
        h, w = state.instances.shape
        pos = points_in_image(positive_xy, w, h)
        neg = points_in_image(negative_xy, w, h)
        if not len(pos):
            return None
        pr, pc = np.floor(pos[:, 1]).astype(int), np.floor(pos[:, 0]).astype(int)
        nr, nc = np.floor(neg[:, 1]).astype(int), np.floor(neg[:, 0]).astype(int)
        best = None
        for kind, ident, mask in self.candidates(state):
            if len(neg) and mask[nr, nc].any():
                continue
            held = int(mask[pr, pc].sum())
            if held == 0:
                continue
            key = (-held, int(mask.sum()))
            if best is None or key < best[0]:
                best = (key, kind, ident, mask, held / len(pos))
        return None if best is None else best[1:]

    def prompt(self, state: _ViewState, positive_xy: np.ndarray, negative_xy: Optional[np.ndarray] = None) -> Mask:
        h, w = state.instances.shape
        chosen = self.choose(state, positive_xy, negative_xy)
        if chosen is None:
            return empty_mask(h, w)
        kind, ident, mask, share = chosen
        rng = self._rng(state, 1 if kind == "object" else 2, ident)
        region = self._jitter(mask, rng)
        return Mask(segmentation=region, score=float(0.95 * share), area=int(region.sum()))
