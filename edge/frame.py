"""The typed, timestamped objects that cross each stage boundary of the runtime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edge.measure.thickness import ThicknessResponse


@dataclass(frozen=True)
class Frame:
    """One B-mode image as delivered by a source.

    image: uint8, HxW (grayscale) or HxWx3 (BGR), already cropped to the B-mode region.
    t_capture: time.monotonic() when the source produced it; every latency is measured from here.
    spacing_mm: (row, column) pixel spacing of `image` in mm, or None when not calibrated.
    spacing_source: where spacing_mm came from (edge.screen.spacing sources: "config",
    "depth_mm", "source", "screen", "none", "refused"); "" when nothing said.
    Ground truth never travels with a frame: a source that knows it (the phantom scanner) gives it
    by `seq` (edge.sources.base.Source.truth).
    """

    image: np.ndarray
    t_capture: float
    seq: int
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str = ""
    # When `image` is only the grayscale of a colour screen (a source asked for grayscale,
    # Source.grayscale_only): the screen in colour, decoded when first called. Reading a scale or
    # finding the B-mode region needs colour; the checks of every frame do not.
    colour: Callable[[], np.ndarray] | None = field(default=None, repr=False, compare=False)

    def screen(self) -> np.ndarray:
        """The frame's image in colour when the source decoded only its grayscale, else the image."""
        return self.image if self.colour is None else self.colour()


@dataclass(frozen=True)
class Segmentation:
    """The model's answer for one frame, in model-input pixels.

    labels: uint8 HxW class indices. logits: HxWxK scores in logit units, one per class (the
    raw int8 logits, or float32 log-probabilities of a softmax or sigmoid model: see
    edge.model.segmenter; their argmax is `labels`), kept for sub-pixel boundaries. spacing_mm: (row, column) spacing of one model
    pixel in mm, or None. image: the model input (HxWxC uint8) the labels were drawn from.
    pixel_size: (row, column) size of one model pixel in the frame's own pixels (the B-mode
    region's, which the model grid resamples): without a spacing, thickness is in those pixels.
    """

    frame: Frame
    labels: np.ndarray
    logits: np.ndarray | None
    spacing_mm: tuple[float, float] | None
    t_done: float
    logit_scale: float = 1.0  # real value of one logits step (int8 output scale)
    response: ThicknessResponse | None = None  # the bundle's edge.measure.thickness.ThicknessResponse, if it has one
    image: np.ndarray | None = None
    pixel_size: tuple[float, float] | None = None


@dataclass(frozen=True)
class Measurement:
    """The thickness of one band in one frame, with its quality flags and timing.

    A three-class model (tissue above, the TLF, tissue below) gives one measurement per frame:
    band 0 of 1. A two-class model (background / band) gives one per band it drew, ordered by
    depth (band 0 the most superficial; edge.measure.bands), all with the frame's seq and t_capture.
    """

    seq: int
    t_capture: float
    thickness: float  # mm when `unit` is "mm", pixels of the frame's B-mode region when "px"; NaN when not measurable
    spread: float  # interquartile range over the measured columns, same unit
    unit: str
    flags: int
    columns: int  # how many columns contributed
    latency_s: float
    extra: dict = field(default_factory=dict)
    band: int = 0  # this band's place by depth in the frame, 0 = the most superficial
    bands: int = 1  # how many bands the frame reports
