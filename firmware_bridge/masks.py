"""Masks at the display's resolution and their encodings (PROTOCOL.md section 5).

Pure functions on numpy arrays:
- ``boundaries_from_labels`` / ``labels_for_display`` take the runtime's label map to the display;
- ``encode_*`` produce MASK data, ``decode_mask`` reads it back (raising MaskError when malformed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from firmware_bridge.errors import MaskError
from firmware_bridge.messages import Encoding

NO_BAND = 0xFFFF


def _column_index(src_width: int, width: int) -> np.ndarray:
    """Source column sampled by each display column (centre of the display column)."""
    return np.minimum(((np.arange(width) * 2 + 1) * src_width) // (2 * width), src_width - 1)


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size == 0:
        raise MaskError(f"labels must be a non-empty 2-D array, got shape {labels.shape!r}")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
        raise MaskError(f"labels must hold integer classes, got dtype {labels.dtype!r}")
    return labels


def boundaries_from_labels(
    labels, tlf_class: int = 1, width: int | None = None, height: int | None = None, first_run: bool = False
):
    """Per-column top and bottom of the TLF band, in display rows.

    ``labels`` is the runtime's (H, W) class map. Each of the ``width`` display columns samples the
    label column under its centre; ``top`` is the first TLF row and ``bottom`` one past the last,
    scaled from H rows to ``height`` display rows (outwards, so a thin band never vanishes).
    With ``first_run`` (a frame of several bands) ``bottom`` ends the first run of band pixels
    instead: the most superficial band, not everything from it to the deepest one.
    Columns without TLF pixels hold 0xFFFF in both arrays. Returns two uint16 arrays of ``width``.
    """
    labels = _check_labels(labels)
    h, w = labels.shape
    width = w if width is None else int(width)
    height = h if height is None else int(height)
    if not (1 <= width <= 0xFFFE and 1 <= height <= 0xFFFE):
        raise MaskError(f"display size must be 1..65534 in each direction, got {width!r}x{height!r}")
    cols = labels[:, _column_index(w, width)] == tlf_class
    present = cols.any(axis=0)
    first = np.argmax(cols, axis=0).astype(np.int64)
    last = h - np.argmax(cols[::-1], axis=0).astype(np.int64)  # one past the last TLF row
    if first_run:
        rows = np.arange(h)[:, None]
        after = ~cols & (rows > first)  # the first non-band row below the first band row ends the run
        last = np.where(after.any(axis=0), np.argmax(after, axis=0), h).astype(np.int64)
    top = (first * height) // h
    bottom = -((-last * height) // h)
    top = np.where(present, top, NO_BAND).astype(np.uint16)
    bottom = np.where(present, bottom, NO_BAND).astype(np.uint16)
    return top, bottom


def labels_for_display(labels, width: int, height: int) -> np.ndarray:
    """The label map resampled (nearest) to ``height`` x ``width``, classes clipped to 0..3."""
    labels = _check_labels(labels)
    h, w = labels.shape
    out = labels[_column_index(h, height)][:, _column_index(w, width)]
    return np.clip(out, 0, 3).astype(np.uint8)


def check_boundaries(top, bottom, height: int) -> tuple[np.ndarray, np.ndarray]:
    top = np.asarray(top)
    bottom = np.asarray(bottom)
    if top.shape != bottom.shape or top.ndim != 1:
        raise MaskError(f"top and bottom must be 1-D arrays of one length, got {top.shape!r} and {bottom.shape!r}")
    t = top.astype(np.int64)
    b = bottom.astype(np.int64)
    absent = (t == NO_BAND) & (b == NO_BAND)
    ok = absent | ((t >= 0) & (t < b) & (b <= height))
    if not ok.all():
        i = int(np.argmin(ok))
        raise MaskError(
            f"column {i!r} has top {int(t[i])!r} and bottom {int(b[i])!r}, not a band within {height!r} rows"
        )
    return t, b


# -- encoders -----------------------------------------------------------------------------------


def encode_bounds16(top, bottom, height: int) -> bytes:
    t, b = check_boundaries(top, bottom, height)
    return t.astype("<u2").tobytes() + b.astype("<u2").tobytes()


def encode_bounds_delta(top, bottom, height: int) -> bytes:
    """The token stream of PROTOCOL.md 5 (BOUNDS_DELTA), greedy: delta byte when it fits, else absolute."""
    t, b = check_boundaries(top, bottom, height)
    out = bytearray()
    cur_t, cur_k = 0, 0
    absent_run = 0
    same_run = 0
    have_band = False

    def flush():
        nonlocal absent_run, same_run
        while absent_run:
            n = min(absent_run, 255)
            out.extend((0x00, n))
            absent_run -= n
        while same_run:
            n = min(same_run, 255)
            out.extend((0x02, n))
            same_run -= n

    for top_i, bot_i in zip(t.tolist(), b.tolist()):
        if top_i == NO_BAND:
            if same_run:
                flush()
            absent_run += 1
            continue
        k = bot_i - top_i
        dt, dk = top_i - cur_t, k - cur_k
        if have_band and dt == 0 and dk == 0:
            if absent_run:
                flush()
            same_run += 1
            continue
        flush()
        if -7 <= dt <= 7 and -8 <= dk <= 7:
            out.append(((dt + 8) << 4) | (dk + 8))
        else:
            out += struct.pack("<BHH", 0x01, top_i, k)
        cur_t, cur_k, have_band = top_i, k, True
    flush()
    return bytes(out)


def encode_rle(labels) -> bytes:
    """Runs of the (already display-sized, 0..3) label map in row-major order."""
    flat = np.asarray(labels, dtype=np.uint8).ravel()
    if flat.size == 0:
        return b""
    if flat.max(initial=0) > 3:
        raise MaskError(f"RLE carries labels 0..3, got {int(flat.max())!r}")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], change))
    lengths = np.diff(np.concatenate((starts, [flat.size])))
    values = flat[starts]
    out = bytearray()
    for v, n in zip(values.tolist(), lengths.tolist()):
        while n:
            if n < 64:
                out.append((v << 6) | n)
                n = 0
            else:
                take = min(n, 64 + 0xFFFF)
                out += struct.pack("<BH", v << 6, take - 64)
                n -= take
    return bytes(out)


def encode_labels2(labels) -> bytes:
    flat = np.asarray(labels, dtype=np.uint8).ravel()
    if flat.size and flat.max() > 3:
        raise MaskError(f"LABELS2 carries labels 0..3, got {int(flat.max())!r}")
    pad = (-flat.size) % 4
    q = np.concatenate((flat, np.zeros(pad, np.uint8))).reshape(-1, 4)
    return (q[:, 0] | (q[:, 1] << 2) | (q[:, 2] << 4) | (q[:, 3] << 6)).astype(np.uint8).tobytes()


# -- decoding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedMask:
    encoding: Encoding
    top: np.ndarray | None = None  # uint16 (width,), for boundary encodings
    bottom: np.ndarray | None = None
    labels: np.ndarray | None = None  # uint8 (height, width), for label-map encodings

    @property
    def kind(self) -> str:
        return "none" if self.encoding == Encoding.NONE else ("bounds" if self.top is not None else "labels")


def decode_mask(encoding: int, data: bytes, width: int, height: int) -> DecodedMask:
    """Decode MASK data for a ``width`` x ``height`` display; MaskError if malformed."""
    try:
        enc = Encoding(encoding)
    except ValueError as e:
        raise MaskError(f"unknown mask encoding {encoding!r}") from e
    if enc == Encoding.NONE:
        if data:
            raise MaskError(f"NONE mask carries {len(data)!r} data bytes, needs 0")
        return DecodedMask(enc)
    if enc == Encoding.BOUNDS16:
        if len(data) != 4 * width:
            raise MaskError(f"BOUNDS16 data is {len(data)!r} bytes, needs {4 * width!r}")
        a = np.frombuffer(data, "<u2")
        top, bottom = a[:width].astype(np.uint16), a[width:].astype(np.uint16)
        check_boundaries(top, bottom, height)
        return DecodedMask(enc, top=top, bottom=bottom)
    if enc == Encoding.BOUNDS_DELTA:
        top, bottom = _decode_delta(data, width, height)
        return DecodedMask(enc, top=top, bottom=bottom)
    if enc == Encoding.RLE:
        return DecodedMask(enc, labels=_decode_rle(data, width, height))
    need = (width * height + 3) // 4
    if len(data) != need:
        raise MaskError(f"LABELS2 data is {len(data)!r} bytes, needs {need!r}")
    packed = np.frombuffer(data, np.uint8)
    flat = np.stack([(packed >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()[: width * height]
    return DecodedMask(enc, labels=flat.reshape(height, width).astype(np.uint8))


def _decode_delta(data: bytes, width: int, height: int):
    top = np.full(width, NO_BAND, np.uint16)
    bottom = np.full(width, NO_BAND, np.uint16)
    cur_t = cur_k = 0
    have_band = False
    col = i = 0
    n = len(data)

    def band(c, t, k):
        if t < 0 or k < 1 or t + k > height:
            raise MaskError(f"BOUNDS_DELTA column {c!r} gets top {t!r} and thickness {k!r}, outside {height!r} rows")
        top[c], bottom[c] = t, t + k

    while col < width:
        if i >= n:
            raise MaskError(f"BOUNDS_DELTA data ends after {col!r} of {width!r} columns")
        b = data[i]
        if b == 0x00 or b == 0x02:
            if i + 1 >= n:
                raise MaskError(f"BOUNDS_DELTA run token at offset {i!r} has no count")
            run = data[i + 1]
            if run == 0 or col + run > width:
                raise MaskError(f"BOUNDS_DELTA run of {run!r} at column {col!r} does not fit {width!r} columns")
            if b == 0x02:
                if not have_band:
                    raise MaskError(f"BOUNDS_DELTA repeat at column {col!r} before any band column")
                for c in range(col, col + run):
                    band(c, cur_t, cur_k)
            col += run
            i += 2
        elif b == 0x01:
            if i + 5 > n:
                raise MaskError(f"BOUNDS_DELTA absolute token at offset {i!r} is cut short")
            cur_t, cur_k = struct.unpack_from("<HH", data, i + 1)
            band(col, cur_t, cur_k)
            have_band = True
            col += 1
            i += 5
        elif b < 0x10:
            raise MaskError(f"BOUNDS_DELTA token {b:#04x} at offset {i!r} is reserved")
        else:
            cur_t += (b >> 4) - 8
            cur_k += (b & 15) - 8
            band(col, cur_t, cur_k)
            have_band = True
            col += 1
            i += 1
    if i != n:
        raise MaskError(f"BOUNDS_DELTA data has {n - i!r} bytes after the last column")
    return top, bottom


def _decode_rle(data: bytes, width: int, height: int) -> np.ndarray:
    total = width * height
    values, lengths = [], []
    pos = i = 0
    n = len(data)
    while i < n:
        b = data[i]
        run = b & 0x3F
        if run:
            i += 1
        else:
            if i + 3 > n:
                raise MaskError(f"RLE long run at offset {i!r} is cut short")
            run = 64 + data[i + 1] + (data[i + 2] << 8)
            i += 3
        pos += run
        if pos > total:
            raise MaskError(f"RLE runs cover more than the {total!r} pixels of {width!r}x{height!r}")
        values.append(b >> 6)
        lengths.append(run)
    if pos != total:
        raise MaskError(f"RLE runs cover {pos!r} of {total!r} pixels")
    return np.repeat(np.array(values, np.uint8), lengths).reshape(height, width)


def encode_mask(encoding: Encoding, *, top=None, bottom=None, labels=None, height: int) -> bytes:
    """MASK data for one encoding from boundaries (boundary encodings) or display-sized labels."""
    if encoding == Encoding.NONE:
        return b""
    if encoding == Encoding.BOUNDS16:
        return encode_bounds16(top, bottom, height)
    if encoding == Encoding.BOUNDS_DELTA:
        return encode_bounds_delta(top, bottom, height)
    if encoding == Encoding.RLE:
        return encode_rle(labels)
    if encoding == Encoding.LABELS2:
        return encode_labels2(labels)
    raise MaskError(f"unknown mask encoding {encoding!r}")
