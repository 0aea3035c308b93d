"""The echo of each tissue layer: a scene's reflectivity map (linear amplitude) and its label map.

Skin, fat with thin oblique septa, the TLF's bright sublayers, the dark gap, the epimysial fascia
and fibrillar muscle, each computed only in the rows it can reach (see `echogenicity`).
"""

from __future__ import annotations

import math

import numpy as np

from edge.sim.anatomy import Anatomy, geometry
from edge.sim.texture import Texture


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


def echogenicity(a: Anatomy, y: np.ndarray, x: np.ndarray, tex: Texture, slide_px: float):
    """Linear reflectivity map and labels for the scene (y: (H,1) mm ascending, x: (1,W) mm).

    Every layer is a run of rows in each column, so each is computed only in the rows it can reach;
    per pixel these are the float32 operations of the whole-grid formulas in the comments.
    """
    top, vert, thick, cos_t = geometry(a, x)
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
