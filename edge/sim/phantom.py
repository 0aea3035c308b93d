"""A B-mode phantom of the low back: layered tissue with a known TLF, and slow clips of it.

numpy and OpenCV only. Everything is deterministic for a seed. Geometry is analytic (mm), so
the label map and the true TLF thickness per column are exact, not estimated.

Layers, top to bottom: skin, subcutaneous fat with bright septa, the TLF (a bright band of 1-3
sublayers), a thin dark gap, the thin epimysial fascia line (class 2, below the TLF), fibrillar
muscle. Classes: 0 above the TLF, 1 the TLF, 2 below.

Everything added after the first demo model is opt-in and off by default, so `scan`, `render` and
`clip` with their default arguments give exactly the pictures that model was trained on
(tests/test_phantom_pinned.py pins them bit for bit). The options:
- Machine: a focal zone (`focus_mm`: the lateral PSF widens away from the focal depth) and an RF
  line (`rf_mhz`: a carrier-modulated pulse, then envelope detection); `probe(mhz)` sets the
  resolution and attenuation of a probe frequency; more named PRESETS.
- Anatomy: `random_anatomy(rng, wide=True)` draws a wider range of scenes (fat 3-25 mm, tilt up
  to +-10 degrees, a second ripple, varied echogenicity); `Artefacts` adds an acoustic shadow,
  reverberation lines or a washed-out frame (`random_artefacts(rng, p)`, `scan(..., artefacts=p)`).
- Video: `extension_clip` moves the scene like a trunk extension (layers slide against each
  other, the TLF thickens and thins smoothly), decorrelates the speckle with the motion and
  holds the picture during freeze segments (Scan.frozen is set on those frames).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
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
    # Opt-in detail; the defaults leave the scene exactly as without these fields.
    ripple_amp_mm: float = 0.0  # a second, shorter undulation of the band (deformation)
    ripple_len_mm: float = 9.0
    ripple_phase: float = 0.0
    muscle_slide_mm: float = 0.0  # extra lateral glide of the muscle under the fascia
    tlf_echo: float | None = None  # TLF brightness, 0-1 scale (None: 0.97)
    epimysium_echo: float | None = None  # epimysial fascia brightness (None: 0.72)


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
    # Opt-in beam physics; None keeps the original depth-invariant baseband model.
    focus_mm: float | None = None  # focal depth: the lateral PSF is lateral_psf_mm there, wider elsewhere
    focal_range_mm: float = 12.0  # depth from the focus where the lateral PSF has widened by sqrt(2)
    rf_mhz: float | None = None  # simulate the RF line at this centre frequency and detect its envelope


SPEED_OF_SOUND_MM_US = 1.54


def probe(mhz: float, rf: bool = False, **fields) -> Machine:
    """A Machine whose resolution and attenuation follow a probe's centre frequency.

    The axial PSF (Gaussian sigma of the pulse envelope) is 0.8 wavelengths, the lateral one 2
    wavelengths and the round-trip attenuation 0.01 dB/mm per MHz: at 10 MHz this is the default
    Machine. rf=True also simulates the carrier (see Machine.rf_mhz). Other fields as keywords.
    """
    if not 1.0 <= mhz <= 30.0:
        raise ValueError(f"probe frequency {mhz!r} MHz is out of range (1-30)")
    lam = SPEED_OF_SOUND_MM_US / mhz
    base = dict(axial_psf_mm=0.8 * lam, lateral_psf_mm=2.0 * lam, attenuation_db_mm=0.01 * mhz)
    if rf:
        base["rf_mhz"] = float(mhz)
    return Machine(**{**base, **fields})


PRESETS: dict[str, Machine] = {
    "default": Machine(),
    "bright": Machine(gain_db=6.0, dynamic_range_db=55.0, contrast=1.1),
    "soft": Machine(gain_db=-4.0, dynamic_range_db=65.0, axial_psf_mm=0.16, lateral_psf_mm=0.40, contrast=0.8),
    "lowfreq": Machine(axial_psf_mm=0.22, lateral_psf_mm=0.50, attenuation_db_mm=0.07, noise=0.002),
    "noisy": Machine(gain_db=3.0, noise=0.004, dynamic_range_db=45.0),
    # Added later (the five above are frozen): probe frequencies with a focal zone, gain, contrast.
    "l15_fine": probe(15.0, focus_mm=15.0, dynamic_range_db=60.0, noise=0.0015),
    "l6_deep": probe(6.0, focus_mm=25.0, gain_db=2.0, contrast=0.9),
    "rf_10mhz": probe(10.0, rf=True, focus_mm=18.0),
    "low_gain": Machine(gain_db=-9.0, dynamic_range_db=48.0, noise=0.003),
    "high_contrast": Machine(gain_db=1.0, dynamic_range_db=42.0, contrast=1.3, focus_mm=20.0),
    "washed_out": Machine(gain_db=3.0, dynamic_range_db=72.0, contrast=0.7, noise=0.002),
}


@dataclass(frozen=True)
class Artefacts:
    """Things real scans show that are not anatomy. The labels ignore them (the tissue is still there).

    shadow: a vertical band below shadow_from_mm loses shadow_db of echo (soft lateral edges); with
    shadow_from_mm > 0 a bright small object sits at its top (a calcification, an air pocket), at 0
    it is lost probe contact. reverb: the echo of a strong reflector at reverb_mm bounces between it
    and the probe face and repeats at 2x, 3x... that depth, each time weaker; with reverb_follow_tlf
    the reflector is the TLF itself (a ghost band in the muscle). low_contrast < 1: a washed-out
    frame (log contrast scaled down, a haze floor added).
    """

    shadow_x_mm: float | None = None
    shadow_width_mm: float = 3.0
    shadow_from_mm: float = 0.0
    shadow_db: float = 25.0
    reverb_mm: float | None = None
    reverb_follow_tlf: bool = False
    reverb_lines: int = 3
    reverb_level: float = 0.75  # brightness (0-1 scale) of the first repeat
    low_contrast: float = 1.0

    @property
    def any(self) -> bool:
        return self.shadow_x_mm is not None or self.reverb_mm is not None or self.low_contrast < 1.0


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


def random_artefacts(rng: np.random.Generator, p: float, anatomy: Anatomy | None = None) -> Artefacts | None:
    """Each artefact (shadow, reverberation, washed-out frame) present with probability p; None if none."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"artefact probability {p!r} is not in 0-1")
    a = anatomy or Anatomy()
    shadow, reverb, washed = rng.random(3) < p
    fields: dict = {}
    if shadow:
        contact = rng.random() < 0.5  # lost contact at an edge, or an object in the fat
        fields.update(
            shadow_x_mm=float(rng.choice([0.0, a.width_mm])) if contact else float(rng.uniform(0.2, 0.8) * a.width_mm),
            shadow_width_mm=float(rng.uniform(2.0, 7.0)),
            shadow_from_mm=0.0 if contact else float(rng.uniform(a.skin_mm + 0.5, a.skin_mm + 0.7 * a.fat_mm)),
            shadow_db=float(rng.uniform(12.0, 30.0)),
        )
    if reverb:
        follow = bool(rng.random() < 0.5)
        fields.update(
            reverb_mm=a.skin_mm + a.fat_mm if follow else float(rng.uniform(0.8, 3.0)),
            reverb_follow_tlf=follow,
            reverb_lines=int(rng.integers(2, 5)),
            reverb_level=float(rng.uniform(0.6, 0.85)),
        )
    if washed:
        fields.update(low_contrast=float(rng.uniform(0.45, 0.75)))
    return Artefacts(**fields) if fields else None


