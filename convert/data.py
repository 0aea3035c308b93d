"""Training and calibration samples: phantom scans and labelled image folders, preprocessed by the
device's own code (edge.model.preprocess).

The labelled data-set format (images/ + masks/ + dataset.json or dataset.toml, its reader and
writer, and its errors) lives in edge.data.dataset, so the device can score a data set without
TensorFlow; its names are re-exported here for convert's callers.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.data.dataset import (  # noqa: F401  (re-exported)
    CONFIG_NAMES,
    IMAGE_FORMATS,
    IMAGE_SUFFIXES,
    MASK_KINDS,
    DatasetConfig,
    DatasetConfigError,
    DatasetError,
    LabelledSet,
    MissingMaskError,
    SizeMismatchError,
    UnknownClassError,
    UnreadableFileError,
    decode_mask,
    iter_dataset,
    load_dataset_config,
    phantom_dataset_config,
    read_dataset,
    read_dataset_config,
    read_image,
    read_labelled_folder,
    write_dataset,
    write_labelled_folder,
    write_palette_png,
)
from edge.model.preprocess import PreprocessSpec, resize_labels, to_model_image
from edge.sim.recipes import phantom_scan

# A scanner fills its screen's B-mode rectangle by enlarging the acquired image (bilinear);
# a capture of that screen reaches the model through the device's reduction of the enlargement.
DISPLAY_ZOOM = (1.0, 2.5)


def displayed(image: np.ndarray, seed: int) -> np.ndarray:
    """`image` as a scanner screen shows it: enlarged by a random factor in DISPLAY_ZOOM (drawn
    from `seed`), bilinear, both axes alike."""
    zoom = float(np.random.default_rng([seed, 1931]).uniform(*DISPLAY_ZOOM))
    h, w = image.shape[:2]
    return cv2.resize(image, (round(w * zoom), round(h * zoom)), interpolation=cv2.INTER_LINEAR)


def phantom_sample(seed: int, spec: PreprocessSpec, machine=None, display: float = 0.0):
    """One phantom scan at a random native size and field of view, through the device preprocessing.

    display: the probability that the image is first enlarged as on a scanner screen (`displayed`).
    Returns (uint8 model image HxWxC, uint8 labels HxW, Scan).
    """
    scan = phantom_scan(seed, machine)
    image = scan.image
    if display and np.random.default_rng([seed, 1930]).random() < display:
        image = displayed(image, seed)
    return to_model_image(image, spec), resize_labels(scan.labels, spec), scan


def phantom_batch(seeds, spec: PreprocessSpec, machine=None, display: float = 0.0):
    """Stack phantom samples: (N,H,W,C) uint8 images and (N,H,W) uint8 labels."""
    pairs = [phantom_sample(int(s), spec, machine, display)[:2] for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def coverage_targets(scan, spec: PreprocessSpec) -> np.ndarray:
    """Per-class fractions of each model pixel, from the scan's analytic band edges: (H,W,3) float32
    (above, TLF, below), summing to 1.

    A one-hot label map says only on which side of an edge a pixel's centre lies; the fraction
    of the pixel the TLF covers says where in the pixel the edge runs, which is the sub-pixel
    detail the thickness is read from.
    """
    rows_n, cols_n = scan.labels.shape
    k = spec.height / rows_n
    native_col = (np.arange(spec.width) + 0.5) * cols_n / spec.width - 0.5
    top = np.interp(native_col, np.arange(cols_n), scan.top_px)[None, :] * k
    bottom = np.interp(native_col, np.arange(cols_n), scan.bottom_px)[None, :] * k
    r = np.arange(spec.height, dtype=np.float64)[:, None]
    above = np.clip(top - r, 0.0, 1.0)
    tlf = np.clip(np.minimum(r + 1, bottom) - np.maximum(r, top), 0.0, 1.0)
    below = np.clip(1.0 - above - tlf, 0.0, 1.0)
    return np.stack([above, tlf, below], axis=-1).astype(np.float32)


def phantom_coverage_batch(seeds, spec: PreprocessSpec, machine=None, display: float = 0.0):
    """Stack phantom samples with coverage targets: (N,H,W,C) uint8 images, (N,H,W,3) float32."""
    samples = [phantom_sample(int(s), spec, machine, display) for s in seeds]
    return np.stack([s[0] for s in samples]), np.stack([coverage_targets(s[2], spec) for s in samples])


def edge_weights(labels: np.ndarray, weight: float, sigma_px: float = 1.0) -> np.ndarray:
    """Per-pixel loss weights that stress the class boundaries: 1 + weight * exp(-d^2 / 2 sigma^2),
    d the distance (model rows) from the pixel's centre to the nearest boundary in its column
    (boundaries closer than a few sigma add up, to at most 1 + weight).

    labels: (N,H,W) or (H,W) class indices. Returns float32 of the same shape. The thickness is
    read where the band's edges run; in an unweighted loss the few pixels there weigh no more
    than the many inside the layers.
    """
    lab = np.asarray(labels)
    change = (lab[..., 1:, :] != lab[..., :-1, :]).astype(np.float32)  # boundary b lies between rows b and b+1
    h = lab.shape[-2]
    near = np.zeros(lab.shape, np.float32)
    reach = max(1, int(np.ceil(3.0 * sigma_px)))
    for k in range(-reach + 1, reach + 1):  # row r = b + k sits |k - 1/2| rows from boundary b
        g = np.float32(np.exp(-((k - 0.5) ** 2) / (2.0 * sigma_px**2)))
        lo, hi = max(0, k), min(h, h - 1 + k)
        if hi > lo:
            near[..., lo:hi, :] += g * change[..., lo - k : hi - k, :]
    return (1.0 + weight * np.minimum(near, 1.0)).astype(np.float32)
