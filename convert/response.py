"""A bundle's thickness response on phantom images of known thickness, fitted for the device to
invert (edge.measure.thickness.ThicknessResponse).

Each image gives one point: the int8 model's band height (median over the measurement window's
columns, in model rows, as drawn) against the true height over the same columns, at the
image's mm per model row, with the band's layering contrast (edge.measure.thickness.band_layering).
Two sets of images, from seeds no training, int8 representative set or validation image uses:
  screens: the phantom scanner as a cart sees it: its whole screen (the `default` look, depth
           30-50 mm), cropped to the B-mode region (the exact one) and reduced to the model
           input as the device does; the response of the cart's own scanner (the demo bundle's).
  scans:   phantom scans of the training recipe (random scene, look, size and field of view):
           a response for any of the looks the model was trained on, the scanner's not known.
The response belongs to a model trained on phantom data (the demo bundle); a model trained on
other images would need its own images of known thickness.
"""

from __future__ import annotations

import numpy as np

from convert.errors import ConvertError
from edge.frame import Frame
from edge.measure.quality import REJECTING
from edge.measure.thickness import (
    ThicknessOptions,
    ThicknessResponse,
    band_layering,
    fit_thickness_response,
    window_slice,
)
from edge.model.bundle import Bundle, update_manifest
from edge.model.segmenter import Segmenter
from edge.runtime.chain import ChainOptions, FrameChain
from edge.sim import phantom, phantom_screen
from edge.sim.recipes import RESPONSE_SEEDS, phantom_scan

RESPONSE_IMAGES = ("screens", "scans")
SCREEN_SIZE = (1280, 720)
SCREEN_DEPTHS_MM = (30.0, 50.0)


def scanner_screen(seed: int) -> tuple[Frame, phantom.Scan]:
    """The phantom scanner's screen for `seed` (`default` look, a depth drawn from SCREEN_DEPTHS_MM,
    40 mm wide) cropped to its B-mode region, as a frame with the screen's mm per pixel, and the scan
    shown in it (its truth)."""
    depth = float(np.random.default_rng(seed + 7).uniform(*SCREEN_DEPTHS_MM))
    s = phantom_screen.screen(seed, SCREEN_SIZE, depth, 40.0, "default")
    x, y, w, h = s.roi
    return Frame(s.image[y : y + h, x : x + w], 0.0, 0, s.spacing_mm), s.scan


def measured_scans(
    bundle: Bundle,
    seeds,
    threads: int = 2,
    options: ThicknessOptions = ThicknessOptions(),
    machine=None,
    images: str = "screens",
):
    """Run the bundle on the response's images of `seeds` (images: "screens", the phantom
    scanner's; or "scans", the training recipe's, machine: a look for all of them, default each
    scan's random one) and measure as the device does, with the bundle's response. Yields, per image the
    quality checks accept: (seed, result, band height as drawn in model rows, true height in model
    rows, true thickness mm, mm per model row, band layering contrast), over the measurement window."""
    if images not in RESPONSE_IMAGES:
        raise ConvertError(f"response images must be one of {RESPONSE_IMAGES}, not {images!r}")
    chain = FrameChain(Segmenter(bundle, threads), ChainOptions(measurement=options, independent=True))
    for i, seed in enumerate(seeds):
        if images == "screens":
            frame, scan = scanner_screen(seed)
        else:
            scan = phantom_scan(seed, machine)
            frame = Frame(scan.image, 0.0, i, scan.spacing_mm)
        result = chain(frame, cropped=True)  # the device's own chain, each image on its own
        assert result is not None  # a B-mode region already: always measured
        s, r = result.segmentation, result.results[0]
        if result.measurements[0].flags & REJECTING:
            continue
        assert (
            s.spacing_mm is not None and s.image is not None
        )  # phantom frames have a spacing; the chain keeps the model image
        h, w = s.labels.shape
        win = window_slice(options, w)
        cols = ((np.arange(w)[win] + 0.5) * scan.image.shape[1] / w).astype(int)  # the scan column under each
        k = h / scan.image.shape[0]
        drawn = float(np.nanmedian(r.edges.bottom[win] - r.edges.top[win]))
        true = float(np.median(scan.bottom_px[cols] - scan.top_px[cols]) * k)
        yield (
            seed,
            r,
            drawn,
            true,
            float(np.median(scan.thickness_mm[cols])),
            s.spacing_mm[0],
            band_layering(s.image, r.edges, win),
        )


def phantom_points(
    bundle: Bundle, n: int, threads: int = 2, options: ThicknessOptions = ThicknessOptions(), images: str = "screens"
):
    """(measured rows, true rows, mm per model row, layering contrast) of the first n response
    images that the bundle measures (a frame its quality checks reject gives no point). The band
    is taken as drawn: a response the bundle already carries changes neither its edges nor the checks."""
    points = [
        (drawn, true, s, lay)
        for _, _, drawn, true, _, s, lay in measured_scans(
            bundle, range(RESPONSE_SEEDS, RESPONSE_SEEDS + n), threads, options, images=images
        )
    ]
    return tuple(np.array(v) for v in zip(*points)) if points else (np.array([]),) * 4


def fit_phantom_response(
    bundle: Bundle, n: int = 1000, threads: int = 2, images: str = "screens", layering: bool = True
) -> tuple[ThicknessResponse, dict]:
    """The fitted response and its figures: points used, and the mean and mean absolute error
    (mm) of the thickness before and after the correction on those points. layering: False fits
    the response without its layering term (e = 0)."""
    m, t, s, lay = phantom_points(bundle, n, threads, images=images)
    what = {
        "screens": "phantom scanner screens (default look, depth 30-50 mm)",
        "scans": "phantom scans (the training's random looks)",
    }[images]
    name = f"{m.size} of {n} {what}, seeds {RESPONSE_SEEDS}-{RESPONSE_SEEDS + n - 1}"
    try:
        cal = fit_thickness_response(m, t, s, fitted_on=name, layering=lay if layering else None)
    except ValueError as e:  # too few images the bundle measures, or a fit that is not invertible
        raise ConvertError(f"cannot fit the thickness response of {str(bundle.path)!r}: {e}") from None
    corrected = np.array([cal.correct(np.array([mi]), si, li)[0] for mi, si, li in zip(m, s, lay)])
    before, after = (m - t) * s, (corrected - t) * s
    figures = {
        "points": int(m.size),
        "bias_mm_before": round(float(before.mean()), 4),
        "mae_mm_before": round(float(np.abs(before).mean()), 4),
        "bias_mm_after": round(float(after.mean()), 4),
        "mae_mm_after": round(float(np.abs(after).mean()), 4),
    }
    return cal, figures


def write_phantom_response(
    bundle: Bundle, n: int = 1000, threads: int = 2, images: str = "screens", layering: bool = True
) -> tuple[Bundle, dict]:
    """Fit the bundle's response (the model as drawn: a response already in the manifest plays
    no part) and record it in the manifest, replacing any earlier one; the bundle is verified again."""
    cal, figures = fit_phantom_response(bundle, n, threads, images, layering)
    return update_manifest(bundle, thickness_calibration={**cal.to_dict(), **figures}), figures
