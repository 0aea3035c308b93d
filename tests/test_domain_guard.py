"""The out-of-domain guard (edge.measure.domain): a bundle records what its training images looked like
and how sure its model is of held-out images; the device flags frames far outside
(OUT_OF_DOMAIN, not measured). The shipped demo bundle (phantom-trained) flags the real DL_Track
screenshots and the real DICOMs and none of its phantom scanner's frames; a bundle trained on
real DL_Track images flags none of its held-out images and flags phantom screens."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from conftest import APO_CONFIG, APO_FEW, DICOM_DIR, REALDATA, SHARED_ABSENT
from edge.model.bundle import DEMO_BUNDLE, load_bundle, update_manifest
from edge.measure.domain import IMAGE_FEATURES, DomainModel, fit_domain, image_features, margin_features
from edge.errors import BundleError
from edge.frame import Frame
from edge.runtime.chain import measure_frame
from edge.screen.prepare import Prepare
from edge.model.preprocess import to_model_image
from edge.measure.quality import REJECTING, Quality
from edge.model.segmenter import Segmenter
from edge.runtime.factory import open_source
from edge.measure.thickness import ThicknessOptions

SHARED_APO = REALDATA / "dltrack_apo"


def frames_of(url: str, n: int | None = None):
    """The frames a cart's pipeline would segment: the source's frames through the ROI stage."""
    with open_source(url) as src:
        cropped, prep = bool(getattr(src, "cropped", False)), Prepare()
        k = 0
        while n is None or k < n:
            f = src.read()
            if f is None:
                break
            g, _ = prep(f, cropped)
            if g is not None:
                k += 1
                yield g


def device_flags(segmenter: Segmenter, frames) -> list:
    """Each frame's measurements as the runtime makes them, with the bundle's guard."""
    out = []
    for f in frames:
        seg = segmenter.segment(f)
        out.append(measure_frame(seg, ThicknessOptions(), segmenter.bundle.tlf_class, domain=segmenter.bundle.domain,
                                 classes=segmenter.classes))
    return out


@pytest.fixture(scope="module")
def demo():
    return Segmenter(load_bundle(DEMO_BUNDLE), 2)


def test_the_demo_bundle_records_its_domain_and_keeps_its_model():
    b = load_bundle(DEMO_BUNDLE)
    d = b.domain
    assert d is not None and len(d.reference) >= 200 and d.margin_limits is not None
    assert "phantom" in d.fitted_on and "phantom" in d.margins_on
    assert b.sha256 == "fae201a37c2f0dd5fc7d47584064f25958e5f60defe6488d97b1f074f33d96c3"  # model.tflite as tlf-convert rewrite left it


def test_the_demo_bundle_flags_the_real_dltrack_screenshots(demo):
    frames = [f for p in sorted((APO_FEW / "images").glob("*.tif")) for f in frames_of(str(p))]
    assert len(frames) == 5
    for ms in device_flags(demo, frames):
        for m in ms:
            assert m.flags & Quality.OUT_OF_DOMAIN and math.isnan(m.thickness) and "out_of_domain" in m.extra
            assert Quality.OUT_OF_DOMAIN & REJECTING


def test_the_demo_bundle_flags_the_real_dicoms(demo):
    frames = [f for p in sorted(DICOM_DIR.glob("*.dcm")) for f in frames_of(str(p), n=1)]
    assert len(frames) == 7
    assert all(m.flags & Quality.OUT_OF_DOMAIN for ms in device_flags(demo, frames) for m in ms)


def test_the_demo_bundle_flags_none_of_its_phantom_scanners_frames(demo):
    frames = list(frames_of("phantom://screen?seed=11&frames=24")) + list(frames_of("phantom://clip?seed=4&frames=24"))
    flagged = [m for ms in device_flags(demo, frames) for m in ms if m.flags & Quality.OUT_OF_DOMAIN]
    assert not flagged, [m.extra.get("out_of_domain") for m in flagged]


def test_the_flag_and_its_reason_reach_the_log(tmp_path):
    from edge.cli import main

    rc = main(["run", "--source", str(APO_FEW / "images" / "img_00002.tif"), "--out", str(tmp_path), "--quiet",
               "--display", "none"])
    assert rc == 1  # nothing measured: said in one line
    run_dir = next(tmp_path.iterdir())
    (rec,) = [json.loads(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
    assert "OUT_OF_DOMAIN" in rec["flag_names"] and rec["thickness"] is None
    assert "training images" in rec["out_of_domain"] or "confidence" in rec["out_of_domain"]
    assert json.loads((run_dir / "summary.json").read_text())["flagged"]["OUT_OF_DOMAIN"] == 1


def test_domain_statistics_are_checked_when_the_bundle_loads(tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(DEMO_BUNDLE, dst)
    b = load_bundle(dst)
    bad = dict(b.manifest["domain"], features=["mean"])
    with pytest.raises(BundleError, match="other image or margin features"):
        load_bundle(update_manifest(b, domain=bad).path)
    bad = dict(b.manifest["domain"], distance_limit=float("nan"))
    with pytest.raises(BundleError, match="finite"):
        load_bundle(update_manifest(b, domain=bad).path)


def test_the_rule_flags_beyond_the_training_spread_and_the_held_out_margins():
    rng = np.random.default_rng(0)
    train = rng.normal(0.5, 0.05, (40, len(IMAGE_FEATURES)))
    held = np.column_stack([rng.normal(5.0, 0.2, 30), rng.normal(2.0, 0.2, 30), rng.uniform(0.01, 0.02, 30)])
    d = fit_domain(train, held)
    assert d.distance(train[3])[0] == 0.0 and d.distance(train[3] + 0.01)[0] < d.distance_limit
    assert d.distance(train[3] + 0.5)[0] > d.distance_limit
    low_mean, low_p10, high_share = d.margin_limits
    assert low_mean < held[:, 0].min() and low_p10 < held[:, 1].min() and high_share > held[:, 2].max()
    assert DomainModel.from_dict(json.loads(json.dumps(d.to_dict()))).margin_limits == pytest.approx(d.margin_limits,
                                                                                                      abs=1e-4)


def test_margin_features_are_the_logit_margins():
    logits = np.zeros((10, 10, 3), np.float32)
    logits[..., 0] = 4.0
    logits[:2, :, 1] = 3.5  # 20 pixels with a margin of 0.5
    f = margin_features(logits, logit_scale=1.0)
    assert f[0] == pytest.approx(0.2 * 0.5 + 0.8 * 4.0) and f[2] == pytest.approx(0.2)
    assert margin_features(logits * 2, logit_scale=0.5) == pytest.approx(f)  # int8 codes times their scale


needs_shared = pytest.mark.skipif(not (SHARED_APO / "images").is_dir(), reason=SHARED_ABSENT)


@needs_shared
def test_a_bundle_trained_on_dltrack_flags_none_of_its_held_out_images_and_flags_phantom_screens(tmp_path):
    """A tiny two-class model trained on real DL_Track crops (look-alike groups apart): its
    domain comes from its training images (statistics) and its validation images (margins);
    none of the held-out crops is flagged, every phantom scanner screen is."""
    pytest.importorskip("tensorflow")
    from conftest import apo_crops
    from convert.domain import record_domain
    from convert.folds import look_alike_groups, split_groups, thumbnail
    from convert.quantize import load_keras_model, quantize_to_bundle
    from convert.train import TrainOptions, train
    from edge.data.dataset import read_dataset_config, write_dataset
    from edge.model.preprocess import PreprocessSpec, resize_labels

    sub = tmp_path / "sub"  # every third image of the shared set: 40 crops of every image size
    for part in ("images", "masks"):
        (sub / part).mkdir(parents=True)
        for p in sorted((SHARED_APO / part).glob("*.tif"))[::3]:
            (sub / part / p.name).symlink_to(p)
    shutil.copy(APO_CONFIG, sub / "dataset.toml")
    stems, images, labels = apo_crops(sub)
    groups = look_alike_groups(np.stack([thumbnail(im) for im in images]))
    held = split_groups(groups, 0.25, seed=0)
    val = np.zeros(len(stems), bool)
    rest = np.flatnonzero(~held)
    val[rest[split_groups(groups[rest], 0.25, seed=1)]] = True
    train_sel = ~held & ~val
    spec = PreprocessSpec(128, 128)
    x = np.stack([to_model_image(im, spec) for im in images])
    y = np.stack([resize_labels(lab, spec) for lab in labels])
    opts = TrainOptions(epochs=12, batch_size=4, base_filters=8, depth=3, seed=0, patience=12, learning_rate=3e-3,
                        classes=2, class_weights=(1.0, 5.0))
    best = train(tmp_path / "m", spec, opts, (x[train_sel], y[train_sel]), (x[val], y[val]), verbose=0)
    bundle = quantize_to_bundle(load_keras_model(best), x[train_sel], spec, tmp_path / "b",
                                classes=["background", "aponeurosis"])
    bundle = record_domain(bundle, x[train_sel], x[val], "training crops", "validation crops")
    seg = Segmenter(bundle, 2)
    held_frames = [Frame(images[i], 0.0, i) for i in np.flatnonzero(held)]
    assert len(held_frames) >= 8
    flagged = [ms[0].extra.get("out_of_domain") for ms in device_flags(seg, held_frames)
               if ms[0].flags & Quality.OUT_OF_DOMAIN]
    assert not flagged, flagged
    screens = list(frames_of("phantom://screen?seed=3&frames=12"))
    assert len(screens) == 12
    assert all(ms[0].flags & Quality.OUT_OF_DOMAIN for ms in device_flags(seg, screens))
    assert not (image_features(x[0]) == 0).all()
