"""Synthetic label maps of a wavy TLF band, for the demo command, the test vectors and the benchmark."""

from __future__ import annotations

import math

import numpy as np


def band_labels(
    height: int,
    width: int,
    phase: float = 0.0,
    depth: float = 0.4,
    thickness: float = 0.08,
    gap: tuple[float, float] | None = None,
) -> np.ndarray:
    """(height, width) uint8 classes: 0 above the band, 1 TLF, 2 below; ``gap`` (fractions of the
    width) leaves columns without any band, as where the model loses it under a shadow."""
    x = np.arange(width) / max(width - 1, 1)
    centre = depth + 0.06 * np.sin(2 * math.pi * (1.3 * x + phase)) + 0.03 * np.sin(2 * math.pi * (3.1 * x - 2 * phase))
    half = thickness * (0.5 + 0.15 * np.cos(2 * math.pi * (0.7 * x + phase))) * 0.5
    rows = (np.arange(height)[:, None] + 0.5) / height
    labels = np.where(rows < centre - half, 0, np.where(rows < centre + half, 1, 2)).astype(np.uint8)
    if gap is not None:
        a, b = int(gap[0] * width), int(gap[1] * width)
        labels[:, a:b] = np.where(labels[:, a:b] == 1, 0, labels[:, a:b])
    return labels
