"""The stage between a source and the model: cut the B-mode region out of the screen and give
it a pixel spacing.

A capture card or a screen recording delivers the whole scanner screen, patient fields
included. `Prepare` turns each such frame into a frame holding the B-mode region only (found by
`RoiTracker`, or the `[roi] rect` of the config) with the spacing of its pixels: the spacing the
source states for its frames (a DICOM file's), else the config's `[calibration] spacing_mm`
when set, else `[calibration] depth_mm` (the depth set on the scanner over the region's
height), else the depth scale
read off the screen (read again whenever the layout changes; used only when the numbers on
screen confirm it). With none of these the spacing is None and the thickness is reported in
pixels, flagged UNCALIBRATED (and SCALE_UNCERTAIN when a scale was seen but refused). Every
frame says where its spacing came from (`Frame.spacing_source`).

A source that already delivers the B-mode region (the phantom clip; a DICOM file cropped to its
ultrasound region) says so with a true `cropped` attribute; its frames pass through with their
own spacing (the file's own measurement wins over the config's `[calibration]`, which
describes a screen: the note says when one was set; without a stated spacing the config's
applies; `[roi] rect` is about screens and is not applied to them).

Whenever the region or the spacing changes (the operator changed depth or zoom) the stage
returns a `LayoutEvent`; the first frame's layout comes as an event marked `initial`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edge.frame import Frame
from edge.screen.options import RoiOptions, SpacingOptions
from edge.screen.roi import RoiTracker, crop_frame, detect_roi, manual_roi, screen_gray
from edge.screen.spacing import UNKNOWN, Calibration, Calibrator, from_config, from_depth, from_source


@dataclass(frozen=True)
class LayoutEvent:
    """The B-mode region or its spacing changed at frame `seq` (or was set, when `initial`).

    roi: (x, y, w, h) in source pixels; the whole frame for a source that delivers it cropped.
    spacing_mm: (row, column) mm per ROI pixel, or None. calibration: where the spacing comes
    from ("config", "depth_mm", "source", "screen", "none" or "refused"); calibration_note: how
    it was read, or why a scale was refused. reason: what the trackers noticed.
    """

    seq: int
    roi: tuple[int, int, int, int]
    spacing_mm: tuple[float, float] | None
    calibration: str
    reason: str
    initial: bool
    old_roi: tuple[int, int, int, int] | None = None
    old_spacing_mm: tuple[float, float] | None = None
    calibration_note: str = ""

    def as_dict(self) -> dict:
        """Plain JSON-ready values, for the measurement log."""

        def spacing(s):
            return None if s is None else [round(float(v), 6) for v in s]

        return {
            "seq": int(self.seq),
            "roi": [int(v) for v in self.roi],
            "spacing_mm": spacing(self.spacing_mm),
            "calibration": self.calibration,
            "calibration_note": self.calibration_note,
            "reason": self.reason,
            "initial": bool(self.initial),
            "old_roi": None if self.old_roi is None else [int(v) for v in self.old_roi],
            "old_spacing_mm": spacing(self.old_spacing_mm),
        }


CONFIG_NOT_USED = "the config's [calibration] {} is for screens and not used"  # a Calibration note's part


class Prepare:
    """Callable: `prepare(frame, cropped)` -> (ROI frame or None, LayoutEvent or None).

    frame: as delivered by a source. cropped: the source already delivers the B-mode region.
    Returns None instead of a frame while no B-mode region has been found on the screen (the
    frame is counted in `frames_without_roi`), and while the screen's layout seems to have changed
    but the region has not been detected again yet (`RoiTracker.unsettled`; counted in
    `frames_layout_changing`): such a frame cut with the old rectangle and measured with the old
    scale could show a wrong thickness in mm. The returned frame's image is a copy of the ROI
    pixels only, never a view into the screen. `roi` and `calibration` hold the current state.
    """

    def __init__(
        self,
        roi: RoiOptions = RoiOptions(),
        calibration: SpacingOptions = SpacingOptions(),
        detector=detect_roi,
    ):
        manual = None
        if roi.rect:  # four numbers: RoiOptions checked
            x, y, w, h = roi.rect
            manual = manual_roi(x, y, w, h)
        self.fixed: Calibration | None = from_config(*calibration.spacing_mm) if calibration.spacing_mm else None
        self.tracker = RoiTracker(manual, roi.redetect_every, roi.persist, roi.min_gap, roi.tol, detector=detector)
        self.depth_mm, self.width_mm = calibration.depth_mm or None, calibration.width_mm or None
        self.calibrator = Calibrator(
            self.fixed,
            calibration.tick_mm or None,
            calibration.square_pixels,
            calibration.retry_every,
            depth_mm=self.depth_mm,
            width_mm=self.width_mm,
        )
        self.roi: tuple[int, int, int, int] | None = None
        self.calibration: Calibration | None = None
        self.stated: Calibration | None = None
        self.frames_without_roi = 0
        self.frames_layout_changing = 0

    def __call__(
        self, frame: Frame, cropped: bool = False, stated: Calibration | None = None
    ) -> tuple[Frame | None, LayoutEvent | None]:
        """The frame's B-mode region with its spacing, and the layout event if the layout changed.
        cropped: the source delivers the B-mode region only. stated: what the source says of its
        spacing (a DICOM region's reading): when it refused one (no spacing, a note), that note
        says why there is no scale, rather than "states no spacing"."""
        self.stated = (
            stated
            if stated is not None
            and stated.spacing_mm is None
            and stated.source == "none"
            and stated.note
            and stated.note != UNKNOWN.note
            else None
        )
        if cropped:
            return self._pass_through(frame)
        # one grayscale of the screen for the ROI's checks and the scale's
        reads_scale = self.fixed is None and self.depth_mm is None
        gray = screen_gray(frame.image) if self.tracker.manual is None or reads_scale else None
        roi, roi_change = self.tracker.update(frame.image, frame.seq, gray=gray, colour=frame.colour)
        if roi is None:
            self.frames_without_roi += 1
            return None, None
        if self.tracker.unsettled:
            self.frames_layout_changing += 1
            return None, None
        stated_cal = self._source_spacing(frame.spacing_mm)
        if stated_cal is None:
            # The config's spacing, or the scale on the screen (read again on a layout change).
            cal, scale_change = self.calibrator.update(
                frame.image, roi, roi_changed=roi_change is not None, seq=frame.seq, gray=gray, colour=frame.colour
            )
            why = scale_change.reason if scale_change is not None else "spacing changed"
            if self.stated is not None and cal.spacing_mm is None and cal.source == "none":
                cal = self.stated  # no scale on the screen either: say why the source's was not used
        else:  # the source knows the spacing of its whole frame (a DICOM file not cropped)
            cal, why = stated_cal, "source spacing changed"
        reasons = [f"ROI: {roi_change.reason}"] if roi_change is not None else []
        if self.calibration is not None and not cal.close_to(self.calibration):
            reasons.append(f"scale: {why}")
        event = self._event(frame.seq, roi.rect, cal, reasons)
        assert self.calibration is not None  # _event keeps the first calibration and every change
        return replace(
            crop_frame(frame, roi, self.calibration.spacing_mm), spacing_source=self.calibration.source
        ), event

    def _pass_through(self, frame: Frame) -> tuple[Frame, LayoutEvent | None]:
        h, w = frame.image.shape[:2]
        stated_cal = self._source_spacing(frame.spacing_mm)
        if stated_cal is not None:
            cal = stated_cal
        elif self.fixed is not None:
            cal = self.fixed
        elif self.depth_mm is not None:
            cal = from_depth(self.depth_mm, h, w, self.width_mm)
        else:
            cal = self.stated or Calibration(None, "none", "the source states no spacing")
        reasons = []
        if self.roi is not None and self.roi != (0, 0, w, h):
            reasons.append("ROI: frame size changed")
        if self.calibration is not None and not cal.close_to(self.calibration):
            reasons.append("scale: source spacing changed")
        event = self._event(frame.seq, (0, 0, w, h), cal, reasons)
        assert self.calibration is not None  # _event keeps the first calibration and every change
        spacing, source = self.calibration.spacing_mm, self.calibration.source
        if spacing == frame.spacing_mm and (
            source == frame.spacing_source or (not frame.spacing_source and source in ("source", "none"))
        ):
            return frame, event  # the frame says it already (an unset source reads as its own)
        return replace(frame, spacing_mm=spacing, spacing_source=source), event

    def _source_spacing(self, spacing_mm) -> Calibration | None:
        """The spacing the source states for its frames (a DICOM region's, the cart's recorded one),
        or None to calibrate as for a frame that states none. A stated spacing wins over the
        config's [calibration] spacing_mm and depth_mm, which describe a screen (the note says so
        when one is set); one refused as implausible gives way to them, or, without them, says why
        there is none."""
        if spacing_mm is None:
            return None
        cal = from_source(spacing_mm)
        configured = self.fixed is not None or self.depth_mm is not None
        if cal.spacing_mm is None:
            return None if configured else cal
        if configured:
            what = "spacing_mm" if self.fixed is not None else "depth_mm"
            cal = replace(cal, note=f"{cal.note}; {CONFIG_NOT_USED.format(what)}")
        return cal

    def _event(self, seq: int, rect, cal: Calibration, reasons: list[str]) -> LayoutEvent | None:
        """Update the state; an event when this is the first layout or something changed."""
        initial = self.roi is None
        if not initial and not reasons:
            return None
        old_roi = self.roi
        old_spacing = None if self.calibration is None else self.calibration.spacing_mm
        x, y, w, h = (int(v) for v in rect)
        self.roi, self.calibration = (x, y, w, h), cal
        return LayoutEvent(
            seq=int(seq),
            roi=self.roi,
            spacing_mm=None if cal.spacing_mm is None else (float(cal.spacing_mm[0]), float(cal.spacing_mm[1])),
            calibration=cal.source,
            calibration_note=cal.note,
            reason="; ".join(reasons) if reasons else "first frame",
            initial=initial,
            old_roi=old_roi,
            old_spacing_mm=old_spacing,
        )
