"""The int8 representative set (the images given with --calib), and the checks that refuse a
degenerate one.

LiteRT's converter calls it the representative data set; quantization papers call it the
calibration set. It is not the pixel spacing ([calibration] in the cart's config) nor the
thickness response (edge.measure.thickness). It fixes every int8 scale in the model, so it must
look like what the device will see: enough images, not blank, not noise, and close to the
validation data in brightness.
"""

from __future__ import annotations

import numpy as np

from convert.errors import ConvertError

MIN_IMAGES = 8
MIN_STD = 3.0  # grey levels: below this an image is blank
MIN_NEIGHBOUR_CORRELATION = 0.35  # B-mode images are spatially smooth at the pixel scale; noise is not
MAX_HISTOGRAM_DISTANCE = 0.35  # Hellinger distance between pooled grey-level histograms


class RepresentativeSetError(ConvertError):
    """The representative set cannot give trustworthy int8 scales."""


def neighbour_correlation(image: np.ndarray) -> float:
    """Mean correlation of each pixel with its right and lower neighbours."""
    x = image.reshape(image.shape[0], image.shape[1], -1)[..., 0].astype(np.float64)
    out = []
    for a, b in ((x[:, :-1], x[:, 1:]), (x[:-1, :], x[1:, :])):
        a, b = a - a.mean(), b - b.mean()
        den = np.sqrt((a * a).sum() * (b * b).sum())
        out.append((a * b).sum() / den if den > 0 else 0.0)
    return float(np.mean(out))


def histogram(images: np.ndarray) -> np.ndarray:
    h = np.bincount(images.reshape(-1), minlength=256).astype(np.float64)
    return h / h.sum()


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sqrt(max(0.0, 1.0 - np.sqrt(p * q).sum())))


def check_representative_set(images: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """Refuse a degenerate calibration set with a RepresentativeSetError; return its statistics otherwise.

    images: uint8 (N, H, W, C) model images. reference: the same from the validation data, if any.
    """
    n = len(images)
    if n < MIN_IMAGES:
        raise RepresentativeSetError(f"calibration set has {n} images; at least {MIN_IMAGES} are needed")
    stds = images.reshape(n, -1).std(axis=1)
    blank = int((stds < MIN_STD).sum())
    if blank > n // 2:
        raise RepresentativeSetError(
            f"calibration set is constant: {blank} of {n} images have no contrast (std < {MIN_STD} grey levels)"
        )
    corr = np.array([neighbour_correlation(im) for im in images])
    if np.median(corr) < MIN_NEIGHBOUR_CORRELATION:
        raise RepresentativeSetError(
            f"calibration set looks like noise: median neighbour correlation {np.median(corr):.2f} "
            f"(B-mode images have at least {MIN_NEIGHBOUR_CORRELATION})"
        )
    stats = {
        "images": n,
        "median_std": round(float(np.median(stds)), 2),
        "median_neighbour_correlation": round(float(np.median(corr)), 3),
    }
    if reference is not None and len(reference):
        d = hellinger(histogram(images), histogram(reference))
        stats["histogram_distance_to_validation"] = round(d, 3)
        if d > MAX_HISTOGRAM_DISTANCE:
            raise RepresentativeSetError(
                f"calibration set is unlike the validation data: grey-level histogram distance {d:.2f} "
                f"(limit {MAX_HISTOGRAM_DISTANCE})"
            )
    return stats
