"""Pixel spacing (mm per pixel, rows and columns apart): from config, DICOM or the screen's scale.

Three origins, in order of trust: numbers in the config (`from_config`); the ultrasound regions
of a DICOM file (`from_dicom_region`); the depth scale drawn beside the B-mode (`read_scale`,
`from_screen`): tick marks at a fixed pitch, a long one every cm and often a short one every
5 mm. A lateral scale under the image, when there is one, gives the column spacing; without it
the pixels are taken as square, and the result says so. When no scale is known the spacing is
None: a thickness is then reported in pixels, never in invented millimetres.

`Calibrator` follows a live screen: it re-reads the scale when the ROI changes or when the
pixels where the scale was found change, and reports a `ScaleChange`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from edge.errors import ConfigError

MAJOR_MM = 10.0  # long ticks mark whole centimetres
# mm per pixel a B-mode image can have (the config's own bounds): a spacing outside, stated by a
# file or read off a screen, is a wrong one, and is not used (thickness in pixels instead).
SPACING_RANGE_MM = (0.001, 10.0)


@dataclass(frozen=True)
class Calibration:
    """spacing_mm: (row, column) mm per pixel, or None when unknown. source: where it came from
    ("config", "dicom", "screen", "none"); note: a human-readable detail."""

    spacing_mm: tuple[float, float] | None
    source: str
    note: str = ""

    def close_to(self, other: "Calibration | None", rel: float = 0.005) -> bool:
        """Same spacing within `rel` (relative) on both axes; None only matches None."""
        if other is None:
            return False
        a, b = self.spacing_mm, other.spacing_mm
        if a is None or b is None:
            return a is None and b is None
        return all(abs(p - q) <= rel * q for p, q in zip(a, b))


UNKNOWN = Calibration(None, "none", "no scale known")


def plausible(cal: Calibration) -> Calibration:
    """`cal`, or no spacing (with the reason) when its spacing is outside SPACING_RANGE_MM."""
    s = cal.spacing_mm
    lo, hi = SPACING_RANGE_MM
    if s is None or all(math.isfinite(v) and lo <= v <= hi for v in s):
        return cal
    shown = " x ".join(f"{v:g}" for v in s)
    return Calibration(None, "none", f"{cal.source} spacing {shown} mm per pixel is outside {lo:g}-{hi:g} mm: not used")


def from_source(spacing_mm) -> Calibration:
    """The spacing a source states for its frames (a DICOM region, the phantom), if plausible."""
    return plausible(Calibration(tuple(float(v) for v in spacing_mm), "source", "stated by the source"))


def from_config(row_mm, col_mm=None) -> Calibration:
    """Explicit spacing from the config; `col_mm` defaults to `row_mm` (square pixels)."""
    col_mm = row_mm if col_mm is None else col_mm
    try:
        r, c = float(row_mm), float(col_mm)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"pixel spacing {(row_mm, col_mm)!r} is not two numbers") from e
    lo, hi = SPACING_RANGE_MM
    if not (math.isfinite(r) and math.isfinite(c) and lo <= r <= hi and lo <= c <= hi):
        raise ConfigError(f"pixel spacing {(row_mm, col_mm)!r} mm is out of range ({lo:g}-{hi:g} mm)")
    return Calibration((r, c), "config", "set in the configuration")


def from_dicom_region(region) -> Calibration:
    """Spacing from one item of a DICOM SequenceOfUltrasoundRegions (PhysicalDelta in cm)."""
    units_x, units_y = region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection")
    dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
    try:
        dx, dy = float(dx), float(dy)
    except (TypeError, ValueError):
        dx = dy = 0.0
    if units_x != 3 or units_y != 3 or not dx > 0 or not dy > 0:
        return Calibration(None, "none", f"DICOM region has no spacing in cm (units {units_x!r}/{units_y!r})")
    return plausible(Calibration((dy * 10.0, dx * 10.0), "dicom", "SequenceOfUltrasoundRegions"))


@dataclass(frozen=True)
class ScaleReading:
    """Tick marks found beside the ROI along one axis (screen pixels).

    positions: tick centres along the axis (continuous coordinates, pixel edges on integers).
    major: which ticks are long. mm_per_px: the spacing this scale gives along its axis.
    band: (x, y, w, h) of the screen area holding the ticks (used to notice a change).
    """

    axis: str  # "depth" (rows) or "lateral" (columns)
    positions: np.ndarray
    major: np.ndarray
    px_per_tick: float
    mm_per_tick: float
    mm_per_px: float
    band: tuple[int, int, int, int]


def _gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _ticks_right_or_left(g: np.ndarray, x: int, y: int, w: int, h: int, tick_mm: float | None):
    """Depth ticks beside the rectangle (x, y, w, h) of gray screen `g`; rows are the axis.

    Returns (positions, major, px_per_tick, mm_per_tick, band) or None.
    """
    H, W = g.shape
    reach = max(60, int(0.35 * w))
    m = int(0.06 * h) + 2
    r0, r1 = max(0, y - m), min(H, y + h + m)
    best = None
    for c0, c1 in ((x + w, min(W, x + w + reach)), (max(0, x - reach), x)):
        if c1 - c0 < 4:
            continue
        band = g[r0:r1, c0:c1]
        found = _tick_group(band, h)
        if found is not None and (best is None or len(found[0]) > len(best[0][0])):
            best = (found, (c0, r0, c1 - c0, r1 - r0))
    if best is None:
        return None
    (pos, lengths, _), (c0, r0, bw, bh) = best
    pos = pos + r0
    return _pitch(pos, lengths, tick_mm, (c0, r0, bw, bh))


def _tick_group(band: np.ndarray, roi_len: int):
    """The largest group of short horizontal marks sharing one end column, evenly spaced."""
    bg = float(np.median(band))
    top = float(band.max())
    if top - bg < 30:
        return None
    marks = (band > bg + max(25.0, 0.3 * (top - bg))).astype(np.uint8)
    # Remove vertical lines (the scale's axis) so the ticks come apart.
    lv = max(15, roi_len // 12)
    marks[cv2.morphologyEx(marks, cv2.MORPH_OPEN, np.ones((lv, 1), np.uint8)) > 0] = 0
    n, lab, st, _ = cv2.connectedComponentsWithStats(marks, connectivity=8)
    if n < 4:
        return None
    xs, ys, ws, hs, area = (st[1:, i] for i in range(5))
    ok = (hs <= 5) & (ws >= 3) & (ws >= 1.5 * hs) & (area >= 0.6 * ws * hs)
    idx = np.flatnonzero(ok)
    if len(idx) < 3:
        return None
    best = None
    for ends in (xs[idx], xs[idx] + ws[idx]):  # ticks pointing right, or pointing left
        for e in np.unique(ends):
            sel = idx[np.abs(ends - e) <= 1]
            if len(sel) < 3 or (best is not None and len(sel) <= len(best)):
                continue
            best = sel
    if best is None:
        return None
    weight = np.clip(band.astype(np.float32) - bg, 0, None)
    pos = []
    for i in best:
        x0, y0, w0, h0 = xs[i], max(0, ys[i] - 1), ws[i], hs[i] + 2
        patch = weight[y0 : y0 + h0, x0 : x0 + w0].sum(axis=1)
        rows = np.arange(y0, y0 + len(patch)) + 0.5
        pos.append(float((patch * rows).sum() / max(patch.sum(), 1e-6)))
    order = np.argsort(pos)
    pos = np.array(pos)[order]
    lengths = ws[best][order].astype(np.float64)
    keep = _evenly_spaced(pos) & (lengths <= 3 * np.median(lengths))
    if keep.sum() < 3:
        return None
    pos, lengths, best = pos[keep], lengths[keep], best[order][keep]
    span = (int(xs[best].min()), int((xs[best] + ws[best]).max()))
    if pos[-1] - pos[0] < 0.35 * roi_len:
        return None
    return pos, lengths, span


def _evenly_spaced(pos: np.ndarray) -> np.ndarray:
    """The largest subset of sorted positions on one regular grid (a stray mark drops out)."""
    best = np.zeros(len(pos), bool)
    for i in range(len(pos) - 1):
        pitch = pos[i + 1] - pos[i]
        if pitch < 3:
            continue
        k = (pos - pos[i]) / pitch
        fit = np.abs(k - np.round(k)) * pitch <= 0.04 * pitch + 1.0
        if fit.sum() > best.sum():
            best = fit
    return best


def _pitch(pos: np.ndarray, lengths: np.ndarray, tick_mm: float | None, band):
    d = np.diff(pos)
    base = float(np.median(d))
    if base < 3:
        return None
    steps = d / base
    if np.any(np.abs(steps - np.round(steps)) > 0.15) or np.any(np.round(steps) < 1):
        return None  # not an evenly spaced scale
    index = np.concatenate([[0], np.cumsum(np.round(steps))])
    slope, _ = np.polyfit(index, pos, 1)
    major = np.ones(len(pos), bool)
    mm_per_tick = MAJOR_MM if tick_mm is None else float(tick_mm)
    if lengths.max() >= 1.4 * lengths.min():
        long = lengths >= (lengths.max() + lengths.min()) / 2
        gaps = np.diff(index[long])
        # Long ticks every 2nd (5 mm ticks) or every 10th (1 mm ticks), regularly: they are cm.
        if long.sum() >= 3 and len(set(gaps.tolist())) == 1 and gaps[0] in (2, 10):
            major = long
            mm_per_tick = MAJOR_MM / float(gaps[0])
    return pos, major, float(slope), mm_per_tick, band


def read_scale(image: np.ndarray, roi, axis: str = "depth", tick_mm: float | None = None) -> ScaleReading | None:
    """Find the tick scale along `axis` beside the ROI and read its pitch, or None.

    roi: a Roi or an (x, y, w, h) rectangle. tick_mm: the distance between ticks when all ticks
    look alike (10 or 5 mm; default 10). With long and short ticks, long ones are taken as cm.
    """
    x, y, w, h = roi.rect if hasattr(roi, "rect") else roi
    g = _gray(image)
    if axis == "depth":
        found = _ticks_right_or_left(g, x, y, w, h, tick_mm)
    elif axis == "lateral":
        found = _ticks_right_or_left(np.ascontiguousarray(g.T), y, x, h, w, tick_mm)
    else:
        raise ConfigError(f"unknown scale axis {axis!r} (expected 'depth' or 'lateral')")
    if found is None:
        return None
    pos, major, px_per_tick, mm_per_tick, (b0, b1, b2, b3) = found
    band = (b0, b1, b2, b3) if axis == "depth" else (b1, b0, b3, b2)
    mm_per_px = mm_per_tick / px_per_tick
    extent = (h if axis == "depth" else w) * mm_per_px
    if not (5.0 <= extent <= 400.0):
        return None
    return ScaleReading(axis, pos, major, px_per_tick, mm_per_tick, mm_per_px, band)


def from_screen(
    image: np.ndarray, roi, tick_mm: float | None = None, square_pixels: bool = True
) -> tuple[Calibration, tuple]:
    """Spacing read from the screen's scales beside the ROI: (Calibration, readings).

    The depth scale gives the row spacing; a lateral scale, if found, the column spacing, else
    the pixels are taken as square (unless square_pixels=False: then no spacing).
    """
    depth = read_scale(image, roi, "depth", tick_mm)
    if depth is None:
        return Calibration(None, "none", "no depth scale found beside the ROI"), ()
    lateral = read_scale(image, roi, "lateral", tick_mm)
    if lateral is not None:
        return Calibration((depth.mm_per_px, lateral.mm_per_px), "screen", "depth and lateral scales"), (depth, lateral)
    if not square_pixels:
        return Calibration(None, "none", "depth scale found, no lateral scale"), (depth,)
    return Calibration((depth.mm_per_px, depth.mm_per_px), "screen", "depth scale, square pixels assumed"), (depth,)


@dataclass(frozen=True)
class ScaleChange:
    """The spacing changed (operator changed depth or zoom), or became known or unknown."""

    seq: int | None
    old: Calibration | None
    new: Calibration
    reason: str


class Calibrator:
    """Keeps the spacing of a live screen current.

    fixed: a Calibration from config or DICOM, used as is (the screen is never read). Otherwise
    the scale is read at the first frame, whenever the ROI changed, when the pixels of the scale
    area change, and every `retry_every` frames while no scale is known. `update` returns the
    current Calibration and a ScaleChange when it changed (also passed to `on_change`).
    """

    def __init__(
        self,
        fixed: Calibration | None = None,
        tick_mm: float | None = None,
        square_pixels: bool = True,
        retry_every: int = 30,
        on_change: Callable[[ScaleChange], None] | None = None,
    ):
        if tick_mm is not None and tick_mm not in (5, 10, 5.0, 10.0):
            raise ConfigError(f"tick spacing {tick_mm!r} mm is not supported (5 or 10)")
        self.fixed, self.tick_mm, self.square_pixels = fixed, tick_mm, square_pixels
        self.retry_every, self.on_change = int(retry_every), on_change
        self.current: Calibration | None = None
        self._readings: tuple = ()
        self._signature: list[np.ndarray] = []
        self._since = 0

    def _signatures(self, g: np.ndarray) -> list[np.ndarray]:
        return [g[y : y + h, x : x + w].astype(np.int16) for (x, y, w, h) in (r.band for r in self._readings)]

    def _scale_moved(self, g: np.ndarray) -> bool:
        for old, new in zip(self._signature, self._signatures(g)):
            # Ticks and labels are sharp: count pixels that changed a lot, not the mean change.
            if old.shape != new.shape or int((np.abs(old - new) > 40).sum()) > max(10, old.size // 1000):
                return True
        return False

    def update(self, image: np.ndarray, roi, roi_changed: bool = False, seq: int | None = None):
        """(Calibration, ScaleChange | None) for this frame."""
        if self.fixed is not None:
            if self.current is None:
                self.current = self.fixed
                return self.fixed, self._report(ScaleChange(seq, None, self.fixed, "fixed"))
            return self.fixed, None
        if roi is None:  # no image area found yet: nothing to read the scale against
            old, self.current, self._readings = self.current, UNKNOWN, ()
            if old is not None and old.spacing_mm is None:
                return UNKNOWN, None
            return UNKNOWN, self._report(ScaleChange(seq, old, UNKNOWN, "no ROI"))
        g = _gray(image)
        self._since += 1
        reason = None
        if self.current is None or not self._readings and self._since >= self.retry_every:
            reason = "first frame" if self.current is None else "retry"
        elif roi_changed:
            reason = "ROI changed"
        elif self._readings and self._scale_moved(g):
            reason = "scale changed"
        if reason is None:
            return self.current, None
        self._since = 0
        new, self._readings = from_screen(image, roi, self.tick_mm, self.square_pixels)
        self._signature = self._signatures(g)
        old = self.current
        self.current = new
        if old is not None and new.close_to(old):
            self.current = old
            return old, None
        return new, self._report(ScaleChange(seq, old, new, reason))

    def _report(self, change: ScaleChange) -> ScaleChange:
        if self.on_change is not None:
            self.on_change(change)
        return change
