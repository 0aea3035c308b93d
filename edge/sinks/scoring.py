"""Scoring against ground truth, as an output: each measurement is matched to its frame's truth
by sequence number.

Only a source that knows the truth of its frames (the phantom scanner: `Source.truth(seq)`)
gives anything to score; with any other source the sink scores nothing and says so (`summary()`
is None). Truth never travels with the frames, so nothing the device measures can lean on it.
The sink scores the first band of each frame (the TLF of a three-class model): its thickness
against the truth's thickness over the same measurement window, when both are in mm and the
quality checks accept the measurement, and its labels against the true labels (mean IoU on the
model grid) when the truth has labels.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import numpy as np

from edge.frame import Measurement, Segmentation
from edge.measure.metrics import scores
from edge.measure.quality import REJECTING
from edge.measure.thickness import ThicknessOptions, window_slice
from edge.model.preprocess import PreprocessSpec, resize_labels
from edge.sinks.base import Sink

KEEP = 2000  # the most recent scored frames kept (as the run's statistics keep measurements)


class ScoringSink(Sink):
    """truth_of: the source's `truth(seq)`. options: the measurement's options (its window).
    spec, classes: the model grid and class count, for the IoU of the labels (None: no IoU)."""

    name = "scoring"

    def __init__(
        self,
        truth_of: Callable[[int], dict | None],
        options: ThicknessOptions = ThicknessOptions(),
        spec: PreprocessSpec | None = None,
        classes: int | None = None,
        keep: int = KEEP,
    ):
        self.truth_of, self.options, self.spec, self.classes = truth_of, options, spec, classes
        self.frames = 0  # frames that had a truth
        self.pairs: deque[tuple[float, float]] = deque(maxlen=keep)  # (measured, true) mm, accepted frames
        self.ious: deque[float] = deque(maxlen=keep)

    def true_mm(self, truth: dict) -> float | None:
        """The truth's thickness over the measurement window (median over its columns), or None."""
        if "thickness_mm" not in truth:
            return None
        t = np.asarray(truth["thickness_mm"], np.float64)
        return float(np.median(t[window_slice(self.options, t.size)]))

    def write(self, measurement: Measurement, segmentation: Segmentation | None) -> None:
        m = measurement
        if m.band != 0:
            return
        truth = self.truth_of(m.seq)
        if truth is None:
            return
        self.frames += 1
        true = self.true_mm(truth)
        accepted = not m.flags & REJECTING and not math.isnan(m.thickness)
        if true is not None and accepted and m.unit == "mm":
            self.pairs.append((m.thickness, true))
        if "labels" in truth and segmentation is not None and self.spec is not None and self.classes:
            labels = resize_labels(truth["labels"], self.spec)
            self.ious.append(scores(labels, segmentation.labels, self.classes)["mean_iou"])

    def summary(self) -> dict | None:
        """What was scored: frames with a truth, the accepted ones scored in mm (median measured,
        median true, their difference, the mean absolute error) and the mean IoU; None when no
        frame had a truth."""
        if not self.frames:
            return None
        out: dict = {"frames": self.frames, "thickness_frames": len(self.pairs)}
        if self.pairs:
            measured, true = (np.array(v) for v in zip(*self.pairs))
            out["measured_median_mm"] = round(float(np.median(measured)), 3)
            out["truth_median_mm"] = round(float(np.median(true)), 3)
            out["error_median_mm"] = round(out["measured_median_mm"] - out["truth_median_mm"], 3)
            out["abs_error_mean_mm"] = round(float(np.mean(np.abs(measured - true))), 4)
        if self.ious:
            out["iou_frames"] = len(self.ious)
            out["mean_iou"] = round(float(np.mean(self.ious)), 4)
        return out
