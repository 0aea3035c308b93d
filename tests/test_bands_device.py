"""Per-band measurement on the device (edge.measure.bands, edge.runtime.chain.measure_frame): a two-class
model's bands are found in its own label map, ordered by depth and each measured as validation
measures it; logs, CSV and the display carry the band index; the three-class TLF stays one band."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import APO_SIZE, apo_crops
from edge.measure.bands import band_thickness, band_zones, measure_bands
from edge.frame import Frame, Segmentation
from edge.runtime.chain import measure_frame
from edge.model.preprocess import PreprocessSpec, resize_labels
from edge.measure.quality import Quality
from edge.measure.thickness import ThicknessOptions, measure_thickness


def seg_of(labels, logits=None, spacing=None) -> Segmentation:
    image = np.zeros(labels.shape + (1,), np.uint8)
    return Segmentation(Frame(image, 0.0, 7), labels, logits, spacing, 0.0, image=image)


def test_two_bands_are_each_measured_in_depth_order():
    h, w = 100, 120
    edges = [(20.3, 27.6), (60.0, 72.5)]
    centre = np.arange(h)[:, None] + 0.5
    margin = np.max([np.minimum(centre - a, b - centre) for a, b in edges], axis=0).repeat(w, axis=1)
    logits = np.stack([np.zeros((h, w)), margin], axis=-1).astype(np.float32)
    labels = (margin > 0).astype(np.uint8)
    ms = measure_frame(seg_of(labels, logits), ThicknessOptions(), tlf_class=1, classes=2)
    assert [(m.band, m.bands, m.seq) for m in ms] == [(0, 2, 7), (1, 2, 7)]
    assert [m.thickness for m in ms] == pytest.approx([7.3, 12.5], abs=1e-3)  # sub-pixel edges from the logits
    assert all(m.flags == Quality.UNCALIBRATED for m in ms) and all(m.unit == "px" for m in ms)
    # a band split in two runs over part of the window (still one piece) is flagged, the other still measured
    broken = labels.copy()
    broken[65, 40:80] = 0
    ms = measure_frame(seg_of(broken), ThicknessOptions(), classes=2)
    assert len(ms) == 2 and ms[0].thickness == pytest.approx(8.0)
    assert math.isnan(ms[1].thickness) and ms[1].flags & Quality.FRAGMENTED
    # split across the whole width it is two bands to the device: it cannot know they were one
    broken[65, :] = 0
    assert [m.thickness for m in measure_frame(seg_of(broken), ThicknessOptions(), classes=2)] == [8.0, 5.0, 6.0]


def test_a_map_without_a_band_still_reports_one_flagged_measurement():
    labels = np.zeros((64, 64), np.uint8)
    labels[10:14, :20] = 1  # a piece too short for the measurement window
    ms = measure_frame(seg_of(labels), ThicknessOptions(), classes=2)
    assert len(ms) == 1 and (ms[0].band, ms[0].bands) == (0, 1)
    assert math.isnan(ms[0].thickness) and ms[0].flags & Quality.NO_BAND


def test_the_three_class_tlf_is_one_band_as_before():
    labels = np.zeros((64, 64), np.uint8)
    labels[20:30] = 1
    labels[30:] = 2
    (m,) = measure_frame(seg_of(labels, spacing=(0.1, 0.1)), ThicknessOptions(), classes=3)
    ref = measure_thickness(labels, None, (0.1, 0.1))
    assert (m.band, m.bands) == (0, 1) and m.thickness == ref.value == pytest.approx(1.0) and m.flags == ref.flags


def test_on_real_masks_the_device_finds_the_bands_validation_measures():
    """Given the true mask as its label map, the device's own band finding (zones from the map
    itself) gives exactly validation's per-band figures (zones from the truth), band by band."""
    spec = PreprocessSpec(APO_SIZE, APO_SIZE)
    _, _, labels = apo_crops()
    counts = []
    for lab in labels:
        truth = resize_labels(lab, spec)
        device = [m.thickness for m in measure_frame(seg_of(truth), ThicknessOptions(), classes=2)]
        zones = band_zones(truth)
        counts.append(len(zones))
        assert device == pytest.approx(band_thickness(truth, zones), nan_ok=True)
        assert [r.value for r in measure_bands(truth)] == pytest.approx(device, nan_ok=True)
        centres = [float(np.nonzero(z & (truth == 1))[0].mean()) for z in zones]
        assert centres == sorted(centres)  # band 0 the most superficial
    assert max(counts) >= 2 and sum(counts) >= 2 * len(labels) - 1  # these masks hold two bands (or more) each