def random_machine(rng: np.random.Generator, wide: bool = False) -> Machine:
    """A scanner look drawn around the presets, so a model cannot rely on one look.

    wide=True: a probe frequency of 6-15 MHz sets the resolution, with a focal zone, sometimes
    the RF model, and wider gain, dynamic range, noise and contrast (a different draw).
    """
    if wide:
        mhz = float(rng.uniform(6.0, 15.0))
        dr = float(rng.uniform(40, 72))
        contrast = float(rng.uniform(0.7, 1.3))
        # An operator sets the gain so that muscle looks mid-dark grey: pick that grey (0-1) and
        # solve for the gain (muscle echoes sit about 33 dB under the brightest reflector).
        muscle_grey = float(rng.uniform(0.2, 0.55))
        gain = float(np.clip(muscle_grey * dr + 33.0 * contrast - dr, -12.0, 12.0))
        return probe(
            mhz,
            rf=bool(rng.random() < 0.3),
            focus_mm=float(rng.uniform(8.0, 30.0)),
            focal_range_mm=float(rng.uniform(6.0, 20.0)),
            gain_db=gain,
            dynamic_range_db=dr,
            attenuation_db_mm=0.01 * mhz * float(rng.uniform(0.7, 1.4)),
            tgc=float(rng.uniform(0.6, 1.0)),
            noise=float(rng.uniform(0.0, 0.005)),
            contrast=contrast,
        )
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
    if a.ripple_amp_mm:
        k2 = 2 * math.pi / a.ripple_len_mm
        top = top + a.ripple_amp_mm * np.sin(k2 * xc + a.ripple_phase)
        slope = slope + a.ripple_amp_mm * k2 * np.cos(k2 * xc + a.ripple_phase)
    thick = a.tlf_mm * (1 + a.thickness_var * np.sin(k * 0.6 * xc + 1.3 * a.wave_phase))
    cos_t = np.cos(np.arctan(slope))
    return top, thick / cos_t, thick, cos_t


