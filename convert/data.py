"""Training and calibration samples: phantom streams and labelled image folders, preprocessed
by the device's own code (edge.preprocess)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge import phantom
from edge.preprocess import PreprocessSpec, resize_labels, to_model_image

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def phantom_sample(seed: int, spec: PreprocessSpec, machine=None):
    """One phantom scan at a random native size and field of view, through the device preprocessing.

    Returns (uint8 model image HxWxC, uint8 labels HxW, Scan).
    """
    rng = np.random.default_rng(seed + 104729)
    h = int(rng.choice([256, 320, 400, 480]))
    w = int(rng.choice([256, 320, 400, 480]))
    field = (float(rng.uniform(30, 50)), float(rng.uniform(30, 50)))
    scan = phantom.scan(seed, shape=(h, w), machine=machine, field_mm=field)
    return to_model_image(scan.image, spec), resize_labels(scan.labels, spec), scan


def phantom_batch(seeds, spec: PreprocessSpec, machine=None):
    """Stack phantom samples: (N,H,W,C) uint8 images and (N,H,W) uint8 labels."""
    pairs = [phantom_sample(int(s), spec, machine)[:2] for s in seeds]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def read_labelled_folder(root: Path, spec: PreprocessSpec):
    """Read `root/images/*` with class-index masks of the same stem in `root/masks/`.

    Returns (N,H,W,C) uint8 images and (N,H,W) uint8 labels on the model grid.
    """
    root = Path(root)
    images = sorted(p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise ValueError(f"no images in {str(root / 'images')!r}")
    masks = {p.stem: p for p in (root / "masks").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    xs, ys = [], []
    for path in images:
        if path.stem not in masks:
            raise ValueError(f"no mask for image {str(path)!r} in {str(root / 'masks')!r}")
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(masks[path.stem]), cv2.IMREAD_UNCHANGED)
        if img is None or mask is None:
            raise ValueError(f"cannot read {str(path)!r} or its mask")
        if img.shape[:2] != mask.shape[:2]:
            raise ValueError(f"size mismatch: {str(path)!r} is {img.shape[:2]}, its mask {mask.shape[:2]}")
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if mask.ndim == 3:
            mask = mask[..., 0]
        xs.append(to_model_image(img, spec))
        ys.append(resize_labels(mask.astype(np.uint8), spec))
    return np.stack(xs), np.stack(ys)


def write_labelled_folder(root: Path, images: np.ndarray, labels: np.ndarray, stems=None) -> None:
    """Write images and class-index masks as PNGs in the layout `read_labelled_folder` reads."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, (img, lab) in enumerate(zip(images, labels)):
        stem = stems[i] if stems is not None else f"{i:05d}"
        cv2.imwrite(str(root / "images" / f"{stem}.png"), img)
        cv2.imwrite(str(root / "masks" / f"{stem}.png"), lab)
