"""The out-of-domain guard's features (edge.measure.domain.image_features, margin_features) as the
former code computed them: the bundles' domain statistics were fitted on those numbers, so the
faster code must give every feature to float32 rounding (1e-5 relative, 1e-6 near 0) and the same
verdicts. The former code is kept below, verbatim, as the reference."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from conftest import APO_FEW, DICOM_DIR
from edge.measure.domain import (
    BLANK_LEVEL,
    IMAGE_FEATURES,
    MARGIN_FEATURES,
    SATURATED_LEVEL,
    UNCERTAIN_LOGITS,
    _beyond,
    image_features,
    margin_features,
)
from edge.model.preprocess import to_model_image
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.sim.render import scan
from test_domain_guard import frames_of


# ---- the former code (edge/measure/domain.py before issue 25), verbatim ----
def old_image_features(model_image: np.ndarray) -> np.ndarray:
    """The 20 image statistics (IMAGE_FEATURES) of a uint8 model image (H, W) or (H, W, C)."""
    img = np.asarray(model_image)
    g8: np.ndarray = (
        img.reshape(img.shape[:2]) if img.ndim == 2 or img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    )
    h, w = g8.shape
    inside = g8 > BLANK_LEVEL
    use_inside = inside.mean() > 0.05
    g = g8.astype(np.float32) / 255.0
    v = g[inside] if use_inside else g.ravel()
    hist = np.bincount(g8.ravel(), minlength=256).astype(np.float64)
    if use_inside:
        hist[: BLANK_LEVEL + 1] = 0
    cdf = np.cumsum(hist) / max(hist.sum(), 1.0)
    r = cdf[g8].astype(np.float32)  # each pixel's grey-level rank, 0-1
    r[~inside if use_inside else np.zeros_like(inside)] = 0.0
    grey = [
        float(v.mean()),
        float(v.std()),
        *(float(q) for q in np.percentile(v, [5, 50, 95])),
        float(1.0 - inside.mean()),
        float((g8 >= SATURATED_LEVEL).mean()),
    ]
    b1, b2, b4, b8 = (cv2.GaussianBlur(r, (0, 0), s) for s in (1, 2, 4, 8))
    texture = [
        float(np.abs(r - b1).mean()),
        float(np.abs(b1 - b2).mean()),
        float(np.abs(b2 - b4).mean()),
        float(np.abs(b4 - b8).mean()),
    ]
    gy = cv2.Sobel(b1, cv2.CV_32F, 0, 1)
    gx = cv2.Sobel(b1, cv2.CV_32F, 1, 0)
    jxx, jyy, jxy = (cv2.blur(a, (15, 15)) for a in (gx * gx, gy * gy, gx * gy))
    coherence = float((np.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / (jxx + jyy + 1e-6)).mean())
    anisotropy = float(np.abs(gy).mean() / (np.abs(gx).mean() + 1e-6))
    z = r - b4
    power = float((z * z).mean()) + 1e-8
    axial = float((z[2:] * z[:-2]).mean() / power)
    lateral = float((z[:, 2:] * z[:, :-2]).mean() / power)
    depth = [float(r[i * h // 4 : (i + 1) * h // 4].mean()) for i in range(4)]
    across = float(r.mean(axis=0).std())
    return np.array(grey + texture + [coherence, anisotropy, axial, lateral] + depth + [across], np.float64)


def old_margin_features(logits: np.ndarray, logit_scale: float = 1.0) -> np.ndarray:
    """The model's confidence in one frame (MARGIN_FEATURES): of each pixel's best minus
    second-best class score in logit units, the mean, the 10th percentile and the share under
    UNCERTAIN_LOGITS."""
    x = np.asarray(logits)
    if x.shape[-1] == 2:
        m = np.abs(x[..., 1].astype(np.float32) - x[..., 0])
    else:  # the two largest scores of each pixel
        top = np.partition(x, x.shape[-1] - 2, axis=-1)
        m = top[..., -1].astype(np.float32) - top[..., -2]
    m = m.ravel() * np.float32(logit_scale)
    return np.array([float(m.mean()), float(np.percentile(m, 10)), float((m < UNCERTAIN_LOGITS).mean())], np.float64)


# ---- the comparison ----
def assert_same(new, old, names):
    new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
    close = (np.abs(new - old) <= 1e-5 * np.abs(old)) | (np.abs(new - old) <= 1e-6) | (np.isnan(new) & np.isnan(old))
    assert close.all(), {n: (o, v) for n, o, v, c in zip(names, old, new, close) if not c}


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter.create(SegmenterOptions(num_threads=1))


@pytest.fixture(scope="module")
def real_images(segmenter):
    """The model images of the real DL_Track screenshots and the first frame of each real DICOM,
    as the chain makes them (ROI, then the demo bundle's preprocessing)."""
    urls = [str(p) for p in sorted((APO_FEW / "images").glob("*.tif"))] + [str(p) for p in sorted(DICOM_DIR.glob("*.dcm"))]
    images = [to_model_image(f.image, segmenter.spec) for u in urls for f in frames_of(u, n=1)]
    assert len(images) == 12
    return images


def phantom_images():
    return [scan(seed).image for seed in range(6)] + [scan(seed, wide=True, artefacts=0.5).image for seed in (7, 8, 9)]


def edge_case_images():
    rng = np.random.default_rng(3)
    mostly_blank = np.zeros((256, 256), np.uint8)
    mostly_blank[100:140, 100:140] = rng.integers(0, 256, (40, 40))  # 2.4 % inside: use_inside is False
    bgr = cv2.cvtColor(scan(5).image, cv2.COLOR_GRAY2BGR)
    bgr[..., 0] = rng.integers(0, 256, (256, 256))  # three channels that differ
    return {
        "black": np.zeros((256, 256), np.uint8),
        "saturated": np.full((256, 256), 255, np.uint8),
        "mostly blank": mostly_blank,
        "3 channels": bgr,
        "1 channel axis": scan(6).image[..., None],
        "noise 128x96": rng.integers(0, 256, (128, 96)).astype(np.uint8),
        "two levels": np.where(rng.random((256, 256)) < 0.5, 0, 200).astype(np.uint8),
    }


def test_the_image_features_are_the_former_ones_on_real_phantom_and_edge_case_images(real_images):
    images = real_images + phantom_images() + list(edge_case_images().values())
    for im in images:
        assert_same(image_features(im), old_image_features(im), IMAGE_FEATURES)


def test_threads_computing_features_at_once_each_write_into_their_own_arrays():
    images = phantom_images() + [edge_case_images()["noise 128x96"]]  # two sizes: a thread's arrays replaced
    expected = [image_features(im) for im in images]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(image_features, images * 6))
    for new, old in zip(got, expected * 6):
        assert_same(new, old, IMAGE_FEATURES)