_BLOCK = 8192  # float64 values per block (64 KiB) in the blockwise helpers below


def _complex_normal(rng: np.random.Generator, shape: tuple[int, int], out: np.ndarray | None = None) -> np.ndarray:
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


def _mix(a: float, u: np.ndarray, b: float, v: np.ndarray) -> np.ndarray:
    """a * u + b * v for complex64 u, v and real a, b, part by part in float32 (the same roundings as
    the complex arithmetic, whose products with the zero imaginary part of a real factor are exact)."""
    out = u.view(np.float32) * np.float32(a)
    out += v.view(np.float32) * np.float32(b)
    return out.view(np.complex64)


class _Scratch(threading.local):
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


_SCRATCH = _Scratch()


class _Texture:
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
        scratch: _Scratch | None = None,
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
        self.scatter = _complex_normal(rng, size, out)

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


def _rows_before(y: np.ndarray, edge: np.ndarray) -> np.ndarray:
    """Per column, the number of rows with y < edge (y ascending, (H,) or (H,1); edge (1,W)): the
    comparisons `y < edge` makes on the whole grid, in the same dtype."""
    dt = np.result_type(y, edge)
    return np.searchsorted(np.ravel(y).astype(dt, copy=False), np.ravel(edge).astype(dt, copy=False))


