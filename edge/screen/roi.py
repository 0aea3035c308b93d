"""The B-mode region of a scanner screen: detect it, follow layout changes, crop to it.

A capture card delivers the whole screen: patient fields, text, scales, the B-mode. Only the
B-mode region may reach later stages. `detect_roi` finds it without knowing the scanner: the
B-mode is the large textured (speckled) area; the chrome around it is flat colour with sparse
text and lines. The result is the bounding rectangle plus a mask of the valid pixels inside it
(a steered linear image is a parallelogram, a curved or phased array a sector; the mask is the
convex outline of the image area). `RoiTracker` checks every frame, cheaply, whether the layout
changed (operator changed depth or zoom) and then detects again. `crop_frame` turns a
full-screen Frame into a ROI Frame whose pixels outside the mask are blanked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.frame import Frame


@dataclass(frozen=True)
class Roi:
    """A B-mode region in screen pixels. mask: bool (h, w), True on image pixels."""

    x: int
    y: int
    w: int
    h: int
    mask: np.ndarray
    source: str = "detected"  # "detected", "manual" or "dicom"

    @property
    def rect(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def fill(self) -> float:
        """Fraction of the rectangle that is image."""
        return float(self.mask.mean()) if self.mask.size else 0.0

    def near(self, other: Roi | None, tol: int = 2) -> bool:
        """True when `other` is the same rectangle within `tol` pixels on every edge."""
        if other is None:
            return False
        a = np.array([self.x, self.y, self.x + self.w, self.y + self.h])
        b = np.array([other.x, other.y, other.x + other.w, other.y + other.h])
        return bool(np.abs(a - b).max() <= tol)


def manual_roi(x: int, y: int, w: int, h: int, shape: tuple[int, ...] | None = None) -> Roi:
    """A fixed rectangle given by the user; checked against the frame shape when known."""
    try:
        x, y, w, h = (int(v) for v in (x, y, w, h))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"ROI {(x, y, w, h)!r} is not four integers") from e
    if x < 0 or y < 0 or w < 8 or h < 8:
        raise ConfigError(f"ROI {(x, y, w, h)!r} must have x, y >= 0 and w, h >= 8")
    if shape is not None and (x + w > shape[1] or y + h > shape[0]):
        raise ConfigError(f"ROI {(x, y, w, h)!r} does not fit a {shape[1]}x{shape[0]} frame")
    return Roi(x, y, w, h, np.ones((h, w), bool), "manual")


def screen_gray(image: np.ndarray) -> np.ndarray:
    """The grayscale of a screen (the image itself when it is grayscale already)."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _local_std(gray: np.ndarray, k: int) -> np.ndarray:
    """The standard deviation of the grey levels over each pixel's k x k neighbourhood (float32),
    in three image-sized arrays: each step writes over one no longer needed (a full-height strip
    of a 1920x1080 screen took 17.7 MB with a fresh array per step, 10.6 MB so)."""
    g = gray.astype(np.float32)
    m = cv2.blur(g, (k, k))
    m2 = cv2.blur(np.multiply(g, g, out=g), (k, k))
    var = np.subtract(m2, np.multiply(m, m, out=m), out=m2)
    return np.sqrt(np.maximum(var, 0.0, out=var), out=var)


