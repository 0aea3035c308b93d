"""One phantom frame: a scene rendered through the simplified B-mode chain (speckle, point-spread
function or beamforming, noise, envelope, attenuation and time-gain compensation, log
compression) into a `Scan` with its exact truth, and `scan`, a random scene and look for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.sim.anatomy import Anatomy, random_anatomy
from edge.sim.artefacts import Artefacts, artefact_reflectivity, random_artefacts
from edge.sim.machine import Machine, beamform, preset, random_machine
from edge.sim.texture import SCRATCH, Texture, complex_normal
from edge.sim.tissue import echogenicity


@dataclass(frozen=True)
class Scan:
    """One phantom image with its exact ground truth.

    image: uint8 HxW. labels: uint8 HxW (0 above, 1 TLF, 2 below). thickness_mm: float (W,), the
    true TLF thickness perpendicular to the band in each column. spacing_mm: (row, column) mm per
    pixel. top_px/bottom_px: the band's analytic edges in rows (pixel edges at integers).
    """

    image: np.ndarray
    labels: np.ndarray
    thickness_mm: np.ndarray
    spacing_mm: tuple[float, float]
    top_px: np.ndarray
    bottom_px: np.ndarray
    # Opt-in extras (extension_clip, artefacts); defaults for everything else.
    frozen: bool = False  # the scanner's picture is held (freeze): this frame repeats the previous one
    artefacts: Artefacts | None = None
    extension: float | None = None  # trunk-extension level 0-1 when the frame was acquired


_BLOCK = 8192  # float64 values per block (64 KiB) in _hypot below


def _hypot(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """np.hypot of two float32 arrays, bit for bit as glibc's hypotf computes it (the square root of
    the exact sum of squares in double, rounded to float), a block at a time instead of a call per
    pixel (into `out`, a C-contiguous float32 array, if given)."""
    out = np.empty(a.shape, np.float32) if out is None else out
    fa, fb, fo = np.ravel(a), np.ravel(b), out.reshape(-1)
    n = fo.size
    s, t = np.empty(min(n, _BLOCK)), np.empty(min(n, _BLOCK))
    for i in range(0, n, _BLOCK):
        k = min(_BLOCK, n - i)
        sk, tk, ak, bk = s[:k], t[:k], fa[i : i + k], fb[i : i + k]
        np.multiply(ak, ak, out=sk, dtype=np.float64)
        np.multiply(bk, bk, out=tk, dtype=np.float64)
        sk += tk
        np.sqrt(sk, out=sk)
        fo[i : i + k] = sk
    return out


def render(
    anatomy: Anatomy,
    machine: Machine = Machine(),
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    _texture: Texture | None = None,
    _speckle: np.ndarray | None = None,
    artefacts: Artefacts | None = None,
) -> Scan:
    """Render one scene through the simplified B-mode chain.

    artefacts: optional non-anatomical effects (see Artefacts); the labels and truth ignore them.
    """
    h, w = shape
    sy, sx = anatomy.depth_mm / h, anatomy.width_mm / w
    if _texture is None:
        # A single frame: the texture only needs room for this scene's own slide.
        reach = abs(anatomy.slide_mm) + abs(anatomy.muscle_slide_mm)
        pad = min(w // 2, math.ceil(reach / sx) + 1 if reach else 0)
        tex = Texture(np.random.default_rng(seed), shape, (sy, sx), SCRATCH, pad=pad)
    else:
        tex = _texture
    y = ((np.arange(h, dtype=np.float32) + 0.5) * sy)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) * sx)[None, :]
    slide_px = anatomy.slide_mm / sx
    e, labels, top, bottom, thick = echogenicity(anatomy, y, x, tex, slide_px)
    if artefacts is not None:
        e = artefact_reflectivity(e, artefacts, y, x, top)
    scat = _speckle if _speckle is not None else tex.window(tex.scatter, slide_px)
    # The noise stream is separate from the texture's; its two planes add to the I and Q parts.
    noise = complex_normal(
        np.random.default_rng(seed + 7919), (h, w), SCRATCH.get("render.noise", (h, w), np.complex64)
    )
    noise *= np.float32(machine.noise)
    noise = (noise.real, noise.imag)
    if machine.focus_mm is not None or machine.rf_mhz is not None:
        i_part, q_part = beamform(scat * e, machine, sy, sx, seed, tex, slide_px)
        i_part = i_part + noise[0]
        q_part = q_part + noise[1]
    else:
        # Scatterers weighted by reflectivity, blurred by the point-spread function: speckle. (The
        # real and imaginary parts of scat * e, computed apart: e is real, so the same products.)
        sig_x, sig_y = machine.lateral_psf_mm / sx, machine.axial_psf_mm / sy
        parts: list[np.ndarray] = []
        for name, part in (("i", scat.real), ("q", scat.imag)):
            field = np.multiply(part, e, out=SCRATCH.get(f"render.{name}_field", (h, w)))
            dst = SCRATCH.get(f"render.{name}", (h, w))
            parts.append(cv2.GaussianBlur(field, (0, 0), sigmaX=sig_x, sigmaY=sig_y, dst=dst))
        i_part, q_part = parts
        psf_gain = math.sqrt(4 * math.pi * sig_x * sig_y)
        i_part *= psf_gain
        i_part += noise[0]
        q_part *= psf_gain
        q_part += noise[1]
    env = _hypot(i_part, q_part, SCRATCH.get("render.envelope", (h, w)))
    return _finish(env, machine, artefacts, y, labels, top, bottom, thick, sy, sx)


def _finish(env, machine: Machine, artefacts, y, labels, top, bottom, thick, sy, sx) -> Scan:
    """Depth attenuation, partly undone by time-gain compensation, and log compression of a float32
    envelope (overwritten) into the Scan."""
    contrast, gain = machine.contrast, machine.gain_db
    if artefacts is not None and artefacts.low_contrast < 1.0:
        lc = artefacts.low_contrast
        env = np.sqrt(env**2 + np.float32((0.04 * (1.0 - lc)) ** 2))  # haze: clutter over everything
        # Less contrast around the muscle level (about -33 dB), which stays where it was, a bit lighter.
        contrast, gain = contrast * lc, gain - (33.0 * contrast - 6.0) * (1.0 - lc)
    att_db = -machine.attenuation_db_mm * (1 - machine.tgc) * y
    # img = ((20 * log10(env + 1e-6) * contrast + att_db + gain) + dynamic range) / dynamic range * 255
    img = np.add(env, 1e-6, out=env)
    np.log10(img, out=img)
    img *= 20
    img *= contrast
    img += att_db
    img += gain
    img += machine.dynamic_range_db
    img /= machine.dynamic_range_db
    img *= 255.0
    return Scan(
        image=np.clip(img, 0, 255, out=img).astype(np.uint8),
        labels=labels,
        thickness_mm=thick.ravel().astype(np.float64),
        spacing_mm=(sy, sx),
        top_px=(top.ravel() / sy).astype(np.float64),
        bottom_px=(bottom.ravel() / sy).astype(np.float64),
        artefacts=artefacts,
    )


def scan(
    seed: int,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str | None = None,
    field_mm: tuple[float, float] = (40.0, 40.0),
    wide: bool = False,
    artefacts: float = 0.0,
) -> Scan:
    """A random scene and scanner look for `seed` (a preset name or Machine fixes the look).

    field_mm: (depth, width) of the imaged region; with `shape` it sets the pixel spacing.
    wide: draw the scene (and a random look) from the wider ranges (`wide_anatomy`).
    artefacts: probability of each artefact kind (shadow, reverberation, washed-out frame).
    """
    rng = np.random.default_rng(seed)
    anatomy = random_anatomy(rng, depth_mm=field_mm[0], width_mm=field_mm[1], wide=wide)
    if machine is None:
        machine = random_machine(rng, wide=wide)
    elif isinstance(machine, str):
        machine = preset(machine)
    art = random_artefacts(np.random.default_rng([seed, 4099]), artefacts, anatomy) if artefacts else None
    return render(anatomy, machine, shape, seed=seed, artefacts=art)