def _amplitude(b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Linear echo amplitude 10^((b - 1) * 48 / 20) of a float32 brightness b (0-1 scale, 1 = the
    brightest reflector); out may be b itself."""
    out = np.subtract(b, 1.0, out=out)
    out *= 48.0 / 20.0
    return np.power(10.0, out, out=out)


_FAT, _SKIN = 0.16, 0.8  # brightness of plain fat and of the skin
_FAT_AMP, _SKIN_AMP = _amplitude(np.array([_FAT, _SKIN], np.float32))
_SEPTUM_REACH_MM = 1.0  # farther away a septum line is under 1e-19: 0.16 + line rounds to 0.16 in float32


def _echogenicity(a: Anatomy, y: np.ndarray, x: np.ndarray, tex: _Texture, slide_px: float):
    """Linear reflectivity map and labels for the scene (y: (H,1) mm ascending, x: (1,W) mm).

    Every layer is a run of rows in each column, so each is computed only in the rows it can reach;
    per pixel these are the float32 operations of the whole-grid formulas in the comments.
    """
    top, vert, thick, cos_t = _geometry(a, x)
    bottom = top + vert
    epi_top = bottom + a.gap_mm / cos_t
    epi_bot = epi_top + a.epimysium_mm / cos_t
    vert_d = np.maximum(vert, 1e-3)

    fibres = tex.window(tex.fibres, slide_px)
    h, w = fibres.shape
    yv = np.ravel(y)
    n_top, n_bot = _rows_before(yv, top), _rows_before(yv, bottom)
    n_epi_top, n_epi_bot = _rows_before(yv, epi_top), _rows_before(yv, epi_bot)
    # Rows [0, r_fat) are fat in every column, rows from r_fat_end on in none; the TLF band
    # (0 <= u < 1, u below), the gap and the epimysium lie within rows [r0, r1).
    r_fat, r_fat_end = int(n_top.min()), int(n_top.max())
    band_end = _rows_before(yv, top.astype(np.float64) + vert_d * (1.0 + 1e-4) + 1e-4)  # u >= 1 from there
    r0 = int(min(r_fat, n_bot.min(), n_epi_top.min()))
    r1 = int(max(band_end.max(), n_epi_top.max(), n_epi_bot.max()))

    # Brightness on a 0-1 scale (1 = the brightest reflector); turned into amplitude below.
    # Muscle: dark, fibrillar; perimysium streaks where the fibre field peaks:
    #   e = 0.32 + 0.06 * clip(mf, -2, 2) + 0.25 * clip(mf - 1.5, 0, 1)
    mf = fibres
    if a.muscle_slide_mm:
        mf = tex.window(tex.fibres, slide_px + a.muscle_slide_mm * x.shape[1] / a.width_mm)
    e = np.empty((h, w), np.float32)
    mus, mf = e[r_fat:], mf[r_fat:]
    np.clip(mf, -2, 2, out=mus)
    mus *= 0.06
    mus += 0.32
    streak = mf - 1.5
    np.clip(streak, 0, 1, out=streak)
    streak *= 0.25
    mus += streak
    # Fat (y < top): dark with thin, fragmented, oblique septa:
    #   e = max(0.16, 0.16 + line) over the septa, line = exp(-((y - centre) / 0.15)^2) * 1.6 gain * (fibres > -0.3)
    e[:r_fat] = _FAT
    np.copyto(e[r_fat:r_fat_end], _FAT, where=yv[r_fat:r_fat_end, None] < top)
    fat_depth = np.maximum(top - a.skin_mm, 1e-3)
    cols = np.arange(w)
    flat = e.reshape(-1)
    septum_px = []  # flat indices of septum pixels in the rows [0, r0), whose amplitude is not a constant
    for pos, slope, gain in tex.septa:
        centre = a.skin_mm + fat_depth * pos + slope * (x - a.width_mm / 2) * 0.3
        lo = _rows_before(yv, centre - _SEPTUM_REACH_MM)
        span = int((_rows_before(yv, centre + _SEPTUM_REACH_MM) - lo).max())
        if span <= 0:
            continue
        rows = np.minimum(lo + np.arange(span)[:, None], h - 1)  # the rows near the line in each column
        at = rows * w + cols
        yy = yv[rows]
        line = np.exp(-(((yy - centre) / 0.15) ** 2)) * (gain * 1.6) * (fibres[rows, cols] > -0.3)
        cur = flat[at]
        flat[at] = np.where(yy < top, np.maximum(cur, _FAT + line), cur)
        septum_px.append(at[rows < r0])
    septum_px = np.concatenate(septum_px) if septum_px else np.zeros(0, np.intp)
    n_skin = int(np.count_nonzero(yv < a.skin_mm))
    e[:n_skin] = _SKIN
    # The TLF: bright sublayers separated by slightly darker lines; then the gap and the epimysium.
    if r1 > r0:
        yb, lay = yv[r0:r1, None], e[r0:r1]
        u = (yb - top) / vert_d
        band = (u >= 0) & (u < 1)
        n = max(a.sublayers, 1)
        echo = 0.97 if a.tlf_echo is None else a.tlf_echo
        lay[band] = echo * (0.82 + 0.18 * np.cos(math.pi * n * u[band]) ** 2) if n > 1 else echo
        lay[(yb >= bottom) & (yb < epi_top)] = 0.12  # loose connective gap
        epi_echo = 0.72 if a.epimysium_echo is None else a.epimysium_echo
        lay[(yb >= epi_top) & (yb < epi_bot)] = epi_echo  # epimysial fascia
    # Amplitude; in the rows [0, r0) only the septa differ from the fat and skin constants.
    septum_e = flat[septum_px]
    _amplitude(e[r0:], out=e[r0:])
    e[:r0] = _FAT_AMP
    e[: min(n_skin, r0)] = _SKIN_AMP
    flat[septum_px] = _amplitude(septum_e)

    r = np.arange(h)[:, None]
    labels = (r >= n_bot).astype(np.uint8)  # 0 (ABOVE) above the band top, 1 (TLF) above its bottom, 2 (BELOW)
    labels += 1
    labels *= r >= n_top
    return e, labels, top, bottom, thick


def _artefact_reflectivity(e: np.ndarray, art: Artefacts, y: np.ndarray, x: np.ndarray, top: np.ndarray):
    """Add reverberation lines and an acoustic shadow to a reflectivity (linear amplitude) map."""
    e = e.copy()
    yy = np.broadcast_to(y, e.shape)
    if art.reverb_mm is not None:
        base = top if art.reverb_follow_tlf else np.full_like(x, art.reverb_mm)
        for n in range(2, 2 + art.reverb_lines):
            level = art.reverb_level - 0.12 * (n - 2)  # each bounce weaker (brightness scale)
            amp = 10.0 ** ((level - 1.0) * 48.0 / 20.0)
            line = np.exp(-(((yy - n * base) / 0.12) ** 2)).astype(np.float32)
            e = np.maximum(e, amp * line)
    if art.shadow_x_mm is not None:
        half = art.shadow_width_mm / 2
        dx = np.abs(x - art.shadow_x_mm)
        edge = np.clip((half + 0.6 - dx) / 1.2, 0.0, 1.0)  # soft edges 1.2 mm wide
        below = np.clip((yy - art.shadow_from_mm) / 0.3, 0.0, 1.0)
        loss = 10.0 ** (-art.shadow_db / 20.0)
        e = e * (1.0 - (1.0 - loss) * edge * below).astype(np.float32)
        if art.shadow_from_mm > 0:  # the object casting it: a bright curved cap
            cap = np.exp(-(((yy - art.shadow_from_mm + 0.25) / 0.15) ** 2)) * edge
            e = np.maximum(e, cap.astype(np.float32))
    return e


def _gauss(sigma_px: float) -> np.ndarray:
    """A normalised 1-D Gaussian kernel (column vector, float32) reaching 4 sigma."""
    r = max(1, int(math.ceil(4.0 * sigma_px)))
    return cv2.getGaussianKernel(2 * r + 1, max(sigma_px, 1e-3), cv2.CV_32F)


_ONE = np.ones((1, 1), np.float32)


def _lateral(img: np.ndarray, sigma_rows: np.ndarray) -> np.ndarray:
    """Blur each row laterally with its own Gaussian sigma (px), scaled so that uncorrelated
    scatterers keep unit variance; rows whose sigmas differ by under 3% share a kernel."""
    q = np.round(np.log(np.maximum(sigma_rows, 1e-3)) / math.log(1.03)).astype(int)
    out = np.empty_like(img)
    for v in np.unique(q):
        rows = np.nonzero(q == v)[0]
        k = _gauss(1.03 ** float(v))
        k = k / math.sqrt(float((k**2).sum()))
        out[rows] = cv2.sepFilter2D(img[rows], -1, k, _ONE, borderType=cv2.BORDER_REFLECT_101)
    return out


def _lateral_sigma_mm(m: Machine, depth_mm: np.ndarray) -> np.ndarray:
    if m.focus_mm is None:
        return np.full(depth_mm.shape, m.lateral_psf_mm, np.float64)
    return m.lateral_psf_mm * np.sqrt(1.0 + ((depth_mm - m.focus_mm) / m.focal_range_mm) ** 2)


def _rf_pulse(m: Machine, fy: float) -> tuple[np.ndarray, np.ndarray]:
    """The two-way RF pulse sampled every fy mm and its Hilbert transform (the quadrature filter of
    envelope detection), scaled so that unit scatterers give unit RF power."""
    assert m.rf_mhz is not None  # _beamform calls it for an RF machine only
    lam = SPEED_OF_SOUND_MM_US / m.rf_mhz
    r = int(math.ceil(4.0 * m.axial_psf_mm / fy))
    z = np.arange(-r, r + 1) * fy
    pulse = np.exp(-0.5 * (z / m.axial_psf_mm) ** 2) * np.cos(4 * math.pi * z / lam)  # half a wavelength per cycle
    n = cv2.getOptimalDFTSize(8 * len(z))
    spec = np.fft.fft(np.roll(np.pad(pulse, (0, n - len(z))), -r))
    spec *= -1j * np.sign(np.fft.fftfreq(n))
    quad = np.roll(np.fft.ifft(spec).real, r)[: len(z)]
    norm = math.sqrt(float((pulse**2).sum()))
    return pulse / norm, quad / norm


def _beamform(field: np.ndarray, m: Machine, sy: float, sx: float, seed: int, tex: _Texture, slide_px: float):
    """Envelope of the echo field with a depth-dependent lateral PSF and, optionally, an RF pulse.

    Speckle statistics match the original baseband model: uncorrelated unit scatterers give the
    same mean envelope power whatever the PSF, so only the texture and resolution change.
    """
    h, w = field.shape
    y_mm = (np.arange(h) + 0.5) * sy
    if m.rf_mhz is None:
        ky = _gauss(m.axial_psf_mm / sy)
        ky = ky / math.sqrt(float((ky**2).sum()))
        iq = [cv2.sepFilter2D(v, -1, _ONE, ky, borderType=cv2.BORDER_REFLECT_101) for v in (field.real, field.imag)]
        sig = _lateral_sigma_mm(m, y_mm) / sx
        i_part, q_part = (_lateral(part, sig) for part in iq)
    else:
        # RF: real scatterers on a depth grid k times finer than the pixels (at least 4 samples per
        # carrier cycle); each pixel's complex scatterer is seen at k random sub-pixel phases. The
        # RF line is the scatterers convolved with the carrier-modulated pulse; envelope detection
        # is |RF + i * Hilbert(RF)|, and Hilbert(pulse * s) = Hilbert(pulse) * s. Only the samples at
        # pixel centres are needed, so each sub-row m is filtered on the pixel grid with the taps
        # that reach the centres from it: the same sums as on the fine grid, k times fewer.
        lam = SPEED_OF_SOUND_MM_US / m.rf_mhz
        k = max(1, int(math.ceil(sy / (lam / 8.0)))) | 1  # odd: a fine sample sits on each pixel centre
        pulse, quad = _rf_pulse(m, sy / k)
        r = len(pulse) // 2
        cos_t, sin_t = tex.rf_phase(k, seed)
        c = k // 2
        reach = (r + k) // k + 1
        i_part = np.zeros((h, w), np.float32)
        q_part = np.zeros((h, w), np.float32)
        for sub_row in range(k):
            s = field.real * tex.window(cos_t[sub_row], slide_px) - field.imag * tex.window(sin_t[sub_row], slide_px)
            d = np.arange(reach, -reach - 1, -1) * k + c - sub_row  # fine offset from a sub-row to a centre
            ok = np.abs(d) <= r
            for kern, acc in ((pulse, i_part), (quad, q_part)):
                taps = np.where(ok, kern[np.clip(d + r, 0, 2 * r)], 0.0).astype(np.float32)[:, None]
                acc += cv2.sepFilter2D(s, -1, _ONE, taps, borderType=cv2.BORDER_REFLECT_101)
        sig = _lateral_sigma_mm(m, y_mm) / sx
        i_part, q_part = _lateral(i_part, sig), _lateral(q_part, sig)
    return i_part, q_part


def render(
    anatomy: Anatomy,
    machine: Machine = Machine(),
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    _texture: _Texture | None = None,
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
        tex = _Texture(np.random.default_rng(seed), shape, (sy, sx), _SCRATCH, pad=pad)
    else:
        tex = _texture
    y = ((np.arange(h, dtype=np.float32) + 0.5) * sy)[:, None]
    x = ((np.arange(w, dtype=np.float32) + 0.5) * sx)[None, :]
    slide_px = anatomy.slide_mm / sx
    e, labels, top, bottom, thick = _echogenicity(anatomy, y, x, tex, slide_px)
    if artefacts is not None:
        e = _artefact_reflectivity(e, artefacts, y, x, top)
    scat = _speckle if _speckle is not None else tex.window(tex.scatter, slide_px)
    # The noise stream is separate from the texture's; its two planes add to the I and Q parts.
    noise = _complex_normal(
        np.random.default_rng(seed + 7919), (h, w), _SCRATCH.get("render.noise", (h, w), np.complex64)
    )
    noise *= np.float32(machine.noise)
    noise = (noise.real, noise.imag)
    if machine.focus_mm is not None or machine.rf_mhz is not None:
        i_part, q_part = _beamform(scat * e, machine, sy, sx, seed, tex, slide_px)
        i_part = i_part + noise[0]
        q_part = q_part + noise[1]
    else:
        # Scatterers weighted by reflectivity, blurred by the point-spread function: speckle. (The
        # real and imaginary parts of scat * e, computed apart: e is real, so the same products.)
        sig_x, sig_y = machine.lateral_psf_mm / sx, machine.axial_psf_mm / sy
        parts: list[np.ndarray] = []
        for name, part in (("i", scat.real), ("q", scat.imag)):
            field = np.multiply(part, e, out=_SCRATCH.get(f"render.{name}_field", (h, w)))
            dst = _SCRATCH.get(f"render.{name}", (h, w))
            parts.append(cv2.GaussianBlur(field, (0, 0), sigmaX=sig_x, sigmaY=sig_y, dst=dst))
        i_part, q_part = parts
        psf_gain = math.sqrt(4 * math.pi * sig_x * sig_y)
        i_part *= psf_gain
        i_part += noise[0]
        q_part *= psf_gain
        q_part += noise[1]
    env = _hypot(i_part, q_part, _SCRATCH.get("render.envelope", (h, w)))
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


def preset(name: str) -> Machine:
    """The Machine of a named preset; an unknown name is a ValueError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown phantom preset {name!r} (one of {sorted(PRESETS)})") from None


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
        fresh = _complex_normal(rng, (h, w))
        speckle = _mix(0.95, speckle, math.sqrt(1 - 0.95**2), fresh)
        yield render(a, machine, shape, seed=seed * 1000 + i, _texture=tex, _speckle=speckle)


def _smoothstep(u: float) -> float:
    u = min(1.0, max(0.0, u))
    return u * u * (3.0 - 2.0 * u)


def extension_level(rng: np.random.Generator, duration_s: float) -> Callable[[float], float]:
    """A random trunk-extension schedule: rest, rise, hold, return, repeated; E(t) in 0-1, smooth (C1).

    Returns E as a function of time in seconds.
    """
    keys = [(0.0, 0.0)]
    t, level = float(rng.uniform(0.2, 0.8)), 0.0
    keys.append((t, 0.0))
    while t < duration_s + 3.0:
        target = float(rng.uniform(0.6, 1.0)) if level < 0.5 else float(rng.uniform(0.0, 0.15))
        t += float(rng.uniform(0.8, 2.0))  # move
        keys.append((t, target))
        t += float(rng.uniform(0.3, 1.2))  # hold
        keys.append((t, target))
        level = target
    times = np.array([k[0] for k in keys])
    levels = [k[1] for k in keys]

    def level_at(time_s: float) -> float:
        i = int(np.searchsorted(times, time_s, side="right")) - 1
        i = min(max(i, 0), len(times) - 2)
        u = (time_s - times[i]) / (times[i + 1] - times[i])
        return levels[i] + (levels[i + 1] - levels[i]) * _smoothstep(u)

    return level_at


def freeze_segments(rng: np.random.Generator, frames: int, count: int, length=(8, 30)) -> list[tuple[int, int]]:
    """`count` non-overlapping (start, length) freeze segments, each after at least one live frame."""
    segments: list[tuple[int, int]] = []
    for _ in range(50 * max(count, 1)):
        if len(segments) == count:
            break
        n = int(rng.integers(length[0], length[1] + 1))
        if frames - n - 1 < 1:
            break
        start = int(rng.integers(1, frames - n))
        if all(start + n + 1 <= s0 or s0 + n0 + 1 <= start for s0, n0 in segments):  # a live frame between
            segments.append((start, n))
    return sorted(segments)


_SPECKLE_KEEP = 0.7  # share of the speckle amplitude that moves with the tissue; the rest decorrelates


def extension_clip(
    seed: int,
    frames: int = 150,
    fps: float = 30.0,
    shape: tuple[int, int] = (256, 256),
    machine: Machine | str = "default",
    anatomy: Anatomy | None = None,
    wide: bool = False,
    freeze: int | list[tuple[int, int]] = 0,
    freeze_frames: tuple[int, int] = (8, 30),
    artefacts: float = 0.0,
    slide_mm: float | None = None,
    thickness_change: float | None = None,
    decorrelation: float = 1.0,
):
    """Yield `frames` Scans of one scene during trunk extensions, with ground truth on every frame.

    Motion: an extension level E(t) in 0-1 rises, holds and returns (smoothly, at random times).
    With E the tissue slides laterally (up to `slide_mm`, default 1.5-4 mm), the muscle glides
    under the fascia, the TLF thickens by `thickness_change` (relative, default 8-25 %, kept
    within 0.5-3.0 mm) and tilts and ripples a little; the fat is pressed slightly. Everything
    is a smooth function of time, so the true thickness changes smoothly.

    Speckle: most of it moves with the tissue; the rest decorrelates frame to frame, faster
    while the tissue moves (`decorrelation` scales that; 0 keeps the speckle fixed to the tissue).

    freeze: a number of random freeze segments, or explicit (start frame, length) pairs. A frozen
    frame repeats the last live frame exactly (image, labels, truth) with `frozen=True`, as when
    the operator presses freeze; time goes on, so the first live frame after it may jump.

    artefacts: probability of each artefact kind for the clip (a shadow or reverberation stays
    for the whole clip; a washed-out stretch lasts a few frames).
    """
    rng = np.random.default_rng([seed, 5003])
    base = anatomy or random_anatomy(rng, wide=wide)
    m = preset(machine) if isinstance(machine, str) else machine
    h, w = shape
    sy, sx = base.depth_mm / h, base.width_mm / w
    tex = _Texture(rng, shape, (sy, sx))
    level_at = extension_level(rng, frames / fps)
    slide = float(rng.uniform(1.5, 4.0)) if slide_mm is None else float(slide_mm)
    dthick = float(rng.uniform(0.08, 0.25)) if thickness_change is None else float(thickness_change)
    glide = float(rng.uniform(0.3, 2.0))
    dtilt = float(rng.uniform(-2.0, 2.0))
    breath_s = float(rng.uniform(3.5, 5.5))
    if isinstance(freeze, int):
        segments = freeze_segments(rng, frames, freeze, freeze_frames)
    else:
        segments = sorted((int(a), int(n)) for a, n in freeze)
    frozen = np.zeros(frames, bool)
    for start, n in segments:
        if start < 1 or n < 1:
            raise ValueError(f"freeze segment {(start, n)!r} must start after frame 0 and last a frame or more")
        frozen[start : start + n] = True
    arte_rng = np.random.default_rng([seed, 4099])
    art = random_artefacts(arte_rng, artefacts, base) if artefacts else None
    washed = None
    if art is not None and art.low_contrast < 1.0:
        n = int(arte_rng.integers(4, 16))
        s0 = int(arte_rng.integers(0, max(1, frames - n)))
        washed = (range(s0, s0 + n), art.low_contrast)
        art = replace(art, low_contrast=1.0)

    drift = _complex_normal(rng, (h, w))
    keep = _SPECKLE_KEEP if decorrelation > 0 else 1.0
    x = (np.arange(w) + 0.5) * sx
    last: Scan | None = None
    prev_e = level_at(0.0)
    for i in range(frames):
        t = i / fps
        e = level_at(t)
        breath = math.sin(2 * math.pi * t / breath_s)
        a = replace(
            base,
            slide_mm=slide * e + 0.2 * breath,
            muscle_slide_mm=glide * e,
            fat_mm=base.fat_mm * (1 - 0.04 * e + 0.01 * breath),
            tlf_mm=float(np.clip(base.tlf_mm * (1 + dthick * e + 0.015 * breath), 0.5, 3.0)),
            tilt_deg=base.tilt_deg + dtilt * e,
            wave_phase=base.wave_phase + 0.35 * e,
            wave_amp_mm=base.wave_amp_mm * (1 + 0.25 * e),
        )
        # Speckle: the part that belongs to the tissue slides with it (the muscle with its glide),
        # the rest is an AR(1) field that decorrelates more while the tissue moves.
        # about 1/e per second at rest, faster in proportion to the motion since the last frame
        rho = math.exp(-decorrelation * (1.0 / fps + 4.0 * abs(e - prev_e))) if decorrelation > 0 else 1.0
        prev_e = e
        fresh = _complex_normal(rng, (h, w))
        drift = _mix(rho, drift, math.sqrt(max(0.0, 1 - rho * rho)), fresh)
        if frozen[i] and last is not None:
            yield replace(
                last,
                image=last.image.copy(),
                labels=last.labels.copy(),
                thickness_mm=last.thickness_mm.copy(),
                top_px=last.top_px.copy(),
                bottom_px=last.bottom_px.copy(),
                frozen=True,
            )
            continue
        slide_px = a.slide_mm / sx
        tissue = tex.window(tex.scatter, slide_px)
        if a.muscle_slide_mm:
            top, vert, _, cos_t = _geometry(a, x)
            below = (np.arange(h)[:, None] + 0.5) * sy >= (top + vert + a.gap_mm / cos_t)[None, :]
            tissue = np.where(below, tex.window(tex.scatter, slide_px + a.muscle_slide_mm / sx), tissue)
        speckle = _mix(keep, tissue, math.sqrt(1 - keep * keep), drift)
        frame_art = art
        if washed is not None and i in washed[0]:
            assert art is not None  # washed frames are drawn from the artefact set
            frame_art = replace(art, low_contrast=washed[1])
        scan_i = render(
            a,
            m,
            shape,
            seed=seed * 1000 + i,
            _texture=tex,
            _speckle=speckle,
            artefacts=frame_art if frame_art is not None and frame_art.any else None,
        )
        last = replace(scan_i, extension=float(e), artefacts=frame_art)
        yield last
