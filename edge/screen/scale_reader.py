"""The depth scale of a scanner screen: its marks, the numbers beside them, the depth readout,
and a spacing only when they agree.

How real machines draw it (public manuals and screenshots; the real files in tests/data): a line
of marks down one side of the image, or both, one per centimetre or finer: long ticks at each cm
with 1, 3, 4 or 9 short ones between (5, 2.5, 2 or 1 mm), ticks all alike (1 cm, sometimes with
a longer or coloured one every 5 cm, as on the Philips CX50 and Aloka SSD-4000 files), or dots
instead of ticks, along the edge of a sector or curved image (Philips EPIQ: a dot per cm from the
virtual apex down the sector's edge). Numbers are printed beside some long ticks (cm: 0 1 2 3;
or mm: 0 ... 50 at the ends only, as on the DL_Track scanner) or not at all, and many screens
print the depth as a line of its own ("11cm", "16cm", "4.0 cm", "D 4cm", "Depth 40 mm").
White, grey, green, yellow or blue; focus markers, TGC curves and cursors sit on or beside it.

A mark pitch alone cannot say how many millimetres one step is (a 2.5 mm tick and a 1 cm tick
look alike), so the reader never assumes it: it finds the evenly spaced marks (`find_rows`),
lists the step sizes their pattern allows (`candidate_steps`), and keeps the one step that the
numbers on screen confirm (`interpret`): the labels (their values against the marks they sit
beside, within AGREE) and the depth readout (the scale ends at the readout depth). Every
source present must agree; without any number (no OCR installed, none legible) or with two
steps left, the scale is refused with the reason, and the caller reports thickness in pixels.
`tick_mm` from the operator counts as a number. The implied depth must lie within 1-30 cm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.screen import ocr

STEPS_MM = (1.0, 2.0, 2.5, 5.0, 10.0, 20.0)  # what one step between marks can be on real screens
# Long ticks every k steps: the steps that pattern allows (k = 5 is 2 mm ticks with cm long
# ones, or 1 cm ticks with a long one each 5 cm).
BY_PERIOD = {2: (5.0, 10.0), 4: (2.5,), 5: (2.0, 10.0), 10: (1.0, 10.0)}
AGREE = 0.02  # labels, readout and marks must agree within 2 %
DEPTH_RANGE_MM = (10.0, 300.0)  # a B-mode shows 1-30 cm
MIN_MARKS = 4


@dataclass(frozen=True)
class MarkRow:
    """Evenly spaced marks on screen (screen pixels, continuous coordinates).

    kind: "ticks" or "dots". points: (n, 2) x, y of each mark (a tick: its centre row at the end
    it shares with the others). index: whole steps from the first mark. pitch_px: pixels per
    step. direction: unit vector from the first mark to the last. long: the long ticks.
    period: long ticks every `period` steps, or None. band: (x, y, w, h) holding the marks.
    """

    kind: str
    points: np.ndarray
    index: np.ndarray
    pitch_px: float
    direction: tuple[float, float]
    long: np.ndarray
    period: int | None
    band: tuple[int, int, int, int]
    text_px: float = 0.0  # height of the text found beside the marks (0: none)
    labels: tuple = ()  # (value, step index) pairs read beside the marks

    @property
    def steps(self) -> int:
        return int(self.index[-1] - self.index[0])


@dataclass(frozen=True)
class Verdict:
    """The reading of one mark row: `step_mm` when confirmed, else None and `reason`."""

    row: MarkRow
    step_mm: float | None
    reason: str
    evidence: tuple[str, ...] = field(default=())

    @property
    def mm_per_px(self) -> float | None:
        return None if self.step_mm is None else self.step_mm / self.row.pitch_px


brightness = ocr.brightness  # per pixel the brightest channel: coloured marks count as bright


def _threshold(v: np.ndarray, allowed: np.ndarray, level: float = 0.3) -> tuple[np.ndarray, float] | None:
    """Marks brighter than the background by `level` of the brightest marks' contrast."""
    vals = v[allowed]
    if vals.size < 50:
        return None
    bg = float(np.median(vals))
    top = float(np.percentile(vals, 99.9))
    if top - bg < 30:
        return None
    return (v > bg + max(25.0, level * (top - bg))) & allowed, bg


def _evenly_spaced(pos: np.ndarray) -> np.ndarray:
    """The largest subset of sorted positions on one regular grid (a stray mark drops out).

    Each pair of neighbours proposes a grid; the grid is refitted through the marks on it near
    the pair, then through those twice as far, and so on (one pair's pitch is too rough for
    twenty steps: on a small screen a pitch of 9.4 px proposed as 9 would put the far marks on
    the wrong steps, and a grid of every other mark would hold more), and the marks counted
    again."""
    best = np.zeros(len(pos), bool)
    for i in range(len(pos) - 1):
        for j in (i + 1, i + 2):
            if j >= len(pos) or pos[j] - pos[i] < 3:
                continue
            origin, pitch = pos[i], pos[j] - pos[i]
            reach = 4.0  # steps from the pair
            for _ in range(12):
                k = np.round((pos - origin) / pitch)
                near = np.abs(pos - pos[i]) <= reach * pitch
                fit = (np.abs((pos - origin) / pitch - k) * pitch <= 0.04 * pitch + 1.0) & near
                if fit.sum() < 3 or len(np.unique(k[fit])) < 3:
                    break
                pitch_new, origin = np.polyfit(k[fit], pos[fit], 1)
                if pitch_new < 3:
                    break
                pitch = pitch_new
                if near.all():
                    break
                reach *= 2
            k = np.round((pos - origin) / pitch)
            fit = np.abs((pos - origin) / pitch - k) * pitch <= 0.04 * pitch + 1.0
            _, first = np.unique(k[fit], return_index=True)  # one mark per grid position
            keep = np.zeros(len(pos), bool)
            keep[np.flatnonzero(fit)[first]] = True
            if keep.sum() > best.sum():
                best = keep
    return best


