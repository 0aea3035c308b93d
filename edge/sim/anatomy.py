"""The scene of a phantom image: its layers' geometry in mm and the scenes drawn at random.

Layers, top to bottom: skin, subcutaneous fat, the TLF (1-3 sublayers), a thin gap, the
epimysial fascia, muscle. `geometry` gives the band's analytic edges and thickness per lateral
position; the label classes (ABOVE, TLF, BELOW) are the rows above, inside and below the band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    # Opt-in detail; the defaults leave the scene exactly as without these fields.
    ripple_amp_mm: float = 0.0  # a second, shorter undulation of the band (deformation)
    ripple_len_mm: float = 9.0
    ripple_phase: float = 0.0
    muscle_slide_mm: float = 0.0  # extra lateral glide of the muscle under the fascia
    tlf_echo: float | None = None  # TLF brightness, 0-1 scale (None: 0.97)
    epimysium_echo: float | None = None  # epimysial fascia brightness (None: 0.72)


def random_anatomy(
    rng: np.random.Generator, depth_mm: float = 40.0, width_mm: float = 40.0, wide: bool = False
) -> Anatomy:
    """A plausible low-back scene (TLF 0.6-2.5 mm, fat 4-18 mm, tilt within +-8 degrees).

    wide=True: the wider range of `wide_anatomy` (a different draw from the same rng).
    """
    if wide:
        return wide_anatomy(rng, depth_mm, width_mm)
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


def wide_anatomy(rng: np.random.Generator, depth_mm: float = 40.0, width_mm: float = 40.0) -> Anatomy:
    """A scene from a wider population: fat 3-25 mm, TLF 0.6-2.5 mm in 1-3 sublayers, a 0.2-1 mm gap,
    a 0.2-0.5 mm epimysial fascia, tilt up to +-10 degrees, waviness with a second ripple and
    varied echogenicity.

    Fat and tilt are limited so that the whole stack stays inside the field: the band never
    reaches the skin at either edge and at least 3 mm of muscle shows below the epimysium.
    """
    skin = float(rng.uniform(0.8, 2.4))
    tlf = float(rng.uniform(0.6, 2.5))
    sublayers = int(rng.integers(1, 4))
    gap = float(rng.uniform(0.2, 1.0))
    epi = float(rng.uniform(0.2, 0.5))
    wave_len = float(rng.uniform(15.0, 60.0))
    wave_amp = float(rng.uniform(0.0, 1.0)) * min(1.2, math.tan(math.radians(5.0)) * wave_len / (2 * math.pi))
    ripple_len = float(rng.uniform(5.0, 14.0))
    ripple_amp = float(rng.uniform(0.0, 1.0)) * math.tan(math.radians(3.0)) * ripple_len / (2 * math.pi)
    wav = wave_amp + ripple_amp
    half = width_mm / 2
    stack = tlf * 1.25 / math.cos(math.radians(18.0)) + gap + epi  # below the band top, worst case
    fat_hi = max(0.5, min(25.0, depth_mm - skin - stack - wav - 3.0 - 0.4 * half * math.tan(math.radians(10.0))))
    fat = float(rng.uniform(min(3.0, fat_hi), fat_hi))
    room_up = fat - 1.0 - wav  # the band stays 1 mm below the skin
    room_down = depth_mm - skin - fat - stack - wav - 3.0
    tilt_max = max(0.0, min(10.0, math.degrees(math.atan(max(0.0, min(room_up, room_down)) / half))))
    return Anatomy(
        depth_mm=depth_mm,
        width_mm=width_mm,
        skin_mm=skin,
        fat_mm=fat,
        tlf_mm=tlf,
        sublayers=sublayers,
        gap_mm=gap,
        epimysium_mm=epi,
        tilt_deg=float(rng.uniform(-tilt_max, tilt_max)),
        wave_amp_mm=wave_amp,
        wave_len_mm=wave_len,
        wave_phase=float(rng.uniform(0, 2 * math.pi)),
        thickness_var=float(rng.uniform(0.0, 0.2)),
        ripple_amp_mm=ripple_amp,
        ripple_len_mm=ripple_len,
        ripple_phase=float(rng.uniform(0, 2 * math.pi)),
        tlf_echo=float(rng.uniform(0.86, 1.0)),
        epimysium_echo=float(rng.uniform(0.58, 0.8)),
    )


def geometry(a: Anatomy, x_mm: np.ndarray):
    """Band top, vertical extent and perpendicular thickness at lateral positions x (mm)."""
    xc = x_mm + a.slide_mm - a.width_mm / 2
    k = 2 * math.pi / a.wave_len_mm
    tilt = math.tan(math.radians(a.tilt_deg))
    top = a.skin_mm + a.fat_mm + tilt * xc + a.wave_amp_mm * np.sin(k * xc + a.wave_phase)
    slope = tilt + a.wave_amp_mm * k * np.cos(k * xc + a.wave_phase)
    if a.ripple_amp_mm:
        k2 = 2 * math.pi / a.ripple_len_mm
        top = top + a.ripple_amp_mm * np.sin(k2 * xc + a.ripple_phase)
        slope = slope + a.ripple_amp_mm * k2 * np.cos(k2 * xc + a.ripple_phase)
    thick = a.tlf_mm * (1 + a.thickness_var * np.sin(k * 0.6 * xc + 1.3 * a.wave_phase))
    cos_t = np.cos(np.arctan(slope))
    return top, thick / cos_t, thick, cos_t
