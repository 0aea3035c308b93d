"""A B-mode phantom of the low back: layered tissue with a known TLF, and slow clips of it.

numpy and OpenCV only. Everything is deterministic for a seed. Geometry is analytic (mm), so
the label map and the true TLF thickness per column are exact, not estimated.

Layers, top to bottom: skin, subcutaneous fat with bright septa, the TLF (a bright band of 1-3
sublayers), a thin dark gap, the thin epimysial fascia line (class 2, below the TLF), fibrillar
muscle. Classes: 0 above the TLF, 1 the TLF, 2 below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

ABOVE, TLF, BELOW = 0, 1, 2


@dataclass(frozen=True)
class Anatomy:
    """One scene's geometry, all lengths in mm (depth measured from the probe face)."""

    depth_mm: float = 40.0
    width_mm: float = 40.0
    skin_mm: float = 1.6
    fat_mm: float = 10.0  # subcutaneous fat thickness at the image centre
    tlf_mm: float = 1.4  # TLF thickness perpendicular to the band at the centre
    sublayers: int = 3
    gap_mm: float = 0.5
    epimysium_mm: float = 0.3
    tilt_deg: float = 3.0
    wave_amp_mm: float = 0.6
    wave_len_mm: float = 35.0
    wave_phase: float = 0.0
    thickness_var: float = 0.08  # relative lateral variation of the TLF thickness
    slide_mm: float = 0.0  # lateral displacement of the tissue (for clips)


@dataclass(frozen=True)
class Machine:
    """How the scanner renders the tissue: a simplified B-mode chain."""

    gain_db: float = 0.0
    dynamic_range_db: float = 50.0
    axial_psf_mm: float = 0.12  # Gaussian sigma of the point-spread function
    lateral_psf_mm: float = 0.30
    attenuation_db_mm: float = 0.10  # round-trip attenuation
    tgc: float = 0.85  # fraction of the attenuation the time-gain compensation removes
    noise: float = 0.001  # electronic noise amplitude, relative to the brightest reflector
    contrast: float = 1.0  # scales the log-domain contrast between tissues


PRESETS: dict[str, Machine] = {
    "default": Machine(),
    "bright": Machine(gain_db=6.0, dynamic_range_db=55.0, contrast=1.1),
    "soft": Machine(gain_db=-4.0, dynamic_range_db=65.0, axial_psf_mm=0.16, lateral_psf_mm=0.40, contrast=0.8),
    "lowfreq": Machine(axial_psf_mm=0.22, lateral_psf_mm=0.50, attenuation_db_mm=0.07, noise=0.002),
    "noisy": Machine(gain_db=3.0, noise=0.004, dynamic_range_db=45.0),
}


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


def random_anatomy(rng: np.random.Generator, depth_mm: float = 40.0, width_mm: float = 40.0) -> Anatomy:
    """A plausible low-back scene (TLF 0.6-2.5 mm, fat 4-18 mm, tilt within +-8 degrees)."""
    fat_max = min(18.0, depth_mm * 0.5)
    wave_len = float(rng.uniform(20.0, 60.0))  # waviness kept gentle: local slope under about 10 degrees
    return Anatomy(
        depth_mm=depth_mm,
        width_mm=width_mm,
        skin_mm=float(rng.uniform(1.0, 2.2)),
        fat_mm=float(rng.uniform(4.0, fat_max)),
        tlf_mm=float(rng.uniform(0.6, 2.5)),
        sublayers=int(rng.integers(1, 4)),
        gap_mm=float(rng.uniform(0.25, 0.9)),
        epimysium_mm=float(rng.uniform(0.2, 0.5)),
        tilt_deg=float(rng.uniform(-8.0, 8.0)),
        wave_amp_mm=float(rng.uniform(0.0, 1.0)) * min(1.0, wave_len / 35.0),
        wave_len_mm=wave_len,
        wave_phase=float(rng.uniform(0, 2 * math.pi)),
        thickness_var=float(rng.uniform(0.0, 0.15)),
    )


def random_machine(rng: np.random.Generator) -> Machine:
    """A scanner look drawn around the presets, so a model cannot rely on one look."""
    return Machine(
        gain_db=float(rng.uniform(-6, 8)),
        dynamic_range_db=float(rng.uniform(42, 68)),
        axial_psf_mm=float(rng.uniform(0.08, 0.22)),
        lateral_psf_mm=float(rng.uniform(0.2, 0.55)),
        attenuation_db_mm=float(rng.uniform(0.05, 0.15)),
        tgc=float(rng.uniform(0.6, 1.0)),
        noise=float(rng.uniform(0.0, 0.004)),
        contrast=float(rng.uniform(0.75, 1.2)),
    )


