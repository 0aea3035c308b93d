"""The per-frame chain: one frame from the source to its measurements, the same way everywhere.

    chain = FrameChain(segmenter, ChainOptions(...))    # options -> the chain
    result = chain(frame, cropped)                      # -> FrameResult (None: no B-mode region)

The chain runs prepare (the B-mode region and its spacing, edge.screen.prepare) -> freeze check ->
resize to the model grid -> int8 invoke -> argmax -> thickness and quality of every band ->
out-of-domain guard -> temporal filter. `tlf-edge run`'s pipeline calls its stages from its three
threads (`crop` and `model_input` on the capture thread, `invoke` on the inference thread,
`finish` on the output thread): the inference thread does nothing but invoke the model, so that it
waits for Python's interpreter lock as seldom as it can (each call out to a C library lets it go
and takes it back). `tlf-edge bench`, the validation of a labelled set, the thickness-response fit
and the benchmarks call the chain whole, so a frame is measured the same way by each of them.
A set of independent pictures (a labelled set, the response's images) is measured with
`independent=True`: each frame alone, without the freeze check and the temporal filter, which
compare a frame with the frames before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from edge.frame import Frame, Measurement, Segmentation
from edge.measure.bands import measure_bands, per_band
from edge.measure.freeze import FreezeDetector
from edge.measure.quality import Quality
from edge.measure.temporal import TemporalFilter, TemporalOptions
from edge.measure.thickness import ThicknessOptions, ThicknessResult, measure_thickness
from edge.model.preprocess import to_model_image
from edge.model.segmenter import Segmenter
from edge.screen.options import RoiOptions, SpacingOptions
from edge.screen.prepare import LayoutEvent, Prepare
from edge.screen.spacing import Calibration


@dataclass(frozen=True)
class ChainOptions:
    """measurement, temporal: the config's [measurement] and [temporal]. roi, calibration: its
    [roi] and [calibration]; with neither, frames reach the model as the source delivers them (a
    source of B-mode regions). independent: each frame is a picture of its own (no freeze check,
    no temporal filter). thickness_response: apply the bundle's thickness response (in mm only);
    off to measure the band as the model drew it, or where the spacing is not mm."""

    measurement: ThicknessOptions = field(default_factory=ThicknessOptions)
    temporal: TemporalOptions = field(default_factory=TemporalOptions)
    roi: RoiOptions | None = None
    calibration: SpacingOptions | None = None
    independent: bool = False
    thickness_response: bool = True


@dataclass(frozen=True)
class ModelInput:
    """A frame made ready for the model: its model image and the model's input tensor, and
    whether it repeats the frame before it; the times (time.monotonic()) of the freeze check's
    start and of the resize's."""

    frame: Frame
    image: np.ndarray
    tensor: np.ndarray
    frozen: bool
    t_start: float
    t_resize: float


@dataclass(frozen=True)
class Inference:
    """What the inference stage hands on: the frame, its model image and the raw model output;
    whether it repeats the frame before it; and its times (time.monotonic()): the stage's start,
    the start of the resize (after the freeze check), the start and the end of the invoke."""

    frame: Frame
    image: np.ndarray
    raw: np.ndarray
    frozen: bool
    t_start: float
    t_resize: float
    t_invoke: float
    t_done: float


@dataclass(frozen=True)
class FrameResult:
    """One frame's outcome: its segmentation, the measurement of every band (superficial first,
    temporal filter applied) and the thickness results they came from (their edges)."""

    segmentation: Segmentation
    measurements: list[Measurement]
    results: list[ThicknessResult]
    frozen: bool

    @property
    def frame(self) -> Frame:
        return self.segmentation.frame


def band_results(
    seg: Segmentation, options: ThicknessOptions, tlf_class: int, classes: int, with_response: bool = True
) -> list[ThicknessResult]:
    """The thickness results of one segmentation: one band for a three-class model, each band
    the model drew for a two-class model (edge.measure.bands), superficial first. with_response:
    the bundle's thickness response applied (when the segmentation has one and a spacing)."""
    response = seg.response if with_response else None
    if per_band(classes):
        return measure_bands(
            seg.labels,
            seg.logits,
            seg.spacing_mm,
            options,
            seg.logit_scale,
            band=tlf_class,
            response=response,
            image=seg.image,
            pixel_size=seg.pixel_size,
        )
    return [
        measure_thickness(
            seg.labels,
            seg.logits,
            seg.spacing_mm,
            options,
            seg.logit_scale,
            tlf=tlf_class,
            response=response,
            image=seg.image,
            pixel_size=seg.pixel_size,
        )
    ]


