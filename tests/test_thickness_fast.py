"""The measurement step (edge.measure.thickness) with less work per frame: the band's edges read
only the rows around them and find each column's band from the label map's transpose, the band's margin takes the best two scores without sorting and the
band's layering makes only the pixels it samples float32. The results must be the former ones bit
for bit; the former code is kept below, verbatim, as the reference (`band_edges`, `_subpixel` and
`band_layering` as they were, and the margin as `measure_thickness` computed it)."""

from __future__ import annotations

import functools
import time

import numpy as np
import pytest

from edge.frame import Frame
from edge.measure import thickness
from edge.measure.scores import best_class, best_two
from edge.measure.thickness import (
    ThicknessOptions,
    band_margin,
    measure_thickness,
    quartiles,
    window_slice,
)
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.sim.render import scan


# ---- the former code (edge/measure/thickness.py before issue 25), verbatim ----
def old_subpixel(logits, first, last, top, bottom, tlf, above, below):
    """Move each edge to where the band's logit crosses the strongest logit of the classes on
    that side (linear interpolation)."""
    h, w = logits.shape[:2]
    cols = np.arange(w)
    side_above = logits[..., above].max(axis=-1) if len(above) > 1 else logits[..., int(above[0])]
    side_below = logits[..., below].max(axis=-1) if len(below) > 1 else logits[..., int(below[0])]
    # Top edge: between row first-1 (above wins) and row first (TLF wins).
    r0 = np.clip(first - 1, 0, h - 1)
    d0 = side_above[r0, cols] - logits[r0, cols, tlf]
    d1 = side_above[first, cols] - logits[first, cols, tlf]
    ok = (first >= 1) & (d0 > 0) & (d1 <= 0)
    frac = np.divide(d0, d0 - d1, out=np.full(w, 0.5, np.float32), where=ok)
    top = np.where(ok, r0 + 0.5 + frac, top)
    # Bottom edge: between row last (TLF wins) and row last+1 (below wins).
    r1 = np.clip(last + 1, 0, h - 1)
    e0 = logits[last, cols, tlf] - side_below[last, cols]
    e1 = logits[r1, cols, tlf] - side_below[r1, cols]
    ok = (last + 1 < h) & (e0 > 0) & (e1 <= 0)
    frac = np.divide(e0, e0 - e1, out=np.full(w, 0.5, np.float32), where=ok)
    bottom = np.where(ok, last + 0.5 + frac, bottom)
    return top, bottom


def old_band_edges(labels, logits=None, tlf=1, above=(0,), below=(2,)):
    above, below = np.atleast_1d(above), np.atleast_1d(below)
    h, w = labels.shape
    is_t = labels == tlf
    present = is_t.any(axis=0)
    first = np.argmax(is_t, axis=0)
    last = h - 1 - np.argmax(is_t[::-1], axis=0)
    count = is_t.sum(axis=0)
    fragmented = present & (count != last - first + 1)
    rows = np.arange(h)[:, None]
    order_error = present & (
        (~np.isin(labels, above) & (rows < first)).any(axis=0) | (~np.isin(labels, below) & (rows > last)).any(axis=0)
    )
    valid = present & ~fragmented & ~order_error
    top = first.astype(np.float64)
    bottom = last.astype(np.float64) + 1.0
    if logits is not None:
        top, bottom = old_subpixel(np.asarray(logits).astype(np.float32), first, last, top, bottom, tlf, above, below)
    top = np.where(valid, top, np.nan)
    bottom = np.where(valid, bottom, np.nan)
    return thickness.BandEdges(top, bottom, valid, present, order_error, fragmented)


