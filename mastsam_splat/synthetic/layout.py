"""Scene layout: objects built from primitives, each primitive carrying one or more coloured parts.

World frame: z up, the ground is the plane ``z = 0``; lengths are in metres. Several object
kinds are made of differently coloured parts (a chest with a lid, a banded lighthouse, a
snowman, a mug with a handle, a two-tone ball) so that a per-view segmenter splits or merges
them differently depending on the viewpoint.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from mastsam_splat.synthetic.textures import Pattern, Texture

PrimitiveKind = Literal["sphere", "box", "cylinder"]
Trajectory = Literal["orbit", "forward"]

#: Object kinds with more than one part; every scene holds each of them once.
MULTI_PART_KINDS = ("chest", "lighthouse", "snowman", "mug", "two_tone_ball")
#: Single-part object kinds added to fill the scene.
SINGLE_PART_KINDS = ("ball", "crate", "tin")


def yaw_matrix(yaw: float) -> np.ndarray:
    """[3, 3] rotation about +z by ``yaw`` radians (columns are the local axes in world coordinates)."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class Part:
    """A differently coloured piece of an object; one ground-truth part id."""

    id: int
    name: str
    texture: Texture


@dataclass
class Primitive:
    """An analytic solid. Its ``parts`` split it into horizontal bands at local heights ``band_edges``.

    ``center`` is the sphere / box centre or the centre of the cylinder's base; ``size`` is
    ``(radius,)`` for a sphere, half extents ``(hx, hy, hz)`` for a box and ``(radius, height)``
    for an upright cylinder. Boxes are rotated by ``yaw`` about the vertical axis.
    """

    kind: PrimitiveKind
    center: np.ndarray
    size: tuple[float, ...]
    yaw: float = 0.0
    parts: tuple[int, ...] = ()
    band_edges: tuple[float, ...] = ()
    """Ascending local heights (relative to ``center``) where the next part starts."""

    @property
    def rotation(self) -> np.ndarray:
        return yaw_matrix(self.yaw)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        """(centre [3], radius) of a sphere that contains the primitive."""
        if self.kind == "sphere":
            return self.center, float(self.size[0])
        if self.kind == "box":
            return self.center, float(np.linalg.norm(self.size))
        radius, height = self.size
        return self.center + np.array([0.0, 0.0, height / 2]), float(np.hypot(radius, height / 2))

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "center": [round(float(v), 6) for v in self.center],
            "size": [round(float(v), 6) for v in self.size],
            "yaw": round(float(self.yaw), 6),
            "parts": list(self.parts),
            "band_edges": [round(float(v), 6) for v in self.band_edges],
        }


@dataclass
class SceneObject:
    """One object instance: ground-truth instance id, its parts and the primitives that make it."""

    id: int
    kind: str
    position: np.ndarray
    """[3] point on the ground under the object."""
    yaw: float
    footprint: float
    """Radius of the object's footprint on the ground."""
    parts: list[Part] = field(default_factory=list)
    primitives: list[Primitive] = field(default_factory=list)

    def bounding_sphere(self) -> tuple[np.ndarray, float]:
        """(centre [3], radius) of a sphere that contains every primitive."""
        spheres = [p.bounding_sphere() for p in self.primitives]
        lo = np.min([c - r for c, r in spheres], axis=0)
        hi = np.max([c + r for c, r in spheres], axis=0)
        centre = (lo + hi) / 2
        radius = max(float(np.linalg.norm(c - centre)) + r for c, r in spheres)
        return centre, radius

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> object frame [N, 3] (origin on the ground under it, unrotated)."""
        return (np.asarray(points) - self.position) @ yaw_matrix(self.yaw)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "shape": self.kind,
            "position": [round(float(v), 6) for v in self.position],
            "yaw": round(float(self.yaw), 6),
            "parts": [
                {
                    "id": p.id,
                    "name": p.name,
                    "color": [int(round(255 * c)) for c in p.texture.color],
                    "pattern": p.texture.pattern,
                }
                for p in self.parts
            ],
            "primitives": [p.to_json() for p in self.primitives],
        }


@dataclass
class Layout:
    """Everything needed to render the scene."""

    objects: list[SceneObject]
    ground: Texture
    ground_half_size: float
    """The ground is the square ``|x|, |y| <= ground_half_size``; beyond it is sky."""
    light_dir: np.ndarray
    """[3] unit vector pointing towards the (directional) light."""
    noise_seed: int

    @property
    def parts(self) -> list[Part]:
        return [p for o in self.objects for p in o.parts]

    def to_json(self) -> dict:
        return {
            "objects": [o.to_json() for o in self.objects],
            "ground": {"half_size": self.ground_half_size, "color": [int(round(255 * c)) for c in self.ground.color]},
            "light_direction": [round(float(v), 6) for v in self.light_dir],
        }


class _Palette:
    """Distinct, saturated colours: hues stepped by the golden angle from a random start."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._hue = float(rng.random())

    def next(self) -> tuple[float, float, float]:
        self._hue = (self._hue + 0.381966) % 1.0
        sat = 0.55 + 0.35 * float(self._rng.random())
        val = 0.6 + 0.3 * float(self._rng.random())
        return tuple(float(c) for c in colorsys.hsv_to_rgb(self._hue, sat, val))  # type: ignore[return-value]