def measurements(
    seg: Segmentation, results: list[ThicknessResult], frozen: bool = False, domain=None
) -> list[Measurement]:
    """The measurement of every band of `results`, with the frame's flags: FROZEN, SCALE_UNCERTAIN
    (a refused scale) and OUT_OF_DOMAIN (domain: the bundle's edge.measure.domain.DomainModel, or
    None; a frame unlike the training images is not measured: thickness NaN, the reason in
    `extra["out_of_domain"]`)."""
    frame = seg.frame
    source = frame.spacing_source or ("source" if frame.spacing_mm is not None else "none")
    extra: dict = {"t_invoke_done": seg.t_done, "calibration": source}
    flags = (Quality.FROZEN if frozen else Quality.OK) | (
        Quality.SCALE_UNCERTAIN if source == "refused" else Quality.OK
    )
    if domain is not None and seg.image is not None:
        check = domain.check(seg.image, seg.logits, seg.logit_scale)
        extra["domain_distance"] = round(check.distance, 3)
        extra["domain_margin"] = round(check.margin, 3)
        if check.out:
            flags |= Quality.OUT_OF_DOMAIN
            extra["out_of_domain"] = check.reason()
    measured = not flags & Quality.OUT_OF_DOMAIN
    now = time.monotonic()
    return [
        Measurement(
            seq=frame.seq,
            t_capture=frame.t_capture,
            thickness=r.value if measured else float("nan"),
            spread=r.spread if measured else float("nan"),
            unit=r.unit,
            flags=r.flags | flags,
            columns=r.columns,
            latency_s=now - frame.t_capture,
            extra={"coverage": round(r.coverage, 3), **extra},
            band=i,
            bands=len(results),
        )
        for i, r in enumerate(results)
    ]


def smooth(m: Measurement, temporal: TemporalFilter, spacing_mm) -> Measurement:
    """Add the temporal filter's estimate and its 95 % band to a measurement (OUTLIER when rejected)."""
    est = temporal(m, scale=spacing_mm)
    extra = {**m.extra, "filtered": est.value, "low": est.low, "high": est.high, "uncertainty": est.uncertainty}
    return replace(m, flags=est.flags, extra=extra)


