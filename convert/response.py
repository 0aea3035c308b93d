"""A bundle's thickness response on phantom images of known thickness, fitted for the device to
invert (edge.thickness.ThicknessCalibration).

Each image gives one point: the int8 model's band height (median over the measurement window's
columns, in model rows, as drawn) against the true height over the same columns, at the
image's mm per model row. The images are phantom scans of the training recipe (random scene,
look, size and field of view) from seeds no training, int8 calibration or validation image uses,
so the response belongs to a model trained on phantom data (the demo bundle); a model trained on
other images would need its own images of known thickness.
"""

from __future__ import annotations

import numpy as np

from edge.bundle import Bundle, update_manifest
from edge.dataset import phantom_scan
from edge.frame import Frame
from edge.quality import REJECTING
from edge.segmenter import Segmenter
from edge.thickness import ThicknessCalibration, ThicknessOptions, fit_thickness_calibration, measure_thickness, window_slice

RESPONSE_SEEDS = 40_000_000  # phantom scenes of the thickness response (see convert.cli for the other ranges)


def measured_scans(bundle: Bundle, seeds, threads: int = 2, options: ThicknessOptions = ThicknessOptions(),
                   machine=None):
    """Run the bundle on the response recipe's scans of `seeds` (machine: a look for all of them;
    default each scan's random one) and measure as the device does, with the bundle's response.
    Yields, per scan the quality checks accept: (seed, result, band height as drawn in model rows,
    true height in model rows, true thickness mm, mm per model row), over the measurement window."""
    seg = Segmenter(bundle, threads)
    for i, seed in enumerate(seeds):
        scan = phantom_scan(seed, machine)
        s = seg.segment(Frame(scan.image, 0.0, i, scan.spacing_mm))
        r = measure_thickness(s.labels, s.logits, s.spacing_mm, options, s.logit_scale, tlf=bundle.tlf_class,
                              calibration=s.calibration)
        if r.flags & REJECTING:
            continue
        h, w = s.labels.shape
        win = window_slice(options, w)
        cols = ((np.arange(w)[win] + 0.5) * scan.image.shape[1] / w).astype(int)  # the scan column under each
        k = h / scan.image.shape[0]
        drawn = float(np.nanmedian(r.edges.bottom[win] - r.edges.top[win]))
        true = float(np.median(scan.bottom_px[cols] - scan.top_px[cols]) * k)
        yield seed, r, drawn, true, float(np.median(scan.thickness_mm[cols])), s.spacing_mm[0]


def phantom_points(bundle: Bundle, n: int, threads: int = 2, options: ThicknessOptions = ThicknessOptions()):
    """(measured rows, true rows, mm per model row) of the first n response scenes that the bundle
    measures (a frame its quality checks reject gives no point). The band is taken as drawn: a
    response the bundle already carries changes neither its edges nor the checks."""
    points = [(drawn, true, s) for _, _, drawn, true, _, s in
              measured_scans(bundle, range(RESPONSE_SEEDS, RESPONSE_SEEDS + n), threads, options)]
    measured, true, rows_mm = (np.array(v) for v in zip(*points)) if points else (np.array([]),) * 3
    return measured, true, rows_mm


def fit_phantom_response(bundle: Bundle, n: int = 1000, threads: int = 2) -> tuple[ThicknessCalibration, dict]:
    """The fitted calibration and its figures: points used, and the mean and mean absolute error
    (mm) of the thickness before and after the correction on those points."""
    m, t, s = phantom_points(bundle, n, threads)
    name = f"{m.size} of {n} phantom scans, seeds {RESPONSE_SEEDS}-{RESPONSE_SEEDS + n - 1}"
    cal = fit_thickness_calibration(m, t, s, fitted_on=name)
    corrected = np.array([cal.correct(np.array([mi]), si)[0] for mi, si in zip(m, s)])
    before, after = (m - t) * s, (corrected - t) * s
    figures = {"points": int(m.size), "bias_mm_before": round(float(before.mean()), 4),
               "mae_mm_before": round(float(np.abs(before).mean()), 4),
               "bias_mm_after": round(float(after.mean()), 4), "mae_mm_after": round(float(np.abs(after).mean()), 4)}
    return cal, figures


def write_phantom_response(bundle: Bundle, n: int = 1000, threads: int = 2) -> tuple[Bundle, dict]:
    """Fit the bundle's response (the model as drawn: a calibration already in the manifest plays
    no part) and record it in the manifest, replacing any earlier one; the bundle is verified again."""
    cal, figures = fit_phantom_response(bundle, n, threads)
    return update_manifest(bundle, thickness_calibration={**cal.to_dict(), **figures}), figures
