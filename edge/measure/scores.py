"""Per-pixel class scores: the best and second-best of each pixel's scores (logits, or what the
segmenter gives in their place), for the logit margin the measurement and the out-of-domain
guard summarise."""

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