def test_the_mostly_blank_image_uses_every_pixel():
    im = edge_case_images()["mostly blank"]
    assert (im > BLANK_LEVEL).mean() <= 0.05


def test_the_margin_features_are_the_former_ones(segmenter, real_images):
    rng = np.random.default_rng(1)
    images = [model_image(segmenter, im) for im in real_images + phantom_images()]
    cases = [(segmenter.logits(segmenter.infer(im)), segmenter.logit_scale) for im in images]
    for k in (2, 3, 4):
        cases += [
            (rng.integers(-128, 128, (256, 256, k)).astype(np.int8), 0.1),
            (rng.integers(-3, 3, (64, 64, k)).astype(np.int8), 0.5),  # many ties
            (rng.integers(0, 256, (64, 64, k)).astype(np.uint8), 0.25),
            (rng.normal(0, 3, (256, 256, k)).astype(np.float32), 1.0),
            (np.round(rng.normal(0, 3, (64, 64, k))).astype(np.float32), 1.0),  # ties in floats
            (np.zeros((32, 32, k), np.int8), 0.2),
            (np.full((32, 32, k), -128, np.int8), 0.2),
        ]
    extreme = np.stack([np.full((8, 8), -128), np.full((8, 8), 127), np.zeros((8, 8))], -1).astype(np.int8)
    cases.append((extreme, 0.05))  # the widest int8 margin, 255 steps
    for logits, scale in cases:
        assert_same(margin_features(logits, scale), old_margin_features(logits, scale), MARGIN_FEATURES)


def model_image(segmenter, im):
    return to_model_image(im if im.ndim == 2 or im.shape[2] != 1 else im[..., 0], segmenter.spec)


def old_check(domain, image, logits, scale):
    """DomainModel.check with the former features: (out, distance, spread, margins)."""
    features = old_image_features(image)
    dist, _ = domain.distance(features)
    spread = domain.spread(features)
    margins = tuple(old_margin_features(logits, scale))
    out = dist > domain.distance_limit or spread > domain.spread_limit or _beyond(margins, domain.margin_limits)
    return out, dist, spread, margins


def test_the_demo_bundles_guard_gives_the_former_verdicts(segmenter, real_images):
    domain = segmenter.bundle.domain
    images = real_images + phantom_images() + list(edge_case_images().values())
    verdicts = []
    for im in images:
        x = model_image(segmenter, im)
        logits = segmenter.logits(segmenter.infer(x))
        new = domain.check(x, logits, segmenter.logit_scale)
        out, dist, spread, margins = old_check(domain, x, logits, segmenter.logit_scale)
        assert new.out == out
        assert math.isclose(new.distance, dist, rel_tol=1e-5) and math.isclose(new.spread, spread, rel_tol=1e-5)
        assert_same(new.margins, margins, MARGIN_FEATURES)
        verdicts.append(out)
    assert all(verdicts[:12]) and not any(verdicts[12:18])  # the real images out, the plain phantom scans in
