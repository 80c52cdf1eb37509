"""Procedural solid textures: value noise and regular patterns evaluated at 3D points.

Textures are evaluated in each object's local frame, so they stick to the surface when the
camera moves: the same surface point has the same albedo in every view, which is what
feature matchers (SIFT) and multi-view consistency checks rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Pattern = Literal["plain", "checker", "stripes", "rings"]


class ValueNoise:
    """Smooth 3D value noise in [0, 1] on a seeded periodic lattice (trilinear, smoothstep).

    The lattice repeats every ``PERIOD`` cells, far beyond the scene's extent at the
    frequencies used here; one table lookup per corner keeps it fast.
    """

    PERIOD = 64

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self._table = rng.random(self.PERIOD**3).astype(np.float32)  # [P^3] flattened [P, P, P]

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Noise at points [N, 3] -> [N] float32 in [0, 1]."""
        p = np.asarray(points, dtype=np.float32)
        cell = np.floor(p)
        frac = p - cell
        w = frac * frac * (3.0 - 2.0 * frac)  # [N, 3] smoothstep weights
        mask = self.PERIOD - 1
        i0 = cell.astype(np.int32) & mask  # [N, 3]
        i1 = (i0 + 1) & mask
        x0, x1 = i0[:, 0] * (self.PERIOD * self.PERIOD), i1[:, 0] * (self.PERIOD * self.PERIOD)
        y0, y1 = i0[:, 1] * self.PERIOD, i1[:, 1] * self.PERIOD
        z0, z1 = i0[:, 2], i1[:, 2]
        wx, wy, wz = w[:, 0], w[:, 1], w[:, 2]
        take = self._table.take

        def along_z(xy: np.ndarray) -> np.ndarray:
            lo = take(xy + z0)
            return lo + wz * (take(xy + z1) - lo)

        x0y0, x0y1 = along_z(x0 + y0), along_z(x0 + y1)
        x1y0, x1y1 = along_z(x1 + y0), along_z(x1 + y1)
        v0 = x0y0 + wy * (x0y1 - x0y0)
        v1 = x1y0 + wy * (x1y1 - x1y0)
        return v0 + wx * (v1 - v0)

    def fbm(self, points: np.ndarray, octaves: int = 3, base_scale: float = 1.0) -> np.ndarray:
        """Fractal sum of ``octaves`` noise layers (each twice the frequency, half the weight), in [0, 1]."""
        p = np.asarray(points, dtype=np.float32) * base_scale
        total = np.zeros(len(p), dtype=np.float32)
        weight, norm = 1.0, 0.0
        for octave in range(octaves):
            # Offset each octave so lattice points do not line up.
            total += weight * self(p * (2.0**octave) + 17.31 * octave)
            norm += weight
            weight *= 0.5
        return total / norm


@dataclass(frozen=True)
class Texture:
    """Albedo of a surface: a base colour modulated by a pattern and by noise."""

    color: tuple[float, float, float]
    """Base RGB in [0, 1]."""
    pattern: Pattern = "plain"
    """Regular pattern that modulates the brightness."""
    scale: float = 0.25
    """Pattern period in scene units."""
    pattern_amount: float = 0.18
    """Relative brightness change of the pattern."""
    noise_scale: float = 6.0
    """Noise frequency (lattice cells per scene unit)."""
    noise_amount: float = 0.35
    """Relative brightness change of the noise."""

    def albedo(self, local: np.ndarray, noise: ValueNoise) -> np.ndarray:
        """Albedo at object-local points [N, 3] -> [N, 3] float32 RGB in [0, 1]."""
        local = np.asarray(local, dtype=np.float32)
        gain = np.ones(len(local), dtype=np.float32)
        if self.pattern == "checker":
            # The offset keeps faces at round coordinates (the ground at z = 0) off cell boundaries.
            cells = np.floor(local / self.scale + 0.37).astype(np.int64).sum(axis=1)
            gain += self.pattern_amount * np.where(cells % 2 == 0, 1.0, -1.0).astype(np.float32)
        elif self.pattern == "stripes":
            phase = (local[:, 0] + 0.6 * local[:, 1] + 0.8 * local[:, 2]) / self.scale
            gain += self.pattern_amount * np.sign(np.sin(2.0 * np.pi * phase)).astype(np.float32)
        elif self.pattern == "rings":
            radius = np.sqrt(local[:, 0] ** 2 + local[:, 1] ** 2) + 0.5 * local[:, 2]
            gain += self.pattern_amount * np.sin(2.0 * np.pi * radius / self.scale).astype(np.float32)
        if self.noise_amount > 0:
            gain += self.noise_amount * (noise.fbm(local, octaves=3, base_scale=self.noise_scale) - 0.5)
        rgb = np.asarray(self.color, dtype=np.float32)[None, :] * gain[:, None]
        return np.clip(rgb, 0.0, 1.0)
