"""Each band of a two-class (background / band) label map, measured on its own: for the device
and for validation alike.

`edge.measure.thickness.measure_thickness` measures one band lying between an 'above' and a 'below'
class. A two-class map has no 'below' class and often holds several bands (the superficial and
the deep aponeurosis of a muscle, fascia sublayers labelled as one class): measured as it is,
every column is out of order and fragmented, and nothing is measured. Here each band that spans
the measurement window gets a zone of rows reaching halfway to its neighbouring bands; a label
map cut to one zone is recoded as above / band / below and measured by `measure_thickness`, so
edges, sub-pixel logits, slope correction and quality rules stay the one definition.

Where the zones come from is the caller's: the device draws them from the prediction itself
(`measure_bands` without zones: each band the model drew, by depth); validation draws them
from the true mask (convert.validate), so that the truth, the float and the int8 predictions
are matched band by band by depth.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.measure.thickness import ThicknessOptions, ThicknessResult, measure_thickness, window_slice


def band_zones(labels: np.ndarray, band: int = 1, options: ThicknessOptions = ThicknessOptions()) -> list[np.ndarray]:
    """A bool (H, W) zone per band of `labels` (a connected piece of the band class, 8-connected)
    that covers at least `options.min_coverage` of the window's columns, superficial first;
    zones meet halfway between neighbouring bands' centre lines. Smaller pieces get no zone of
    their own: inside a band's zone they count against it (a second run in a column)."""
    h, w = labels.shape
    n, comp = cv2.connectedComponents((labels == band).astype(np.uint8), connectivity=8)
    win = window_slice(options, w)
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w)
    centres = []
    for k in range(1, n):
        m = comp == k
        present = m.any(axis=0)
        if present[win].mean() < options.min_coverage:
            continue
        idx = np.flatnonzero(present)
        centre = (m * rows).sum(axis=0)[idx] / m.sum(axis=0)[idx]
        centres.append(np.interp(cols, idx, centre))
    centres.sort(key=lambda c: float(c[win].mean()))
    zones = []
    for i, c in enumerate(centres):
        top = (centres[i - 1] + c) / 2 if i else np.full(w, -np.inf)
        bottom = (c + centres[i + 1]) / 2 if i + 1 < len(centres) else np.full(w, np.inf)
        zones.append((rows >= top) & (rows < bottom))
    return zones


def in_zone(labels: np.ndarray, zone: np.ndarray, band: int = 1) -> np.ndarray:
    """The band pixels of `labels` inside `zone` as 1, with 0 above and 2 below them in each column."""
    b = (labels == band) & zone
    h = labels.shape[0]
    present = b.any(axis=0)
    last = h - 1 - np.argmax(b[::-1], axis=0)
    below = present & (np.arange(h)[:, None] > last)
    return np.where(b, 1, np.where(below, 2, 0)).astype(np.uint8)


def measure_bands(
    labels: np.ndarray,
    logits: np.ndarray | None = None,
    spacing_mm=None,
    options: ThicknessOptions = ThicknessOptions(),
    logit_scale: float = 1.0,
    band: int = 1,
    response=None,
    image: np.ndarray | None = None,
    zones: list[np.ndarray] | None = None,
    pixel_size: tuple[float, float] | None = None,
) -> list[ThicknessResult]:
    """The `measure_thickness` result of each band, superficial first.

    zones: the bands' zones (`band_zones` of a true mask); None: the bands of `labels` itself,
    as the device finds them. Without any band that spans the window the result is one
    measurement of the whole map (flagged, NO_BAND at least), so a frame always reports.
    logits: (H, W, 2) scores of background and band, or None; they are presented to
    `measure_thickness` as (background, band, background) so both edges interpolate between the
    band and the background. response: the bundle's thickness response, as the device applies it
    (image: the model input, for a response with a layering term).
    """
    if zones is None:
        zones = band_zones(labels, band, options)
        if not zones:
            zones = [np.ones(labels.shape, bool)]
    three = None if logits is None else logits[..., [1 - band, band, 1 - band]]
    return [
        measure_thickness(
            in_zone(labels, z, band),
            three,
            spacing_mm=spacing_mm,
            options=options,
            logit_scale=logit_scale,
            tlf=1,
            response=response,
            image=image,
            pixel_size=pixel_size,
        )
        for z in zones
    ]


def band_thickness(
    labels: np.ndarray,
    zones: list[np.ndarray],
    logits: np.ndarray | None = None,
    spacing_mm=None,
    options: ThicknessOptions = ThicknessOptions(),
    logit_scale: float = 1.0,
    band: int = 1,
    response=None,
    image: np.ndarray | None = None,
) -> list[float]:
    """Thickness of the band in each of the given zones (NaN where `measure_thickness` rejects it)."""
    return [
        r.value
        for r in measure_bands(labels, logits, spacing_mm, options, logit_scale, band, response, image, zones=zones)
    ]


def per_band(classes: int) -> bool:
    """True for a two-class (background / band) model: its bands are measured each on its own.
    The TLF between two tissue classes (three classes or more) is one band."""
    return classes == 2