_FOOTPRINTS = {
    "ball": 0.45,
    "two_tone_ball": 0.5,
    "crate": 0.57,
    "tin": 0.35,
    "chest": 0.66,
    "lighthouse": 0.32,
    "snowman": 0.45,
    "mug": 0.6,
}


class _Builder:
    """Creates the primitives and parts of each object kind."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.palette = _Palette(rng)
        self.next_part = 1

    def texture(self, pattern: Pattern | None = None) -> Texture:
        patterns: tuple[Pattern, ...] = ("plain", "checker", "stripes", "rings")
        chosen = pattern if pattern is not None else patterns[int(self.rng.integers(len(patterns)))]
        return Texture(
            color=self.palette.next(),
            pattern=chosen,
            scale=float(self.rng.uniform(0.12, 0.3)),
            pattern_amount=float(self.rng.uniform(0.1, 0.2)),
            noise_scale=float(self.rng.uniform(5.0, 9.0)),
            noise_amount=0.35,
        )

    def part(self, obj: SceneObject, name: str, pattern: Pattern | None = None) -> int:
        part = Part(id=self.next_part, name=name, texture=self.texture(pattern))
        self.next_part += 1
        obj.parts.append(part)
        return part.id

    def build(self, kind: str, obj_id: int, position: np.ndarray, yaw: float, scale: float) -> SceneObject:
        obj = SceneObject(id=obj_id, kind=kind, position=position, yaw=yaw, footprint=_FOOTPRINTS[kind] * scale)
        rot = yaw_matrix(yaw)
        s = scale

        def at(x: float, y: float, z: float) -> np.ndarray:
            return position + rot @ np.array([x, y, z])

        def add(kind_: PrimitiveKind, centre, size, parts, edges=()) -> None:
            obj.primitives.append(Primitive(kind_, centre, tuple(float(v) for v in size), yaw, tuple(parts), tuple(edges)))

        if kind == "ball":
            add("sphere", at(0, 0, 0.45 * s), (0.45 * s,), [self.part(obj, "ball")])
        elif kind == "two_tone_ball":
            top, bottom = self.part(obj, "top half"), self.part(obj, "bottom half")
            add("sphere", at(0, 0, 0.5 * s), (0.5 * s,), [bottom, top], [0.0])
        elif kind == "crate":
            add("box", at(0, 0, 0.4 * s), (0.4 * s, 0.4 * s, 0.4 * s), [self.part(obj, "crate", "checker")])
        elif kind == "tin":
            add("cylinder", at(0, 0, 0), (0.35 * s, 0.9 * s), [self.part(obj, "tin")])
        elif kind == "chest":
            body, lid = self.part(obj, "body"), self.part(obj, "lid")
            add("box", at(0, 0, 0.3 * s), (0.5 * s, 0.35 * s, 0.3 * s), [body])
            add("box", at(0, 0, 0.68 * s), (0.54 * s, 0.39 * s, 0.08 * s), [lid])
        elif kind == "lighthouse":
            height = 1.6 * s
            bands = [self.part(obj, f"band {i + 1}") for i in range(3)]
            add("cylinder", at(0, 0, 0), (0.3 * s, height), bands, [height / 3, 2 * height / 3])
        elif kind == "snowman":
            base, head, hat = self.part(obj, "body"), self.part(obj, "head"), self.part(obj, "hat")
            add("sphere", at(0, 0, 0.45 * s), (0.45 * s,), [base])
            head_z = 0.9 * s + 0.22 * s
            add("sphere", at(0, 0, head_z), (0.3 * s,), [head])
            add("cylinder", at(0, 0, head_z + 0.24 * s), (0.2 * s, 0.3 * s), [hat])
        elif kind == "mug":
            body, handle = self.part(obj, "body"), self.part(obj, "handle")
            add("cylinder", at(0, 0, 0), (0.35 * s, 0.75 * s), [body])
            # A U-shaped handle: an outer upright bar and two arms reaching into the body.
            add("box", at(0.53 * s, 0, 0.38 * s), (0.05 * s, 0.06 * s, 0.22 * s), [handle])
            for z in (0.2 * s, 0.56 * s):
                add("box", at(0.42 * s, 0, z), (0.12 * s, 0.06 * s, 0.04 * s), [handle])
        else:
            raise ValueError(f"unknown object kind {kind!r}")
        return obj


def build_layout(rng: np.random.Generator, trajectory: Trajectory) -> Layout:
    """A random, non-overlapping arrangement of objects suited to the camera ``trajectory``.

    Every multi-part kind appears once, plus two to four single-part objects. For ``orbit``
    the objects crowd a disc around the origin (so they hide each other from some sides);
    for ``forward`` they line both sides of a free corridor along +y that the camera follows.
    """
    builder = _Builder(rng)
    extra = [SINGLE_PART_KINDS[int(i)] for i in rng.integers(len(SINGLE_PART_KINDS), size=int(rng.integers(2, 5)))]
    kinds = list(MULTI_PART_KINDS) + extra
    rng.shuffle(kinds)
    # Place the largest footprints first so rejection sampling rarely fails.
    scales = rng.uniform(0.8, 1.2, size=len(kinds))
    order = sorted(range(len(kinds)), key=lambda i: -_FOOTPRINTS[kinds[i]] * scales[i])

    placed: list[tuple[np.ndarray, float]] = []
    objects: list[SceneObject] = []
    for idx in order:
        kind, scale = kinds[idx], float(scales[idx])
        radius = _FOOTPRINTS[kind] * scale
        xy = _place(rng, trajectory, radius, placed)
        placed.append((xy, radius))
        position = np.array([xy[0], xy[1], 0.0])
        objects.append(builder.build(kind, 0, position, float(rng.uniform(0, 2 * np.pi)), scale))
    # Ids follow the placement order so they are stable for a seed; parts were numbered in build order.
    for obj_id, obj in enumerate(objects, start=1):
        obj.id = obj_id

    ground = Texture(
        color=(0.62, 0.58, 0.5),
        pattern="checker",
        scale=0.5,
        pattern_amount=0.12,
        noise_scale=3.0,
        noise_amount=0.45,
    )
    azimuth = float(rng.uniform(0, 2 * np.pi))
    elevation = np.deg2rad(55.0)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    return Layout(
        objects=objects,
        ground=ground,
        ground_half_size=12.0,
        light_dir=light,
        noise_seed=int(rng.integers(2**31 - 1)),
    )


def _place(
    rng: np.random.Generator, trajectory: Trajectory, radius: float, placed: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """Rejection-sample a ground position whose footprint clears the others by a small gap."""
    gap = 0.1
    for attempt in range(2000):
        # Widen the region slowly if the scene is crowded.
        grow = 1.0 + attempt / 500
        if trajectory == "orbit":
            r = 2.1 * grow * np.sqrt(rng.random())
            angle = rng.uniform(0, 2 * np.pi)
            xy = np.array([r * np.cos(angle), r * np.sin(angle)])
        else:
            side = 1.0 if rng.random() < 0.5 else -1.0
            xy = np.array([side * rng.uniform(0.75 + radius, 2.6 * grow), rng.uniform(-2.5, 5.0 * grow)])
        if all(np.linalg.norm(xy - other) >= radius + r_other + gap for other, r_other in placed):
            return xy
    raise RuntimeError("could not place all objects without overlap")
