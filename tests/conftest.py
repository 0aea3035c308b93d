"""Shared fixtures: a tiny U-Net trained for a few seconds on small-field phantom scans (where the
TLF spans several pixels even at 64x64) and converted to a real int8 bundle."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"  # the whole real material, beside the repository (may be absent)
TESTDATA = REPO / "tests" / "data"  # real files kept in the repository (tests/data/README.md)
DICOM_DIR = TESTDATA / "dicom_us"  # every DICOM of REALDATA/dicom_us
APO_FEW = TESTDATA / "dltrack_apo"  # 5 DL_Track screenshots with their masks
SHARED_ABSENT = "shared real data (../shared/realdata) is absent"  # the reason of every skip for want of it
TINY_FIELD_MM = 16.0
TINY_SPACING = (TINY_FIELD_MM / 64, TINY_FIELD_MM / 64)


def small_field_set(n: int, seed: int, size: int = 64):
    """n phantom scans of a 16 mm field at 64x64 with a 1.6-2.5 mm TLF: (images NxHxWx1, labels, spacings).
    size: another side in pixels, the field growing with it (the same 0.25 mm pixels and layers)."""
    from edge.sim import phantom

    rng = np.random.default_rng(seed)
    field = TINY_FIELD_MM * size / 64
    images, labels = [], []
    for i in range(n):
        a = phantom.Anatomy(depth_mm=field, width_mm=field, skin_mm=0.8, fat_mm=float(rng.uniform(3, 7)),
                            tlf_mm=float(rng.uniform(1.6, 2.5)), sublayers=int(rng.integers(1, 4)),
                            tilt_deg=float(rng.uniform(-6, 6)), wave_amp_mm=0.3, wave_phase=float(rng.uniform(0, 6.28)))
        s = phantom.render(a, phantom.random_machine(rng), (size, size), seed=seed * 10_000 + i)
        images.append(s.image[..., None])
        labels.append(s.labels)
    return np.stack(images), np.stack(labels), [TINY_SPACING] * n


def pytest_terminal_summary(terminalreporter):
    """Say how many tests did not run for want of the shared real data, so a plain clone's run says so."""
    skipped = terminalreporter.stats.get("skipped", [])
    missing = [r for r in skipped if SHARED_ABSENT in str(getattr(r, "longrepr", ""))]
    if missing:
        terminalreporter.write_line(f"{len(missing)} test(s) skipped: {SHARED_ABSENT}; the copies in tests/data ran")


@pytest.fixture
def needs_ocr():
    """Skips a test that reads a screen's numbers where OCR is not installed; fails it in CI,
    which installs it."""
    from edge.screen import ocr

    why = ocr.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"OCR is missing in CI: {why} (.ci/run installs tesseract-ocr)")
        pytest.skip(f"OCR is not installed: {why}")


@pytest.fixture(scope="session")
def tiny_spec():
    from edge.model.preprocess import PreprocessSpec

    return PreprocessSpec(height=64, width=64)


@pytest.fixture(scope="session")
def tiny_val():
    return small_field_set(16, seed=2)


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, tiny_spec, tiny_val):
    pytest.importorskip("tensorflow")
    from convert.train import TrainOptions, train

    x, y, _ = small_field_set(320, seed=1)
    out = tmp_path_factory.mktemp("tiny_train")
    opts = TrainOptions(epochs=8, batch_size=16, base_filters=8, depth=2, seed=3, patience=8, learning_rate=3e-3)
    return train(out, tiny_spec, opts, train_data=(x, y), val_data=tiny_val[:2], verbose=0)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_model_path, tiny_spec):
    from convert.quantize import load_keras_model, quantize_to_bundle

    model = load_keras_model(tiny_model_path)
    calib = small_field_set(32, seed=5)[0]
    return quantize_to_bundle(model, calib, tiny_spec, tmp_path_factory.mktemp("tiny_bundle"))


APO_CONFIG = REPO / "examples" / "dltrack_apo" / "dataset.toml"
APO_SIZE = 128


def apo_crops(folder: Path = APO_FEW):
    """The DL_Track screenshots of `folder` cut to their B-mode region as the device cuts them
    (edge.screen.roi), with their masks cut alike: (stems, images, labels) at native size."""
    from edge.data.dataset import iter_dataset, read_dataset_config
    from edge.screen.roi import crop, detect_roi

    stems, images, labels = [], [], []
    for stem, img, lab in iter_dataset(folder, read_dataset_config(APO_CONFIG)):
        roi = detect_roi(img)
        stems.append(stem)
        images.append(crop(img, roi) if roi is not None else img)
        labels.append(crop(lab, roi) if roi is not None else lab)
    return stems, images, labels


@pytest.fixture(scope="session")
def apo_bundle(tmp_path_factory):
    """A tiny two-class (background / aponeurosis) U-Net trained until it draws the bands of the
    five real DL_Track crops of tests/data, as an int8 bundle of 128x128 (no domain statistics)."""
    pytest.importorskip("tensorflow")
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.train import TrainOptions, train
    from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image

    spec = PreprocessSpec(APO_SIZE, APO_SIZE)
    _, images, labels = apo_crops()
    x = np.stack([to_model_image(im, spec) for im in images])
    y = np.stack([resize_labels(lab, spec) for lab in labels])
    opts = TrainOptions(epochs=30, batch_size=2, base_filters=8, depth=3, seed=0, patience=30, learning_rate=3e-3,
                        classes=2, class_weights=(1.0, 5.0), select="band_dice")
    best = train(tmp_path_factory.mktemp("apo_train"), spec, opts, train_data=(x, y), val_data=(x, y), verbose=0)
    calib = np.concatenate([x, x[:, :, ::-1]])  # the images and their mirror images: 10, the least is 8
    return quantize_to_bundle(load_keras_model(best), calib, spec, tmp_path_factory.mktemp("apo_bundle"),
                              classes=["background", "aponeurosis"])