def old_band_layering(image, edges, columns):
    img = np.asarray(image, np.float32)
    if img.ndim == 3:
        img = img.mean(axis=2)
    h, w = img.shape
    cols = np.arange(w)[columns]
    top, bottom = edges.top[columns], edges.bottom[columns]
    ok = edges.valid[columns] & np.isfinite(top) & np.isfinite(bottom)
    if not ok.any():
        return float("nan")
    cols, top, bottom = cols[ok], top[ok], bottom[ok]
    rows = top + thickness.LAYERING_DEPTHS[:, None] * (bottom - top) - 0.5
    r0 = np.clip(np.floor(rows).astype(int), 0, h - 2)
    f = np.clip(rows - r0, 0.0, 1.0)
    profile = (img[r0, cols] * (1 - f) + img[r0 + 1, cols] * f).mean(axis=1)
    mean = float(profile.mean())
    return float(profile.std() / mean) if mean > 0 else float("nan")


def old_band_margin(labels, logits, win, tlf, logit_scale):
    band = labels[:, win] == tlf
    srt = np.sort(logits[:, win].astype(np.float32), axis=-1)
    margin = (srt[..., -1] - srt[..., -2])[band].mean() * logit_scale
    return margin


# ---- the comparison ----
@functools.cache
def segmentations():
    """(labels, logits, logit_scale, spacing, image) of the demo model on phantom scans, and of
    random scores of 2 to 4 classes in int8 and float32 (ties included)."""
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    out = []
    for seed in range(8):
        s = seg.segment(Frame(scan(seed, (320, 400), wide=seed > 4).image, time.monotonic(), seed, spacing_mm=(0.1, 0.12)))
        out.append((s.labels, s.logits, s.logit_scale, s.spacing_mm, s.image, s.response))
    rng = np.random.default_rng(5)
    for k in (2, 3, 4):
        rows = np.arange(96)[:, None, None]
        centre = np.array([20, 45, 70, 90][: k - 1])  # class boundaries down the image
        smooth = -np.abs(rows - np.r_[10, (centre[:-1] + centre[1:]) / 2, 95][:k]) + rng.normal(0, 4, (96, 64, k))
        for x, scale in ((np.clip(np.round(smooth), -128, 127).astype(np.int8), 0.25), (smooth.astype(np.float32), 1.0)):
            out.append((np.argmax(x, axis=-1).astype(np.uint8), x, scale, (0.2, 0.2), None, None))
    return out


@pytest.mark.parametrize("case", range(14))
def test_the_measurement_is_the_former_one_bit_for_bit(case, monkeypatch):
    labels, logits, scale, spacing, image, response = segmentations()[case]
    k = logits.shape[-1]
    for tlf in range(k) if k > 2 else (1,):
        args = (labels, logits, spacing, ThicknessOptions(), scale, tlf, k, response, image)
        new = measure_thickness(*args)
        with monkeypatch.context() as m:
            m.setattr(thickness, "_subpixel", lambda lg, *a: old_subpixel(lg.astype(np.float32), *a))
            m.setattr(thickness, "band_margin", lambda lb, lg, win, t: old_band_margin(lb, lg, win, t, 1.0))
            m.setattr(thickness, "quartiles", lambda v: np.percentile(v, [25, 50, 75]))
            m.setattr(thickness, "band_edges", old_band_edges)
            m.setattr(thickness, "band_layering", old_band_layering)
            old = measure_thickness(*args)
        assert new.flags == old.flags and new.columns == old.columns and new.coverage == old.coverage
        assert np.array_equal(new.value, old.value, equal_nan=True) and np.array_equal(new.spread, old.spread, equal_nan=True)
        assert np.array_equal(new.per_column, old.per_column, equal_nan=True)
        for a, b in zip(vars(new.edges).values(), vars(old.edges).values()):
            assert np.array_equal(a, b, equal_nan=True)
        win = window_slice(ThicknessOptions(), labels.shape[1])
        if (labels[:, win] == tlf).any():
            assert band_margin(labels, logits, win, tlf) * scale == old_band_margin(labels, logits, win, tlf, scale)


def assert_same_edges(new, old):
    for field, a in vars(new).items():
        b = getattr(old, field)
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), field


