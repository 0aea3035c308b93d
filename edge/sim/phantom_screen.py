"""The phantom B-mode shown on a whole scanner screen, as a capture card delivers it.

A screen is dark UI chrome around the B-mode rectangle: patient fields (a fictitious name and
ID), a clock that ticks, a text panel, a grey bar, a depth scale with a tick every 5 mm and a
label every cm, a focus marker, and a lateral scale under the image. Every screen comes with
its exact ground truth: the B-mode rectangle (x, y, w, h) in screen pixels and the screen's
mm per pixel (row, column). Pixels on screen are square up to rounding, as on real scanners.

The B-mode is rendered by `edge.sim.phantom` at an acquisition size (256 rows by default) and
scan-converted (resized) into the rectangle, so the rectangle covers exactly depth x width mm.
A clip can change depth mid-way (e.g. 40 mm then 50 mm): the rectangle and the scale change.
Everything is deterministic for a seed.

`style` draws the depth scale as other scanners do (`STYLES`, see edge.screen.scale_reader for how
real machines draw it): 2.5, 2, 1 mm or 1 cm steps, cm labels, mm labels at the ends only, or
none; ticks or dots; left, right or both sides; white, grey, green, yellow or blue; focus
markers, a cursor or a TGC curve on or beside the scale; several fonts; the depth readout as
"4.0 cm", "D 4cm", "4cm" or "Depth 40 mm"; a sector image with dots along its edge. The default
style is the screen as it always was (tests/test_phantom_screen_pinned.py holds it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ConfigError, SinkError
from edge.sim import phantom

SIZES = ((1280, 720), (1920, 1080), (1024, 768), (640, 480))


@dataclass(frozen=True)
class ScaleStyle:
    """How a screen draws its depth scale and readout (colours BGR)."""

    name: str
    step_mm: float = 5.0  # between two marks
    long_every: int = 2  # a long tick every this many steps (0: all alike)
    labels: str = "cm"  # "cm": 0 1 2 ... at the long ticks; "mm_ends": 0 and the depth in mm; "none"
    side: str = "right"  # "right", "left" or "both"
    colour: tuple = (225, 225, 225)
    long_colour: tuple | None = None  # long ticks in another colour (None: the same)
    marks: str = "ticks"  # "ticks", or "dots" along the edge of a sector image
    readout: str = "Depth {cm:.1f} cm"  # the depth line of the text panel ("" for none)
    font: int = cv2.FONT_HERSHEY_SIMPLEX
    focus_on_scale: bool = False  # focus triangles drawn against the scale's axis
    cursor: bool = False  # a measuring cursor (+) over the scale
    tgc: bool = False  # a TGC curve in a box beside the scale
    chrome: int | None = None  # the chrome's grey level (None: dark, as the default)


DEFAULT = ScaleStyle("default")
STYLES = {
    s.name: s
    for s in (
        DEFAULT,
        # cm labels, 3 short ticks between (2.5 mm), focus markers on the line, left, grey
        ScaleStyle(
            "quarter",
            2.5,
            4,
            "cm",
            "left",
            (170, 170, 170),
            readout="D {cm:g}cm",
            font=cv2.FONT_HERSHEY_DUPLEX,
            focus_on_scale=True,
        ),
        # 1 cm ticks all white, a longer blue one each 5 cm, no labels, the depth as "11cm"
        ScaleStyle(
            "cm_blue",
            10.0,
            5,
            "none",
            "right",
            (213, 213, 213),
            (255, 205, 90),
            readout="{cm:g}cm",
            font=cv2.FONT_HERSHEY_DUPLEX,
        ),
        # 1 cm ticks all alike, 0 and the depth in mm at the ends, grey chrome, a TGC curve, no readout
        ScaleStyle("mm_ends", 10.0, 0, "mm_ends", "right", (190, 190, 190), readout="", tgc=True, chrome=58),
        # 2 mm ticks (4 short between), cm labels, both sides, green, a cursor, "Depth 40 mm"
        ScaleStyle("green_2mm", 2.0, 5, "cm", "both", (60, 210, 60), readout="Depth {mm:.0f} mm", cursor=True),
        # 1 mm ticks (9 short between), cm labels, left, yellow
        ScaleStyle(
            "yellow_1mm",
            1.0,
            10,
            "cm",
            "left",
            (60, 220, 230),
            readout="Depth {cm:.1f} cm",
            font=cv2.FONT_HERSHEY_COMPLEX,
        ),
        # a sector image with a dot per cm from its virtual apex down its right edge, "16cm"
        ScaleStyle("sector_dots", 10.0, 0, "none", "right", (224, 224, 224), marks="dots", readout="{cm:g}cm"),
    )
}
FAN_DEG = 38.0  # a sector style's half angle
NAMES = ("DOE^JANE", "ROE^RICHARD", "MUSTERFRAU^ERIKA", "BIANCHI^LUCIA", "DUPONT^MARC")
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Layout:
    """Where everything sits on one screen (pixels; x to the right, y down)."""

    size: tuple[int, int]  # (width, height) of the screen
    depth_mm: float
    width_mm: float
    roi: tuple[int, int, int, int]  # B-mode rectangle (x, y, w, h)
    spacing_mm: tuple[float, float]  # (row, column) mm per screen pixel inside the rectangle
    scale_x: int  # column of the depth scale's axis line (ticks point right from it)
    depth_ticks: tuple[tuple[int, bool], ...]  # (first row, is a cm tick) for each 5 mm tick
    lateral_y: int | None  # row of the lateral scale's axis line (ticks point down), or None
    tick_px: int  # tick thickness
    unit: float  # chrome scale factor (1.0 at 720 rows)
    style: ScaleStyle = DEFAULT
    apex: tuple[float, float] | None = None  # a sector style's virtual apex (x, y)


@dataclass(frozen=True)
class Screen:
    """One scanner screen with its ground truth."""

    image: np.ndarray  # BGR uint8 (H, W, 3)
    roi: tuple[int, int, int, int]
    spacing_mm: tuple[float, float]
    depth_mm: float
    index: int  # frame number in its clip (0 for a single screen)
    scan: phantom.Scan  # the B-mode at acquisition size, with its labels and thickness


def layout(
    size: tuple[int, int] = (1280, 720),
    depth_mm: float = 40.0,
    width_mm: float = 40.0,
    seed: int = 0,
    lateral_scale: bool = True,
    style: str | ScaleStyle = "default",
) -> Layout:
    """The screen layout for a depth: the B-mode is as tall as the screen allows, pixels square."""
    st = _style(style)
    if st is not DEFAULT:
        return _styled_layout(size, depth_mm, width_mm, seed, lateral_scale, st)
    sw, sh = (int(v) for v in size)
    if sw < 320 or sh < 240:
        raise ConfigError(f"screen size {size!r} is too small (at least 320x240)")
    if not (5.0 <= depth_mm <= 300.0) or not (5.0 <= width_mm <= 300.0):
        raise ConfigError(f"field {depth_mm!r} x {width_mm!r} mm is out of range (5-300 mm)")
    u = sh / 720.0
    rng = np.random.default_rng([seed, 17])
    top = round(56 * u) + round(12 * u) + int(rng.integers(-4, 5))
    bottom_room = round(40 * u) + round(12 * u) + (round(30 * u) if lateral_scale else 0)
    left_panel, right_panel = round(220 * u), round(130 * u)
    h = sh - top - bottom_room
    avail_w = sw - left_panel - right_panel
    w = round(h * width_mm / depth_mm)
    if w > avail_w:  # a wide field: the width limits, the height follows
        w = avail_w
        h = round(w * depth_mm / width_mm)
    x = left_panel + (avail_w - w) // 2 + int(rng.integers(-6, 7))
    y = top
    row_mm, col_mm = depth_mm / h, width_mm / w
    tick = max(1, round(u))
    scale_x = x + w + round(12 * u)
    ticks = []
    for k in range(int(math.floor(depth_mm / 5.0 + 1e-9)) + 1):
        r = min(y + int(math.floor(k * 5.0 / row_mm)), y + h)
        ticks.append((r, k % 2 == 0))
    lateral_y = y + h + round(10 * u) if lateral_scale else None
    return Layout(
        size=(sw, sh),
        depth_mm=float(depth_mm),
        width_mm=float(width_mm),
        roi=(x, y, w, h),
        spacing_mm=(row_mm, col_mm),
        scale_x=scale_x,
        depth_ticks=tuple(ticks),
        lateral_y=lateral_y,
        tick_px=tick,
        unit=u,
    )


def _text(img, s: str, org, u: float, scale: float = 0.5, colour=(200, 200, 200), font: int = FONT) -> None:
    cv2.putText(img, s, (int(org[0]), int(org[1])), font, scale * u, colour, 1, cv2.LINE_AA)


def _style(style) -> ScaleStyle:
    if isinstance(style, ScaleStyle):
        return style
    if style not in STYLES:
        raise ConfigError(f"unknown screen style {style!r} (one of {', '.join(STYLES)})")
    return STYLES[style]


def _styled_layout(size, depth_mm, width_mm, seed, lateral_scale, st: ScaleStyle) -> Layout:
    """A layout for a non-default style: the default's geometry, the style's marks, a sector's
    apex and fan (square pixels; a sector's depth runs from its apex to its arc)."""
    lay = layout(size, depth_mm, width_mm, seed, lateral_scale and st.marks == "ticks")
    x, y, w, h = lay.roi
    sw, sh = lay.size
    u = lay.unit
    apex = None
    if st.marks == "dots":
        a = round(0.1 * h)  # the virtual apex, above the image's flat top (and below the top bar)
        y, h = y + a, h - a
        half = math.radians(FAN_DEG)
        w = min(round(2 * (h + a) * math.sin(half)), sw - round(260 * u))
        x = (sw - w) // 2 + int(np.random.default_rng([seed, 18]).integers(-6, 7))
        row_mm = depth_mm / (h + a)
        apex = (x + w / 2.0, float(y - a))
        spacing = (row_mm, row_mm)
        width = w * row_mm
    else:
        spacing, width = lay.spacing_mm, lay.width_mm
    row_mm = spacing[0]
    top = y if apex is None else apex[1]
    ticks = []
    for k in range(int(math.floor(depth_mm / st.step_mm + 1e-9)) + 1):
        r = min(int(top) + int(math.floor(k * st.step_mm / row_mm)), y + h)
        ticks.append((r, st.long_every > 0 and k % st.long_every == 0))
    scale_x = (x + w + round(12 * u)) if st.side != "left" else (x - round(12 * u))
    return replace(
        lay,
        width_mm=float(width),
        roi=(x, y, w, h),
        spacing_mm=spacing,
        scale_x=scale_x,
        depth_ticks=tuple(ticks),
        style=st,
        apex=apex,
    )


def fan_mask(lay: Layout) -> np.ndarray | None:
    """A sector style's image area inside its rectangle (bool h x w), None for a rectangle."""
    if lay.apex is None:
        return None
    x, y, w, h = lay.roi
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx + x + 0.5 - lay.apex[0], yy + y + 0.5 - lay.apex[1]
    r = np.hypot(dx, dy)
    return (np.abs(np.degrees(np.arctan2(dx, dy))) <= FAN_DEG) & (r <= h + (y - lay.apex[1]))


def _styled_scale(img: np.ndarray, lay: Layout) -> None:
    """The depth scale, focus markers and extras of a non-default style."""
    st, u, t = lay.style, lay.unit, lay.tick_px
    x, y, w, h = lay.roi
    fs = max(0.45, 0.4 / u)  # labels stay legible on small screens, as real scanners keep them
    if st.marks == "dots":
        assert lay.apex is not None  # a "dots" style is a sector image: _styled_layout gave it its apex
        ax, ay = lay.apex
        half = math.radians(FAN_DEG)
        ux, uy = math.sin(half), math.cos(half)
        off = max(6.0, 7 * u)  # just outside the fan's right edge
        r_dot = max(1, round(1.5 * u))
        for k in range(len(lay.depth_ticks)):
            d = k * st.step_mm / lay.spacing_mm[0]
            cx, cy = ax + d * ux + off * uy, ay + d * uy - off * ux
            cv2.circle(img, (round(cx), round(cy)), r_dot, st.colour, -1, cv2.LINE_AA)
        return
    sides = ("right", "left") if st.side == "both" else (st.side,)
    major, minor = round(10 * u), round(5 * u)
    y_end = lay.depth_ticks[-1][0] + t - 1
    for side in sides:
        ax = (x + w + round(12 * u)) if side == "right" else (x - round(12 * u) - t)
        sign = 1 if side == "right" else -1
        img[y : y_end + 1, ax : ax + t] = st.colour
        for k, (r, is_long) in enumerate(lay.depth_ticks):
            n = major if is_long or st.long_every == 0 else minor
            colour = st.long_colour if (is_long and st.long_colour is not None) else st.colour
            x0, x1 = (ax + t, ax + t + n) if sign > 0 else (ax - n, ax)
            img[r : r + t, x0:x1] = colour
            label = None
            if st.labels == "cm" and is_long and side == sides[0]:
                label = f"{k * st.step_mm / 10:g}"
            elif st.labels == "mm_ends" and side == sides[0] and k in (0, len(lay.depth_ticks) - 1):
                label = f"{k * st.step_mm:g}"
            if label is not None:
                (tw, th), _ = cv2.getTextSize(label, st.font, fs * u, 1)
                lx = ax + t + major + round(6 * u) if sign > 0 else ax - major - round(6 * u) - tw
                ly = min(max(r + th // 2, y + th), y + h)
                _text(img, label, (lx, ly), u, fs, st.colour, st.font)
        if st.focus_on_scale:  # triangles pointing at the axis from outside, on the tick ends
            for f in (0.45, 0.6):
                fr = y + int(f * h)
                tip = ax + t + round(2 * u) if sign > 0 else ax - round(2 * u)
                base = tip + sign * round(9 * u)
                tri = np.array([[tip, fr], [base, fr - round(6 * u)], [base, fr + round(6 * u)]], np.int32)
                cv2.fillConvexPoly(img, tri, (200, 200, 200), cv2.LINE_AA)
    if st.cursor:  # a caliper cross on the scale line
        cx, cy = lay.scale_x + round(4 * u), y + int(0.3 * h)
        arm = round(7 * u)
        cv2.line(img, (cx - arm, cy), (cx + arm, cy), (240, 240, 240), 1)
        cv2.line(img, (cx, cy - arm), (cx, cy + arm), (240, 240, 240), 1)
    if st.tgc:  # a TGC curve in a box beyond the labels
        bx = (x + w + round(60 * u)) if st.side != "left" else (x - round(110 * u))
        by, bw, bh = y + int(0.3 * h), round(50 * u), round(50 * u)
        cv2.rectangle(img, (bx, by), (bx + bw, by + bh), (200, 200, 200), 1)
        pts = np.array([[bx + i, by + int(bh * (i / bw) ** 0.5)] for i in range(0, bw, 2)], np.int32)
        cv2.polylines(img, [pts], False, (200, 200, 200), 1, cv2.LINE_AA)


def chrome(lay: Layout, seed: int = 0) -> np.ndarray:
    """The static part of the screen (everything but the B-mode pixels and the clock)."""
    if lay.style is not DEFAULT:
        return _styled_chrome(lay, seed)
    sw, sh = lay.size
    u = lay.unit
    rng = np.random.default_rng([seed, 29])
    shade = int(rng.integers(8, 22))
    img = np.full((sh, sw, 3), shade, np.uint8)
    bar = round(56 * u)
    img[:bar] = (42, 36, 30)
    name = NAMES[int(rng.integers(len(NAMES)))]
    pid = f"TLF-{int(rng.integers(0, 1_000_000)):06d}"
    _text(img, f"Name: {name}", (14 * u, 24 * u), u, 0.6, (230, 230, 230))
    _text(img, f"ID: {pid}", (14 * u, 46 * u), u, 0.5)
    _text(img, "TLF-EDGE PHANTOM  L12-5 MSK", (sw * 0.42, 24 * u), u, 0.5, (190, 200, 120))
    _text(img, "2024-03-05", (sw - 260 * u, 24 * u), u, 0.5)

    x, y, w, h = lay.roi
    lines = ("2D", f"Depth {lay.depth_mm / 10:.1f} cm", "Gain 52", "DR 60", "FR 30 Hz", "Focus 1")
    for i, s in enumerate(lines):
        _text(img, s, (16 * u, y + (20 + 24 * i) * u), u, 0.5)
    # Grey bar: the display's grey map, black at the bottom.
    gx, gy, gw, gh = round(24 * u), round(y + 190 * u), round(16 * u), round(170 * u)
    ramp = np.linspace(255, 0, gh).astype(np.uint8)[:, None, None]
    img[gy : gy + gh, gx : gx + gw] = ramp
    cv2.rectangle(img, (gx - 1, gy - 1), (gx + gw, gy + gh), (120, 120, 120), 1)

    # Depth scale: axis line, a tick every 5 mm (long ones at each cm), cm labels.
    white = (225, 225, 225)
    t = lay.tick_px
    ax = lay.scale_x
    y_end = lay.depth_ticks[-1][0] + t - 1
    img[y : y_end + 1, ax : ax + t] = white
    major, minor = round(10 * u), round(5 * u)
    for k, (r, is_cm) in enumerate(lay.depth_ticks):
        img[r : r + t, ax : ax + t + (major if is_cm else minor)] = white
        if is_cm:
            _text(img, str(k // 2), (ax + t + major + 6 * u, r + 6 * u), u, 0.45, white)
    # Focus marker: a small triangle pointing at the focal depth, beyond the labels.
    fr = y + int(0.45 * h)
    fx = ax + round(44 * u)
    tri = np.array([[fx, fr], [fx + round(9 * u), fr - round(6 * u)], [fx + round(9 * u), fr + round(6 * u)]], np.int32)
    cv2.fillConvexPoly(img, tri, (200, 200, 200), cv2.LINE_AA)
    _lateral_scale(img, lay)
    _text(img, "TIS 0.4  MI 0.9  tlf-edge phantom screen", (16 * u, sh - 16 * u), u, 0.45, (160, 160, 160))
    return img


def _lateral_scale(img: np.ndarray, lay: Layout) -> None:
    """The lateral scale under the image: a tick every 5 mm pointing down, long ones at each cm."""
    if lay.lateral_y is None:
        return
    x, _, w, _ = lay.roi
    u, t, white = lay.unit, lay.tick_px, (225, 225, 225)
    major, minor, col_mm, ly = round(10 * u), round(5 * u), lay.spacing_mm[1], lay.lateral_y
    img[ly : ly + t, x : x + w] = white
    for k in range(int(math.floor(lay.width_mm / 5.0 + 1e-9)) + 1):
        c = min(x + int(math.floor(k * 5.0 / col_mm)), x + w - 1)
        img[ly : ly + t + (major if k % 2 == 0 else minor), c : c + t] = white


def _styled_chrome(lay: Layout, seed: int) -> np.ndarray:
    """The chrome of a non-default style: the default's panels and texts, the style's scale."""
    st, u = lay.style, lay.unit
    sw, sh = lay.size
    rng = np.random.default_rng([seed, 29])
    shade = int(rng.integers(8, 22)) if st.chrome is None else st.chrome
    img = np.full((sh, sw, 3), shade, np.uint8)
    bar = round(56 * u)
    img[:bar] = (42, 36, 30)
    name = NAMES[int(rng.integers(len(NAMES)))]
    pid = f"TLF-{int(rng.integers(0, 1_000_000)):06d}"
    fs = max(0.5, 0.4 / u)
    _text(img, f"Name: {name}", (14 * u, 24 * u), u, 0.6, (230, 230, 230))
    _text(img, f"ID: {pid}", (14 * u, 46 * u), u, 0.5)
    _text(img, "TLF-EDGE PHANTOM  L12-5 MSK", (sw * 0.42, 24 * u), u, 0.5, (190, 200, 120))
    _text(img, "2024-03-05", (sw - 260 * u, 24 * u), u, 0.5)
    x, y, w, h = lay.roi
    depth = st.readout.format(cm=lay.depth_mm / 10, mm=lay.depth_mm) if st.readout else None
    lines = ["2D"] + ([depth] if depth else []) + ["Gain 52", "DR 60", "FR 30 Hz"]
    px = x + w + round(20 * u) if st.side == "left" else 16 * u  # the panel away from a left scale
    for i, line in enumerate(lines):
        _text(img, line, (px, y + (20 + 28 * i) * u), u, fs, (200, 200, 200), st.font)
    _styled_scale(img, lay)
    _lateral_scale(img, lay)
    _text(img, "TIS 0.4  MI 0.9  tlf-edge phantom screen", (16 * u, sh - 16 * u), u, 0.45, (160, 160, 160))
    return img


def _clock(img: np.ndarray, lay: Layout, seconds: float) -> None:
    sw, _ = lay.size
    u = lay.unit
    s = int(seconds) + 10 * 3600 + 23 * 60
    x0 = round(sw - 130 * u)
    img[round(6 * u) : round(32 * u), x0 : sw - 4] = (42, 36, 30)
    _text(img, f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}", (x0 + 4, 24 * u), u, 0.5)


def compose(base: np.ndarray, lay: Layout, bmode: np.ndarray, seconds: float = 0.0) -> np.ndarray:
    """Put a B-mode image (any size, gray uint8) into a copy of the chrome `base`."""
    x, y, w, h = lay.roi
    img = base.copy()
    picture = cv2.resize(bmode, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    fan = fan_mask(lay)
    if fan is None:
        img[y : y + h, x : x + w] = picture
    else:  # a sector: the chrome stays outside the fan (its dots with it)
        img[y : y + h, x : x + w][fan] = picture[fan]
    _clock(img, lay, seconds)
    return img


def _acq_shape(depth_mm: float, width_mm: float, rows: int) -> tuple[int, int]:
    return rows, max(32, round(rows * width_mm / depth_mm))


def screen(
    seed: int,
    size: tuple[int, int] = (1280, 720),
    depth_mm: float = 40.0,
    width_mm: float = 40.0,
    machine: phantom.Machine | str | None = None,
    acq_rows: int = 256,
    lateral_scale: bool = True,
    style: str | ScaleStyle = "default",
) -> Screen:
    """One screen of a random phantom scene (a new scene per seed), its scale drawn in `style`."""
    lay = layout(size, depth_mm, width_mm, seed, lateral_scale, style)
    width_mm = lay.width_mm
    scan = phantom.scan(seed, _acq_shape(depth_mm, width_mm, acq_rows), machine, field_mm=(depth_mm, width_mm))
    img = compose(chrome(lay, seed), lay, scan.image)
    return Screen(img, lay.roi, lay.spacing_mm, float(depth_mm), 0, scan)


def clip_anatomy(seed: int, width_mm: float = 40.0) -> phantom.Anatomy:
    """The scene `screen_clip` shows for `seed` (at its first depth)."""
    return phantom.random_anatomy(np.random.default_rng(seed), width_mm=width_mm)


def screen_clip(
    seed: int,
    frames: int = 60,
    size: tuple[int, int] = (1280, 720),
    depths: Sequence[float] = (40.0,),
    change_at: int | Sequence[int] = (),
    fps: float = 30.0,
    width_mm: float = 40.0,
    machine: phantom.Machine | str = "default",
    acq_rows: int = 256,
    lateral_scale: bool = True,
    style: str | ScaleStyle = "default",
) -> Iterator[Screen]:
    """Yield `frames` screens of one moving scene; the depth steps through `depths`.

    change_at: the frame index (or indices, one per step) where the next depth starts, e.g.
    depths=(40, 50), change_at=30 shows 40 mm for frames 0-29 and 50 mm from frame 30 on. The
    tissue is the same scene at every depth; its slow motion restarts at each change.
    """
    steps = [change_at] if isinstance(change_at, int) else list(change_at)
    if len(steps) != len(depths) - 1 or sorted(steps) != steps or any(s <= 0 for s in steps):
        raise ConfigError(f"change_at {change_at!r} does not fit depths {tuple(depths)!r}")
    bounds = [0, *steps, frames]
    anatomy = clip_anatomy(seed, width_mm)
    for depth, start, stop in zip(depths, bounds[:-1], bounds[1:]):
        if stop <= start:
            continue
        lay = layout(size, depth, width_mm, seed, lateral_scale, style)
        base = chrome(lay, seed)
        scene = replace(anatomy, depth_mm=float(depth))
        shape = _acq_shape(depth, width_mm, acq_rows)
        for i, scan in enumerate(phantom.clip(seed, stop - start, fps, shape, machine, anatomy=scene)):
            n = start + i
            yield Screen(compose(base, lay, scan.image, n / fps), lay.roi, lay.spacing_mm, float(depth), n, scan)


def write_video(path, screens: Iterator[Screen], fps: float = 30.0, fourcc: str | None = None) -> list[dict]:
    """Write screens as a video file the way a capture card recording would hold them.

    fourcc: "MJPG" (default for .avi) or "mp4v" (default for .mp4). Returns the ground truth of
    each written frame: {"roi", "spacing_mm", "depth_mm"}.
    """
    path = Path(path)
    if fourcc is None:
        fourcc = {".avi": "MJPG", ".mp4": "mp4v", ".mov": "mp4v"}.get(path.suffix.lower())
        if fourcc is None:
            raise SinkError(f"no default codec for {str(path)!r} (use .avi or .mp4, or pass fourcc)")
    writer = None
    truth = []
    try:
        for s in screens:
            if writer is None:
                h, w = s.image.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), float(fps), (w, h))
                if not writer.isOpened():
                    raise SinkError(f"OpenCV cannot write {str(path)!r} with codec {fourcc!r}")
            writer.write(s.image)
            truth.append({"roi": s.roi, "spacing_mm": s.spacing_mm, "depth_mm": s.depth_mm})
    finally:
        if writer is not None:
            writer.release()
    return truth


def write_clip(
    path, seed: int, frames: int = 60, fps: float = 30.0, fourcc: str | None = None, **clip_args
) -> list[dict]:
    """Render `screen_clip(seed, frames, fps=fps, **clip_args)` into a video file; see write_video."""
    return write_video(path, screen_clip(seed, frames, fps=fps, **clip_args), fps, fourcc)
