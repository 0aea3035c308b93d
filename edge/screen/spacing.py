"""Pixel spacing (mm per pixel, rows and columns apart): from config, DICOM or the screen's scale.

Origins, in order of trust: numbers in the config (`from_config`); the operator's depth setting
(`from_depth`: depth / B-mode height) or two points a known distance apart (`from_points`,
`tlf-edge calibrate`); the ultrasound regions of a DICOM file (`from_dicom_region`); the depth
scale drawn beside the B-mode (`read_scale`, `from_screen`, read by edge.screen.scale_reader: a spacing
only when the numbers on screen confirm the marks). A lateral scale whose step matches the depth
scale confirms square pixels; without one the pixels are taken as square, and the result says
so. When no scale is known the spacing is None, and when a scale is seen but not confirmed the
source is "refused": a thickness is then reported in pixels, never in invented millimetres.

`Calibrator` follows a live screen: it re-reads the scale when the ROI changes or when the
pixels where the scale was found change, and reports a `ScaleChange`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.screen import ocr, scale_reader

# mm per pixel a B-mode image can have (the config's own bounds): a spacing outside, stated by a
# file or read off a screen, is a wrong one, and is not used (thickness in pixels instead).
SPACING_RANGE_MM = (0.001, 10.0)


@dataclass(frozen=True)
class Calibration:
    """spacing_mm: (row, column) mm per pixel, or None when unknown. source: where it came from
    ("config", "depth_mm", "dicom", "source", "screen"; "none" when no scale is known,
    "refused" when a scale is on screen but its numbers do not confirm it); note: a
    human-readable detail (for "refused", why)."""

    spacing_mm: tuple[float, float] | None
    source: str
    note: str = ""

    def close_to(self, other: Calibration | None, rel: float = 0.005) -> bool:
        """Same spacing within `rel` (relative) on both axes; None only matches None."""
        if other is None:
            return False
        a, b = self.spacing_mm, other.spacing_mm
        if a is None or b is None:
            return a is None and b is None and self.source == other.source
        return all(abs(p - q) <= rel * q for p, q in zip(a, b))


UNKNOWN = Calibration(None, "none", "no scale known")


def plausible(cal: Calibration) -> Calibration:
    """`cal`, or no spacing (with the reason) when its spacing is outside SPACING_RANGE_MM."""
    s = cal.spacing_mm
    lo, hi = SPACING_RANGE_MM
    if s is None or all(math.isfinite(v) and lo <= v <= hi for v in s):
        return cal
    shown = " x ".join(f"{v:g}" for v in s)
    return Calibration(None, "none", f"{cal.source} spacing {shown} mm per pixel is outside {lo:g}-{hi:g} mm: not used")


def from_source(spacing_mm) -> Calibration:
    """The spacing a source states for its frames (a DICOM region, the phantom), if plausible;
    no spacing (with the reason) when it is not two numbers, (row, column)."""
    try:
        values = tuple(float(v) for v in spacing_mm)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2:
        return Calibration(None, "none", f"source spacing {spacing_mm!r} is not (row, column) mm per pixel: not used")
    return plausible(Calibration((values[0], values[1]), "source", "stated by the source"))


def from_config(row_mm, col_mm=None) -> Calibration:
    """Explicit spacing from the config; `col_mm` defaults to `row_mm` (square pixels)."""
    col_mm = row_mm if col_mm is None else col_mm
    try:
        r, c = float(row_mm), float(col_mm)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"pixel spacing {(row_mm, col_mm)!r} is not two numbers") from e
    lo, hi = SPACING_RANGE_MM
    if not (math.isfinite(r) and math.isfinite(c) and lo <= r <= hi and lo <= c <= hi):
        raise ConfigError(f"pixel spacing {(row_mm, col_mm)!r} mm is out of range ({lo:g}-{hi:g} mm)")
    return Calibration((r, c), "config", "set in the configuration")


def from_dicom_region(region) -> Calibration:
    """Spacing from one item of a DICOM SequenceOfUltrasoundRegions (PhysicalDelta in cm)."""
    units_x, units_y = region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection")
    dx, dy = region.get("PhysicalDeltaX"), region.get("PhysicalDeltaY")
    try:
        dx, dy = float(dx), float(dy)
    except (TypeError, ValueError):
        dx = dy = 0.0
    if units_x != 3 or units_y != 3 or not dx > 0 or not dy > 0:
        return Calibration(None, "none", f"DICOM region has no spacing in cm (units {units_x!r}/{units_y!r})")
    return plausible(Calibration((dy * 10.0, dx * 10.0), "dicom", "SequenceOfUltrasoundRegions"))


@dataclass(frozen=True)
class ScaleReading:
    """A row of scale marks beside the ROI (screen pixels), read or refused.

    positions: mark centres along the axis (px from the row's first mark, continuous).
    major: which marks are long. px_per_tick: pixels per step. mm_per_tick / mm_per_px: the
    spacing this row gives, or None when it was refused. band: (x, y, w, h) of the screen area
    holding the marks (used to notice a change). kind: "ticks" or "dots". note: how it was read
    or why it was refused.
    """

    axis: str  # "depth" (rows) or "lateral" (columns)
    positions: np.ndarray
    major: np.ndarray
    px_per_tick: float
    mm_per_tick: float | None
    mm_per_px: float | None
    band: tuple[int, int, int, int]
    kind: str = "ticks"
    note: str = ""


def _reading(axis: str, row: scale_reader.MarkRow, mm_per_tick: float | None, note: str) -> ScaleReading:
    pos = (row.points - row.points[0]) @ np.array(row.direction)
    return ScaleReading(
        axis,
        pos,
        row.long,
        row.pitch_px,
        mm_per_tick,
        None if mm_per_tick is None else mm_per_tick / row.pitch_px,
        row.band,
        row.kind,
        note,
    )


def read_scale(image: np.ndarray, roi, axis: str = "depth", tick_mm: float | None = None) -> ScaleReading | None:
    """The depth scale beside the ROI, read (its spacing confirmed by the numbers on screen) or
    refused (mm_per_px None, `note` says why); None when there are no marks at all.

    roi: a Roi or an (x, y, w, h) rectangle. tick_mm: the operator's word for one step between
    marks (it confirms like a number on screen would). See edge.screen.scale_reader.
    """
    if axis != "depth":
        raise ConfigError(f"unknown scale axis {axis!r} (only 'depth' scales are read on their own)")
    verdict, _ = scale_reader.read_depth_scale(image, roi, tick_mm)
    if verdict is None:
        return None
    return _reading("depth", verdict.row, verdict.step_mm, verdict.reason)


def from_screen(
    image: np.ndarray, roi, tick_mm: float | None = None, square_pixels: bool = True
) -> tuple[Calibration, tuple]:
    """Spacing read from the screen's scales beside the ROI: (Calibration, readings).

    The depth scale gives the row spacing, only when the numbers on screen (labels, depth
    readout, or the operator's tick_mm) confirm it; a scale seen but not confirmed gives source
    "refused" with the reason (thickness in px, flagged SCALE_UNCERTAIN). A lateral scale whose
    step matches the row spacing confirms square pixels; without one the pixels are taken as
    square (unless square_pixels=False: then no spacing).
    """
    depth = read_scale(image, roi, "depth", tick_mm)
    if depth is None:
        return Calibration(None, "none", "no depth scale found beside the ROI"), ()
    if depth.mm_per_px is None:
        return Calibration(None, "refused", f"depth scale refused: {depth.note}"), (depth,)
    row_mm = depth.mm_per_px
    col_mm, lateral = scale_reader.lateral_step(image, roi, row_mm)
    if col_mm is not None:
        assert lateral is not None  # lateral_step gives a step only with the row it was read on
        lat = _reading("lateral", lateral, col_mm * lateral.pitch_px, "step matches the depth scale")
        return Calibration((row_mm, col_mm), "screen", f"depth and lateral scales: {depth.note}"), (depth, lat)
    if not square_pixels:
        return Calibration(None, "none", "depth scale read, no lateral scale to give the columns"), (depth,)
    return Calibration((row_mm, row_mm), "screen", f"depth scale, square pixels assumed: {depth.note}"), (depth,)


def from_depth(depth_mm: float, roi_h: int, roi_w: int, width_mm: float | None = None) -> Calibration:
    """The operator's depth setting: rows = depth / B-mode height; columns = width / B-mode
    width when the width is given, else square."""
    row = float(depth_mm) / max(int(roi_h), 1)
    col = row if not width_mm else float(width_mm) / max(int(roi_w), 1)
    note = f"depth {depth_mm:g} mm over {roi_h} rows" + (
        f", width {width_mm:g} mm over {roi_w} columns" if width_mm else ""
    )
    return Calibration((row, col), "depth_mm", note)


def from_points(p1, p2, mm: float) -> float:
    """mm per pixel from two screen points `mm` apart (square pixels)."""
    d = math.hypot(float(p2[0]) - float(p1[0]), float(p2[1]) - float(p1[1]))
    if not (math.isfinite(mm) and 0 < mm <= 500):
        raise ConfigError(f"distance {mm!r} mm is out of range (0-500 mm)")
    if d < 10:
        raise ConfigError(f"points {tuple(p1)!r} and {tuple(p2)!r} are {d:.1f} px apart: at least 10 px needed")
    s = mm / d
    if not 0.001 <= s <= 10.0:
        raise ConfigError(f"{mm:g} mm over {d:.1f} px gives {s:.4g} mm per pixel, outside 0.001-10")
    return s


@dataclass(frozen=True)
class ScaleChange:
    """The spacing changed (operator changed depth or zoom), or became known or unknown."""

    seq: int | None
    old: Calibration | None
    new: Calibration
    reason: str


class Calibrator:
    """Keeps the spacing of a live screen current.

    fixed: a Calibration from config or DICOM, used as is (the screen is never read).
    depth_mm (and width_mm): the operator's depth setting; the spacing follows the ROI's size.
    Otherwise the scale is read at the first frame, whenever the ROI changed, when the pixels of
    the scale area change, and every `retry_every` frames while no scale marks are known (a
    scale seen and refused is read again only when its pixels or the ROI change: reading costs
    OCR). `update` returns the current Calibration and a ScaleChange when it changed (also
    passed to `on_change`).
    """

    def __init__(
        self,
        fixed: Calibration | None = None,
        tick_mm: float | None = None,
        square_pixels: bool = True,
        retry_every: int = 30,
        on_change: Callable[[ScaleChange], None] | None = None,
        depth_mm: float | None = None,
        width_mm: float | None = None,
    ):
        if tick_mm is not None and float(tick_mm) not in scale_reader.STEPS_MM:
            raise ConfigError(f"tick spacing {tick_mm!r} mm is not supported (one of {scale_reader.STEPS_MM})")
        self.fixed, self.tick_mm, self.square_pixels = fixed, tick_mm, square_pixels
        self.depth_mm, self.width_mm = depth_mm or None, width_mm or None
        self.retry_every, self.on_change = int(retry_every), on_change
        self.current: Calibration | None = None
        self._readings: tuple = ()
        self._signature: list[np.ndarray] = []
        self._since = 0

    def _signatures(self, g: np.ndarray) -> list[np.ndarray]:
        return [
            g[max(0, y) : y + h, max(0, x) : x + w].astype(np.int16)
            for (x, y, w, h) in (r.band for r in self._readings)
        ]

    def _scale_moved(self, g: np.ndarray) -> bool:
        for old, new in zip(self._signature, self._signatures(g)):
            # Ticks and labels are sharp: count pixels that changed a lot, not the mean change.
            if old.shape != new.shape or int((np.abs(old - new) > 40).sum()) > max(10, old.size // 1000):
                return True
        return False

    def _set(self, new: Calibration, seq, reason: str):
        old, self.current = self.current, new
        if old is not None and new.close_to(old):
            self.current = old
            return old, None
        return new, self._report(ScaleChange(seq, old, new, reason))

    def update(
        self,
        image: np.ndarray,
        roi,
        roi_changed: bool = False,
        seq: int | None = None,
        gray: np.ndarray | None = None,
        colour: Callable[[], np.ndarray] | None = None,
    ):
        """(Calibration, ScaleChange | None) for this frame. gray: the frame's grayscale, when
        the caller has it already. colour: the screen in colour when `image` is only its
        grayscale (Frame.colour), for a reading."""
        if self.fixed is not None:
            if self.current is None:
                self.current = self.fixed
                return self.fixed, self._report(ScaleChange(seq, None, self.fixed, "fixed"))
            return self.fixed, None
        if roi is None:  # no image area found yet: nothing to read the scale against
            old, self.current, self._readings = self.current, UNKNOWN, ()
            if old is not None and old.spacing_mm is None and old.source == "none":
                return UNKNOWN, None
            return UNKNOWN, self._report(ScaleChange(seq, old, UNKNOWN, "no ROI"))
        if self.depth_mm is not None:
            if self.current is not None and not roi_changed:
                return self.current, None
            x, y, w, h = roi.rect if hasattr(roi, "rect") else roi
            return self._set(
                from_depth(self.depth_mm, h, w, self.width_mm),
                seq,
                "first frame" if self.current is None else "ROI changed",
            )
        g = gray if gray is not None else image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        self._since += 1
        reason = None
        if self.current is None or not self._readings and self._since >= self.retry_every:
            reason = "first frame" if self.current is None else "retry"
        elif roi_changed:
            reason = "ROI changed"
        elif self._readings and self._scale_moved(g):
            reason = "scale changed"
        if reason is None:
            return self.current, None
        self._since = 0
        # Tesseract starts while the marks are found, for a reading that is waited for (the first,
        # a new layout's); not for the retries on a screen that showed no marks, which seldom OCR.
        with ocr.started_ahead() if reason != "retry" else contextlib.nullcontext():
            screen = image if colour is None else colour()
            new, self._readings = from_screen(screen, roi, self.tick_mm, self.square_pixels)
        self._signature = self._signatures(g)
        return self._set(new, seq, reason)

    def _report(self, change: ScaleChange) -> ScaleChange:
        if self.on_change is not None:
            self.on_change(change)
        return change
