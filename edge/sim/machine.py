"""The scanner: its settings (`Machine`), probe frequencies, named presets, random looks, and the
beamforming of the opt-in beam physics (a focal zone's depth-dependent lateral PSF and the RF line
with envelope detection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.sim.texture import Texture


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


def preset(name: str) -> Machine:
    """The Machine of a named preset; an unknown name is a ValueError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown phantom preset {name!r} (one of {sorted(PRESETS)})") from None


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
    assert m.rf_mhz is not None  # beamform calls it for an RF machine only
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


def beamform(field: np.ndarray, m: Machine, sy: float, sx: float, seed: int, tex: Texture, slide_px: float):
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
