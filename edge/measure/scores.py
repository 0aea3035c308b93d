"""Per-pixel class scores (logits, or what the segmenter gives in their place): the best class
of each pixel (the label map), and the best and second-best scores, for the logit margin the
measurement and the out-of-domain guard summarise."""

from __future__ import annotations

import numpy as np


def best_two(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The largest and second-largest of the last axis of `scores` (..., K), K >= 2, in its dtype:
    exactly the last two of np.sort along that axis. For 2 and 3 classes without sorting (the
    maximum and, of three, the median; ties give equal values)."""
    x = np.asarray(scores)
    k = x.shape[-1]
    if k == 2:
        a, b = x[..., 0], x[..., 1]
        return np.maximum(a, b), np.minimum(a, b)
    if k == 3:
        a, b, c = x[..., 0], x[..., 1], x[..., 2]
        hi, lo = np.maximum(a, b), np.minimum(a, b)
        return np.maximum(hi, c), np.maximum(lo, np.minimum(hi, c))
    top = np.partition(x, k - 2, axis=-1)
    return top[..., -1], top[..., -2]


def best_class(scores: np.ndarray) -> np.ndarray:
    """The index of the largest of the last axis of `scores` (..., K), as uint8: exactly
    np.argmax along that axis (a tie goes to the first class). For 2 and 3 classes by
    comparisons, about three times faster than np.argmax on a model's int8 output."""
    x = np.asarray(scores)
    k = x.shape[-1]
    if k == 2:
        return (x[..., 1] > x[..., 0]).view(np.uint8)
    if k == 3:
        a, b, c = x[..., 0], x[..., 1], x[..., 2]
        return np.where(c > np.maximum(a, b), np.uint8(2), (b > a).view(np.uint8))
    return np.argmax(x, axis=-1).astype(np.uint8)
