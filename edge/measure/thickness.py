"""TLF thickness from a label map: band edges per column (sub-pixel when logits are given),
thickness perpendicular to the band's local direction, median and spread over a central window.

Coordinates: rows grow downwards; pixel i covers rows [i, i+1), so an edge between pixels
i-1 and i lies at row i.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.measure.quality import REJECTING, Quality
from edge.measure.scores import best_two


@dataclass(frozen=True)
class ThicknessOptions:
    window: tuple[float, float] = (0.25, 0.75)  # lateral window, as fractions of the width
    min_coverage: float = 0.6  # fraction of window columns that must hold a valid band
    max_order_errors: float = 0.2  # fraction of window columns allowed out of anatomical order
    min_margin: float = 1.0  # mean logit margin (real units) on the band, when logits are given
    slope_window: int = 9  # columns over which the band direction is estimated


@dataclass(frozen=True)
class ThicknessResponse:
    """A bundle's measured thickness response and its inverse.

    On images of known thickness the model's band, in model rows, was found to follow
        measured = a + b * true + c * s + d * true * s + e * L
    (s: mm per model row; L: the band's layering contrast in the image, `band_layering`). A model
    drawn toward the typical thickness of its training images, where the edges are blurred over
    few pixels, has b < 1: thin bands read thick and thick ones thin, the more so the coarser the
    pixels; and it draws a band of uniform brightness thinner than one of bright sublayers, which
    L tells apart (e = 0: a response without that term). `correct` inverts this per column, with
    s kept inside the range it was fitted on. `fitted_on` says which images (the manifest keeps
    it with the figures).
    """

    a: float
    b: float
    c: float
    d: float
    s_range: tuple[float, float]
    fitted_on: str = ""
    e: float = 0.0

    MIN_SLOPE = 0.5  # a response flatter than this would amplify noise more than it removes bias

    def __post_init__(self):
        lo, hi = self.s_range
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"thickness response: bad s_range {self.s_range!r}")
        if not all(math.isfinite(v) for v in (self.a, self.b, self.c, self.d, self.e)):
            raise ValueError("thickness response: coefficients must be finite numbers")
        if min(self.slope(lo), self.slope(hi)) < self.MIN_SLOPE:
            raise ValueError(f"thickness response: slope b + d*s under {self.MIN_SLOPE} in {self.s_range!r}")

    def slope(self, s):
        return self.b + self.d * s

    def correct(self, vertical: np.ndarray, s: float, layering: float = 0.0) -> np.ndarray:
        """True vertical extents (model rows) from measured ones, at s mm per model row and the
        band's layering contrast (never below 0)."""
        s = min(max(float(s), self.s_range[0]), self.s_range[1])
        return np.maximum((vertical - self.a - self.c * s - self.e * layering) / self.slope(s), 0.0)

    def to_dict(self) -> dict:
        return {
            "form": "measured_rows = a + b*true_rows + c*s + d*true_rows*s + e*L, s = mm per model row, "
            "L = the band's layering contrast (edge.measure.thickness.band_layering)",
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "d": self.d,
            "e": self.e,
            "s_range": list(self.s_range),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ThicknessResponse:
        if not isinstance(d, dict):
            raise ValueError(f"thickness response must be an object, not {type(d).__name__}")
        missing = [k for k in ("a", "b", "c", "d", "s_range") if k not in d]  # other keys: figures, for people
        if missing:
            raise ValueError(f"thickness response lacks {missing}")
        try:
            lo, hi = (float(v) for v in d["s_range"])
            return cls(
                float(d["a"]),
                float(d["b"]),
                float(d["c"]),
                float(d["d"]),
                (lo, hi),
                str(d.get("fitted_on", "")),
                float(d.get("e", 0.0)),
            )
        except (TypeError, ValueError, OverflowError) as e:
            raise ValueError(f"thickness response: {e}") from e


def fit_thickness_response(measured, true, s, fitted_on: str = "", layering=None) -> ThicknessResponse:
    """Least squares of `ThicknessResponse`'s form on per-image (measured, true) vertical
    extents in model rows at s mm per model row (NaNs dropped); layering: each image's
    `band_layering` (None: a response without that term)."""
    m, t, s = (np.asarray(v, np.float64) for v in (measured, true, s))
    L = np.zeros_like(m) if layering is None else np.asarray(layering, np.float64)
    ok = np.isfinite(m) & np.isfinite(t) & np.isfinite(s) & np.isfinite(L)
    m, t, s, L = m[ok], t[ok], s[ok], L[ok]
    if m.size < 8:
        raise ValueError(f"a thickness response needs at least 8 measured images, got {m.size}")
    cols = [np.ones_like(t), t, s, t * s] + ([] if layering is None else [L])
    coef, *_ = np.linalg.lstsq(np.stack(cols, axis=1), m, rcond=None)
    a, b, c, d, *e = (float(v) for v in coef)
    return ThicknessResponse(a, b, c, d, (float(s.min()), float(s.max())), fitted_on, e[0] if e else 0.0)


LAYERING_DEPTHS = np.linspace(0.1, 0.9, 9)  # where across the band (0 top edge, 1 bottom) band_layering samples


def band_layering(image: np.ndarray, edges: BandEdges, columns: slice) -> float:
    """How much the band's brightness varies across it: the grey level at 9 depths between its
    edges (10 % to 90 % of the way down, interpolated between rows), averaged over the valid
    columns of `columns`; the standard deviation of that profile over its mean. About 0.01 for a
    band of uniform brightness in speckle, 0.02-0.04 for one of bright sublayers. image: the
    model's input (H, W) or (H, W, C; channels averaged), of which `edges` were drawn. NaN without
    a valid column."""
    img = np.asarray(image)
    if img.ndim == 3:  # one channel as it is; several averaged, as float32
        img = img[..., 0] if img.shape[2] == 1 else img.astype(np.float32).mean(axis=2)
    h, w = img.shape
    cols = np.arange(w)[columns]
    top, bottom = edges.top[columns], edges.bottom[columns]
    ok = edges.valid[columns] & np.isfinite(top) & np.isfinite(bottom)
    if not ok.any():
        return float("nan")
    cols, top, bottom = cols[ok], top[ok], bottom[ok]
    rows = top + LAYERING_DEPTHS[:, None] * (bottom - top) - 0.5  # row coordinate of pixel centres is i + 0.5
    r0 = np.clip(np.floor(rows).astype(int), 0, h - 2)
    f = np.clip(rows - r0, 0.0, 1.0)
    # only the pixels sampled become float32 (a grayscale image's grey levels, exactly)
    top_px, next_px = img[r0, cols].astype(np.float32), img[r0 + 1, cols].astype(np.float32)
    profile = (top_px * (1 - f) + next_px * f).mean(axis=1)
    mean = float(profile.mean())
    return float(profile.std() / mean) if mean > 0 else float("nan")


@dataclass(frozen=True)
class BandEdges:
    top: np.ndarray  # (W,) float rows, NaN where the column has no valid band
    bottom: np.ndarray
    valid: np.ndarray  # (W,) bool: one contiguous band with classes in anatomical order
    present: np.ndarray  # (W,) bool: any band pixel
    order_error: np.ndarray  # (W,) bool
    fragmented: np.ndarray  # (W,) bool


@dataclass(frozen=True)
class ThicknessResult:
    value: float  # median over the window's valid columns (mm, or px when uncalibrated); NaN if rejected
    spread: float  # interquartile range, same unit
    unit: str
    flags: int
    columns: int
    coverage: float
    per_column: np.ndarray  # (W,) thickness per column, NaN where invalid
    edges: BandEdges


def window_slice(options: ThicknessOptions, width: int) -> slice:
    """The columns of the lateral measurement window (at least one) for an image `width` wide."""
    a, b = int(round(options.window[0] * width)), int(round(options.window[1] * width))
    return slice(a, max(b, a + 1))


def neighbours(tlf: int, classes: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The classes allowed above and below the band. Classes are numbered from the probe down:
    those before the band's class lie above it, those after it below. A band at either end (a
    two-class background / band model) has the other classes on that side too."""
    if not 0 <= tlf < classes or classes < 2:
        raise ValueError(f"band class {tlf!r} is not one of {classes!r} classes")
    others = tuple(c for c in range(classes) if c != tlf)
    above = tuple(range(tlf)) or others
    below = tuple(range(tlf + 1, classes)) or others
    return above, below


def band_edges(labels: np.ndarray, logits: np.ndarray | None = None, tlf: int = 1, above=(0,), below=(2,)) -> BandEdges:
    """Per-column edges of the band of class `tlf`; `above` / `below`: the classes allowed on
    each side (anything else there is an order error). With logits the edges are sub-pixel.

    The label map is read column by column from its transpose (each column one contiguous row),
    where the first of a class in a column is one forward scan and the last one scan of the
    row reversed: a scan down the columns of the map itself strides through it."""
    above, below = np.atleast_1d(above), np.atleast_1d(below)
    h, w = labels.shape
    by_column = (
        cv2.transpose(labels) if labels.dtype == np.uint8 and labels.strides[1] == 1 else np.ascontiguousarray(labels.T)
    )
    is_t = by_column == tlf
    count = cv2.reduce(is_t.view(np.uint8), 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    present = count > 0
    first, last = _first(is_t), _last(is_t)
    fragmented = present & (count != last - first + 1)
    # A class other than `above` before the band's first row, or other than `below` after its last.
    other_above, other_below = _other_than(by_column, above), _other_than(by_column, below)
    order_error = present & (
        (other_above.any(axis=1) & (_first(other_above) < first))
        | (other_below.any(axis=1) & (_last(other_below) > last))
    )
    valid = present & ~fragmented & ~order_error
    top = first.astype(np.float64)
    bottom = last.astype(np.float64) + 1.0
    if logits is not None:
        top, bottom = _subpixel(np.asarray(logits), first, last, top, bottom, tlf, above, below)
    top = np.where(valid, top, np.nan)
    bottom = np.where(valid, bottom, np.nan)
    return BandEdges(top, bottom, valid, present, order_error, fragmented)


def _first(rows: np.ndarray) -> np.ndarray:
    """The index of each row's first True of a boolean (W, H) array (0 where it has none)."""
    return np.argmax(rows, axis=1)


def _last(rows: np.ndarray) -> np.ndarray:
    """The index of each row's last True of a boolean (W, H) array (H - 1 where it has none)."""
    reversed_rows = cv2.flip(rows.view(np.uint8), 1).view(bool)  # a contiguous copy, not a reversed view
    return rows.shape[1] - 1 - np.argmax(reversed_rows, axis=1)


def _other_than(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """~np.isin(labels, classes) for a uint8 label map: one comparison, or a table lookup."""
    if classes.size == 1:
        return labels != classes[0]
    other = np.ones(256, bool)
    other[classes] = False
    return other[labels]


def quartiles(values: np.ndarray) -> np.ndarray:
    """np.percentile(values, [25, 50, 75]) of a 1-D float array without NaN, to the bit (numpy's
    default linear interpolation, its two-sided form included), from one partial sort, without
    the general function's overhead on every frame."""
    n = values.size
    at = (n - 1) * np.array([0.25, 0.5, 0.75])
    lo = np.floor(at).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    part = np.partition(values, np.unique(np.concatenate([lo, hi])))
    a, b = part[lo], part[hi]
    t = at - lo
    d = b - a
    return np.where(t >= 0.5, b - d * (1 - t), a + d * t)


def _subpixel(logits, first, last, top, bottom, tlf, above, below):
    """Move each edge to where the band's logit crosses the strongest logit of the classes on
    that side (linear interpolation). Only the two rows around each edge are read, as float32."""
    h, w = logits.shape[:2]
    cols = np.arange(w)
    above, below = np.asarray(above), np.asarray(below)

    def scores(rows):  # each column's scores at `rows`: the band's, the strongest above and below
        x = logits[rows, cols].astype(np.float32)
        return x[:, tlf], x[:, above].max(axis=-1), x[:, below].max(axis=-1)

    # Top edge: between row first-1 (above wins) and row first (TLF wins).
    r0 = np.clip(first - 1, 0, h - 1)
    (t0, a0, _), (t1, a1, _) = scores(r0), scores(first)
    d0, d1 = a0 - t0, a1 - t1
    ok = (first >= 1) & (d0 > 0) & (d1 <= 0)
    frac = np.divide(d0, d0 - d1, out=np.full(w, 0.5, np.float32), where=ok)
    top = np.where(ok, r0 + 0.5 + frac, top)
    # Bottom edge: between row last (TLF wins) and row last+1 (below wins).
    r1 = np.clip(last + 1, 0, h - 1)
    (t0, _, b0), (t1, _, b1) = scores(last), scores(r1)
    e0, e1 = t0 - b0, t1 - b1
    ok = (last + 1 < h) & (e0 > 0) & (e1 <= 0)
    frac = np.divide(e0, e0 - e1, out=np.full(w, 0.5, np.float32), where=ok)
    bottom = np.where(ok, last + 0.5 + frac, bottom)
    return top, bottom


def _local_slope(centre: np.ndarray, valid: np.ndarray, span: int) -> np.ndarray:
    """d(row)/d(column) of the band's centre line, from a smoothed, gap-filled centre line."""
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return np.zeros_like(centre)
    filled = np.interp(np.arange(centre.size), idx, centre[idx])
    smooth = cv2.blur(filled.reshape(1, -1).astype(np.float32), (span, 1), borderType=cv2.BORDER_REPLICATE).ravel()
    return np.gradient(smooth)


def band_margin(labels: np.ndarray, logits: np.ndarray, columns: slice, tlf: int) -> np.float32:
    """The mean of the best minus the second-best score (float32, in the logits' unit) over the
    band's pixels in `columns`."""
    best, second = best_two(logits[:, columns][labels[:, columns] == tlf].astype(np.float32))
    return np.float32((best - second).mean())


def measure_thickness(
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    spacing_mm: tuple[float, float] | None = None,
    options: ThicknessOptions = ThicknessOptions(),
    logit_scale: float = 1.0,
    tlf: int = 1,
    classes: int | None = None,
    response: ThicknessResponse | None = None,
    image: np.ndarray | None = None,
    pixel_size: tuple[float, float] | None = None,
) -> ThicknessResult:
    """Thickness of the TLF band, perpendicular to its local direction.

    spacing_mm: (row, column) mm per pixel of `labels` (anisotropic allowed); without it the
    result is in pixels and flagged UNCALIBRATED: pixels of the image the labels were resampled
    from when `pixel_size` gives the (row, column) size of a label pixel in them (the B-mode
    region's pixels for the model grid), else pixels of `labels`. classes: how many classes the model has
    (default: the logits' last axis, else 3); see `neighbours` for the order check.
    response: the bundle's thickness response, inverted per column (only with a spacing:
    it is a function of the pixel size in mm). image: the model input the labels were drawn
    from; a response with a layering term (e != 0) needs it.
    """
    if classes is None:
        classes = logits.shape[-1] if logits is not None else max(3, tlf + 1)
    above, below = neighbours(tlf, classes)
    edges = band_edges(labels, logits, tlf=tlf, above=above, below=below)
    h, w = labels.shape
    sy, sx = spacing_mm if spacing_mm is not None else pixel_size or (1.0, 1.0)
    vertical = edges.bottom - edges.top
    win = window_slice(options, w)
    if response is not None and spacing_mm is not None:
        layering = 0.0
        if response.e:
            if image is None:
                raise ValueError("this thickness response has a layering term: measure_thickness needs the model image")
            layering = band_layering(image, edges, win)
        vertical = response.correct(vertical, sy, layering if math.isfinite(layering) else 0.0)
    slope = _local_slope((edges.top + edges.bottom) / 2, edges.valid, options.slope_window) * (sy / sx)
    per_column = vertical * sy * np.cos(np.arctan(slope))

    n_win = win.stop - win.start
    valid_win = edges.valid[win]
    coverage = float(valid_win.mean())
    flags = Quality.OK if spacing_mm is not None else Quality.UNCALIBRATED
    if coverage < options.min_coverage:
        flags |= Quality.NO_BAND
    if edges.order_error[win].sum() > options.max_order_errors * n_win:
        flags |= Quality.ORDER
    if edges.fragmented[win].sum() > options.max_order_errors * n_win:
        flags |= Quality.FRAGMENTED
    if logits is not None and valid_win.any():
        if band_margin(labels, logits, win, tlf) * logit_scale < options.min_margin:
            flags |= Quality.LOW_CONFIDENCE
    values = per_column[win][valid_win]
    if flags & REJECTING or values.size == 0:
        value = spread = float("nan")
    else:
        q1, med, q3 = quartiles(values) if not np.isnan(values).any() else np.percentile(values, [25, 50, 75])
        value, spread = float(med), float(q3 - q1)
    return ThicknessResult(
        value=value,
        spread=spread,
        unit="mm" if spacing_mm is not None else "px",
        flags=int(flags),
        columns=int(values.size),
        coverage=coverage,
        per_column=per_column,
        edges=edges,
    )
