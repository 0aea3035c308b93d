"""The out-of-domain guard's features (edge.measure.domain.image_features, margin_features) as the
former code computed them: the bundles' domain statistics were fitted on those numbers, so the
faster code must give every feature to float32 rounding (1e-5 relative, 1e-6 near 0), texture_8px
(its sigma-8 blur now made at half resolution) within TEXTURE_8PX_TOLERANCE, and the same
verdicts. The former code is kept below, verbatim, as the reference."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from conftest import APO_FEW, DICOM_DIR, REALDATA, SHARED_ABSENT
from edge.measure.domain import (
    BLANK_LEVEL,
    IMAGE_FEATURES,
    MARGIN_FEATURES,
    MIN_SCALE,
    SATURATED_LEVEL,
    UNCERTAIN_LOGITS,
    _beyond,
    _blur8,
    _workspace,
    image_features,
    margin_features,
)
from edge.model.bundle import DEMO_BUNDLE, load_bundle
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
# texture_8px (the mean |sigma-4 blur - sigma-8 blur| of the rank image) may move by 1 % of
# MIN_SCALE, the least spread any bundle scales a statistic by (the demo bundle's texture_8px scale is
# MIN_SCALE itself, 0.02): under 1 % of one spread in every bundle, a quarter of what rounding the
# bundles' reference rows to 4 decimals already moves them by (5e-5 = 0.25 % of that spread) times
# four. No image can move it farther (test_no_image_can_move_texture_8px_beyond_the_tolerance).
TEXTURE_8PX_TOLERANCE = 0.01 * MIN_SCALE
T8 = IMAGE_FEATURES.index("texture_8px")


def assert_same(new, old, names, absolute=None):
    """Every value to float32 rounding, or within `absolute` (one per name, 0 for none) of the former."""
    new, old = np.asarray(new, np.float64), np.asarray(old, np.float64)
    within = np.abs(new - old) <= (0.0 if absolute is None else np.asarray(absolute))
    close = (
        (np.abs(new - old) <= 1e-5 * np.abs(old))
        | (np.abs(new - old) <= 1e-6)
        | within
        | (np.isnan(new) & np.isnan(old))
    )
    assert close.all(), {n: (o, v) for n, o, v, c in zip(names, old, new, close) if not c}


FEATURE_TOLERANCE = [TEXTURE_8PX_TOLERANCE if n == "texture_8px" else 0.0 for n in IMAGE_FEATURES]


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


@pytest.fixture(scope="module")
def shared_real_images(segmenter):
    """A quarter of the shared DL_Track screenshots (every image size but one) and the shared skin
    scan, as the chain makes them; skipped without ../shared/realdata."""
    if not REALDATA.is_dir():
        pytest.skip(SHARED_ABSENT)
    paths = sorted((REALDATA / "dltrack_apo" / "images").glob("*.tif"))[::4] + [REALDATA / "skin_seg" / "native_res_skin.png"]
    images = [to_model_image(f.image, segmenter.spec) for p in paths for f in frames_of(str(p), n=1)]
    assert len(images) == len(paths) == 31
    return images


def phantom_images():
    return [scan(seed).image for seed in range(6)] + [scan(seed, wide=True, artefacts=0.5).image for seed in (7, 8, 9)]


def phantom_screen_images(spec):
    """The phantom scanner's screens through the ROI stage, as a cart sees them."""
    return [to_model_image(f.image, spec) for f in frames_of("phantom://screen?frames=30")]


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


def test_the_image_features_are_the_former_ones_on_real_phantom_and_edge_case_images(real_images, segmenter):
    odd_sizes = [np.random.default_rng(4).integers(0, 256, shape).astype(np.uint8) for shape in ((255, 201), (20, 31))]
    images = real_images + phantom_images() + phantom_screen_images(segmenter.spec)
    for im in images + list(edge_case_images().values()) + odd_sizes:
        assert_same(image_features(im), old_image_features(im), IMAGE_FEATURES, FEATURE_TOLERANCE)


def test_the_image_features_are_the_former_ones_on_the_shared_real_images(shared_real_images):
    for im in shared_real_images:
        assert_same(image_features(im), old_image_features(im), IMAGE_FEATURES, FEATURE_TOLERANCE)