def _largest(mask: np.ndarray, prefer: np.ndarray | None = None) -> np.ndarray | None:
    """The largest 8-connected component of `mask` (largest overlap with `prefer` if given)."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    if prefer is None:
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    else:
        overlap = np.bincount(lab[prefer], minlength=n)
        overlap[0] = 0
        if overlap.max() == 0:
            return None
        best = int(np.argmax(overlap))
    return lab == best


def _hull(mask: np.ndarray) -> np.ndarray:
    """The filled convex outline of a mask (from each row's end pixels: fast on large masks)."""
    rows = np.flatnonzero(mask.any(axis=1))
    out = np.zeros(mask.shape, np.uint8)
    if len(rows) == 0:
        return out.astype(bool)
    sub = mask[rows]
    left = sub.argmax(axis=1)
    right = sub.shape[1] - 1 - sub[:, ::-1].argmax(axis=1)
    pts = np.concatenate([np.stack([left, rows], 1), np.stack([right, rows], 1)]).astype(np.int32)
    cv2.fillConvexPoly(out, cv2.convexHull(pts), 1)
    return out.astype(bool)


def _chrome_colours(image: np.ndarray, flat: np.ndarray, share: float = 0.01) -> np.ndarray:
    """The colours of the chrome: flat colours covering at least `share` of the screen each.

    Returns an (n, channels) int array; n is 0 for a screen without chrome (all image).
    """
    ch = image.shape[2] if image.ndim == 3 else 1
    px = image[flat].reshape(-1, ch).astype(np.int32)
    q = px >> 3  # tolerate small shading differences
    keys = q[:, 0] if ch == 1 else (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    if len(keys) == 0:
        return np.zeros((0, ch), np.int32)
    counts = np.bincount(keys)
    keep = np.flatnonzero(counts >= share * flat.size)[:6]
    means = [np.bincount(keys, weights=px[:, c])[keep] / counts[keep] for c in range(ch)]
    return np.round(np.stack(means, axis=1)).astype(np.int32).reshape(len(keep), ch)


def _differs(image: np.ndarray, colours: np.ndarray, tol: int) -> np.ndarray:
    """True where a pixel is further than `tol` levels (any channel) from every chrome colour."""
    out = np.ones(image.shape[:2], bool)
    for c in colours:
        lo = np.clip(c - tol, 0, 255).astype(np.uint8)
        hi = np.clip(c + tol, 0, 255).astype(np.uint8)
        if image.ndim == 2:
            lo, hi = lo[:1], hi[:1]
        out &= cv2.inRange(image, lo, hi) == 0
    return out


def _up(mask: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """A reduced-size mask brought back to full size (`shape`)."""
    if f == 1:
        return mask
    big = cv2.resize(mask.astype(np.uint8), (mask.shape[1] * f, mask.shape[0] * f), interpolation=cv2.INTER_NEAREST)
    out = np.zeros(shape, np.uint8)
    h, w = min(shape[0], big.shape[0]), min(shape[1], big.shape[1])
    out[:h, :w] = big[:h, :w]
    return out > 0


def _stacked(lab: np.ndarray, stats: np.ndarray, main: int, min_area: float) -> np.ndarray:
    """The main piece plus pieces above or below it that span most of its width."""
    mx, my, mw, mh = stats[main, :4]
    keep = [main]
    for i in range(1, len(stats)):
        x, y, w, h, area = stats[i]
        if i == main or area < min_area or w < 0.6 * mw:
            continue
        overlap = min(x + w, mx + mw) - max(x, mx)
        gap = max(y - (my + mh), my - (y + h), 0)
        if overlap >= 0.8 * w and gap <= 0.3 * mh:
            keep.append(i)
    return np.isin(lab, keep)


def detect_roi(image: np.ndarray, min_fraction: float = 0.04, tol: int = 12) -> Roi | None:
    """Find the B-mode region of a screen, or None when there is no image area.

    image: uint8 gray or BGR screen. min_fraction: smallest image area accepted, as a fraction of
    the screen. tol: colour difference (levels) that separates image pixels from flat chrome.

    Steps: (1) at reduced size, the speckled area, stripped of text and thin lines by a wide
    opening (with the wide pieces stacked on it: a dark band may split it); (2) the chrome
    colours: flat colours covering a good share of the screen outside that area (a saturated
    black band inside the B-mode is flat too, but lies inside); (3) again with "unlike the chrome
    colours" added, which brings in dark image parts; (4) at full size near that area, the pixels
    unlike the chrome; (5) pieces of the same width above or below that a dark band cut off,
    with the band (see _with_aligned_pieces). The mask is the convex outline. The rectangle is
    exact wherever the image edge differs from the chrome; an echo-free edge band exactly as
    flat as the chrome (and as dark) may be left out.
    """
    if image.ndim not in (2, 3) or image.dtype != np.uint8 or min(image.shape[:2]) < 32:
        raise ConfigError(f"cannot look for a ROI in an image of shape {image.shape!r} and dtype {image.dtype}")
    H, W = image.shape[:2]
    f = 2 if min(H, W) >= 600 else 1
    small = cv2.resize(image, (W // f, H // f), interpolation=cv2.INTER_AREA) if f > 1 else image
    gsmall = screen_gray(small)
    k = max(9, round(min(gsmall.shape) / 24)) | 1
    box = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))

    def opened(candidate: np.ndarray) -> np.ndarray:
        return cv2.morphologyEx(candidate.astype(np.uint8), cv2.MORPH_OPEN, box)

    textured = _local_std(gsmall, 7) > 2.0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(opened(textured), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if n <= 1 or areas.max() < min_fraction * gsmall.size / 2:
        return None
    # A dark band may split the B-mode: wide pieces stacked on the largest belong to it.
    main = 1 + int(np.argmax(areas))
    comp0 = _stacked(lab, stats, main, min_fraction * gsmall.size / 4)
    hull0 = _hull(comp0)
    outside = ~(cv2.dilate(hull0.astype(np.uint8), box) > 0)
    colours = _chrome_colours(small, (_local_std(gsmall, 5) < 1.0) & outside)
    comp = _largest(opened(textured | _differs(small, colours, tol)) > 0, prefer=hull0)
    if comp is None or comp.sum() < min_fraction * gsmall.size:
        return None
    hull1 = _hull(comp | comp0)
    del small, gsmall, textured, lab, stats, hull0, outside, comp  # the reduced-size steps' arrays, before full size
    mask = _full_size_region(image, hull1, comp0, colours, tol, f, k)
    if mask is None:
        return None
    mask = _with_aligned_pieces(image, colours, tol, mask)
    if mask.sum() < min_fraction * H * W:  # image pixels, not the outline: a few bright arcs are not an image
        return None
    mask = _without_side_lines(image, _without_ringing(image, _hull(mask)))
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return Roi(int(x), int(y), int(w), int(h), mask[y : y + h, x : x + w].copy(), "detected")


def _full_size_region(
    image: np.ndarray, hull1: np.ndarray, comp0: np.ndarray, colours: np.ndarray, tol: int, f: int, k: int
) -> np.ndarray | None:
    """detect_roi's step (4), at full size inside the bounding box of the coarse outline `hull1`
    (plus a margin): the screen-sized mask of the image pixels, or None. (Its own function, so
    that its crop-sized arrays are gone before the next steps make theirs.)"""
    H, W = image.shape[:2]
    pad = 6 + f
    bx, by, bw, bh = cv2.boundingRect(hull1.astype(np.uint8))
    x0, y0 = max(0, bx * f - pad), max(0, by * f - pad)
    x1, y1 = min(W, (bx + bw) * f + pad), min(H, (by + bh) * f + pad)
    inside = _up(hull1, f, (H, W))[y0:y1, x0:x1]
    near = cv2.dilate(inside.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (2 * pad + 1, 2 * pad + 1)))
    fine = (_differs(image[y0:y1, x0:x1], colours, tol) & (near > 0)).astype(np.uint8)
    fine = cv2.morphologyEx(fine, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    fine = cv2.morphologyEx(fine, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    # The speckle area, shrunk by the opening size (textured chrome close to the image, such as
    # a scale, can stick to it that far): it holds dark image parts that match a chrome colour.
    r = (k + 4) * f
    shrink = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    core = cv2.erode(_up(comp0, f, (H, W))[y0:y1, x0:x1].astype(np.uint8), shrink) > 0
    # Image pieces reach into that core, or are large and mostly inside the coarse outline; a
    # scale line beside the image (thickened by compression rings) is neither.
    n, lab, stats, _ = cv2.connectedComponentsWithStats(fine, connectivity=8)
    area = stats[:, cv2.CC_STAT_AREA]
    within = np.bincount(lab[inside], minlength=n)
    deep = np.bincount(lab[core], minlength=n) > 0
    keep = deep | ((within >= 0.5 * area) & (area >= 0.05 * area[1:].max(initial=0)))
    keep[0] = False
    region = keep[lab] | core
    if not region.any():
        return None
    mask = np.zeros((H, W), bool)
    mask[y0:y1, x0:x1] = region
    return mask


def _without_ringing(image: np.ndarray, mask: np.ndarray, most: int = 4) -> np.ndarray:
    """A rectangular mask less the edge lines that are only a video codec's ringing.

    MJPEG and similar codecs code 8x8 blocks: where the image edge falls inside a block, the
    chrome beside it rings by up to 20 levels, unlike the chrome colours, so the region takes in
    a few columns or rows of it. Such a line keeps the chrome's level on average and spreads 3-5
    levels; an image line across the region crosses tissue and spreads widely, and a dark edge
    line of the image (a near-field dead zone) is darker than chrome that is not black. Up to
    `most` lines per side are dropped that spread less than 8 levels and whose mean is within 4
    levels of the line just outside, on masks that fill 95 % of their box (a sector's edge lines
    are short) and only on sides with chrome beyond them (not at the frame's border).
    """
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    H, W = mask.shape
    if w <= 4 * most or h <= 4 * most or mask.sum() < 0.95 * w * h:
        return mask
    gray = screen_gray(image).astype(np.float32)
    box = gray[y : y + h, x : x + w]

    def ringing(lines: np.ndarray, outside: np.ndarray) -> int:
        ref = float(outside.mean())
        for i, line in enumerate(lines[:most]):
            if line.std() >= 8.0 or abs(float(line.mean()) - ref) > 4.0:
                return i
        return most

    left = ringing(box.T, gray[y : y + h, x - 1]) if x > 0 else 0
    right = ringing(box.T[::-1], gray[y : y + h, x + w]) if x + w < W else 0
    top = ringing(box, gray[y - 1, x : x + w]) if y > 0 else 0
    bottom = ringing(box[::-1], gray[y + h, x : x + w]) if y + h < H else 0
    return _less_sides(mask, (x, y, w, h), left, right, top, bottom)


def _less_sides(mask: np.ndarray, rect, left: int, right: int, top: int = 0, bottom: int = 0) -> np.ndarray:
    """`mask` without that many lines at each side of its bounding rectangle `rect`."""
    if left == right == top == bottom == 0:
        return mask
    x, y, w, h = rect
    out = np.zeros_like(mask)
    out[y + top : y + h - bottom, x + left : x + w - right] = mask[y + top : y + h - bottom, x + left : x + w - right]
    return out


def _without_side_lines(image: np.ndarray, mask: np.ndarray, most: int = 24) -> np.ndarray:
    """A rectangular mask less the columns at its left and right that are flat: a scale's line and
    ticks beside the image, and the chrome between, which a video codec's noise can join to the
    image on a small screen. A column is flat when 85 % of its pixels lie within 12 levels of its
    median; an image column crosses tissue (speckle, the bright fascia). At most `most` columns
    per side, and only when a column that is not flat remains, on sides with chrome beyond them
    (not at the frame's border); on masks that fill 95 % of their box (a sector's edge columns
    are short)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w <= 4 * most or mask.sum() < 0.95 * w * h:
        return mask
    box = screen_gray(image)[y : y + h, x : x + w].astype(np.int16)
    flat = (np.abs(box - np.median(box, axis=0)) <= 12).mean(axis=0) >= 0.85
    if flat.all():
        return mask
    left = int(np.argmin(flat[:most])) if x > 0 and not flat[:most].all() else 0
    right = int(np.argmin(flat[::-1][:most])) if x + w < mask.shape[1] and not flat[::-1][:most].all() else 0
    return _less_sides(mask, (x, y, w, h), left, right)


def _with_aligned_pieces(image: np.ndarray, colours: np.ndarray, tol: int, region: np.ndarray) -> np.ndarray:
    """The region plus image pieces above or below it that a dark band cut off.

    A high-contrast look can show an echo-free band (subcutaneous fat, a deep field past the
    echoes) as dark as the chrome; the bright skin line above it, or the last echoes below it,
    then stand apart from the rest of the image. Such a piece is taken back when it spans the
    same columns as the region (both ends within 3 px), is dense and textured rather than a line
    or a flat bar, and the band between is as dark as the chrome, no taller than the region found
    so far, and not flat (a flat band is chrome: it parts two panes of the same width). The
    band's rows are then filled. Last, thin edge rows and a dim corner of a rectangle that the
    openings dropped are added back.
    """
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    m = 4
    c0, c1 = max(0, left - m), min(image.shape[1], right + 1 + m)
    strip = image[:, c0:c1]
    unlike = _differs(strip, colours, tol)
    pieces = cv2.morphologyEx(unlike.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    gray = screen_gray(strip).astype(np.int16)
    textured = _local_std(gray, 5) > 2.0
    n, lab, stats, _ = cv2.connectedComponentsWithStats(pieces, connectivity=8)
    out = region.copy()
    height = bottom - top + 1
    span = right - left + 1
    for i in range(1, n):
        x, y, w, h, _ = (int(v) for v in stats[i])
        if w < 0.9 * span or (y >= top and y + h - 1 <= bottom):
            continue
        component = lab == i
        # The part above the region and the part below, each judged on its own.
        for part_rows, above in ((slice(0, top), True), (slice(bottom + 1, None), False)):
            part = np.zeros_like(component)
            part[part_rows] = component[part_rows]
            ys, xs = np.nonzero(part)
            if len(ys) == 0:
                continue
            py0, py1, px0, px1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
            ph = py1 - py0 + 1
            if abs(c0 + px0 - left) > 3 or abs(c0 + px1 - right) > 3 or ph < 6:
                continue
            if len(ys) < 0.3 * (px1 - px0 + 1) * ph or textured[part].mean() < 0.5:
                continue
            gap = (py1 + 1, top) if above else (bottom + 1, py0)
            if gap[1] - gap[0] > height:
                continue
            # The band is dark like the chrome yet not flat like it: faint echoes, 8 levels or more
            # off its commonest level (capture noise is not), in many of its rows (a text label
            # is not).
            band = (slice(gap[0], gap[1]), slice(left - c0, right - c0 + 1))
            if gap[1] > gap[0] and unlike[band].mean() > 0.1:
                continue
            if gap[1] - gap[0] > 6:
                level = gray[band]
                echo = np.abs(level - np.bincount(level.ravel()).argmax()) > 8
                if echo.mean() < 0.005 or echo.any(axis=1).mean() < 0.15:
                    continue
            out[:, c0:c1] |= part
            out[gap[0] : gap[1], left : right + 1] = True
    del pieces, textured, lab  # the pieces' arrays, before the edge rows' and the box's
    # Thin rows at the top and bottom edge that the openings dropped: rows beyond the region in
    # which many pixels differ from the pixel two to their left (speckle, even enlarged; a chrome
    # row, even with a scale's ticks or text, is mostly even) and whose levels spread (not one
    # flat line, nor the ringing a video codec leaves beside the image).
    rows = np.flatnonzero(out.any(axis=1))
    inner = gray[:, left - c0 : right - c0 + 1]
    step_x = np.zeros(inner.shape, bool)
    step_x[:, 2:] = np.abs(inner[:, 2:] - inner[:, :-2]) > 1
    varying = step_x.mean(axis=1)
    flat = inner.std(axis=1) < 8.0  # compression ringing beside the image: 3-4 levels
    reach = max(16, round(0.08 * (rows[-1] - rows[0] + 1)))
    for start, step in ((int(rows[0]) - 1, -1), (int(rows[-1]) + 1, 1)):
        r = start
        while 0 <= r < len(varying) and varying[r] >= 0.2 and not flat[r] and abs(r - start) < reach:
            out[r, left : right + 1] |= step_x[r]
            r += step
    # A rectangle short of a corner (dim speckle there broke into pieces the openings dropped):
    # when the outline already fills 95 % of its box and the missing part is image-like (many
    # pixels unlike the chrome), the box is the region. A steered or sector image leaves more
    # of its box empty, and chrome there (text, a grey bar) is flat between its strokes.
    hull = _hull(out)
    x, y, w, h = cv2.boundingRect(hull.astype(np.uint8))
    box = np.zeros_like(hull)
    box[y : y + h, x : x + w] = True
    missing = box & ~hull
    if missing.any() and hull.sum() >= 0.95 * w * h and x >= c0 and x + w <= c1:
        if unlike[:, x - c0 : x + w - c0][missing[:, x : x + w]].mean() >= 0.15:
            out |= box
    return out


def crop(image: np.ndarray, roi: Roi) -> np.ndarray:
    """A new array holding only the ROI pixels, those outside its mask set to 0."""
    out = image[roi.y : roi.y + roi.h, roi.x : roi.x + roi.w].copy()
    if out.shape[:2] != roi.mask.shape:
        raise ConfigError(f"ROI {roi.rect!r} does not fit a frame of shape {image.shape!r}")
    if not roi.mask.all():
        out[~roi.mask] = 0
    return out


_KEEP = object()


def crop_frame(frame: Frame, roi: Roi, spacing_mm=_KEEP) -> Frame:
    """The ROI Frame for a full-screen Frame: only the ROI pixels (a copy, blank outside the
    mask), of the frame's image as it is (only the grayscale of a frame decoded so). spacing_mm:
    the calibrated (row, column) spacing, or None; by default the frame's own (cropping does not
    change the spacing)."""
    spacing = frame.spacing_mm if spacing_mm is _KEEP else spacing_mm
    return replace(frame, image=crop(frame.image, roi), spacing_mm=spacing, colour=None)


@dataclass(frozen=True)
class LayoutChange:
    """The B-mode region moved or changed size (depth, zoom, layout), appeared, or was set."""

    seq: int | None
    old: Roi | None
    new: Roi | None
    reason: str


SIZE_CHANGED = "screen size changed"


def _fits(roi: Roi, shape: tuple[int, ...]) -> bool:
    return roi.x + roi.w <= shape[1] and roi.y + roi.h <= shape[0]


class RoiTracker:
    """Follows the B-mode region of a live screen, detecting it again only when needed.

    Every frame costs two cheap checks: (1) a coarse signature of the chrome outside the ROI
    (its mean level in 8x8 cells, from a sixteenth of its pixels; a changed label, a moved scale), and (2) thin strips just inside and
    just outside the ROI edges: image pixels must stay inside, chrome outside. A check that
    fails for `persist` frames in a row, or every `redetect_every` frames, triggers detection (a
    screen of another size at once: a folder of pictures of several sizes, a capture mode change;
    when nothing is found on it, it has no region: the last one belongs to another layout);
    a new rectangle (more than `tol` px off on any edge) is adopted and reported. Detections are
    at least `min_gap` frames apart, so a dark image (probe lifted) cannot make it thrash; when
    detection finds nothing the last ROI is kept. While a check fails and detection is held back
    (by `min_gap` or `persist`), `unsettled` is true: the region may have moved, and a frame cut
    with the last rectangle and measured with the last scale could be wrong. When a detection
    finds the same rectangle after a failed check, what failed is screen content that moves by
    itself (a trace, a counter, a cursor, image outside a region found too small): those chrome
    cells and edge strips are left out of the checks until the rectangle changes, and until then
    a failed check no longer makes the tracker unsettled (such a screen cannot tell its own motion
    from a layout change between detections; it is measured as before, and detected again when due).

    The routine detection every `redetect_every` frames, with nothing seen to change, runs beside
    the frames on a thread of its own (a detection costs tens of milliseconds, which would hold
    up a few frames of a live source each time), and what it found is taken `lag` frames after
    the frame it looked at, waiting for it then if need be; so the frames and results are the same
    however fast the machine. A check that fails meanwhile detects at once and drops that result.

    manual: a fixed Roi (see manual_roi): never detected, never changed.
    """

    def __init__(
        self,
        manual: Roi | None = None,
        redetect_every: int = 300,
        persist: int = 1,
        min_gap: int = 15,
        tol: int = 2,
        on_change: Callable[[LayoutChange], None] | None = None,
        detector: Callable[[np.ndarray], Roi | None] = detect_roi,
        lag: int = 8,
    ):
        self.manual, self.redetect_every, self.persist = manual, int(redetect_every), int(persist)
        self.lag = max(1, int(lag))
        self._routine: _Detection | None = None  # the routine detection running beside the frames
        self._dropped: list[_Detection] = []  # routine detections overtaken by a detection of their own
        self.min_gap, self.tol, self.on_change, self.detector = int(min_gap), int(tol), on_change, detector
        self.roi: Roi | None = None
        self.detections = 0
        self._frames = 0
        self._last_detect = -(10**9)
        self._suspect = 0
        self._sig: np.ndarray | None = None
        self._shape: tuple[int, ...] = ()  # the screen's size at the last detection or reference
        self._sig_mask: np.ndarray | None = None
        self._strips: list[tuple] = []  # (inside box, outside box, chrome level, chrome lines) of each edge strip
        self.unsettled = False  # the last frame failed a check and was not followed by a detection
        self.misfit = False  # the last frame was too small for the fixed [roi] rect (not measured)
        self._volatile: np.ndarray | None = None  # chrome cells that change by themselves
        self._quiet: set = set()  # edge strips (inside boxes) that change by themselves
        self._failed: tuple[np.ndarray | None, list] = (None, [])  # what the last failed check saw
        self._restless = False  # a detection after a failed check found the same rectangle

    def update(
        self,
        image: np.ndarray,
        seq: int | None = None,
        gray: np.ndarray | None = None,
        colour: Callable[[], np.ndarray] | None = None,
    ) -> tuple[Roi | None, LayoutChange | None]:
        """The ROI for this frame, and a LayoutChange when it changed (also sent to on_change).
        gray: the frame's screen_gray, when the caller has it already. colour: the screen in
        colour when `image` is only its grayscale (Frame.colour), for a detection."""
        self._frames += 1
        self.unsettled = self.misfit = False
        if self.manual is not None:
            m, (h, w) = self.manual, image.shape[:2]
            if m.x + m.w > w or m.y + m.h > h:  # wholly or partly off the screen: nothing to measure there
                if self._frames == 1:  # the source's first frame: the config is wrong for this source
                    raise ConfigError(f"[roi] rect {list(m.rect)} does not fit the {w}x{h} screen of this source")
                self.misfit = True  # a later frame of another size (a mixed folder, a mode change): skipped
                return None, None
            if self.roi is None:
                self.roi = self.manual
                return self.roi, self._report(LayoutChange(seq, None, self.manual, "manual"))
            return self.roi, None
        gray = screen_gray(image) if gray is None else gray
        if self.roi is None:
            reason = "first frame" if self.detections == 0 else "no ROI yet"
            if self._frames - self._last_detect < self.min_gap and self.detections and gray.shape == self._shape:
                return None, None
        else:
            reason = self._check(gray)
            if reason is None:
                self.unsettled = self._suspect > 0 and not self._restless
                if self._routine is not None and self._frames - self._routine.frame >= self.lag:
                    found, self._routine = self._routine.result(), None
                    return self._adopt(found, gray, seq, "periodic check")
                if self._routine is None and 0 < self.redetect_every <= self._frames - self._last_detect:
                    self._last_detect = self._frames
                    self.detections += 1
                    self._routine = _Detection(self.detector, image, colour, self._frames)
                return self.roi, None
        return self._detect(image if colour is None else colour(), gray, seq, reason)

    def finish(self) -> None:
        """Wait for a routine detection still running (tens of milliseconds) and drop its result:
        at the end of a run, before the process exits. A thread left inside OpenCV while Python
        exits makes OpenCV's thread pool abort the process at exit ("terminate called without an
        active exception"), after the run's outputs are written but with a failed exit status."""
        routine, self._routine = self._routine, None
        for detection in [*self._dropped, *([routine] if routine is not None else [])]:
            detection.wait()
        self._dropped = []

    def _check(self, gray: np.ndarray) -> str | None:
        moved = self._moved(gray)
        if moved == SIZE_CHANGED:  # certain, not flicker, and the last rectangle may not fit: at once
            return moved
        self._suspect = self._suspect + 1 if moved else 0
        due = self._frames - self._last_detect
        if moved and self._suspect >= self.persist and due >= self.min_gap:
            return moved
        return None

    def _detect(self, image, gray, seq, reason):
        self._last_detect, self._shape = self._frames, gray.shape
        self._suspect = 0
        self.detections += 1
        if self._routine is not None:  # still running, it looked at an older screen: its result is dropped
            self._dropped = [d for d in self._dropped if d.running] + [self._routine]
        self._routine = None
        return self._adopt(self.detector(image), gray, seq, reason)

    def _adopt(self, new: Roi | None, gray, seq, reason):
        """The region after a detection that found `new` (None: nothing) for the frame of `gray`."""
        old = self.roi
        if new is None:
            if old is not None and (reason == SIZE_CHANGED or not _fits(old, gray.shape)):  # no region on it yet
                self.roi, self._sig, self._strips = None, None, []
                return None, self._report(LayoutChange(seq, old, None, reason))
            if old is not None:  # keep the last one; the references follow the screen
                self._remember(gray, old)
            return old, None
        if old is not None and new.near(old, self.tol) and _fits(old, gray.shape):
            if reason not in ("periodic check", SIZE_CHANGED):  # a check failed on a screen that did not change
                self._restless = True
            self._learn_volatile()
            self._remember(gray, old)
            return old, None
        self._volatile, self._quiet, self._restless = None, set(), False
        self._remember(gray, new)
        self.roi = new
        return new, self._report(LayoutChange(seq, old, new, reason))

    def _learn_volatile(self) -> None:
        """The check that failed before this detection saw content that moves by itself."""
        cells, strips = self._failed
        if cells is not None:
            self._volatile = (
                cells if self._volatile is None or self._volatile.shape != cells.shape else self._volatile | cells
            )
        self._quiet.update(strips)
        self._failed = (None, [])

    # -- the cheap checks ------------------------------------------------------------------

    def _signature(self, gray: np.ndarray) -> np.ndarray:
        """The screen's mean level in cells of 8x8 pixels, from every 4th pixel of every 4th row
        (a sixteenth of the screen, read on every frame: the chrome is flat colour and still text,
        and a layout change alters many cells at once)."""
        h, w = gray.shape
        sample = np.ascontiguousarray(gray[1::4, 1::4]) if h >= 8 and w >= 8 else gray
        return cv2.resize(sample, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA).astype(np.int16)

    def _strip_boxes(self, gray: np.ndarray, roi: Roi):
        """(inside box, outside box) pairs, one per ROI edge, each 3 px thick, 2 px off the edge."""
        H, W = gray.shape
        x, y, w, h = roi.rect
        boxes = []
        for inside, outside in (
            ((x + 2, y + 5, 3, h - 10), (x - 5, y + 5, 3, h - 10)),  # left
            ((x + w - 5, y + 5, 3, h - 10), (x + w + 2, y + 5, 3, h - 10)),  # right
            ((x + 5, y + 2, w - 10, 3), (x + 5, y - 5, w - 10, 3)),  # top
            ((x + 5, y + h - 5, w - 10, 3), (x + 5, y + h + 2, w - 10, 3)),  # bottom
        ):
            ox, oy, ow, oh = outside
            if ox < 0 or oy < 0 or ox + ow > W or oy + oh > H or ow <= 0 or oh <= 0:
                continue
            ix, iy, iw, ih = inside
            valid = roi.mask[iy - y : iy - y + ih, ix - x : ix - x + iw]
            if valid.mean() < 0.8:
                continue  # a slanted edge: the strip would cross the blank corner
            boxes.append((inside, outside))
        return boxes

    @staticmethod
    def _cut(gray, box):
        x, y, w, h = box
        return gray[y : y + h, x : x + w]

    def _strip_scores(self, gray: np.ndarray) -> list[tuple[float, float]]:
        """Per strip pair: the share of inside pixels unlike the chrome's level, and the share of
        outside pixels unlike the chrome line they lie on (each line along the edge has its own
        level: a bar's soft edge beside the image is a ramp of levels across the strip)."""
        out = []
        for inside, outside, level, lines in self._strips:
            out.append(
                (
                    float((np.abs(self._cut(gray, inside).astype(np.int16) - level) > 12).mean()),
                    float((np.abs(self._cut(gray, outside).astype(np.int16) - lines) > 12).mean()),
                )
            )
        return out

    def _remember(self, gray: np.ndarray, roi: Roi) -> None:
        self._shape = gray.shape
        sig = self._signature(gray)
        sh, sw = sig.shape
        keep = np.ones((sh, sw), bool)
        x, y, w, h = roi.rect
        keep[max(0, y // 8 - 1) : (y + h) // 8 + 2, max(0, x // 8 - 1) : (x + w) // 8 + 2] = False
        if self._volatile is not None and self._volatile.shape == keep.shape:
            keep &= ~self._volatile
        self._sig, self._sig_mask = sig, keep
        self._strips = []
        for inside, outside in self._strip_boxes(gray, roi):
            if inside in self._quiet:
                continue
            chrome = self._cut(gray, outside)
            along = 1 if outside[2] > outside[3] else 0  # the axis that runs along the edge
            lines = np.median(chrome, axis=along, keepdims=True).astype(np.int16)
            self._strips.append((inside, outside, int(np.median(chrome)), lines))
        self._strip_base = self._strip_scores(gray)

    def _moved(self, gray: np.ndarray) -> str | None:
        self._failed = (None, [])
        assert self._sig is not None and self._sig_mask is not None  # _remember set them with the ROI _check follows
        if gray.shape != self._shape:
            return SIZE_CHANGED
        sig = self._signature(gray)
        cells = self._sig_mask.sum()
        if cells:
            changed = (np.abs(sig - self._sig) > 20) & self._sig_mask
            if changed.sum() > max(6, 0.003 * cells):
                self._failed = (changed, [])
                return "chrome changed"
        failed = [
            inside
            for (inside, _, _, _), (i0, o0), (i1, o1) in zip(self._strips, self._strip_base, self._strip_scores(gray))
            if i1 < 0.5 * i0 - 0.05 or o1 > o0 + 0.3
        ]
        if failed:
            self._failed = (None, failed)
            return "ROI edge changed"
        return None

    def _report(self, change: LayoutChange) -> LayoutChange:
        if self.on_change is not None:
            self.on_change(change)
        return change


class _Detection:
    """`detector` on one screen, on a thread of its own; `result()` waits for it (an exception in
    the detector is raised there, on the caller's thread)."""

    def __init__(self, detector, image: np.ndarray, colour: Callable[[], np.ndarray] | None, frame: int):
        self.frame = frame  # the tracker's frame count when it started
        self._found: Roi | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(detector, image, colour), name="roi-detect", daemon=True
        )
        self._thread.start()

    def _run(self, detector, image, colour) -> None:
        try:
            self._found = detector(image if colour is None else colour())
        except BaseException as e:  # handed to the caller's thread by result()
            self._error = e

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Roi | None:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._found