def _geometry(a: Anatomy, x_mm: np.ndarray):
    """Band top, vertical extent and perpendicular thickness at lateral positions x (mm)."""
    xc = x_mm + a.slide_mm - a.width_mm / 2
    k = 2 * math.pi / a.wave_len_mm
    tilt = math.tan(math.radians(a.tilt_deg))
    top = a.skin_mm + a.fat_mm + tilt * xc + a.wave_amp_mm * np.sin(k * xc + a.wave_phase)
    slope = tilt + a.wave_amp_mm * k * np.cos(k * xc + a.wave_phase)
    thick = a.tlf_mm * (1 + a.thickness_var * np.sin(k * 0.6 * xc + 1.3 * a.wave_phase))
    cos_t = np.cos(np.arctan(slope))
    return top, thick / cos_t, thick, cos_t


class _Texture:
    """Seeded random fields that belong to the tissue (they move with it in a clip)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], spacing_mm: tuple[float, float]):
        h, w = shape
        sy, sx = spacing_mm
        pad = w // 2  # room to slide laterally
        self.pad = pad
        fib = rng.standard_normal((h, w + 2 * pad)).astype(np.float32)
        fib = cv2.GaussianBlur(fib, (0, 0), sigmaX=max(2.5 / sx, 1.0), sigmaY=max(0.15 / sy, 0.5))
        self.fibres = fib / (fib.std() + 1e-6)
        n_septa = int(rng.integers(1, 5))
        self.septa = [
            (float(rng.uniform(0.15, 0.85)), float(rng.uniform(-0.15, 0.15)), float(rng.uniform(0.15, 0.35)))
            for _ in range(n_septa)
        ]
        self.scatter = (rng.standard_normal((h, w + 2 * pad)) + 1j * rng.standard_normal((h, w + 2 * pad))).astype(
            np.complex64
        )

    def window(self, field: np.ndarray, slide_px: float) -> np.ndarray:
        s = int(round(slide_px))
        w = field.shape[1] - 2 * self.pad
        s = max(-self.pad, min(self.pad, s))
        return field[:, self.pad + s : self.pad + s + w]


def _echogenicity(a: Anatomy, y: np.ndarray, x: np.ndarray, tex: _Texture, slide_px: float):
    """Linear reflectivity map and labels for the scene (y: (H,1) mm, x: (1,W) mm)."""
    top, vert, thick, cos_t = _geometry(a, x)
    bottom = top + vert
    epi_top = bottom + a.gap_mm / cos_t
    epi_bot = epi_top + a.epimysium_mm / cos_t

    fibres = tex.window(tex.fibres, slide_px)
    y = np.broadcast_to(y, fibres.shape)
    # Brightness on a 0-1 scale (1 = the brightest reflector); turned into amplitude below.
    # Muscle: dark, fibrillar; perimysium streaks where the fibre field peaks.
    e = 0.32 + 0.06 * np.clip(fibres, -2, 2) + 0.25 * np.clip(fibres - 1.5, 0, 1)
    # Fat: dark with thin, fragmented, oblique septa.
    fat = y < top
    fat_e = np.full(e.shape, 0.16, np.float32)
    fat_depth = np.maximum(top - a.skin_mm, 1e-3)
    for pos, slope, gain in tex.septa:
        centre = a.skin_mm + fat_depth * pos + slope * (x - a.width_mm / 2) * 0.3
        line = np.exp(-(((y - centre) / 0.15) ** 2)) * (gain * 1.6) * (fibres > -0.3)
        fat_e = np.maximum(fat_e, 0.16 + line)
    e = np.where(fat, fat_e, e)
    e[y < a.skin_mm] = 0.8
    # The TLF: bright sublayers separated by slightly darker lines.
    u = (y - top) / np.maximum(vert, 1e-3)
    band = (u >= 0) & (u < 1)
    n = max(a.sublayers, 1)
    sub = 0.82 + 0.18 * np.cos(math.pi * n * u) ** 2 if n > 1 else np.ones_like(u)
    e = np.where(band, 0.97 * sub, e)
    e[(y >= bottom) & (y < epi_top)] = 0.12  # loose connective gap
    e[(y >= epi_top) & (y < epi_bot)] = 0.72  # epimysial fascia
    e = np.power(10.0, (e.astype(np.float32) - 1.0) * (48.0 / 20.0))

    labels = np.full(e.shape, BELOW, np.uint8)
    labels[y < bottom] = TLF
    labels[y < top] = ABOVE
    return e, labels, top, bottom, thick


def render(
    anatomy: Anatomy,
    machine: Machine = Machine(),
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    _texture: _Texture | None = None,
    _speckle: np.ndarray | None = None,
) -> Scan:
    """Render one scene through the simplified B-mode chain."""
    h, w = shape
    sy, sx = anatomy.depth_mm / h, anatomy.width_mm / w
    tex = _texture or _Texture(np.random.default_rng(seed), shape, (sy, sx))
    y = ((np.arange(h, dtype=np.float32) + 0.5) * sy)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) * sx)[None, :]
    slide_px = anatomy.slide_mm / sx
    e, labels, top, bottom, thick = _echogenicity(anatomy, y, x, tex, slide_px)

    # Scatterers weighted by reflectivity, blurred by the point-spread function: speckle.
    scat = _speckle if _speckle is not None else tex.window(tex.scatter, slide_px)
    field = scat * e
    rf = cv2.GaussianBlur(field.real, (0, 0), sigmaX=machine.lateral_psf_mm / sx, sigmaY=machine.axial_psf_mm / sy)
    rf_i = cv2.GaussianBlur(field.imag, (0, 0), sigmaX=machine.lateral_psf_mm / sx, sigmaY=machine.axial_psf_mm / sy)
    psf_gain = math.sqrt(4 * math.pi * (machine.lateral_psf_mm / sx) * (machine.axial_psf_mm / sy))
    noise_rng = np.random.default_rng(seed + 7919)
    noise = machine.noise * noise_rng.standard_normal((2, h, w)).astype(np.float32)
    env = np.hypot(rf * psf_gain + noise[0], rf_i * psf_gain + noise[1])
    # Depth attenuation, partly undone by time-gain compensation; then log compression.
    att_db = -machine.attenuation_db_mm * (1 - machine.tgc) * y
    db = 20 * np.log10(env + 1e-6) * machine.contrast + att_db + machine.gain_db
    img = (db + machine.dynamic_range_db) / machine.dynamic_range_db * 255.0
    image = np.clip(img, 0, 255).astype(np.uint8)

    return Scan(
        image=image,
        labels=labels,
        thickness_mm=thick.ravel().astype(np.float64),
        spacing_mm=(sy, sx),
        top_px=(top.ravel() / sy).astype(np.float64),
        bottom_px=(bottom.ravel() / sy).astype(np.float64),
    )


def scan(
    seed: int,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str | None = None,
    field_mm: tuple[float, float] = (40.0, 40.0),
) -> Scan:
    """A random scene and scanner look for `seed` (a preset name or Machine fixes the look).

    field_mm: (depth, width) of the imaged region; with `shape` it sets the pixel spacing.
    """
    rng = np.random.default_rng(seed)
    anatomy = random_anatomy(rng, depth_mm=field_mm[0], width_mm=field_mm[1])
    if machine is None:
        machine = random_machine(rng)
    elif isinstance(machine, str):
        machine = PRESETS[machine]
    return render(anatomy, machine, shape, seed=seed)


def clip(
    seed: int,
    frames: int = 90,
    fps: float = 30.0,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str = "default",
    anatomy: Anatomy | None = None,
):
    """Yield `frames` Scans of one scene moving slowly, as during a gentle trunk extension.

    The tissue slides laterally, the fat layer and the TLF breathe by a few percent, and the
    speckle decorrelates partly between frames. Ground truth comes with every frame.
    """
    rng = np.random.default_rng(seed)
    base = anatomy or random_anatomy(rng)
    if isinstance(machine, str):
        machine = PRESETS[machine]
    h, w = shape
    tex = _Texture(rng, shape, (base.depth_mm / h, base.width_mm / w))
    speckle = tex.window(tex.scatter, 0).copy()
    period_s = float(rng.uniform(3.0, 5.0))
    for i in range(frames):
        t = i / fps
        phase = 2 * math.pi * t / period_s
        a = replace(
            base,
            slide_mm=1.5 * math.sin(phase),
            fat_mm=base.fat_mm * (1 + 0.03 * math.sin(phase)),
            tlf_mm=base.tlf_mm * (1 + 0.06 * math.sin(phase + 0.5)),
            wave_phase=base.wave_phase + 0.2 * math.sin(phase),
        )
        fresh = (rng.standard_normal((h, w)) + 1j * rng.standard_normal((h, w))).astype(np.complex64)
        speckle = (0.95 * speckle + math.sqrt(1 - 0.95**2) * fresh).astype(np.complex64)
        yield render(a, machine, shape, seed=seed * 1000 + i, _texture=tex, _speckle=speckle)
