"""A vectorized numpy ray caster for the synthetic scenes: analytic spheres, boxes and cylinders
on a finite textured ground plane under a sky, lit by one directional light with hard shadows.

Every ray of a frame is traced at once. Each object is first tested against its bounding
sphere, so a primitive only sees the rays that can reach it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mastsam_splat.synthetic.layout import Layout, Primitive
from mastsam_splat.synthetic.textures import ValueNoise
from mastsam_splat.types import Camera

EPS = 1e-4
"""Minimum ray parameter of a hit (avoids self-intersection of shadow rays)."""
GROUND = 0
"""``Hits.prim`` value of the ground; primitives are ``1..P``; ``-1`` is sky."""
AMBIENT = 0.55
DIFFUSE = 0.55
SHADOW_KEEP = 0.25
"""Fraction of the direct light that reaches shadowed points."""

SKY_ZENITH = np.array([0.33, 0.52, 0.84], dtype=np.float32)
SKY_HORIZON = np.array([0.80, 0.86, 0.94], dtype=np.float32)


@dataclass
class Hits:
    """Nearest hit of each ray."""

    t: np.ndarray
    """[N] float32 ray parameter; ``inf`` = no hit. For camera rays with unit z it is the z-depth."""
    prim: np.ndarray
    """[N] int32: -1 sky, 0 ground, k >= 1 primitive ``k - 1`` of the renderer."""
    face: np.ndarray
    """[N] int8: which face of a cylinder was hit (0 side, 1 bottom, 2 top)."""


@dataclass
class RenderOutput:
    """One rendered view and its ground truth."""

    rgb: np.ndarray
    """[H, W, 3] uint8."""
    depth: np.ndarray
    """[H, W] float32 z-depth in metres; 0 = sky."""
    instance: np.ndarray
    """[H, W] uint16 object ids; 0 = ground or sky."""
    part: np.ndarray
    """[H, W] uint16 part ids; 0 = ground or sky."""
    points: np.ndarray
    """[H, W, 3] float32 world point seen through each pixel centre (NaN for sky)."""


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of [M, 3] arrays -> [M] (faster than einsum for three columns)."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def _sphere(
    o: np.ndarray, d: np.ndarray, centre: np.ndarray, radius: float, dd: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Near and far roots [M], [M] of ray/sphere; NaN where the ray misses.

    ``o`` is one shared origin [3] or one per ray [M, 3]; ``dd`` optionally holds the
    precomputed squared direction lengths [M].
    """
    oc = (o - centre).astype(np.float32)
    a = _dot(d, d) if dd is None else dd
    if oc.ndim == 1:
        b = d @ oc
        c = np.float32(oc @ oc - radius * radius)
    else:
        b = _dot(oc, d)
        c = _dot(oc, oc) - np.float32(radius * radius)
    disc = b * b - a * c
    with np.errstate(invalid="ignore"):
        sq = np.sqrt(disc)  # NaN where disc < 0
    return (-b - sq) / a, (-b + sq) / a