class FrameChain:
    """The chain for one segmenter; it keeps what a clip needs from frame to frame (the B-mode
    region and scale, the freeze detector's reference, one temporal filter per band). One
    chain per stream of frames; its stages are called in frame order."""

    def __init__(self, segmenter: Segmenter, options: ChainOptions = ChainOptions()):
        self.segmenter, self.options = segmenter, options
        self.prepare: Prepare | None = None
        if options.roi is not None or options.calibration is not None:
            self.prepare = Prepare(options.roi or RoiOptions(), options.calibration or SpacingOptions())
        self.freeze = None if options.independent else FreezeDetector()
        self.temporal: dict[int, TemporalFilter] = {}  # one filter per band index
        self.domain = segmenter.bundle.domain  # the out-of-domain guard's statistics, or None
        self.classes: int | None = getattr(segmenter, "classes", None)

    def close(self) -> None:
        """The end of the stream: a routine ROI detection still running is waited for
        (RoiTracker.finish), so that no thread is left inside OpenCV."""
        if self.prepare is not None:
            self.prepare.tracker.finish()

    @property
    def grayscale_input(self) -> bool:
        """The model takes grayscale: a source need decode no more of a frame (Source.grayscale_only)."""
        return self.segmenter.spec.channels == 1

    def crop(
        self, frame: Frame, cropped: bool = False, stated: Calibration | None = None
    ) -> tuple[Frame | None, LayoutEvent | None]:
        """The capture stage: the frame's B-mode region with its spacing (None while there is
        none), and the layout event when the layout changed; the frame as it is without [roi]
        and [calibration] options. cropped, stated: the source's `cropped` and `calibration`."""
        if self.prepare is None:
            return frame, None
        return self.prepare(frame, cropped, stated)

    def infer(self, frame: Frame) -> Inference:
        """Freeze check, resize to the model grid, input tensor, invoke: `invoke(model_input(frame))`."""
        return self.invoke(self.model_input(frame))

    def model_input(self, frame: Frame) -> ModelInput:
        """The stage before the model: freeze check, resize to the model grid, input tensor."""
        t_start = time.monotonic()
        frozen = self.freeze(frame.image) if self.freeze is not None else False
        t_resize = time.monotonic()
        image = to_model_image(frame.image, self.segmenter.spec)
        tensor = self.segmenter.input_tensor(image)
        return ModelInput(frame, image, tensor, frozen, t_start, t_resize)

    def invoke(self, staged: ModelInput) -> Inference:
        """The inference stage: the model on a `model_input`."""
        t_invoke = time.monotonic()
        raw = self.segmenter.run(staged.tensor)
        frame, image, frozen = staged.frame, staged.image, staged.frozen
        return Inference(frame, image, raw, frozen, staged.t_start, staged.t_resize, t_invoke, time.monotonic())

    def finish(self, inference: Inference, extra: dict | None = None) -> FrameResult:
        """The output stage: argmax, thickness and quality of every band, the out-of-domain guard
        and the temporal filter; `extra` is added to every measurement's extra."""
        i = inference
        seg = self.segmenter.segmentation(i.frame, i.raw, i.t_done, image=i.image)
        tlf = self.segmenter.bundle.tlf_class
        classes = self.classes or class_count(seg, tlf)
        results = band_results(seg, self.options.measurement, tlf, classes, self.options.thickness_response)
        ms = measurements(seg, results, i.frozen, self.domain)
        if not self.options.independent:
            scale = seg.spacing_mm if seg.spacing_mm is not None else seg.pixel_size  # what a value is measured in
            ms = [smooth(m, self.filter_of(m.band), scale) for m in ms]
        if extra:
            ms = [replace(m, extra={**m.extra, **extra}) for m in ms]
        return FrameResult(seg, ms, results, i.frozen)

    def from_model_image(self, frame: Frame, image: np.ndarray) -> FrameResult:
        """The chain from a model image on: `image` is `frame`'s image already made by
        edge.model.preprocess.to_model_image (a validation set's); invoke, then the output stage."""
        t = time.monotonic()
        raw = self.segmenter.infer(image)
        return self.finish(Inference(frame, image, raw, False, t, t, t, time.monotonic()))

    def filter_of(self, band: int) -> TemporalFilter:
        """The temporal filter of one band index (each band's thickness is smoothed apart)."""
        if band not in self.temporal:
            self.temporal[band] = TemporalFilter(self.options.temporal)
        return self.temporal[band]

    def __call__(self, frame: Frame, cropped: bool = False, stated: Calibration | None = None) -> FrameResult | None:
        """The whole chain on one frame; None when the screen shows no B-mode region (yet)."""
        prepared, _ = self.crop(frame, cropped, stated)
        if prepared is None:
            return None
        return self.finish(self.infer(prepared))


def measure_frame(
    seg: Segmentation,
    options: ThicknessOptions = ThicknessOptions(),
    tlf_class: int = 1,
    frozen: bool = False,
    domain=None,
    classes: int | None = None,
) -> list[Measurement]:
    """The chain's measurement of one segmentation: every band, superficial first, with the
    frame's flags (see `measurements`); no temporal filter. classes: the model's class count
    (default: as its scores show it)."""
    results = band_results(seg, options, tlf_class, classes or class_count(seg, tlf_class))
    return measurements(seg, results, frozen, domain)


def measure(seg: Segmentation, options: ThicknessOptions = ThicknessOptions(), tlf_class: int = 1) -> Measurement:
    """The first band's measurement of one segmentation on its own (no temporal filter, no
    domain guard): the TLF of a three-class model. For tests and tools that hold a segmentation."""
    return measure_frame(seg, options, tlf_class)[0]


def class_count(seg: Segmentation, tlf_class: int) -> int:
    """The model's class count as its scores show it (three when there are none)."""
    return seg.logits.shape[-1] if seg.logits is not None else max(3, tlf_class + 1)