def _fit_pitch(pos: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Whole step indices and the pitch (least squares) of roughly evenly spaced positions."""
    d = np.diff(pos)
    if len(d) == 0:
        return None
    base = float(np.min(d[d >= 3])) if np.any(d >= 3) else 0.0
    if base < 3:
        return None
    # the smallest gap may be a rounded one; refine on the median of gaps near it
    near = d[np.abs(d / base - np.round(d / base)) < 0.2]
    base = float(np.median(near / np.maximum(np.round(near / base), 1)))
    steps = d / base
    if np.any(np.abs(steps - np.round(steps)) > 0.15) or np.any(np.round(steps) < 1):
        return None
    index = np.concatenate([[0], np.cumsum(np.round(steps))]).astype(int)
    slope = float(np.polyfit(index, pos, 1)[0])
    return index, slope


def _period(index: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int | None]:
    """Which ticks are long, and every how many steps, when they repeat regularly."""
    long = np.zeros(len(index), bool)
    if len(lengths) < 3 or lengths.max() < 1.4 * lengths.min():
        return long, None
    long = lengths >= (lengths.max() + lengths.min()) / 2
    li = index[long]
    if len(li) >= 2:
        gaps = set(np.diff(li).tolist())
        if len(gaps) == 1 and next(iter(gaps)) in BY_PERIOD:
            return long, int(next(iter(gaps)))
        if len(li) == 2 or gaps <= {g * m for g in BY_PERIOD for m in (1, 2)}:
            k = int(np.gcd.reduce(np.diff(li)))
            if k in BY_PERIOD:
                return long, k
    return long, -1  # long ticks without a regular pattern: says nothing


def _tick_rows(v: np.ndarray, allowed: np.ndarray, span_min: float, origin: tuple[int, int]) -> list[MarkRow]:
    """Groups of short horizontal marks sharing one end column, evenly spaced down the rows."""
    th = _threshold(v, allowed)
    if th is None:
        return []
    marks, bg = th
    marks = marks.astype(np.uint8)
    lv = max(15, int(span_min // 4))
    marks[cv2.morphologyEx(marks, cv2.MORPH_OPEN, np.ones((lv, 1), np.uint8)) > 0] = 0  # the axis line
    n, lab, st, _ = cv2.connectedComponentsWithStats(marks, connectivity=8)
    if n < MIN_MARKS + 1:
        return []
    xs, ys, ws, hs, area = (st[1:, i] for i in range(5))
    ok = (hs <= 6) & (ws >= 2) & (ws >= 1.5 * hs) & (area >= 0.6 * ws * hs) & (ws <= 60)
    idx = np.flatnonzero(ok)
    if len(idx) < MIN_MARKS:
        return []
    weight = np.clip(v.astype(np.float32) - bg, 0, None)
    centre = np.zeros(n - 1)
    for i in idx:
        patch = weight[ys[i] : ys[i] + hs[i], xs[i] : xs[i] + ws[i]].sum(axis=1)
        centre[i] = float((patch * (np.arange(ys[i], ys[i] + hs[i]) + 0.5)).sum() / max(patch.sum(), 1e-6))
    rows, seen = [], set()
    for ends in (xs[idx], xs[idx] + ws[idx]):  # left and right ends
        for e in np.unique(ends):
            sel = idx[np.abs(ends - e) <= 1]
            if len(sel) < MIN_MARKS:
                continue
            sel = sel[np.argsort(centre[sel])]
            pos = centre[sel]
            keep = _evenly_spaced(pos)
            sel, pos = sel[keep], pos[keep]
            if len(sel) < MIN_MARKS or pos[-1] - pos[0] < span_min:
                continue
            key = tuple(sel.tolist())
            if key in seen:
                continue
            seen.add(key)
            fit = _fit_pitch(pos)
            if fit is None:
                continue
            index, pitch = fit
            if len(index) < 0.6 * (index[-1] + 1):  # most places of the grid hold a mark
                continue
            long, period = _period(index, ws[sel].astype(np.float64))
            x_end = float(e) + 0.5
            ox, oy = origin
            pts = np.stack([np.full(len(pos), x_end + ox), pos + oy], axis=1)
            x0, x1 = int(xs[sel].min()), int((xs[sel] + ws[sel]).max())
            band = (x0 + ox, int(ys[sel].min()) + oy, x1 - x0, int((ys[sel] + hs[sel]).max() - ys[sel].min()))
            rows.append(MarkRow("ticks", pts, index, pitch, (0.0, 1.0), long, period, band))
    return rows


def _dot_rows(v: np.ndarray, allowed: np.ndarray, span_min: float, origin: tuple[int, int]) -> list[MarkRow]:
    """Small round marks in a straight line at equal steps (any direction: a sector's edge).
    Dots touch the image at a sector's edge: the brightest pixels make them, or, for faint
    dots (small, compressed), a lower level."""
    for level in (0.6, 0.35):
        rows = _dots_at(v, allowed, span_min, origin, level)
        if rows:
            return rows
    return []


def _dots_at(
    v: np.ndarray, allowed: np.ndarray, span_min: float, origin: tuple[int, int], level: float
) -> list[MarkRow]:
    th = _threshold(v, allowed, level)
    if th is None:
        return []
    marks, _ = th
    n, lab, st, cen = cv2.connectedComponentsWithStats(marks.astype(np.uint8), connectivity=8)
    if n < MIN_MARKS + 1:
        return []
    ws, hs, area = st[1:, 2], st[1:, 3], st[1:, 4]
    ok = (
        (ws <= 7) & (hs <= 7) & (area >= 2) & (np.maximum(ws, hs) <= 2.2 * np.minimum(ws, hs)) & (area >= 0.4 * ws * hs)
    )
    pts = cen[1:][ok]
    if not 4 <= len(pts) <= 600:
        return []
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    np.fill_diagonal(d, np.inf)
    best = None
    for i in range(len(pts)):
        for j in np.argsort(d[i])[:4]:
            step = pts[j] - pts[i]
            length = float(np.hypot(*step))
            if not 6 <= length <= 200:
                continue
            origin_pt = pts[i]
            tol = max(1.5, 0.05 * length)
            for _ in range(3):  # members, then the line refitted through them (a pair's step is rough)
                rel = pts - origin_pt
                t = rel @ step / length**2
                perp = np.abs(rel[:, 0] * step[1] - rel[:, 1] * step[0]) / length
                member = (np.abs(t - np.round(t)) * length <= tol) & (perp <= tol)
                k = np.round(t[member]).astype(int)
                if len(np.unique(k)) < 3:
                    break
                A = np.stack([np.ones(len(k)), k], axis=1)
                (ox_, sx), (oy_, sy) = (np.linalg.lstsq(A, pts[member][:, c], rcond=None)[0] for c in (0, 1))
                origin_pt, step = np.array([ox_, oy_]), np.array([sx, sy])
                length = float(np.hypot(*step))
                if length < 6:
                    break
            uniq = np.unique(k)
            if len(uniq) < MIN_MARKS or (best is not None and len(uniq) <= len(best[0])):
                continue
            # the longest run of consecutive steps (gaps of one missing mark allowed)
            runs = np.split(uniq, np.flatnonzero(np.diff(uniq) > 2) + 1)
            run = max(runs, key=len)
            if len(run) < MIN_MARKS or (best is not None and len(run) <= len(best[0])):
                continue
            sel = np.flatnonzero(member)
            sel = sel[np.isin(k, run)]
            _, first = np.unique(np.round(t[sel]), return_index=True)
            best = (run, sel[first])
    if best is None:
        return []
    row = _line_of_dots(pts[best[1]] + np.asarray(origin, float), span_min)
    return [] if row is None else [row]


def _line_of_dots(p: np.ndarray, span_min: float) -> MarkRow | None:
    """The row of dots at screen points `p` (on one line), or None when they are not evenly
    spaced over `span_min` px or too many steps lack their dot."""
    p = p[np.argsort(p[:, 1] + 1e-3 * p[:, 0])]  # down the screen
    u = p[-1] - p[0]
    u = u / max(np.hypot(*u), 1e-9)
    pos = (p - p[0]) @ u
    fit = _fit_pitch(pos)
    if fit is None or pos[-1] < span_min:
        return None
    index, pitch = fit
    if len(index) < 0.6 * (index[-1] + 1):
        return None
    x0, y0 = np.floor(p.min(axis=0)).astype(int) - 3
    x1, y1 = np.ceil(p.max(axis=0)).astype(int) + 3
    band = (int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    return MarkRow("dots", p, index, pitch, (float(u[0]), float(u[1])), np.zeros(len(p), bool), None, band)


def _search_area(shape, rect, mask, v: np.ndarray) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Where a depth scale may be: beside the B-mode rectangle and inside it where there is no
    image (outside the mask, or columns that are nearly empty: a scanner's region rectangle
    often holds its own scale)."""
    H, W = shape
    x, y, w, h = rect
    reach = max(60, int(0.35 * w))
    m = int(0.2 * h) + 2  # a sector's dots start at its virtual apex, above the image
    X0, X1, Y0, Y1 = max(0, x - reach), min(W, x + w + reach), max(0, y - m), min(H, y + h + m)
    allowed = np.ones((Y1 - Y0, X1 - X0), bool)
    inside = np.zeros_like(allowed)
    inside[y - Y0 : y - Y0 + h, x - X0 : x - X0 + w] = True
    full = np.zeros((h, w), bool) if mask is None else mask
    img = np.zeros_like(allowed)
    img[y - Y0 : y - Y0 + h, x - X0 : x - X0 + w] = full
    # marks may sit on the image's very edge (a sector's dots): its outer 3 px are searched too
    img = cv2.erode(img.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    # columns of the rectangle that are nearly empty are chrome, whatever the mask says
    sub = v[y : y + h, x : x + w].astype(np.float32)
    bg = float(np.median(v[Y0:Y1, X0:X1][~inside])) if (~inside).any() else float(np.median(sub))
    flat = (np.abs(sub - bg) <= 12).mean(axis=0)  # share of a column at the chrome's own level
    empty_cols = np.zeros(allowed.shape[1], bool)
    empty_cols[x - X0 : x - X0 + w] = flat >= 0.8
    allowed &= ~img | empty_cols[None, :]
    return (X0, Y0, X1 - X0, Y1 - Y0), allowed


def find_rows(image: np.ndarray, roi, axis: str = "depth") -> list[MarkRow]:
    """Every evenly spaced row of marks along `axis` beside (or on the edge of) the B-mode.

    roi: a Roi (its mask is used) or an (x, y, w, h) rectangle. axis "depth": marks down the
    rows (ticks on either side, dots along a sector's edge); "lateral": ticks along the columns
    above or below the image. Most marks first."""
    rect = roi.rect if hasattr(roi, "rect") else tuple(int(v) for v in roi)
    mask = getattr(roi, "mask", None)
    v = brightness(image)
    if axis == "lateral":
        x, y, w, h = rect
        rows = find_rows(np.ascontiguousarray(v.T), _Rect((y, x, h, w), None if mask is None else mask.T), "depth")
        out = []
        for r in rows:
            if r.kind != "ticks":
                continue
            pts = r.points[:, ::-1].copy()
            b = r.band
            out.append(
                MarkRow(r.kind, pts, r.index, r.pitch_px, (1.0, 0.0), r.long, r.period, (b[1], b[0], b[3], b[2]))
            )
        return out
    if axis != "depth":
        raise ValueError(f"unknown scale axis {axis!r} (expected 'depth' or 'lateral')")
    (X0, Y0, BW, BH), allowed = _search_area(v.shape, rect, mask, v)
    area = v[Y0 : Y0 + BH, X0 : X0 + BW]
    span_min = 0.35 * rect[3]
    dots = [_from_the_apex(r, rect, mask, span_min) for r in _dot_rows(area, allowed, span_min, (X0, Y0))]
    rows = _tick_rows(area, allowed, span_min, (X0, Y0))
    rows += [r for r in dots if r is not None and _along_a_sector_edge(r, rect, mask)]
    return sorted(rows, key=lambda r: -len(r.index))


def _apex(rect, mask) -> tuple[float, float] | None:
    """Where a sector image's two straight edges meet (screen x, y): its virtual apex, at or
    above its top. The edges are fitted over the middle of the rows from the image's top to its
    widest row (above the arc's corners); None when they do not open downwards (no sector)."""
    if mask is None or mask.mean() > 0.9:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) < 10:
        return None
    left = mask[rows].argmax(axis=1).astype(float)
    right = (mask.shape[1] - mask[rows, ::-1].argmax(axis=1)).astype(float)
    top, widest = rows[0], rows[int(np.argmax(right - left))]
    sel = (rows >= top + 0.15 * (widest - top)) & (rows <= top + 0.85 * (widest - top))
    if sel.sum() < 5:
        return None
    ys = rows[sel] + 0.5
    (sl, cl), (sr, cr) = np.polyfit(ys, left[sel], 1), np.polyfit(ys, right[sel], 1)
    if not sl < 0 < sr:
        return None
    ya = (cl - cr) / (sr - sl)
    x, y, _, _ = rect
    return float(x + sr * ya + cr), float(y + ya)


def _from_the_apex(row: MarkRow, rect, mask, span_min: float) -> MarkRow | None:
    """A row of dots without the marks before its sector's virtual apex: depth 0 is at the apex
    (a phased array) or below it (a curved array's skin line), so a mark more than half a step
    before it lies on something else on the line (a letter of the title above the image)."""
    apex = _apex(rect, mask)
    if apex is None:
        return row
    u = np.array(row.direction)
    before = (row.points - np.array(apex)) @ u < -0.5 * row.pitch_px
    if not before.any():
        return row
    return _line_of_dots(row.points[~before], span_min)


def _along_a_sector_edge(row: MarkRow, rect, mask) -> bool:
    """Dots count as a depth scale only where sector scales have them: a sector image (not a
    rectangle), the line running down (not along a line of text), from its virtual apex at or
    above the image's top over most of its depth, each dot hugging the image's edge."""
    x, y, w, h = rect
    if mask is None or mask.mean() > 0.9:
        return False
    ux, uy = row.direction
    p = row.points
    if uy < 0.5 or p[0, 1] > y + 0.05 * h or p[-1, 1] - p[0, 1] < 0.5 * h:
        return False
    outside = np.ascontiguousarray((~mask).astype(np.uint8))
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)  # px from the image, outside it
    inside = (p[:, 1] >= y) & (p[:, 1] < y + h) & (p[:, 0] >= x) & (p[:, 0] < x + w)
    if inside.sum() < 3:
        return False
    d = dist[(p[inside, 1] - y).astype(int), (p[inside, 0] - x).astype(int)]
    return bool(np.median(d) <= max(12.0, 0.02 * w))


@dataclass(frozen=True)
class _Rect:
    rect: tuple[int, int, int, int]
    mask: np.ndarray | None


def candidate_steps(row: MarkRow, tick_mm: float | None = None) -> tuple[float, ...]:
    """The mm one step of `row` can be, from its long-tick pattern (all of STEPS_MM without one)."""
    if tick_mm is not None:
        return (float(tick_mm),)
    if row.period is not None and row.period > 0:
        return BY_PERIOD[row.period]
    return STEPS_MM


# --- numbers ------------------------------------------------------------------------------------


def _text_boxes(v: np.ndarray, exclude: np.ndarray | None = None, run_together: bool = False):
    """Boxes (x, y, w, h) of bright character-sized marks, the binary picture, and the boxes of
    specks too small for a character (a decimal point)."""
    flat = v if exclude is None else v[~exclude]
    bg = float(np.median(flat)) if flat.size else 0.0
    binary = (v > bg + 40).astype(np.uint8)
    if exclude is not None:
        binary[exclude] = 0
    n, _, st, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    st = st[1:]
    # characters, or (run_together) a few run together: small text after video compression
    ok = (
        (st[:, 3] >= 4) & (st[:, 3] <= 48) & (st[:, 2] <= (6 if run_together else 2.5) * st[:, 3] + 4) & (st[:, 4] >= 4)
    )
    return st[ok, :4], binary, st[(st[:, 3] < 4) & (st[:, 2] < 4), :4]


def _lines(boxes: np.ndarray, shape, specks=()) -> list[tuple[int, int, int, int, float, int]]:
    """Characters grouped into short lines: (x, y, w, h, text height, characters). Specks (a
    decimal point) join the characters beside them, so "14.5cm" stays one line."""
    if len(boxes) == 0:
        return []
    hs = boxes[:, 3].astype(np.float64)
    canvas = np.zeros(shape, np.uint8)
    for x, y, w, h in boxes:
        canvas[y : y + h, x : x + w] = 1
    for x, y, w, h in specks:
        canvas[y : y + h, x : x + w] = 1
    ch = float(np.median(hs))
    gap = max(2, int(0.6 * ch))
    joined = cv2.dilate(canvas, np.ones((1, 2 * gap + 1), np.uint8))
    n, lab, st, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    out = []
    cx = boxes[:, 0] + boxes[:, 2] / 2
    cy = boxes[:, 1] + boxes[:, 3] / 2
    which = lab[cy.astype(int), cx.astype(int)]
    for i in range(1, n):
        members = which == i
        if not members.any():
            continue
        x, y, w, h = st[i, :4]
        x, w = x + gap, w - 2 * gap
        out.append((int(x), int(y), int(w), int(h), float(np.median(hs[members])), int(members.sum())))
    return out


def decimal_point(crop: np.ndarray) -> tuple[int, int] | None:
    """The decimal point a line of text clearly shows: (digits before it, digits after it), else None.

    Tesseract drops the point of small text ("7.5cm" read as "75cm", "Depth 2.5 cm" as "25cm")
    though the mark is plain to see. The line's marks are taken at 60 % of its contrast (where a
    point touching a digit at the background's level stands apart) and those sharing columns
    make one character (the two strokes of a small "5"). A point is a character at most 0.4
    digit heights across, on the baseline, between two digit-high characters (from the
    baseline to the digits' top, at most 0.9 digit heights wide: one digit), each at most half
    a digit height away. The digits on each side are the digit-high characters that run on from
    there, at most 0.35 digit heights apart (a letter of the unit is lower, a space wider).
    Anything less clear (no such speck, or two) is no point."""
    g = brightness(crop).astype(np.float32)
    bg, top = float(np.median(g)), float(np.percentile(g, 99))
    if top - bg < 40:
        return None
    n, _, st, _ = cv2.connectedComponentsWithStats((g > bg + 0.6 * (top - bg)).astype(np.uint8), connectivity=8)
    chars: list[list[int]] = []  # x0, y0, x1, y1 of the marks sharing columns, left to right
    for x, y, w, h, _ in sorted(st[1:].tolist()):
        if chars and x < chars[-1][2]:
            c = chars[-1]
            c[1], c[2], c[3] = min(c[1], y), max(c[2], x + w), max(c[3], y + h)
        else:
            chars.append([x, y, x + w, y + h])
    if len(chars) < 3:
        return None
    x0, y0, x1, y1 = (np.array(v, np.float64) for v in zip(*chars))
    w, h = x1 - x0, y1 - y0
    base = float(np.median(y1[h >= 0.6 * h.max()]))  # where the characters stand
    on = np.abs(y1 - base) <= 1
    if not on.any():
        return None
    cap = float(np.median(h[on & (h >= 0.85 * h[on].max())]))  # the digits' height
    digit = on & (np.abs(y0 - (base - cap)) <= max(1.0, 0.12 * cap)) & (w <= 0.9 * cap)
    speck = (h <= max(2.0, 0.4 * cap)) & (w <= max(2.0, 0.4 * cap)) & (np.abs(y1 - base) <= max(1.0, 0.15 * cap))

    def run(i: int, step: int) -> int:
        """Digits from character i on, leftwards (step -1) or rightwards (+1), close together."""
        count = 1
        while 0 <= i + step < len(chars):
            j = i + step
            if not digit[j] or (x0[i] - x1[j] if step < 0 else x0[j] - x1[i]) > 0.35 * cap:
                break
            count, i = count + 1, j
        return count

    found = [
        (run(p - 1, -1), run(p + 1, 1))
        for p in np.flatnonzero(speck)
        if 0 < p < len(chars) - 1
        and digit[p - 1]
        and digit[p + 1]
        and x0[p] - x1[p - 1] <= 0.5 * cap
        and x0[p + 1] - x1[p] <= 0.5 * cap
    ]
    return found[0] if len(found) == 1 else None


def _readout_crops(image: np.ndarray, roi) -> list[tuple[np.ndarray, float]]:
    """Short lines of text outside the B-mode, where a depth readout may be: (crop, text height).

    Only lines 1.4 to 12 text heights long are taken (a readout is short; patient names and
    notes are longer)."""
    v = brightness(image)
    H, W = v.shape
    x, y, w, h = _rect(roi)
    exclude = np.zeros((H, W), bool)
    exclude[y : y + h, x : x + w] = True if getattr(roi, "mask", None) is None else roi.mask
    boxes, _, specks = _text_boxes(v, exclude, run_together=True)
    out = []
    for lx, ly, lw, lh, th, _ in _lines(boxes, (H, W), specks):
        if lh <= 2.2 * th and 1.4 * th <= lw <= 12 * th:  # "4cm" ... "Depth 4.0 cm" (letters may touch)
            p = max(2, int(0.3 * th))
            out.append((image[max(0, ly - p) : ly + lh + p, max(0, lx - p) : lx + lw + p], th))
    return out


def _rect(roi) -> tuple[int, int, int, int]:
    if hasattr(roi, "rect"):
        return roi.rect
    x, y, w, h = (int(t) for t in roi)
    return x, y, w, h


def _label_crops(
    image: np.ndarray, row: MarkRow, roi=None, level: bool = False
) -> tuple[list[np.ndarray], list[int], float]:
    """The characters beside each long tick of a vertical tick row (each tick, without a regular
    long-tick pattern), within a label height of its row, the ticks blanked: (crops, the step
    index each belongs to, text height). The image is not blanked: a detected region may reach
    into a label next to it. But a scale's numbers are drawn on the chrome, all on one side:
    when some lie outside the image, speckle inside it (character-sized at some depths) is no
    label. The text height is that of all character-sized marks around, or (level) of those on
    the chrome level with the ticks that may carry a number: speckle can outnumber the labels."""
    if row.kind != "ticks" or row.direction != (0.0, 1.0):
        return [], [], 0.0
    v = brightness(image)
    H, W = v.shape
    bx, by, bw, bh = row.band
    regular = row.period is not None and row.period > 0 and row.long.sum() >= 3
    anchors = np.flatnonzero(row.long) if regular else np.arange(len(row.index))
    gaps = np.diff(row.index[anchors])
    pitch = row.pitch_px * (float(np.min(gaps)) if len(gaps) else 1.0)
    reach = max(48, 4 * bw)
    pad_y = int(0.5 * pitch) + 4
    x0, x1 = max(0, bx - reach), min(W, bx + bw + reach)
    y0, y1 = max(0, by - pad_y), min(H, by + bh + pad_y)
    strip = v[y0:y1, x0:x1].copy()
    fill = np.median(strip)
    strip[:, max(0, bx - x0 - 1) : bx - x0 + bw + 1] = fill  # the ticks and their axis
    boxes, _, _ = _text_boxes(strip)
    if len(boxes) == 0:
        return [], [], 0.0
    text_px = float(np.median(boxes[:, 3]))
    if roi is not None:
        outside = ~_in_image(boxes, roi, (x0, y0))
        if outside.any():
            boxes = boxes[outside]
    cy = boxes[:, 1] + boxes[:, 3] / 2
    if level:
        beside = np.abs(cy[:, None] - (row.points[anchors, 1] - y0)[None, :]).min(axis=1) <= 0.45 * pitch
        text_px = float(np.median(boxes[beside, 3] if beside.any() else boxes[:, 3]))
    tol = min(0.45 * pitch, 2.5 * text_px)
    crops, owners = [], []
    for a in anchors:
        ya = row.points[a, 1] - y0
        near = _label_at(boxes[np.abs(cy - ya) <= tol], bx - x0, bx - x0 + bw, text_px)
        if near is None:
            continue
        p = max(2, int(0.3 * text_px))
        cx0, cy0 = max(0, near[:, 0].min() - p), max(0, near[:, 1].min() - p)
        cx1, cy1 = (near[:, 0] + near[:, 2]).max() + p, (near[:, 1] + near[:, 3]).max() + p
        crops.append(strip[cy0:cy1, cx0:cx1])
        owners.append(int(row.index[a]))
    return crops, owners, text_px


def _in_image(boxes: np.ndarray, roi, origin: tuple[int, int]) -> np.ndarray:
    """Which boxes (x, y, w, h, offset by `origin` on screen) have their centre on the B-mode
    image (its mask, or its rectangle without one)."""
    x, y, w, h = _rect(roi)
    cx = (boxes[:, 0] + boxes[:, 2] / 2 + origin[0]).astype(int) - x
    cy = (boxes[:, 1] + boxes[:, 3] / 2 + origin[1]).astype(int) - y
    inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    mask = getattr(roi, "mask", None)
    if mask is not None and mask.shape == (h, w):
        inside[inside] = mask[cy[inside], cx[inside]]
    return inside


def read_numbers(image: np.ndarray, roi, rows: list[MarkRow]):
    """The labels beside each of `rows` and the depth readouts on screen, in one OCR run (and
    a second for the rows whose labels make no scale, cut at their own text height).

    Returns ([the labels of each row as read straight and mirrored (a capture flipped left to
    right): (((value, step index), ...), ...)], readouts in mm, the readouts as Tesseract read
    them: without the decimal points it dropped and `decimal_point` put back). Without OCR:
    ([((),), ...], (), ())."""
    if ocr.available() is not None:
        return [((),) for _ in rows], (), ()
    crops: list[np.ndarray] = []
    sizes: list[float] = []
    owner: list[tuple] = []  # ("label", row, step, flipped) or ("readout", decimal point)
    for r, row in enumerate(rows):
        _add_labels(crops, sizes, owner, r, _label_crops(image, row, roi))
    for c, tp in _readout_crops(image, roi):
        crops.append(c)
        sizes.append(tp)
        owner.append(("readout", decimal_point(c)))
    labels: list[tuple[dict[int, float], dict[int, float]]] = [({}, {}) for _ in rows]
    readouts, as_read = set(), set()
    words = _read_twice(crops, sizes)
    plain = [("readout", None) if who[0] == "readout" else who for who in owner]
    for who, value, unpointed in zip(owner, _accepted(words, owner), _accepted(words, plain)):
        if who[0] == "label":
            if value is not None:
                _, r, k, flip = who
                labels[r][int(flip)][k] = value
            continue
        if value is not None:
            readouts.add(value)
        if unpointed is not None:
            as_read.add(unpointed)
    # The text height of a row's labels is guessed from the character-sized marks around them;
    # where image speckle outnumbers them the guess is too small and the labels are not cut.
    # Rows whose labels make no scale are cut again at the height of the marks level with
    # their ticks, and read in a run of their own (what else is on a sheet sways Tesseract);
    # those readings only fill steps the first left unread.
    crops, sizes, owner = [], [], []
    for r, (row, (straight, flipped)) in enumerate(zip(rows, labels)):
        if any(len(lab) >= 2 and _label_step(lab)[0] is not None for lab in _orientations(straight, flipped)):
            continue
        first, again = _label_crops(image, row, roi), _label_crops(image, row, roi, level=True)
        if again[0] and abs(again[2] / max(first[2], 1.0) - 1) > 0.15:
            _add_labels(crops, sizes, owner, r, again)
    for who, value in zip(owner, _accepted(_read_twice(crops, sizes), owner)):
        if value is not None:
            _, r, k, flip = who
            labels[r][int(flip)].setdefault(k, value)
    orientations = [_orientations(straight, flipped) for straight, flipped in labels]
    return orientations, tuple(sorted(readouts)), tuple(sorted(as_read))


def _add_labels(crops: list, sizes: list, owner: list, r: int, cut) -> None:
    """A row's label cuts as they are and mirrored, with their text height and owner."""
    cs, steps, tp = cut
    for flip in (False, True):
        for c, k in zip(cs, steps):
            crops.append(c[:, ::-1] if flip else c)
            sizes.append(tp)
            owner.append(("label", r, k, flip))


def _read_twice(crops: list[np.ndarray], sizes: list[float]) -> list[tuple[list[ocr.Word], list[ocr.Word]]]:
    """Each cut read twice, at two enlargements, in one OCR run: its words at each (left to right)."""
    if not crops:
        return []
    n = len(crops)
    words = ocr.read_words(crops + crops, sizes + [t * ocr.TEXT_PX / ocr.ALT_TEXT_PX for t in sizes], in_line=True)
    texts: dict[int, list] = {}
    for wd in words:
        texts.setdefault(wd.crop, []).append(wd)

    def in_order(j: int) -> list[ocr.Word]:
        return sorted(texts.get(j, []), key=lambda wd: wd.box[0])

    return [(in_order(i), in_order(i + n)) for i in range(n)]


def _accepted(readings: list, owner: list[tuple]) -> list[float | None]:
    """The number each cut says (a label's value, a readout's depth in mm), or None, from its two
    readings (`_read_twice`).

    A number counts when both readings give it (the surer one sure), or one gives it surely and
    the other no number at all; two different numbers cancel, so a misread at one size ("60"
    as "3") does not make a scale on its own. A readout comes from the first reading only (the
    second may only cancel it): it is a whole line of small text, and a second chance to read
    it is a second chance to misread it. A readout's owner carries the decimal point seen in
    its cut (`decimal_point`), put where Tesseract left it out."""
    out: list[float | None] = []
    for (first, second), who in zip(readings, owner):
        label = who[0] == "label"
        sure = ocr.SURE if label else ocr.READOUT_SURE
        got = []
        for ws in (first, second):
            joined = ("" if label else " ").join(wd.text for wd in ws)
            value = (ocr.number(joined) if label else ocr.depth_readout(joined, who[1])) if ws else None
            got.append((value, min((wd.confidence for wd in ws), default=0.0)))
        (a_val, a_conf), (b_val, b_conf) = got
        if a_val is not None and b_val is not None:
            out.append(a_val if a_val == b_val and max(a_conf, b_conf) >= sure else None)
        elif a_val is not None and a_conf >= sure:
            out.append(a_val)
        elif b_val is not None and b_conf >= sure and label:
            out.append(b_val)
        else:
            out.append(None)
    return out


def _orientations(straight: dict[int, float], flipped: dict[int, float]) -> tuple[tuple, ...]:
    """The labels of one row as read straight and as read mirrored, each ((value, step), ...),
    the same reading once. A "0" or "8" reads the same either way: one missed in one
    orientation counts from the other."""
    out: list[tuple] = []
    for own, other in ((straight, flipped), (flipped, straight)):
        merged = dict(own)
        for k, val in other.items():
            if k not in merged and val in (0.0, 8.0):
                merged[k] = val
        pairs = tuple(sorted(((val, k) for k, val in merged.items()), key=lambda t: t[1]))
        if pairs not in out:
            out.append(pairs)
    return tuple(out)


def _label_at(boxes: np.ndarray, t0: float, t1: float, text_px: float) -> np.ndarray | None:
    """The characters of the one label nearest the ticks' columns [t0, t1): the nearest box and
    the boxes joined to it on its line (an icon or a marker further out is left alone)."""
    boxes = boxes[(boxes[:, 3] >= 0.6 * text_px) & (boxes[:, 3] <= 1.6 * text_px)]  # character-high only
    if len(boxes) == 0:
        return None
    x0, x1 = boxes[:, 0], boxes[:, 0] + boxes[:, 2]
    dist = np.where(x1 <= t0, t0 - x1, np.where(x0 >= t1, x0 - t1, 0))
    if dist.min() > 6 * text_px:
        return None
    seed = int(np.argmin(dist))
    keep = np.zeros(len(boxes), bool)
    keep[seed] = True
    gap = 0.8 * text_px
    # characters of one label share its line and height (image speckle beside it does not)
    cy, h = boxes[:, 1] + boxes[:, 3] / 2, boxes[:, 3]
    same_line = (np.abs(cy - cy[seed]) <= 0.25 * h[seed]) & (np.abs(h - h[seed]) <= 0.25 * h[seed] + 1)
    for _ in range(len(boxes)):
        lo, hi = x0[keep].min(), x1[keep].max()
        grow = ~keep & same_line & (x1 >= lo - gap) & (x0 <= hi + gap)
        if not grow.any():
            break
        keep |= grow
    return boxes[keep]


def _label_step(labels) -> tuple[float | None, str]:
    """Label units per step from (value, index) pairs: the line through most of them."""
    if len(labels) < 2:
        return None, f"{len(labels)} label read"
    vals = np.array([v for v, _ in labels], float)
    idx = np.array([i for _, i in labels], float)
    best, best_in = None, 0
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            if idx[b] == idx[a] or vals[b] <= vals[a]:
                continue
            slope = (vals[b] - vals[a]) / (idx[b] - idx[a])
            pred = vals[a] + slope * (idx - idx[a])
            inl = np.abs(pred - vals) <= 0.02 * max(abs(slope), 1e-9) * max(idx.max() - idx.min(), 1)
            if inl.sum() > best_in:
                best, best_in = slope, int(inl.sum())
    # every label on one line; from four labels on, one misread may stand aside
    if best is None or best_in < (len(labels) if len(labels) <= 3 else max(3, len(labels) - 1)):
        return None, f"labels {[v for v, _ in labels]} are not one scale"
    return float(best), f"labels {[_fmt(v) for v, _ in labels]}"


def _fmt(v: float) -> str:
    return f"{v:g}"


def extent_px(row: MarkRow, roi) -> float:
    """How far the B-mode reaches from the row's first mark along the row's direction (px): the
    farthest image pixel's centre.

    A distance along a direction is largest at a corner of the pixels' outline, so only the
    points of the mask's outer outlines are measured (OpenCV's contours, straight runs reduced to
    their ends): the same distance as over every image pixel (to rounding: the pixels along the
    farthest edge are equally far), without the image-sized arrays of coordinates and distances
    (8 bytes each per image pixel, at least 7.7 MB at a 568x568 B-mode) at the run's peak of memory."""
    rect = roi.rect if hasattr(roi, "rect") else tuple(int(t) for t in roi)
    x, y, w, h = rect
    mask = getattr(roi, "mask", None)
    ux, uy = row.direction
    p0 = row.points[0]
    if mask is None or not mask.any():
        corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], float)
        return float(((corners - p0) @ np.array([ux, uy])).max())
    outlines, _ = cv2.findContours(mask.astype(np.uint8, copy=False), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    xy = np.concatenate([c.reshape(-1, 2) for c in outlines]).astype(np.int64)
    proj = (xy[:, 0] + x + 0.5 - p0[0]) * ux + (xy[:, 1] + y + 0.5 - p0[1]) * uy
    return float(proj.max())


def interpret(
    row: MarkRow,
    labels,
    readouts,
    extent: float,
    tick_mm: float | None = None,
    fill: float = 1.0,
    roi_h: float = 0.0,
    zero_at_top: bool = False,
) -> Verdict:
    """The one step (mm) that the numbers on screen confirm for `row`, or a refusal with why."""
    cands = candidate_steps(row, tick_mm)
    evidence = []
    sets = []
    if tick_mm is not None:
        evidence.append(f"ticks of {tick_mm:g} mm as configured")
        sets.append(set(cands))
    if len(labels) == 1 and labels[0][1] > 0 and row.kind == "ticks" and zero_at_top:
        # one number read, the scale's first mark on the image's top edge: that mark is 0
        labels = ((0.0, 0), *labels)
    if labels:
        per_step, why = _label_step(labels)
        if per_step is None:
            return Verdict(row, None, f"{why}", tuple(evidence))
        ok = {t for t in cands for unit in (10.0, 1.0) if abs(per_step * unit / t - 1) <= AGREE}
        # cm or mm labels: the unit whose depth is possible
        ok = {t for t in ok if DEPTH_RANGE_MM[0] <= extent * t / row.pitch_px <= DEPTH_RANGE_MM[1]}
        if not ok:
            return Verdict(
                row,
                None,
                f"{why} give {per_step:g} per step, which no step of these marks "
                f"({', '.join(_fmt(c) for c in cands)} mm) matches within {AGREE:.0%}",
                tuple(evidence),
            )
        evidence.append(why)
        sets.append(ok)
    if len(readouts) > 1:
        evidence.append(f"readouts {list(readouts)} mm disagree (not used)")
    elif readouts:
        depth = readouts[0]
        ok = set()
        for t in cands:
            last = row.steps * t  # the depth of the last mark
            shown = extent * t / row.pitch_px  # the depth the image reaches
            if row.kind == "ticks" and fill >= 0.95:
                # a linear image spans the depth it is set to, from its top or from the scale's
                # first mark (a curved image's rectangle starts above its arc): within 2 %
                # (or its last mark sits at the readout depth: a detected region may run long)
                whole = roi_h * t / row.pitch_px
                if min(abs(shown - depth), abs(whole - depth), abs(last - depth)) <= AGREE * depth + t / row.pitch_px:
                    ok.add(t)
            elif last <= depth * (1 + AGREE) and depth - last < 2.5 * t and shown <= depth * (1 + AGREE) + t:
                ok.add(t)  # a sector's marks stop short of its arc: they end within a step or two of it
        if not ok:
            return Verdict(
                row,
                None,
                f"readout {depth:g} mm fits no step of these marks "
                f"({', '.join(_fmt(c) for c in cands)} mm; {row.steps} steps)",
                tuple(evidence),
            )
        evidence.append(f"readout {depth:g} mm")
        sets.append(ok)
    if not sets:
        why = ocr.available()
        return Verdict(
            row,
            None,
            f"{len(row.index)} {row.kind} {row.pitch_px:.1f} px apart but no number "
            "on screen says how many mm" + (f" ({why})" if why else ""),
            tuple(evidence),
        )
    agreed = set.intersection(*sets)
    if len(agreed) != 1:
        say = "disagree" if not agreed else f"leave {sorted(agreed)} mm per step"
        return Verdict(row, None, f"{'; '.join(evidence)} {say}", tuple(evidence))
    step = agreed.pop()
    depth = extent * step / row.pitch_px
    if not DEPTH_RANGE_MM[0] <= depth <= DEPTH_RANGE_MM[1]:
        return Verdict(row, None, f"implied depth {depth:.0f} mm is outside 10-300 mm", tuple(evidence))
    return Verdict(row, step, f"{row.kind} of {step:g} mm ({'; '.join(evidence)})", tuple(evidence))


def read_depth_scale(image: np.ndarray, roi, tick_mm: float | None = None) -> tuple[Verdict | None, list[MarkRow]]:
    """The depth scale's verdict (the first confirmed row of marks, else the best row's refusal)
    and all rows found; (None, []) when there are no marks at all."""
    rows = find_rows(image, roi, "depth")
    if not rows:
        return None, []
    distinct: list[MarkRow] = []
    for row in rows:
        if len(distinct) < 3 and not any(_overlap(row.band, d.band) > 0.5 for d in distinct):
            distinct.append(row)  # a row that is a subset of one kept holds nothing new
    labels, readouts, as_read = read_numbers(image, roi, distinct)
    _, top, _, h = _rect(roi)
    verdicts = []
    for row, readings in zip(distinct, labels):
        at_top = abs(row.points[0, 1] - top) <= max(3.0, 0.25 * row.pitch_px)
        each = []
        for lab in readings:
            v = interpret(row, lab, readouts, extent_px(row, roi), tick_mm, _fill(roi), h, at_top)
            if as_read != readouts and v.step_mm is not None:
                v = _point_checked(v, interpret(row, lab, as_read, extent_px(row, roi), tick_mm, _fill(roi), h, at_top))
            each.append(v)
        verdicts.append(_one_orientation(each))
    for v in verdicts:
        if v.step_mm is not None:
            return v, rows
    return verdicts[0], rows


def _point_checked(v: Verdict, unpointed: Verdict) -> Verdict:
    """A verdict on a readout whose decimal point was put back from the picture (`v`), against
    the verdict on the readout as Tesseract read it: when that confirms another step (a speck
    taken for a point would make "16cm" 16 mm, 1 mm dots), which one the screen says is unsure."""
    if unpointed.step_mm is None or unpointed.step_mm == v.step_mm:
        return v
    return Verdict(
        v.row,
        None,
        f"{'; '.join(v.evidence)} with the decimal point seen on screen, {'; '.join(unpointed.evidence)} "
        f"without it: steps of {_fmt(v.step_mm or 0)} or {_fmt(unpointed.step_mm)} mm",
        v.evidence,
    )


def _one_orientation(each: list[Verdict]) -> Verdict:
    """One row's verdict from its labels read straight and mirrored: the screen is one or the
    other, so a reading whose numbers make no scale is the wrong one, and the other counts.
    Both confirming the same step is that step; two different steps are refused."""
    sure = [v for v in each if v.step_mm is not None]
    steps = {v.step_mm for v in sure if v.step_mm is not None}
    if len(steps) == 1:
        return sure[0]
    if len(steps) > 1:
        say = " or ".join(f"{_fmt(t)} mm" for t in sorted(steps))
        return Verdict(each[0].row, None, f"labels read straight and mirrored give steps of {say}")
    return each[0]


def _fill(roi) -> float:
    m = getattr(roi, "mask", None)
    return 1.0 if m is None or m.size == 0 else float(m.mean())


def _overlap(a, b) -> float:
    """Intersection over the smaller of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def lateral_step(image: np.ndarray, roi, row_mm: float) -> tuple[float | None, MarkRow | None]:
    """The column spacing of a lateral tick row under or over the image when one of its possible
    steps matches the row spacing within AGREE (square pixels confirmed), else None."""
    for row in find_rows(image, roi, "lateral")[:2]:
        for t in candidate_steps(row):
            s = t / row.pitch_px
            if abs(s / row_mm - 1) <= AGREE:
                return s, row
        return None, row
    return None, None