def _nearest_positive(*candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest candidate > EPS per ray (``inf`` if none) and the index of the candidate chosen."""
    stack = np.stack(candidates)  # [C, M]
    stack = np.where(np.isfinite(stack) & (stack > EPS), stack, np.inf)
    which = np.argmin(stack, axis=0)
    return np.take_along_axis(stack, which[None], axis=0)[0], which.astype(np.int8)


def intersect(prim: Primitive, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray parameters [M] (``inf`` = miss) and face ids [M] of rays ``o + t d`` with ``prim``.

    ``o`` is one shared origin [3] or one per ray [M, 3]; ``d`` is [M, 3].
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if prim.kind == "sphere":
            t0, t1 = _sphere(o, d, prim.center, prim.size[0])
            return _nearest_positive(t0, t1)
        if prim.kind == "box":
            rot = prim.rotation.astype(np.float32)
            lo = (o - prim.center).astype(np.float32) @ rot  # [M, 3] or [3] local origin
            ld = d @ rot  # [M, 3] local direction
            ld = np.where(np.abs(ld) < 1e-12, np.float32(1e-12), ld)
            half = np.asarray(prim.size, dtype=np.float32)
            ta = (-half - lo) / ld
            tb = (half - lo) / ld
            tmin = np.minimum(ta, tb).max(axis=1)
            tmax = np.maximum(ta, tb).min(axis=1)
            hit = tmax >= tmin
            t, _ = _nearest_positive(np.where(hit, tmin, np.nan), np.where(hit, tmax, np.nan))
            return t, np.zeros(len(t), dtype=np.int8)
        # Upright cylinder with its base centre at prim.center.
        radius, height = prim.size
        oc = (o - prim.center).astype(np.float32)
        a = d[:, 0] ** 2 + d[:, 1] ** 2
        b = oc[..., 0] * d[:, 0] + oc[..., 1] * d[:, 1]
        c = oc[..., 0] ** 2 + oc[..., 1] ** 2 - np.float32(radius * radius)
        sq = np.sqrt(b * b - a * c)
        sides = []
        for t_side in ((-b - sq) / a, (-b + sq) / a):
            z = oc[..., 2] + t_side * d[:, 2]
            sides.append(np.where((z >= 0) & (z <= height), t_side, np.nan))
        caps = []
        for z_cap in (0.0, height):
            t_cap = (np.float32(z_cap) - oc[..., 2]) / d[:, 2]
            x = oc[..., 0] + t_cap * d[:, 0]
            y = oc[..., 1] + t_cap * d[:, 1]
            caps.append(np.where(x * x + y * y <= radius * radius, t_cap, np.nan))
        t, which = _nearest_positive(sides[0], sides[1], caps[0], caps[1])
        face = np.where(which < 2, 0, which - 1).astype(np.int8)  # 0 side, 1 bottom, 2 top
        return t, face


def normals(prim: Primitive, points: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Outward unit normals [M, 3] of ``prim`` at surface points [M, 3]."""
    rel = points - prim.center.astype(np.float32)
    if prim.kind == "sphere":
        return rel / np.float32(prim.size[0])
    if prim.kind == "box":
        rot = prim.rotation.astype(np.float32)
        local = rel @ rot
        axis = np.argmax(np.abs(local) / np.asarray(prim.size, dtype=np.float32), axis=1)
        n_local = np.zeros_like(local)
        rows = np.arange(len(local))
        n_local[rows, axis] = np.sign(local[rows, axis])
        return n_local @ rot.T
    n = np.zeros_like(rel)
    side = face == 0
    radial = rel[side, :2]
    n[side, :2] = radial / np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-12)
    n[face == 1, 2] = -1.0
    n[face == 2, 2] = 1.0
    return n


