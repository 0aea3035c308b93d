"""The random fields that belong to the tissue and move with it in a clip, and the arrays a thread
reuses for them.

`complex_normal` draws complex Gaussian speckle (Box-Muller from float32 uniforms), `Texture`
holds a scene's scatterers, fibre field and fat septa (with lateral room to slide), `SCRATCH` is
the per-thread pool of one frame's temporaries.
"""

from __future__ import annotations

import math
import threading

import cv2
import numpy as np


def complex_normal(rng: np.random.Generator, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
    """complex64 circular Gaussian values with unit variance per part, by the Box-Muller transform:
    a Rayleigh magnitude sqrt(-2 ln(1 - u)) at a uniform phase 2 pi v, from two float32 uniform
    planes (u first, then v). Exactly Gaussian and about twice as fast as numpy's own normals here,
    which is what the phantom's speed hangs on (into `out`, a C-contiguous complex64 array, if given).
    Its real and imaginary parts are two independent standard normal fields."""
    z = np.empty(shape, np.complex64) if out is None else out
    u = rng.random((2, *shape), dtype=np.float32)
    mag = np.subtract(np.float32(1.0), u[0], out=u[0])  # in (0, 1]: the logarithm is finite
    np.log(mag, out=mag)
    mag *= np.float32(-2.0)
    np.sqrt(mag, out=mag)
    u[1] *= np.float32(2 * math.pi)
    re, im = cv2.polarToCart(mag, u[1])
    parts = z.view(np.float32).reshape(*shape, 2)
    parts[..., 0] = re
    parts[..., 1] = im
    return z


def _fibre_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """A smooth random float32 field with unit standard deviation: white noise blurred by a Gaussian of
    sigma_px = (lateral, axial) pixels. The noise is drawn 3 lateral sigmas wider on each side and
    cropped after the blur, so that no column near an edge is blurred against a mirrored border
    (which would count the same noise twice and brighten the edges). Long lateral blurs run on a
    laterally decimated grid (at least 4 pixels of sigma left) and are interpolated back: the field
    is smooth at that scale, and the blur costs a fraction. The white noise is uniform; after a blur
    over tens of pixels it is Gaussian."""
    h, w = shape
    sig_x, sig_y = sigma_px
    f = max(1, int(sig_x // 4))
    margin = -(-math.ceil(3 * sig_x) // f)  # coarse columns each side
    lw = -(-w // f) + 2 * margin
    field = rng.random((h, lw), dtype=np.float32)
    field -= np.float32(0.5)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=sig_x / f, sigmaY=sig_y)
    if f > 1:
        # Sample centres of the fine grid on the coarse one (pixel-centre alignment, as cv2.resize does).
        field = cv2.resize(field, (lw * f, h), interpolation=cv2.INTER_LINEAR)
    field = field[:, margin * f : margin * f + w]
    field /= field.std() + 1e-6
    return np.ascontiguousarray(field)


class Scratch(threading.local):
    """Arrays a thread reuses from frame to frame for what `render` drops when it returns: its
    temporaries and the one-frame texture of `scan`. New multi-megabyte arrays every frame come back
    from the allocator as fresh pages, a page fault per 4 KiB, which on a busy machine cost a fifth of
    a frame. One array per name (another shape replaces it), so the pool stays one frame's worth."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = self.arrays[name] = np.empty(shape, dtype)
        return a


SCRATCH = Scratch()


class Texture:
    """Seeded random fields that belong to the tissue (they move with it in a clip).

    pad: lateral room, in pixels each side, for the tissue to slide (default half the width, for clips;
    a single frame needs only its own slide).
    scratch: take the arrays from this pool, for a texture that is dropped before the next one is made.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        shape: tuple[int, int],
        spacing_mm: tuple[float, float],
        scratch: Scratch | None = None,
        pad: int | None = None,
    ):
        h, w = shape
        sy, sx = spacing_mm
        self.pad = pad = w // 2 if pad is None else int(pad)
        size = (h, w + 2 * pad)
        self.fibres = _fibre_field(rng, size, (max(2.5 / sx, 1.0), max(0.15 / sy, 0.5)))
        n_septa = int(rng.integers(1, 5))
        self.septa = [
            (float(rng.uniform(0.15, 0.85)), float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0.15, 0.35)))
            for _ in range(n_septa)
        ]
        out = None if scratch is None else scratch.get("texture.scatter", size, np.complex64)
        self.scatter = complex_normal(rng, size, out)

    def rf_phase(self, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin of random scatterer phases at k sub-rows per pixel (RF model): (k, H, W+2*pad)
        each, drawn once per texture and k from their own stream (the texture's draws are untouched)."""
        cache = self.__dict__.setdefault("_rf_phases", {})
        if k not in cache:
            h, wp = self.scatter.shape
            phi = np.random.default_rng([seed, 7927, k]).random((k, h, wp), dtype=np.float32) * np.float32(2 * math.pi)
            cache[k] = (np.cos(phi), np.sin(phi))
        return cache[k]

    def window(self, field: np.ndarray, slide_px: float) -> np.ndarray:
        s = int(round(slide_px))
        w = field.shape[1] - 2 * self.pad
        s = max(-self.pad, min(self.pad, s))
        return field[:, self.pad + s : self.pad + s + w]
