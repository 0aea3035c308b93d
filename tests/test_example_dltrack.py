"""The real-data example (examples/dltrack_apo/run.sh) end to end on a handful of DL_Track images
with a tiny model: crop and split, train, quantize, validate with per-band thickness in native
pixels. The figures must be real numbers, and int8 must agree with float within bounds that a
broken conversion (calibrated on black frames) fails."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_ABSENT

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "dltrack_apo"
SRC = REPO.parent / "shared" / "realdata" / "dltrack_apo"
CONFIG = EXAMPLE / "dataset.toml"
SIZE = 128  # the family's smallest side; the bands are still ~2-4 px thick here
MIN_AGREEMENT = 0.97  # int8 versus float pixel agreement
MAX_MIOU_DROP = 0.05

needs_data = pytest.mark.skipif(not (SRC / "images").is_dir(), reason=SHARED_ABSENT)


def _example_module(name: str):
    """Import one of the example's scripts (examples/dltrack_apo/NAME.py) as a module."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLE))


def _prepare():
    return _example_module("prepare")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """prepare -> train -> quantize, as run.sh does, on 14 images at 128x128 for 12 epochs."""
    pytest.importorskip("tensorflow")
    if not (SRC / "images").is_dir():
        pytest.skip(SHARED_ABSENT)
    from convert.cli import main

    work = tmp_path_factory.mktemp("dltrack")
    assert _prepare().main(["--src", str(SRC), "--config", str(CONFIG), "--out", str(work / "data"),
                            "--max-images", "14", "--holdout", "0.25", "--seed", "0"]) == 0
    # small batches, a high rate and a strong band weight: the bands appear after ~4 epochs, not ~40
    assert main(["train", "--data", str(work / "data" / "train"), "--out", str(work / "model"), "--size", str(SIZE),
                 "--base-filters", "4", "--depth", "2", "--batch", "2", "--learning-rate", "3e-3", "--epochs", "12",
                 "--patience", "12", "--class-weights", "1,10", "--seed", "0"]) == 0
    model = work / "model" / "model.keras"
    assert main(["quantize", str(model), "--calib", str(work / "data" / "train" / "images"),
                 "--dataset-config", str(CONFIG), "--out", str(work / "bundle")]) == 0
    return work


def _validate(work, bundle, out) -> tuple[int, dict]:
    from convert.cli import main

    rc = main(["validate", str(bundle), "--float", str(work / "model" / "model.keras"),
               "--data", str(work / "data" / "heldout"), "--native-px", "--out", str(out)])
    return rc, json.loads((out / "validation.json").read_text())


@needs_data
def test_split_holds_out_whole_look_alike_groups(example):
    split = json.loads((example / "data" / "split.json").read_text())
    train, held = set(split["train"]), set(split["heldout"])
    assert train and held and not train & held and len(train | held) == 14
    assert split["max_cross_split_correlation"] < split["similar"]
    for part, stems in (("train", train), ("heldout", held)):
        files = {p.stem for p in (example / "data" / part / "images").iterdir()}
        assert files == stems
    # cropped to the B-mode region: no training image keeps the whole screenshot of a chrome-framed scan
    assert any(r[2:] != [w, h] for r, (w, h) in ((split["rects"][s], _size(s)) for s in train))


def _size(stem: str) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(SRC / "images" / f"{stem}.tif"), cv2.IMREAD_UNCHANGED)
    return img.shape[1], img.shape[0]


@needs_data
def test_bundle_is_a_two_class_aponeurosis_model(example):
    from edge.model.bundle import load_bundle

    b = load_bundle(example / "bundle")
    assert b.manifest["classes"] == ["background", "aponeurosis"] and b.tlf_class == 1
    assert b.manifest["output"]["shape"] == [1, SIZE, SIZE, 2] and b.manifest["input"]["dtype"] == "int8"