class Renderer:
    """Renders views of a :class:`Layout` with ground-truth depth, instance and part ids."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.noise = ValueNoise(layout.noise_seed)
        self.primitives: list[Primitive] = []
        self.prim_object: list[int] = []  # object index of each primitive
        self.object_bounds: list[tuple[np.ndarray, float, list[int]]] = []
        for obj_index, obj in enumerate(layout.objects):
            ids = []
            for prim in obj.primitives:
                self.primitives.append(prim)
                self.prim_object.append(obj_index)
                ids.append(len(self.primitives))  # 1-based id used in Hits.prim
            centre, radius = obj.bounding_sphere()
            self.object_bounds.append((centre.astype(np.float32), radius, ids))
        self.textures = {p.id: p.texture for p in layout.parts}
        self.light = (layout.light_dir / np.linalg.norm(layout.light_dir)).astype(np.float32)

    # ----------------------------------------------------------------------------------------
    # tracing
    def trace(self, origins: np.ndarray, dirs: np.ndarray, with_ground: bool = True) -> Hits:
        """Nearest hits of rays ``origins + t dirs``: origins [3] (shared) or [N, 3], dirs [N, 3] float32."""
        n = len(dirs)
        t = np.full(n, np.inf, dtype=np.float32)
        prim = np.full(n, -1, dtype=np.int32)
        face = np.zeros(n, dtype=np.int8)
        if with_ground:
            with np.errstate(divide="ignore", invalid="ignore"):
                tg = -origins[..., 2] / dirs[:, 2]
                gx = origins[..., 0] + tg * dirs[:, 0]
                gy = origins[..., 1] + tg * dirs[:, 1]
            half = self.layout.ground_half_size
            on = (dirs[:, 2] < 0) & (tg > EPS) & (np.abs(gx) <= half) & (np.abs(gy) <= half)
            t[on] = tg[on]
            prim[on] = GROUND
        shared = origins.ndim == 1
        dd = _dot(dirs, dirs)
        for centre, radius, prim_ids in self.object_bounds:
            if shared:
                # Shared origin outside the sphere: the ray hits it iff it points towards the
                # centre and the angle is small enough (no square roots, one matrix-vector product).
                oc = (centre - origins).astype(np.float32)
                c = float(oc @ oc) - radius * radius
                b = dirs @ oc
                candidate = np.flatnonzero((b > 0) & (b * b >= dd * c)) if c > 0 else np.arange(n)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    near, far = _sphere(origins, dirs, centre, radius, dd)
                    candidate = np.flatnonzero((far > EPS) & (near < t))  # NaN compares False
            if candidate.size == 0:
                continue
            o = origins if shared else np.take(origins, candidate, axis=0)
            d = np.take(dirs, candidate, axis=0)
            for k in prim_ids:
                tk, fk = intersect(self.primitives[k - 1], o, d)
                better = tk < t[candidate]
                idx = candidate[better]
                t[idx] = tk[better]
                prim[idx] = k
                face[idx] = fk[better]
        return Hits(t=t, prim=prim, face=face)

    @staticmethod
    def pixel_rays(camera: Camera, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shared origin [3] and directions [N, 3] through continuous pixel coordinates ``x``, ``y`` [N].

        Directions have unit z in camera coordinates, so the hit parameter is the z-depth.
        """
        K = camera.K
        d_cam = np.stack([(x - K[0, 2]) / K[0, 0], (y - K[1, 2]) / K[1, 1], np.ones_like(x)], axis=-1)  # [N, 3]
        c2w = camera.cam_to_world
        dirs = np.ascontiguousarray(d_cam @ c2w[:3, :3].T, dtype=np.float32)
        return c2w[:3, 3].astype(np.float32), dirs

    @staticmethod
    def pixel_grid(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """Column and row indices [H*W] of every pixel, row-major."""
        rows, cols = np.divmod(np.arange(camera.height * camera.width, dtype=np.int64), camera.width)
        return cols, rows

    # ----------------------------------------------------------------------------------------
    # surface attributes
    def part_ids(self, hits: Hits, points: np.ndarray) -> np.ndarray:
        """Ground-truth part id [N] of each hit (0 for ground and sky)."""
        part = np.zeros(len(hits.t), dtype=np.uint16)
        for k in np.unique(hits.prim[hits.prim > 0]):
            prim = self.primitives[k - 1]
            idx = np.nonzero(hits.prim == k)[0]
            if prim.band_edges:
                local_z = points[idx, 2] - np.float32(prim.center[2])
                band = np.searchsorted(np.asarray(prim.band_edges, dtype=np.float32), local_z)
                part[idx] = np.asarray(prim.parts, dtype=np.uint16)[band]
            else:
                part[idx] = prim.parts[0]
        return part

    def instance_ids(self, hits: Hits) -> np.ndarray:
        """Ground-truth object id [N] of each hit (0 for ground and sky)."""
        lut = np.zeros(len(self.primitives) + 2, dtype=np.uint16)
        for k, obj_index in enumerate(self.prim_object, start=1):
            lut[k] = self.layout.objects[obj_index].id
        return lut[np.maximum(hits.prim, 0)]

    def sky(self, dirs: np.ndarray) -> np.ndarray:
        """Sky colour [N, 3] for (not necessarily unit) directions [N, 3]: gradient plus soft clouds."""
        u = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
        up = np.clip(u[:, 2:3] * 2.5, 0.0, 1.0)
        rgb = SKY_HORIZON * (1 - up) + SKY_ZENITH * up
        cloud = self.noise.fbm(u * 4.0 + 50.0, octaves=3)
        cover = np.clip((cloud - 0.5) / 0.2, 0.0, 1.0)[:, None]
        rgb = rgb * (1 - 0.55 * cover) + 0.55 * cover
        below = u[:, 2:3] < 0
        return np.where(below, SKY_HORIZON * 0.85, rgb).astype(np.float32)

    def shade(self, origins: np.ndarray, dirs: np.ndarray, hits: Hits) -> np.ndarray:
        """Linear RGB [N, 3] in [0, 1]: textured albedo under ambient + shadowed directional light."""
        # Row gathers use np.take with index arrays: several times faster than boolean masks.
        rgb = np.empty((len(dirs), 3), dtype=np.float32)
        sky = np.flatnonzero(hits.prim < 0)
        if sky.size:
            rgb[sky] = self.sky(np.take(dirs, sky, axis=0))
        surf = np.flatnonzero(hits.prim >= 0)
        if surf.size == 0:
            return rgb
        o = origins if origins.ndim == 1 else np.take(origins, surf, axis=0)
        points = o + hits.t[surf, None] * np.take(dirs, surf, axis=0)  # [M, 3]
        prim = hits.prim[surf]
        face = hits.face[surf]
        albedo = np.empty((surf.size, 3), dtype=np.float32)
        normal = np.empty((surf.size, 3), dtype=np.float32)

        ground = np.flatnonzero(prim == GROUND)
        if ground.size:
            points[ground, 2] = 0.0
            albedo[ground] = self.layout.ground.albedo(np.take(points, ground, axis=0), self.noise)
            normal[ground] = (0.0, 0.0, 1.0)
        part = self.part_ids(Hits(hits.t[surf], prim, face), points)
        order = np.argsort(prim, kind="stable")
        bounds = np.searchsorted(prim[order], np.arange(len(self.primitives) + 2))
        for k in range(1, len(self.primitives) + 1):
            sel = order[bounds[k] : bounds[k + 1]]
            if sel.size == 0:
                continue
            primitive = self.primitives[k - 1]
            obj = self.layout.objects[self.prim_object[k - 1]]
            pts = np.take(points, sel, axis=0)
            normal[sel] = normals(primitive, pts, face[sel])
            local = obj.to_local(pts).astype(np.float32)
            sel_parts = part[sel]
            for part_id in primitive.parts:
                sub = np.flatnonzero(sel_parts == part_id) if len(primitive.parts) > 1 else slice(None)
                albedo[sel[sub]] = self.textures[part_id].albedo(local[sub], self.noise)

        ndl = np.clip(normal @ self.light, 0.0, 1.0)  # [M]
        lit = np.flatnonzero(ndl > 0)
        light = np.full(surf.size, AMBIENT, dtype=np.float32)
        if lit.size:
            shadow_o = np.take(points, lit, axis=0) + 1e-3 * np.take(normal, lit, axis=0)
            blocked = self.occluded(shadow_o, self.light)
            light[lit] += DIFFUSE * ndl[lit] * np.where(blocked, SHADOW_KEEP, 1.0).astype(np.float32)
        rgb[surf] = albedo * light[:, None]
        return np.clip(rgb, 0.0, 1.0, out=rgb)

    def occluded(self, origins: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """[N] bool: whether rays from origins [N, 3] along one direction [3] hit any object."""
        # Bounding-sphere cull in the plane perpendicular to the shared direction.
        u = np.cross(direction, [1.0, 0.0, 0.0] if abs(direction[0]) < 0.9 else [0.0, 1.0, 0.0])
        u = (u / np.linalg.norm(u)).astype(np.float32)
        v = np.cross(direction, u).astype(np.float32)
        pu, pv, pd = origins @ u, origins @ v, origins @ direction
        blocked = np.zeros(len(origins), dtype=bool)
        dirs = None
        for centre, radius, prim_ids in self.object_bounds:
            du, dv = pu - centre @ u, pv - centre @ v
            candidate = np.flatnonzero((du * du + dv * dv <= radius * radius) & (pd <= centre @ direction + radius))
            candidate = candidate[~blocked[candidate]]
            if candidate.size == 0:
                continue
            if dirs is None:
                dirs = np.broadcast_to(direction, origins.shape)
            o, d = np.take(origins, candidate, axis=0), dirs[: candidate.size]
            hit = np.zeros(candidate.size, dtype=bool)
            for k in prim_ids:
                hit |= np.isfinite(intersect(self.primitives[k - 1], o, d)[0])
            blocked[candidate[hit]] = True
        return blocked

    # ----------------------------------------------------------------------------------------
    def render(self, camera: Camera, antialias: int = 2, edge_threshold: float = 0.1) -> RenderOutput:
        """Render one view with ground truth at pixel centres.

        Colour is adaptively antialiased: pixels whose centre sample differs from a 4-neighbour
        (another primitive or part, or a colour step above ``edge_threshold``) are replaced by
        the mean of ``antialias``² stratified samples; ``antialias=1`` shades centres only.
        """
        h, w = camera.height, camera.width
        cols, rows = self.pixel_grid(camera)
        origin, dirs = self.pixel_rays(camera, cols + 0.5, rows + 0.5)
        hits = self.trace(origin, dirs)
        surface = hits.prim >= 0
        points = np.full((h * w, 3), np.nan, dtype=np.float32)
        points[surface] = origin + hits.t[surface, None] * dirs[surface]
        depth = np.where(surface, hits.t, 0.0).astype(np.float32)
        instance = self.instance_ids(hits)
        part = self.part_ids(hits, np.nan_to_num(points))
        rgb = self.shade(origin, dirs, hits)

        if antialias > 1:
            edge = _edges(hits.prim.reshape(h, w), part.reshape(h, w), rgb.reshape(h, w, 3), edge_threshold)
            sel = np.flatnonzero(edge)
            if sel.size:
                # All sub-samples of all edge pixels in one batch: [S * E] rays, sample-major.
                steps = (np.arange(antialias) + 0.5) / antialias
                ox, oy = np.meshgrid(steps, steps)
                x = (cols[sel][None, :] + ox.reshape(-1, 1)).reshape(-1)
                y = (rows[sel][None, :] + oy.reshape(-1, 1)).reshape(-1)
                o, d = self.pixel_rays(camera, x, y)
                samples = self.shade(o, d, self.trace(o, d))  # [S * E, 3]
                rgb[sel] = samples.reshape(antialias * antialias, sel.size, 3).mean(axis=0)
        image = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
        return RenderOutput(
            rgb=image.reshape(h, w, 3),
            depth=depth.reshape(h, w),
            instance=instance.reshape(h, w),
            part=part.reshape(h, w),
            points=points.reshape(h, w, 3),
        )


def _edges(prim: np.ndarray, part: np.ndarray, rgb: np.ndarray, threshold: float) -> np.ndarray:
    """[H, W] bool: pixels that differ from a 4-neighbour in primitive, part, or colour (> threshold)."""
    edge = np.zeros(prim.shape, dtype=bool)
    for axis in (0, 1):
        n = prim.shape[axis]
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[axis], b[axis] = slice(0, n - 1), slice(1, n)
        a, b = tuple(a), tuple(b)
        diff = (prim[a] != prim[b]) | (part[a] != part[b]) | (np.abs(rgb[a] - rgb[b]).max(axis=-1) > threshold)
        edge[a] |= diff
        edge[b] |= diff
    return edge
