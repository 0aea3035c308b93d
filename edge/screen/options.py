"""The options of the screen stage, as the [roi] and [calibration] sections of the config give them:
where the B-mode region is and how its pixel spacing is found."""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import require_option as _require
from edge.screen.spacing import SPACING_RANGE_MM


@dataclass(frozen=True)
class RoiOptions:
    rect: tuple[int, ...] = ()  # [x, y, w, h] in screen pixels; empty: detect the B-mode region
    redetect_every: int = (
        300  # frames between routine re-detections, run beside the frames (0: only on a layout change)
    )
    persist: int = 1  # frames a layout check must fail in a row before detecting again
    min_gap: int = 15  # frames at least between two detections
    tol: int = 2  # pixels an edge may move before the region counts as changed

    def __post_init__(self):
        r = self.rect
        _require(
            "roi",
            "rect",
            list(r),
            len(r) == 0 or (len(r) == 4 and min(r[:2]) >= 0 and min(r[2:]) >= 8),
            "expected [] or [x, y, w, h] with x, y >= 0 and w, h >= 8",
        )
        _require("roi", "redetect_every", self.redetect_every, self.redetect_every >= 0, "must be 0 or more")
        _require("roi", "persist", self.persist, self.persist >= 1, "must be at least 1")
        _require("roi", "min_gap", self.min_gap, self.min_gap >= 0, "must be 0 or more")
        _require("roi", "tol", self.tol, self.tol >= 0, "must be 0 or more")


@dataclass(frozen=True)
class SpacingOptions:
    """How the pixel spacing (mm per pixel) is found: the config's [calibration] section, named for
    what the operator does (calibrate the scale), not for the int8 representative set or the
    thickness response."""

    spacing_mm: tuple[float, ...] = ()  # [row, column] or [both] mm per pixel; empty: source or screen
    tick_mm: float = 0.0  # mm between two ticks of the screen scale (1, 2, 2.5, 5, 10, 20); 0: read the numbers
    square_pixels: bool = True  # with only a depth scale on screen, take the pixels as square
    retry_every: int = 30  # frames between attempts to read the scale while none is known
    depth_mm: float = 0.0  # the depth set on the scanner: rows = depth / B-mode height; 0: not set
    width_mm: float = 0.0  # with depth_mm, the B-mode's width: columns = width / B-mode width; 0: square

    def __post_init__(self):
        s = self.spacing_mm
        lo, hi = SPACING_RANGE_MM
        _require(
            "calibration",
            "spacing_mm",
            list(s),
            len(s) <= 2 and all(lo <= v <= hi for v in s),
            f"expected [], [mm] or [row_mm, column_mm], each {lo:g}-{hi:g} mm",
        )
        _require(
            "calibration",
            "tick_mm",
            self.tick_mm,
            self.tick_mm in (0, 1, 2, 2.5, 5, 10, 20),
            "must be 0 (automatic) or a scale step: 1, 2, 2.5, 5, 10 or 20",
        )
        _require("calibration", "retry_every", self.retry_every, self.retry_every >= 1, "must be at least 1")
        _require(
            "calibration",
            "depth_mm",
            self.depth_mm,
            self.depth_mm == 0 or 10 <= self.depth_mm <= 300,
            "must be 0 (not set) or a depth of 10-300 mm",
        )
        _require(
            "calibration",
            "width_mm",
            self.width_mm,
            self.width_mm == 0 or (self.depth_mm and 5 <= self.width_mm <= 300),
            "must be 0, or 5-300 mm together with depth_mm",
        )
        _require(
            "calibration", "depth_mm", self.depth_mm, not (self.depth_mm and s), "and spacing_mm are both set: give one"
        )