@needs_data
def test_validation_reports_band_figures_and_int8_agrees_with_float(example, tmp_path):
    rc, v = _validate(example, example / "bundle", tmp_path / "rep")
    assert rc in (0, 3)  # a 12-epoch model may miss the thickness-bias gate; the figures must be there
    assert v["unit"] == "px" and v["images"] == len(json.loads((example / "data" / "split.json").read_text())["heldout"])
    for side in ("float", "int8"):
        assert all(math.isfinite(x) for x in (v[side]["dice"][1], v[side]["iou"][1], v[side]["mean_iou"]))
        assert v[side]["dice"][1] > 0.05  # the tiny model does find bands
    bands = v["bands"]
    assert bands["true"] >= 2 * v["images"] - 1 and bands["truth_measured"] >= bands["true"] - 1
    th = v["thickness"]
    for key in ("float_vs_truth", "int8_vs_truth", "int8_vs_float"):
        assert th[key]["n"] >= 1 and math.isfinite(th[key]["bias"]) and math.isfinite(th[key]["mae"])
    assert v["int8_vs_float_pixel_agreement"] >= MIN_AGREEMENT
    assert v["float"]["mean_iou"] - v["int8"]["mean_iou"] <= MAX_MIOU_DROP
    assert abs(th["int8_vs_float"]["bias"]) < 1.0  # native px; a band is 7-21 px thick
    for name in ("validation.md", "bland_altman.png", "worst_frames.jpg"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    summary = _summary()
    text = summary.table(v, json.loads((example / "bundle" / "manifest.json").read_text()))
    assert "aponeurosis Dice" in text and "1st (most superficial) band (" in text


def _summary():
    return _example_module("summary")


@needs_data
def test_broken_conversion_fails_the_agreement_bounds(example, tmp_path):
    """The bounds above are not vacuous: the same model calibrated on black frames breaks them."""
    from convert.quantize import load_keras_model, quantize_to_bundle
    from edge.model.preprocess import PreprocessSpec

    model = load_keras_model(example / "model" / "model.keras")
    black = np.zeros((16, SIZE, SIZE, 1), np.uint8)
    black[:, 0, 0] = 1
    broken = quantize_to_bundle(model, black, PreprocessSpec(SIZE, SIZE), tmp_path / "broken",
                                classes=["background", "aponeurosis"], check_calibration_set=False)
    rc, v = _validate(example, broken.path, tmp_path / "rep")
    assert rc == 3
    assert (v["int8_vs_float_pixel_agreement"] < MIN_AGREEMENT
            or v["float"]["mean_iou"] - v["int8"]["mean_iou"] > MAX_MIOU_DROP)


@needs_data
def test_dataset_config_reads_a_folder_without_one(tmp_path):
    """--dataset-config points the commands at a folder we may not write in (the shared one has no
    config); without it, 0/255 masks are refused instead of becoming a 256-class model."""
    pytest.importorskip("tensorflow")
    from convert.cli import main

    stems = sorted(p.stem for p in (SRC / "images").glob("*.tif"))[:4]
    for sub in ("images", "masks"):
        (tmp_path / "set" / sub).mkdir(parents=True)
        for stem in stems:
            shutil.copy(SRC / sub / f"{stem}.tif", tmp_path / "set" / sub / f"{stem}.tif")
    common = ["train", "--data", str(tmp_path / "set"), "--size", "32", "--base-filters", "2", "--depth", "1",
              "--epochs", "1", "--batch", "4"]
    assert main(common + ["--out", str(tmp_path / "legacy")]) == 2
    assert main(common + ["--out", str(tmp_path / "m"), "--dataset-config", str(CONFIG)]) == 0
    from convert.quantize import load_keras_model

    assert load_keras_model(tmp_path / "m" / "model.keras").output_shape[-1] == 2


def test_classes_come_from_the_config_not_the_highest_label(tmp_path):
    """A set whose masks lack the last class still trains a model with every class of its config."""
    pytest.importorskip("tensorflow")
    from convert.cli import main
    from convert.data import DatasetConfig, write_dataset
    from convert.quantize import load_keras_model

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 32), dtype=np.uint8) for _ in range(4)]
    labels = [(np.arange(32)[:, None] >= 16).astype(np.uint8).repeat(32, axis=1) for _ in range(4)]  # classes 0, 1
    write_dataset(tmp_path / "set", images, labels, DatasetConfig(classes=("above", "tlf", "below")))
    assert main(["train", "--data", str(tmp_path / "set"), "--out", str(tmp_path / "m"), "--size", "32",
                 "--base-filters", "2", "--depth", "1", "--epochs", "1", "--batch", "4"]) == 0
    assert load_keras_model(tmp_path / "m" / "model.keras").output_shape[-1] == 3


def test_each_band_of_a_two_class_map_is_measured_on_its_own():
    """Two bands on background: the one-band measurement rejects the map (no 'below' class, two
    runs per column); per band, each is measured, with sub-pixel edges from the logits."""
    from edge.measure.bands import band_thickness, band_zones
    from edge.measure.thickness import measure_thickness

    h, w = 100, 120
    edges = [(20.3, 27.6), (60.0, 72.5)]  # rows where the band starts and ends
    centre = np.arange(h)[:, None] + 0.5
    margin = np.max([np.minimum(centre - a, b - centre) for a, b in edges], axis=0).repeat(w, axis=1)
    logits = np.stack([np.zeros((h, w)), margin], axis=-1).astype(np.float32)  # band minus background
    labels = (margin > 0).astype(np.uint8)
    assert math.isnan(measure_thickness(labels, logits).value)
    zones = band_zones(labels)
    assert len(zones) == 2 and not (zones[0] & zones[1]).any()
    assert band_thickness(labels, zones) == pytest.approx([8.0, 12.0])  # whole rows 20-27 and 60-71
    assert band_thickness(labels, zones, logits) == pytest.approx([7.3, 12.5], abs=1e-3)
    assert band_thickness(labels, zones, logits, spacing_mm=(2.0, 1.0)) == pytest.approx([14.6, 25.0], abs=1e-3)
    # a band broken into two runs inside its zone is rejected, not measured across the gap
    broken = labels.copy()
    broken[65, :] = 0
    assert math.isnan(band_thickness(broken, zones)[1]) and band_thickness(broken, zones)[0] == pytest.approx(8.0)