def test_the_demo_bundles_training_images_still_give_its_recorded_statistics():
    """The first of the phantom scenes the demo bundle's statistics were fitted on: each row as the
    manifest records it (to its 4 decimals), texture_8px within the tolerance besides."""
    from convert.inputs import phantom_domain_images

    bundle = load_bundle(DEMO_BUNDLE)
    images, name = phantom_domain_images(40, bundle.spec)
    assert bundle.domain.fitted_on == name.replace("+40", f"+{len(bundle.domain.reference)}")
    for im, row in zip(images, bundle.domain.reference):
        rounding = np.full(len(IMAGE_FEATURES), 5e-5 + 1e-9)
        assert_same(image_features(im), row, IMAGE_FEATURES, rounding + FEATURE_TOLERANCE)


def test_the_half_resolution_blur_mirrors_the_borders_as_opencv_does():
    """At the borders the sigma-8 blur sees the image mirrored (OpenCV's BORDER_REFLECT_101): the
    same numbers as in the middle of a larger, mirrored image, even and odd sizes alike."""
    rng = np.random.default_rng(5)
    for h, w in ((256, 256), (255, 201)):
        r = rng.random((h, w), np.float32)
        m = 64
        mirrored = cv2.copyMakeBorder(r, m, m, m, m, cv2.BORDER_REFLECT_101)
        inside = _blur8(cv2.GaussianBlur(mirrored, (0, 0), 4), _workspace(h + 2 * m, w + 2 * m))[m:-m, m:-m].copy()
        at_border = _blur8(cv2.GaussianBlur(r, (0, 0), 4), _workspace(h, w))
        assert np.abs(at_border - inside).max() <= 3e-7  # float32 rounding: 2 steps of 6e-8, at 0.5


def test_no_image_can_move_texture_8px_beyond_the_tolerance():
    """texture_8px moves by at most the largest change of the sigma-8 blur, and that change at a pixel
    is the ranks (0 to 1) weighted by the difference of the two kernels, whose weights each sum to 1:
    at most half that difference's L1 norm. The half-resolution blur's kernel depends on a pixel's
    phase (even or odd row and column), and the responses to impulses at the four phases hold every
    phase's kernel; near a border, mirroring folds the kernels, which only lowers the norm."""
    n = 256
    norms = np.zeros((2, 2))
    for qy in (0, 1):
        for qx in (0, 1):
            impulse = np.zeros((n, n), np.float32)
            impulse[n // 2 + qy, n // 2 + qx] = 1.0
            b4 = cv2.GaussianBlur(impulse, (0, 0), 4)
            diff = np.abs(_blur8(b4, _workspace(n, n)) - cv2.GaussianBlur(impulse, (0, 0), 8)).astype(np.float64)
            norms += [[diff[py::2, px::2].sum() for px in (0, 1)] for py in (0, 1)]
    assert norms.max() / 2 <= TEXTURE_8PX_TOLERANCE  # 1.1e-4 measured: 0.55 % of MIN_SCALE


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


def test_the_demo_bundles_guard_gives_the_former_verdicts(segmenter, real_images, shared_real_images):
    """The same verdicts, and distances within what texture_8px's tolerance allows: the distance to
    the nearest training image moves by at most the scaled change of one statistic, the Mahalanobis
    distance by that change times the square root of its precision's diagonal entry (5.7 in the demo
    bundle: 0.057, 0.9 % of its limit, at the most)."""
    domain = segmenter.bundle.domain
    moved = TEXTURE_8PX_TOLERANCE / domain.scale[T8]
    screens = phantom_screen_images(segmenter.spec)
    images = real_images + phantom_images() + list(edge_case_images().values()) + shared_real_images + screens
    verdicts = []
    for im in images:
        x = model_image(segmenter, im)
        logits = segmenter.logits(segmenter.infer(x))
        new = domain.check(x, logits, segmenter.logit_scale)
        out, dist, spread, margins = old_check(domain, x, logits, segmenter.logit_scale)
        assert new.out == out
        assert abs(new.distance - dist) <= moved + 1e-5 * dist
        assert abs(new.spread - spread) <= moved * math.sqrt(domain.precision[T8, T8]) + 1e-5 * spread
        assert_same(new.margins, margins, MARGIN_FEATURES)
        verdicts.append(out)
    assert all(verdicts[:12]) and not any(verdicts[12:18])  # the real images out, the plain phantom scans in
    assert all(verdicts[-len(screens) - len(shared_real_images) : -len(screens)])  # the shared real images out
    assert not any(verdicts[-len(screens) :])  # the phantom scanner's screens in
