"""The out-of-domain guard: is this frame like the images the model was trained on?

A model trained on one kind of image (a phantom, one scanner, one muscle) draws bands on
anything, and a confident-looking thickness of a frame unlike its training images is the worst
output this product can give. A bundle therefore records what its training images looked like
(`DomainModel`, manifest entry "domain", written by `tlf-convert quantize`, `cv` and `domain`):

- image statistics of the model input: 20 numbers per image (`image_features`): grey-level
  statistics of the image area (mean, spread, quantiles, blank and saturated shares), and,
  on the image's grey-level ranks (so that gain, contrast and gamma move them little), its
  texture at four scales, the coherence and direction of its structures, the axial and lateral
  correlation of its speckle, its brightness profile over depth and across the width;
- the model's own confidence on held-out images: per image, three summaries of each pixel's
  logit margin (best minus second-best class score, in logit units): its mean, its 10th
  percentile, and the share of pixels whose margin is under one logit (`margin_features`).

A frame is out of domain when its image statistics lie farther from every recorded training
image than `DISTANCE_SLACK` times what separates the training images from each other (the
`DISTANCE_QUANTILE` of their leave-one-out nearest-neighbour distances), or farther from the
training images as a whole (a Mahalanobis distance over their covariance, shrunk towards its
diagonal by `SHRINK`, which weighs a combination of statistics no training image shows) than
`SPREAD_SLACK` times the `SPREAD_QUANTILE` of the training images' own leave-one-out
Mahalanobis distances, or when the model is
less sure of it than of nearly all held-out images: a margin summary beyond the held-out
images' `MARGIN_QUANTILE` (the low end of the mean and the 10th percentile, the high end of the
uncertain share) by more than `MARGIN_SLACK` times their interdecile range. Distances are
measured on each statistic scaled by its spread over the training images (at least
`MIN_SCALE`). The rule and its constants are the same for every bundle; only the recorded
statistics differ.

Pure numpy and OpenCV: the device runs it on every frame (a few milliseconds at 256x256).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from edge.measure.scores import best_two
from edge.numbers import rounded

IMAGE_FEATURES = (
    "mean",
    "spread",
    "p5",
    "p50",
    "p95",
    "blank",
    "saturated",
    "texture_1px",
    "texture_2px",
    "texture_4px",
    "texture_8px",
    "coherence",
    "anisotropy",
    "axial_correlation",
    "lateral_correlation",
    "depth_profile_1",
    "depth_profile_2",
    "depth_profile_3",
    "depth_profile_4",
    "lateral_profile",
)
MARGIN_FEATURES = ("mean_margin", "margin_p10", "uncertain_share")
MARGIN_LOW_IS_OUT = (True, True, False)  # which end of each margin summary is out of domain
UNCERTAIN_LOGITS = 1.0  # a pixel whose margin is below this is uncertain

DISTANCE_QUANTILE = 0.99  # of the training images' leave-one-out nearest-neighbour distances
DISTANCE_SLACK = 1.5  # a frame farther than this times that quantile is out of domain
SHRINK = 0.3  # of the covariance towards its diagonal (few training images, 20 statistics)
SPREAD_QUANTILE = 0.9  # of the training images' leave-one-out Mahalanobis distances
SPREAD_SLACK = 1.5
MARGIN_QUANTILE = 0.01  # of the held-out images' margin summaries (0.99 for the uncertain share)
MARGIN_SLACK = 3.0  # times the held-out summaries' interdecile range, beyond that quantile
MIN_SCALE = 0.02  # the least spread a statistic is scaled by (all are of order 0.1-1)
BLANK_LEVEL = 2  # grey levels at or below this are blank (outside the scanner's image outline)
SATURATED_LEVEL = 250


_GREY = np.arange(256, dtype=np.float32) / np.float32(255.0)  # each grey level as image_features scales it


def image_features(model_image: np.ndarray) -> np.ndarray:
    """The 20 image statistics (IMAGE_FEATURES) of a uint8 model image (H, W) or (H, W, C).

    Of the grey levels of the scanner's image area (the pixels above BLANK_LEVEL, when more than
    5 % are): mean, spread, 5th, 50th and 95th percentiles; the shares of blank and saturated
    pixels. Then, on each pixel's grey-level rank (0-1, 0 outside the image area): the texture at
    1, 2, 4 and 8 pixels (the mean absolute difference between the ranks' Gaussian blurs at
    sigma 0 and 1, 1 and 2, 2 and 4, 4 and 8); the coherence of the structures (of the sigma-1
    blur's gradients over 15x15 pixels) and how much stronger the gradients are along the depth
    than across (anisotropy); the correlation of the speckle (the ranks less their sigma-4 blur)
    two pixels apart along the depth and across the width; the mean rank of each quarter of the
    depth, and the spread of the columns' mean ranks.

    The grey-level statistics come from the 256-bin histogram, every mean from one of OpenCV's
    double-precision reductions, every image-sized array is one of the calling thread's
    `_Workspace`, and the sigma-8 blur is made from the sigma-4 one at half resolution (`_blur8`,
    a quarter of the work). All statistics are those of the former code, which the bundles'
    recorded statistics were fitted on, to float32 rounding, but texture_8px: it moves by at most
    1.1e-4 on any image, 0.55 % of MIN_SCALE (the least spread a bundle scales a statistic by), so
    every bundle's statistics still hold (tests/test_domain_features.py keeps the former
    code to prove it)."""
    img = np.asarray(model_image)
    g8: np.ndarray = (
        img.reshape(img.shape[:2]) if img.ndim == 2 or img.shape[2] == 1 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    )
    h, w = g8.shape
    n = h * w
    ws = _workspace(h, w)
    counts = cv2.calcHist([g8], [0], None, [256], [0, 256]).ravel().astype(np.int64)  # exact below 2**24 pixels
    n_inside = n - int(counts[: BLANK_LEVEL + 1].sum())
    use_inside = n_inside / n > 0.05
    hist = counts.astype(np.float64)
    if use_inside:
        hist[: BLANK_LEVEL + 1] = 0
    total = hist.sum()
    cdf = np.cumsum(hist) / max(total, 1.0)
    r = cv2.LUT(g8, cdf.astype(np.float32), dst=ws.r)  # each pixel's grey-level rank, 0-1 (0 outside the image area)
    grey = [*_grey_statistics(hist, total), 1.0 - n_inside / n, float(counts[SATURATED_LEVEL:].sum()) / n]
    b1, b2, b4 = (cv2.GaussianBlur(r, (0, 0), s, dst=b) for s, b in ((1, ws.b1), (2, ws.b2), (4, ws.b4)))
    b8 = _blur8(b4, ws)
    texture = [cv2.norm(a, b, cv2.NORM_L1) / n for a, b in ((r, b1), (b1, b2), (b2, b4), (b4, b8))]
    # the structure tensor and the speckle's correlation in the blurs' buffers
    gy = cv2.Sobel(b1, cv2.CV_32F, 0, 1, dst=b2)
    gx = cv2.Sobel(b1, cv2.CV_32F, 1, 0, dst=ws.gx)
    anisotropy = (cv2.norm(gy, cv2.NORM_L1) / n) / (cv2.norm(gx, cv2.NORM_L1) / n + 1e-6)
    jxy = cv2.blur(cv2.multiply(gx, gy, dst=b1), (15, 15), dst=b1)
    jyy = cv2.blur(cv2.multiply(gy, gy, dst=gy), (15, 15), dst=gy)
    jxx = cv2.blur(cv2.multiply(gx, gx, dst=gx), (15, 15), dst=gx)
    num = cv2.subtract(jxx, jyy, dst=ws.num)
    den = cv2.add(jxx, jyy, dst=jxx)
    den += np.float32(1e-6)
    jxy *= np.float32(2.0)
    num = cv2.magnitude(num, jxy, num)  # sqrt((jxx - jyy)^2 + 4 jxy^2)
    coherence = cv2.sumElems(cv2.divide(num, den, dst=num))[0] / n
    z = cv2.subtract(r, b4, dst=b4)
    power = cv2.norm(z, cv2.NORM_L2SQR) / n + 1e-8
    axial = cv2.sumElems(cv2.multiply(z[2:], z[:-2], dst=jyy[2:]))[0] / ((h - 2) * w) / power
    lateral = cv2.sumElems(cv2.multiply(z[:, 2:], z[:, :-2], dst=jxy[:, 2:]))[0] / (h * (w - 2)) / power
    rows = cv2.reduce(r, 1, cv2.REDUCE_SUM, dtype=cv2.CV_64F).ravel()
    depth = [float(rows[i * h // 4 : (i + 1) * h // 4].sum()) / ((i + 1) * h // 4 - i * h // 4) / w for i in range(4)]
    across = float(cv2.reduce(r, 0, cv2.REDUCE_AVG, dtype=cv2.CV_64F).std())
    return np.array(grey + texture + [coherence, anisotropy, axial, lateral] + depth + [across], np.float64)


# The sigma-8 blur from the sigma-4 one at half resolution (_blur8): Gaussian blurs add their
# variances, and pyrDown's 5-tap filter and pyrUp's interpolation each add 1 pixel^2 (at both of
# pyrUp's phases), so the half-resolution blur adds the rest, 64 - 16 - 2, as 4 * _HALF_SIGMA^2.
_HALF_SIGMA = math.sqrt((64 - 16 - 1 - 1) / 4)
# How far beyond the image the half-resolution steps read, in pixels: pyrDown one half-resolution
# pixel, the blur its kernel's half width (OpenCV's float32 kernel has round(8 sigma + 1) | 1 taps),
# pyrUp one: b4 mirrored by this much (as OpenCV's blurs mirror) leaves no border of theirs inside.
_PAD = 2 * (1 + (round(8 * _HALF_SIGMA + 1) | 1) // 2 + 1)


def _blur8(b4: np.ndarray, ws: _Workspace) -> np.ndarray:
    """The rank image's sigma-8 Gaussian blur from its sigma-4 blur b4, which varies too slowly to
    need every pixel: b4 halved (pyrDown), blurred, doubled (pyrUp). A view into ws.padded."""
    p = _PAD
    padded = cv2.copyMakeBorder(b4, p, p, p, p, cv2.BORDER_REFLECT_101, dst=ws.padded)
    half = cv2.pyrDown(padded, dst=ws.half, dstsize=ws.half.shape[::-1])
    half = cv2.GaussianBlur(half, (0, 0), _HALF_SIGMA, dst=ws.half8)
    return cv2.pyrUp(half, dst=ws.padded, dstsize=ws.padded.shape[::-1])[p:-p, p:-p]


class _Workspace:
    """The float32 arrays image_features writes into, for one image size: a fresh image-sized
    array costs more here than the arithmetic on it (the kernel maps and zeroes its pages on
    first touch: about 300 page faults and 1 ms of system time per frame on the 2-core EPYC)."""

    def __init__(self, h: int, w: int) -> None:
        self.shape = (h, w)
        self.r, self.b1, self.b2, self.b4, self.gx, self.num = (np.empty((h, w), np.float32) for _ in range(6))
        self.padded = np.empty((h + 2 * _PAD, w + 2 * _PAD), np.float32)
        self.half, self.half8 = (np.empty(((h + 1) // 2 + _PAD, (w + 1) // 2 + _PAD), np.float32) for _ in range(2))


_workspaces = threading.local()  # one _Workspace per thread: the cart's output thread, a conversion's workers


def _workspace(h: int, w: int) -> _Workspace:
    ws: _Workspace | None = getattr(_workspaces, "ws", None)
    if ws is None or ws.shape != (h, w):
        ws = _workspaces.ws = _Workspace(h, w)
    return ws


def _grey_statistics(hist: np.ndarray, total: float) -> tuple[float, ...]:
    """Mean, standard deviation and 5th, 50th and 95th percentiles (numpy's default linear
    interpolation between order statistics) of the grey levels counted in `hist`."""
    grey = _GREY.astype(np.float64)
    mean = float(hist @ grey) / total
    spread = math.sqrt(float(hist @ (grey - mean) ** 2) / total)
    cum = np.cumsum(hist)
    return mean, spread, *(_counted_percentile(cum, _GREY, q) for q in (5, 50, 95))


def _counted_percentile(cum: np.ndarray, values: np.ndarray, q: float) -> float:
    """np.percentile(.., q) (its default linear interpolation between the two order statistics
    around (n - 1) * q / 100) of a sample given as cumulative counts `cum` of sorted `values`."""
    n = int(cum[-1])
    at = (n - 1) * q / 100
    lo = math.floor(at)
    a, b = (float(values[np.searchsorted(cum, k, side="right")]) for k in (lo, min(lo + 1, n - 1)))
    return a + (b - a) * (at - lo)


def margin_features(logits: np.ndarray, logit_scale: float = 1.0) -> np.ndarray:
    """The model's confidence in one frame (MARGIN_FEATURES): of each pixel's best minus
    second-best class score in logit units, the mean, the 10th percentile and the share under
    UNCERTAIN_LOGITS.

    Int8 scores differ by one of 256 steps, so their summaries come from a histogram of the
    steps: best minus second is 0-255, which uint8 arithmetic on the scores' bytes gives exactly
    (modulo 256, also for int8), counted by OpenCV's histogram (exact below 2**24 pixels)."""
    x = np.asarray(logits)
    best, second = best_two(x)
    scale = np.float32(logit_scale)
    if x.dtype in (np.int8, np.uint8):
        steps = np.subtract(best.view(np.uint8), second.view(np.uint8)).reshape(-1, 1)
        counts = cv2.calcHist([steps], [0], None, [256], [0, 256]).ravel().astype(np.int64)
        values = np.arange(len(counts), dtype=np.float32) * scale  # each step in logit units, as float32
        return np.array([*_summaries(counts, values)], np.float64)
    m = (best.astype(np.float32) - second).ravel() * scale
    return np.array([float(m.mean()), _percentile10(m), float((m < UNCERTAIN_LOGITS).mean())], np.float64)