def test_a_two_class_bundle_reports_every_band_to_log_csv_and_display(apo_bundle, tmp_path):
    """`tlf-edge run` of a tiny real two-class bundle on each of the five real screenshots: the
    device crops the screen, finds the aponeuroses the model draws and reports each, with its
    band index, in frames.jsonl and frames.csv; each band's thickness is close to the mask's at
    the same depth (the model has learnt these five images)."""
    from conftest import APO_FEW
    from edge.cli import main

    spec = apo_bundle.spec
    stems, _, labels = apo_crops()
    frames, errors = [], []
    for stem, lab in zip(stems, labels):
        out = tmp_path / stem
        rc = main(["run", "--bundle", str(apo_bundle.path), "--source", str(APO_FEW / "images" / f"{stem}.tif"),
                   "--out", str(out), "--quiet", "--set", "calibration.spacing_mm=[0.1, 0.1]", "--set", "log.csv=true"])
        assert rc in (0, 1)  # 1: every band of the frame rejected by a quality rule (said in the summary)
        run_dir = next(out.iterdir())
        rows = [json.loads(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
        assert [r["band"] for r in rows] == list(range(len(rows))) and all(r["bands"] == len(rows) for r in rows)
        assert all(r["seq"] == rows[0]["seq"] for r in rows)  # one frame, one row per band
        csv_rows = (run_dir / "frames.csv").read_text().splitlines()
        assert csv_rows[0].startswith("seq,t_capture,wall_time,band,bands,") and len(csv_rows) == len(rows) + 1
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["frames"] == 1 and summary["bands_measured" if len(rows) > 1 else "frames"] == len(rows)
        assert (rc == 1) == (summary["accepted"] == 0)
        frames.append(rows)
        truth = resize_labels(lab, spec)
        true_mm = band_thickness(truth, band_zones(truth), spacing_mm=(0.1 * lab.shape[0] / spec.height,
                                                                      0.1 * lab.shape[1] / spec.width))
        for r in rows:
            if r["thickness"] is not None and r["band"] < len(true_mm) and not math.isnan(true_mm[r["band"]]):
                errors.append(r["thickness"] - true_mm[r["band"]])
    assert sum(len(rows) >= 2 for rows in frames) >= 3  # the superficial and the deep aponeurosis
    assert sum(r["thickness"] is not None for rows in frames for r in rows) >= 5
    assert len(errors) >= 5 and float(np.median(np.abs(errors))) < 0.4  # mm at 0.1 mm per pixel: bands are 1-2 mm


def test_the_display_sink_sends_a_frames_bands_together():
    """DisplaySink offers a frame once its last band has come: one wire MEASUREMENT per band, in
    band order, with the frame's capture time, and the label map once."""
    from edge.frame import Measurement
    from edge.sinks.display import DisplaySink

    class Link:
        def __init__(self):
            self.offers = []

        def offer(self, measurement, labels=None):
            self.offers.append((measurement, labels))

        def pump(self, timeout=0):
            pass

    sink = DisplaySink("loop://", model_id=0xAB)
    sink.link = Link()
    labels = np.zeros((8, 8), np.uint8)
    seg = seg_of(labels)
    ms = [Measurement(4, 1.5, 3.0, 0.1, "mm", 0, 10, 0.01, {}, band=i, bands=2) for i in range(2)]
    sink.write(ms[0], seg)
    assert sink.link.offers == []  # waits for the frame's last band
    sink.write(ms[1], seg)
    (wire, sent_labels), = sink.link.offers
    assert [(w.band, w.bands, w.model_id, w.t_capture_us) for w in wire] == [(0, 2, 0xAB, 1_500_000), (1, 2, 0xAB, 1_500_000)]
    assert sent_labels is labels
    sink.write(Measurement(5, 2.0, 1.0, 0.1, "mm", 0, 10, 0.01, {}), seg)  # a single-band frame: at once
    assert len(sink.link.offers) == 2 and [(w.band, w.bands) for w in sink.link.offers[1][0]] == [(0, 1)]
