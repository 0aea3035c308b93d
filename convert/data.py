"""Training and calibration samples: phantom scans and labelled image folders, preprocessed by the
device's own code (edge.preprocess).

The labelled data-set format (images/ + masks/ + dataset.json or dataset.toml, its reader and
writer, and its errors) lives in edge.dataset, so the device can score a data set without
TensorFlow; its names are re-exported here for convert's callers.
"""

from __future__ import annotations

import numpy as np

from edge.dataset import (  # noqa: F401  (re-exported)
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
    phantom_scan,
    read_dataset,
    read_dataset_config,
    read_image,
    read_labelled_folder,
    write_dataset,
    write_labelled_folder,
    write_palette_png,
)
from edge.preprocess import PreprocessSpec, resize_labels, to_model_image


def phantom_sample(seed: int, spec: PreprocessSpec, machine=None):
    """One phantom scan at a random native size and field of view, through the device preprocessing.

    Returns (uint8 model image HxWxC, uint8 labels HxW, Scan).
    """
    scan = phantom_scan(seed, machine)
    return to_model_image(scan.image, spec), resize_labels(scan.labels, spec), scan


def phantom_batch(seeds, spec: PreprocessSpec, machine=None):
    """Stack phantom samples: (N,H,W,C) uint8 images and (N,H,W) uint8 labels."""
    pairs = [phantom_sample(int(s), spec, machine)[:2] for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