def _summaries(counts: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """margin_features of the margins counted in `counts`, one count per (sorted) value."""
    n = int(counts.sum())
    p10 = _counted_percentile(np.cumsum(counts), values, 10)
    return float(counts @ values.astype(np.float64)) / n, p10, float(counts[values < UNCERTAIN_LOGITS].sum()) / n


def _percentile10(m: np.ndarray) -> float:
    """np.percentile(m, 10) of a flat array, from the two order statistics it interpolates."""
    at = (len(m) - 1) * 0.1
    lo = math.floor(at)
    hi = min(lo + 1, len(m) - 1)
    part = np.partition(m, [lo, hi])
    a, b = float(part[lo]), float(part[hi])
    return a + (b - a) * (at - lo)


@dataclass(frozen=True)
class DomainCheck:
    """One frame's verdict: out of domain or not, and why."""

    out: bool
    distance: float  # to the nearest training image, scaled statistics
    distance_limit: float
    spread: float  # Mahalanobis distance from the training images as a whole
    spread_limit: float
    margins: tuple[float, ...]  # MARGIN_FEATURES of the frame (NaN without scores)
    margin_limits: tuple[float, ...] | None
    farthest: tuple[str, ...] = ()  # the statistics that differ most from the nearest training image

    @property
    def margin(self) -> float:
        """The frame's mean logit margin."""
        return self.margins[0]

    def reason(self) -> str:
        parts = []
        if self.distance > self.distance_limit:
            parts.append(
                f"image statistics {self.distance:.1f} from the nearest training image (limit "
                f"{self.distance_limit:.1f}; most: {', '.join(self.farthest)})"
            )
        if self.spread > self.spread_limit:
            parts.append(
                f"image statistics {self.spread:.1f} from the training images as a whole (limit "
                f"{self.spread_limit:.1f})"
            )
        for name, low, value, limit in zip(MARGIN_FEATURES, MARGIN_LOW_IS_OUT, self.margins, self.margin_limits or ()):
            if (value < limit) if low else (value > limit):
                parts.append(
                    f"model confidence: {name.replace('_', ' ')} {value:.3g} "
                    f"({'under' if low else 'over'} {limit:.3g}, the held-out images' limit)"
                )
        return "; ".join(parts)


def _beyond(values, limits) -> bool:
    return any((v < lim) if low else (v > lim) for v, lim, low in zip(values, limits, MARGIN_LOW_IS_OUT))


@dataclass(frozen=True)
class DomainModel:
    """What a bundle's training images looked like, and the rule that flags frames unlike them.

    reference: (N, 20) image statistics of training images; centre/scale: their median and
    spread per statistic; distance_limit and margin_limits (one per MARGIN_FEATURES, from
    held-out images, or None): see the module docstring.
    """

    reference: np.ndarray
    centre: np.ndarray
    scale: np.ndarray
    distance_limit: float
    margin_limits: tuple[float, ...] | None
    fitted_on: str = ""
    margins_on: str = ""
    mean: np.ndarray | None = None  # of the scaled statistics
    precision: np.ndarray | None = None  # inverse of their shrunk covariance
    spread_limit: float = math.inf

    def spread(self, features: np.ndarray) -> float:
        """Mahalanobis distance of the scaled statistics from the training images' mean."""
        if self.precision is None:
            return 0.0
        z = (np.asarray(features, np.float64) - self.centre) / self.scale - self.mean
        return float(np.sqrt(max(z @ self.precision @ z, 0.0)))

    def distance(self, features: np.ndarray) -> tuple[float, np.ndarray]:
        """Distance to the nearest reference image, and the per-statistic differences to it."""
        z = (np.asarray(features, np.float64) - self.centre) / self.scale
        ref = (self.reference - self.centre) / self.scale
        d = np.sqrt(((ref - z) ** 2).sum(axis=1))
        i = int(np.argmin(d))
        return float(d[i]), z - ref[i]

    def check(self, model_image: np.ndarray, logits: np.ndarray | None, logit_scale: float = 1.0) -> DomainCheck:
        features = image_features(model_image)
        dist, diff = self.distance(features)
        spread = self.spread(features)
        margins = tuple(margin_features(logits, logit_scale)) if logits is not None else (math.nan,) * 3
        out = (
            dist > self.distance_limit
            or spread > self.spread_limit
            or (self.margin_limits is not None and _beyond(margins, self.margin_limits))
        )
        farthest = tuple(IMAGE_FEATURES[j] for j in np.argsort(-np.abs(diff))[:3])
        return DomainCheck(
            bool(out), dist, self.distance_limit, spread, self.spread_limit, margins, self.margin_limits, farthest
        )

    def to_dict(self) -> dict:
        return {
            "rule": "out of domain when the scaled image statistics are farther from every reference image than "
            "distance_limit, or a margin summary is beyond its margin limit (edge.measure.domain)",
            "features": list(IMAGE_FEATURES),
            "centre": [round(float(v), 6) for v in self.centre],
            "scale": [round(float(v), 6) for v in self.scale],
            "reference": [[round(float(v), 4) for v in row] for row in self.reference],
            "distance_limit": round(self.distance_limit, 4),
            "mean": None if self.mean is None else [round(float(v), 6) for v in self.mean],
            "precision": None
            if self.precision is None
            else [[round(float(v), 6) for v in row] for row in self.precision],
            "spread_limit": rounded(self.spread_limit),
            "margin_features": list(MARGIN_FEATURES),
            "margin_limits": None if self.margin_limits is None else [round(float(v), 5) for v in self.margin_limits],
            "fitted_on": self.fitted_on,
            "margins_on": self.margins_on,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DomainModel:
        if not isinstance(d, dict):
            raise ValueError(f"domain statistics must be an object, not {type(d).__name__}")
        if list(d.get("features", [])) != list(IMAGE_FEATURES) or (
            d.get("margin_limits") is not None and list(d.get("margin_features", [])) != list(MARGIN_FEATURES)
        ):
            raise ValueError(
                "domain statistics of other image or margin features than this runtime computes; "
                "record them again with tlf-convert domain"
            )
        try:
            ref = np.asarray(d["reference"], np.float64)
            centre, scale = np.asarray(d["centre"], np.float64), np.asarray(d["scale"], np.float64)
            limit = float(d["distance_limit"])
            margins = d.get("margin_limits")
            margins = None if margins is None else tuple(float(v) for v in margins)
            mean = None if d.get("mean") is None else np.asarray(d["mean"], np.float64)
            precision = None if d.get("precision") is None else np.asarray(d["precision"], np.float64)
            spread_limit = math.inf if d.get("spread_limit") is None else float(d["spread_limit"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"domain statistics: {e!r}") from e
        n = len(IMAGE_FEATURES)
        if ref.ndim != 2 or ref.shape[1] != n or ref.shape[0] < 2 or centre.shape != (n,) or scale.shape != (n,):
            raise ValueError(
                f"domain statistics: reference {ref.shape}, centre {centre.shape}, scale {scale.shape} "
                f"do not fit {n} features"
            )
        if (mean is None) != (precision is None) or (
            mean is not None
            and precision is not None
            and (
                mean.shape != (n,)
                or precision.shape != (n, n)
                or not np.isfinite(precision).all()
                or not np.isfinite(mean).all()
            )
        ):
            raise ValueError(f"domain statistics: mean and precision must be {n} and {n}x{n} finite numbers")
        if margins is not None and len(margins) != len(MARGIN_FEATURES):
            raise ValueError(f"domain statistics: {len(margins)} margin limits for {len(MARGIN_FEATURES)} summaries")
        if not (
            np.isfinite(ref).all()
            and np.isfinite(centre).all()
            and (scale > 0).all()
            and math.isfinite(limit)
            and limit > 0
            and (margins is None or all(math.isfinite(v) for v in margins))
        ):
            raise ValueError("domain statistics must be finite numbers with positive scales and limit")
        if not spread_limit > 0:
            raise ValueError("domain statistics must be finite numbers with positive scales and limit")
        return cls(
            ref,
            centre,
            scale,
            limit,
            margins,
            str(d.get("fitted_on", "")),
            str(d.get("margins_on", "")),
            mean,
            precision,
            spread_limit,
        )


def fit_domain(
    train_features: np.ndarray, heldout_margins=None, fitted_on: str = "", margins_on: str = ""
) -> DomainModel:
    """The DomainModel of training images' statistics (N, 20) and held-out images' margin
    summaries (M, 3; `margin_features`), or None for a model without the margin check."""
    f = np.asarray(train_features, np.float64)
    if f.ndim != 2 or f.shape[0] < 4 or f.shape[1] != len(IMAGE_FEATURES):
        raise ValueError(
            f"domain statistics need at least 4 training images' {len(IMAGE_FEATURES)} statistics, "
            f"got an array of shape {f.shape}"
        )
    centre = np.median(f, axis=0)
    lo, hi = np.percentile(f, [10, 90], axis=0)
    scale = np.maximum((hi - lo) / 2.563, MIN_SCALE)  # the interdecile range of a normal distribution is 2.563 sd
    z = (f - centre) / scale
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    limit = DISTANCE_SLACK * float(np.quantile(nearest, DISTANCE_QUANTILE))
    mean, precision = _shrunk(z)
    own = []  # each training image's Mahalanobis distance from the others
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        m_i, p_i = _shrunk(z[keep])
        v = z[i] - m_i
        own.append(float(np.sqrt(max(v @ p_i @ v, 0.0))))
    spread_limit = SPREAD_SLACK * float(np.quantile(own, SPREAD_QUANTILE))
    margin_limits = None
    if heldout_margins is not None and len(heldout_margins):
        m = np.asarray(heldout_margins, np.float64).reshape(-1, len(MARGIN_FEATURES))
        m = m[np.isfinite(m).all(axis=1)]
        if len(m) >= 2:
            limits = []
            for j, low in enumerate(MARGIN_LOW_IS_OUT):
                lo_m, hi_m = np.quantile(m[:, j], [0.1, 0.9])
                edge = np.quantile(m[:, j], MARGIN_QUANTILE if low else 1 - MARGIN_QUANTILE)
                limits.append(
                    float(edge - MARGIN_SLACK * (hi_m - lo_m) if low else edge + MARGIN_SLACK * (hi_m - lo_m))
                )
            margin_limits = tuple(limits)
    return DomainModel(f, centre, scale, limit, margin_limits, fitted_on, margins_on, mean, precision, spread_limit)


def _shrunk(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and inverse of the covariance shrunk towards its diagonal (SHRINK), of rows z."""
    c = np.cov(z.T)
    c = (1 - SHRINK) * c + SHRINK * np.diag(np.diag(c) + 1e-6)
    return z.mean(axis=0), np.linalg.inv(c)
