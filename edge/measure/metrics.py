"""Segmentation agreement metrics, shared by validation (convert/) and on-device checks (edge/)."""

from __future__ import annotations

import numpy as np


def confusion(truth: np.ndarray, pred: np.ndarray, classes: int) -> np.ndarray:
    """classes x classes counts; rows are the truth, columns the prediction."""
    idx = truth.astype(np.int64).ravel() * classes + pred.astype(np.int64).ravel()
    return np.bincount(idx, minlength=classes * classes).reshape(classes, classes)


def scores(truth: np.ndarray, pred: np.ndarray, classes: int) -> dict:
    """Pixel accuracy, per-class IoU and Dice, and their means (classes absent from both are skipped)."""
    c = confusion(truth, pred, classes).astype(np.float64)
    tp = np.diag(c)
    fp = c.sum(axis=0) - tp
    fn = c.sum(axis=1) - tp
    present = (tp + fp + fn) > 0
    iou = np.where(present, tp / np.maximum(tp + fp + fn, 1), np.nan)
    dice = np.where(present, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    return {
        "pixel_accuracy": float(tp.sum() / max(c.sum(), 1)),
        "iou": [float(v) for v in iou],
        "dice": [float(v) for v in dice],
        "mean_iou": float(np.nanmean(iou)),
        "mean_dice": float(np.nanmean(dice)),
    }
