"""Splits of a labelled set that keep look-alike images together (numpy and OpenCV only).

Images of one recording look alike but need not sit next to each other in the file order, so a
split by name alone puts near-copies on both sides and flatters the held-out figures. Images
whose B-mode thumbnails (48x48, zero mean, unit variance) correlate at or above a threshold are
joined into one group (transitively); a split then moves whole groups only.
"""

from __future__ import annotations

import cv2
import numpy as np

from convert.errors import ConvertError

THUMB = 48
SIMILAR = 0.8  # thumbnail correlation that makes two images one group


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A 48x48 grey thumbnail, zero mean and unit variance, flattened."""
    grey = (
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if image.ndim == 3 and image.shape[2] == 3
        else image.reshape(image.shape[:2])
    )
    t = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    return (t - t.mean()) / max(t.std(), 1e-6)


def correlations(thumbs: np.ndarray) -> np.ndarray:
    """The thumbnail correlation of every pair of images (N, N)."""
    return thumbs @ thumbs.T / thumbs.shape[1]


def look_alike_groups(thumbs: np.ndarray, threshold: float = SIMILAR) -> np.ndarray:
    """A group number per image: images linked by a thumbnail correlation >= threshold share one."""
    corr = correlations(thumbs)
    parent = list(range(len(thumbs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(corr >= threshold, k=1))):
        parent[root(i)] = root(j)
    return np.unique([root(i) for i in range(len(thumbs))], return_inverse=True)[1]


def split_groups(groups: np.ndarray, holdout: float, seed: int) -> np.ndarray:
    """A bool per image, True for held-out: whole groups in a seeded order until ~holdout of the
    images (a group that would overshoot the target by more than 2 images is passed over)."""
    rng = np.random.default_rng(seed)
    want = max(1, round(holdout * len(groups)))
    held = np.zeros(len(groups), bool)
    for g in rng.permutation(groups.max() + 1):
        members = groups == g
        if held.sum() + members.sum() > want + 2:
            continue
        held |= members
        if held.sum() >= want:
            break
    return held


def group_folds(groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number (0..folds-1) per image, whole groups to one fold: the groups, largest first
    (ties in a seeded order), each to the fold with the fewest images so far."""
    n_groups = int(groups.max()) + 1
    if not 2 <= folds <= n_groups:
        raise ConvertError(f"{folds} folds need 2 to {n_groups} look-alike groups (the set has {n_groups})")
    sizes = np.bincount(groups, minlength=n_groups)
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(n_groups), key=lambda g: -sizes[g])
    fold_of_group = np.zeros(n_groups, int)
    load = np.zeros(folds, int)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[groups]


def largest_cross_correlation(thumbs: np.ndarray, held: np.ndarray) -> float:
    """The largest thumbnail correlation between a held-out image and a kept one."""
    return float(correlations(thumbs)[np.ix_(held, ~held)].max())