def test_the_band_edges_are_the_former_ones_bit_for_bit():
    """On label maps of bands broken, out of order, missing, at the top and bottom rows, of 2-5
    classes, with every class as the band and sides that include it, in uint8 and int64 and
    as views; with and without scores."""
    rng = np.random.default_rng(7)
    checked = 0
    for h, w in ((1, 1), (1, 9), (9, 1), (40, 33), (96, 64)):
        for k in (2, 3, 5):
            rows = np.arange(h)[:, None]
            layers = np.sort(rng.integers(0, h + 1, (k - 1, w)), axis=0)  # class boundaries per column
            clean = (rows[None] >= layers[:, None, :]).sum(axis=0).astype(np.uint8)  # (h, w), ordered
            speckled = np.where(rng.random((h, w)) < 0.08, rng.integers(0, k, (h, w)), clean).astype(np.uint8)
            logits = rng.normal(size=(h, w, k)).astype(np.float32)
            for labels in (clean, speckled, speckled.astype(np.int64), speckled[:, ::2], np.zeros_like(clean)):
                if labels.shape[1] == 0:
                    continue
                for tlf in range(k):
                    sides = [thickness.neighbours(tlf, k), ((tlf,), (0,)), (tuple(range(k)), (k - 1,))]
                    for above, below in sides:
                        for lg in (None, logits if labels.shape[1] == w else logits[:, ::2]):
                            new = thickness.band_edges(labels, lg, tlf, above, below)
                            assert_same_edges(new, old_band_edges(labels, lg, tlf, above, below))
                            checked += 1
    assert checked > 500
    for case in segmentations():  # the demo model's label maps and scores
        labels, logits = case[0], case[1]
        above, below = thickness.neighbours(1, logits.shape[-1])
        new = thickness.band_edges(labels, logits, 1, above, below)
        assert_same_edges(new, old_band_edges(labels, logits, 1, above, below))


def test_the_layering_is_the_former_one_bit_for_bit():
    cases = [c for c in segmentations() if c[4] is not None]
    assert cases and all(c[5] is not None and c[5].e for c in cases)  # the demo's response has the term
    rng = np.random.default_rng(6)
    measured = 0
    for labels, logits, _, _, image, _ in cases:
        edges = thickness.band_edges(labels, logits)
        win = window_slice(ThicknessOptions(), labels.shape[1])
        colour = np.concatenate([image, rng.integers(0, 256, (*image.shape[:2], 2), np.uint8)], axis=2)
        for im in (image, image[..., 0], colour):
            new, old = thickness.band_layering(im, edges, win), old_band_layering(im, edges, win)
            assert np.array_equal(new, old, equal_nan=True)
            measured += bool(np.isfinite(new))
    assert measured >= 6  # most scans have a band to sample


def test_the_best_two_scores_are_the_last_two_of_a_sort():
    rng = np.random.default_rng(2)
    for k in (2, 3, 4, 5):
        for y in (rng.integers(-3, 3, (50, 40, k)).astype(np.int8), rng.normal(size=(50, 40, k)).astype(np.float32)):
            for x in (y, y[:, ::2], y.reshape(-1, k), y.astype(np.float64), y[:0]):  # split planes, views, empty
                best, second = best_two(x)
                srt = np.sort(x, axis=-1)
                assert np.array_equal(best, srt[..., -1]) and np.array_equal(second, srt[..., -2])


def test_the_best_class_is_the_argmax():
    rng = np.random.default_rng(3)
    for k in (2, 3, 4):
        for y in (rng.integers(-2, 2, (60, 50, k)).astype(np.int8), rng.normal(size=(60, 50, k)).astype(np.float32)):
            for x in (y, y[:, ::2], y.reshape(-1, k), y[:0]):  # split planes, views, empty
                got = best_class(x)  # the int8 case is full of ties, which go to the first class
                assert got.dtype == np.uint8 and np.array_equal(got, np.argmax(x, axis=-1))


def test_the_quartiles_are_numpys_percentiles_to_the_bit():
    rng = np.random.default_rng(4)
    for n in [*range(1, 40), 97, 128, 255, 256, 1000]:
        for v in (rng.normal(1.5, 0.3, n), rng.integers(0, 4, n).astype(np.float64) * 0.37, np.full(n, 2.1)):
            assert np.array_equal(quartiles(v), np.percentile(v, [25, 50, 75])), n
