"""Reading short texts off a scanner screen: the numbers beside a depth scale and the depth
readout ("4.0 cm", "11cm", "D 4cm", "Depth 40 mm").

An optional extra (`pip install tlf-edge[ocr]`): Tesseract through pytesseract, with the
`tesseract-ocr` Debian package (`apt-get install tesseract-ocr`). Without it `available()` says
why and every reader returns nothing: the screen scale is then never confirmed by numbers and is
refused, never guessed (edge.screen.scale_reader).

Screens are bright text on dark chrome, a few pixels high, sometimes drawn mirrored (a screen
captured flipped). Each crop is turned dark-on-light, enlarged so that its text is about
`TEXT_PX` high, and all crops of one call are stacked into one picture, so that a screen costs a
single Tesseract run; each word comes back with the crop it came from and its box in that crop.
Only the crops given are read: the callers pass short lines and label strips, not patient fields.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

TEXT_PX = 34  # text height Tesseract reads best at (its models were trained on about 30-40 px)
ALT_TEXT_PX = 26  # a second reading's text height: two readings must agree (edge.screen.scale_reader)
GAP_PX = 24  # white rows between stacked crops
MIN_CONFIDENCE = 30.0  # Tesseract's word confidence (0-100) below which a word is dropped
SURE = 70.0  # a number is used only when every word of it is read at least this confidently
# A depth readout needs less: it must still agree with the marks, and screen fonts' 1 (with a
# flag and a foot, "11cm" on the Philips CX50) read as "licm" at about 40-80.
READOUT_SURE = 40.0


@dataclass(frozen=True)
class Word:
    """One word read: its text, the crop it came from, its box (x, y, w, h) in crop pixels."""

    text: str
    crop: int
    box: tuple[float, float, float, float]
    confidence: float


_STATE: dict = {}

# Tesseract's OpenMP threads make a strip of labels slower, not faster (1.5 s against 0.85 s for
# a 1280x720 screen's scale on a 2-core AMD EPYC), and on a cart they would spin on the cores the
# interpreter needs: each Tesseract run gets one thread unless the environment says otherwise.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")


def available() -> str | None:
    """None when OCR can run; else why not (one line)."""
    if "why" not in _STATE:
        try:
            import pytesseract
        except ImportError:
            _STATE["why"] = "pytesseract is not installed (pip install 'tlf-edge[ocr]')"
        else:
            cmd = pytesseract.pytesseract.tesseract_cmd
            if shutil.which(cmd) is None:
                _STATE["why"] = "the tesseract program is not installed (apt-get install tesseract-ocr)"
            else:
                try:
                    pytesseract.get_tesseract_version()
                    _STATE["why"] = None
                except Exception as e:  # a broken install: one line, no traceback
                    _STATE["why"] = f"tesseract does not run: {type(e).__name__}: {e}"
    return _STATE["why"]


SPARSE = "--psm 11 --oem 1"  # Tesseract's sparse-text mode, LSTM engine: every read_words call
_TSV = f"-c tessedit_create_tsv=1 {SPARSE}"  # as pytesseract.image_to_data runs it
_started = threading.local()  # the calling thread's Tesseract started ahead (`started_ahead`), or None


@contextlib.contextmanager
def started_ahead() -> Iterator[None]:
    """Within the block, the thread's first `read_words` of SPARSE alone goes to a Tesseract
    process started when the block begins, reading its picture from standard input: Tesseract
    loads its language model while the caller finds the marks and cuts the crops to read, on the
    other core (a 1280x720 screen's first layout and scale: 0.71 s against 0.83 on the 2-core
    EPYC, benchmarks/first_frame.py). The same command line as pytesseract's, the
    picture read from a pipe instead of a file, the same words. A process not used is stopped
    when the block ends; without OCR nothing is started."""
    if available() is not None or getattr(_started, "proc", None) is not None:
        yield
        return
    import pytesseract

    cmd = [pytesseract.pytesseract.tesseract_cmd, "stdin", "stdout", *shlex.split(_TSV)]
    try:
        proc: subprocess.Popen | None = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
    except OSError:  # read_words runs pytesseract, which says why
        proc = None
    _started.proc = proc
    try:
        yield
    finally:
        _started.proc = None
        if proc is not None and proc.returncode is None:  # not used: stopped, and its pipes closed
            proc.kill()
            proc.communicate()


def _data_from_started(sheet: np.ndarray) -> dict | None:
    """What pytesseract.image_to_data(sheet, SPARSE, Output.DICT) gives, from the thread's
    Tesseract started ahead (its PNG as pytesseract writes it, through PIL), or None when there is
    none or it failed (the caller then runs pytesseract)."""
    proc = getattr(_started, "proc", None)
    if proc is None:
        return None
    _started.proc = None  # used once
    from PIL import Image
    from pytesseract.pytesseract import file_to_dict

    png = io.BytesIO()
    Image.fromarray(sheet).save(png, format="PNG")
    try:
        out, _ = proc.communicate(png.getvalue())
    except OSError:
        proc.kill()
        proc.communicate()
        return None
    if proc.returncode != 0:
        return None
    return file_to_dict(out.decode("utf-8"), "\t", -1)


def brightness(image: np.ndarray) -> np.ndarray:
    """Per pixel the brightest channel (the image itself when it has one): coloured text and marks
    (green, yellow, blue) count as bright. Channel by channel: numpy's max(axis=2) walks the
    channels of every pixel and takes about 20 times as long on a 1280x720 screen."""
    if image.ndim == 2:
        return image
    return np.maximum.reduce([image[..., c] for c in range(image.shape[2])])


def _prepared(crop: np.ndarray, text_px: float) -> tuple[np.ndarray, float]:
    """Dark text on white, enlarged so that text `text_px` high becomes about TEXT_PX high."""
    g = brightness(crop)  # coloured text (green, yellow) stays bright
    g = g.astype(np.float32)
    lo, hi = float(np.percentile(g, 5)), float(g.max())
    g = np.clip((g - lo) * (255.0 / max(hi - lo, 1.0)), 0, 255)
    f = max(1.0, TEXT_PX / max(text_px, 1.0))
    g = cv2.resize(g, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
    return (255 - np.clip(g, 0, 255)).astype(np.uint8), f


def read_words(
    crops: list[np.ndarray], text_px: list[float], whitelist: str | None = None, in_line: bool = False
) -> list[Word]:
    """The words Tesseract reads in each crop (all crops in one run); [] without OCR.

    text_px: the height of the text in each crop (screen pixels), to scale it for Tesseract.
    whitelist: the characters allowed (e.g. digits), or None for any. in_line: the crops are
    put side by side and read as one line (short labels of one or two characters, which
    Tesseract's sparse-text mode misses), else stacked and read as sparse text.
    """
    if not crops or available() is not None:
        return []
    import pytesseract

    parts, scales = [], []
    for crop, tp in zip(crops, text_px):
        img, f = _prepared(crop, tp)
        parts.append(img)
        scales.append(f)
    if in_line:
        height = max(p.shape[0] for p in parts) + 2 * GAP_PX
        offsets, x = [], 2 * GAP_PX
        for p in parts:
            offsets.append(x)
            x += p.shape[1] + 3 * GAP_PX
        sheet = np.full((height, x + GAP_PX), 255, np.uint8)
        tops = [(height - p.shape[0]) // 2 for p in parts]
        for p, left, top in zip(parts, offsets, tops):
            sheet[top : top + p.shape[0], left : left + p.shape[1]] = p
        config = SPARSE  # sparse text: each label a word of its own
    else:
        offsets, y = [], GAP_PX
        for p in parts:
            offsets.append(y)
            y += p.shape[0] + GAP_PX
        sheet = np.full((y, max(p.shape[1] for p in parts) + 2 * GAP_PX), 255, np.uint8)
        for p, top in zip(parts, offsets):
            sheet[top : top + p.shape[0], GAP_PX : GAP_PX + p.shape[1]] = p
        tops = [GAP_PX] * len(parts)
        config = SPARSE  # sparse text: readouts are scattered words
    if whitelist:
        config += f" -c tessedit_char_whitelist={whitelist}"
    try:
        data = _data_from_started(sheet) if config == SPARSE else None
        if data is None:
            data = pytesseract.image_to_data(sheet, config=config, output_type=pytesseract.Output.DICT)
    except Exception:  # Tesseract failed on this picture: nothing read (the caller refuses)
        return []
    words = []
    for text, conf, left, top, w, h in zip(
        data["text"], data["conf"], data["left"], data["top"], data["width"], data["height"]
    ):
        text = str(text).strip()
        if not text or float(conf) < MIN_CONFIDENCE:
            continue
        c = left + w / 2 if in_line else top + h / 2
        i = int(np.searchsorted(offsets, c, side="right")) - 1
        if i < 0 or c > offsets[i] + parts[i].shape[1 if in_line else 0]:
            continue
        f = scales[i]
        x0, y0 = (offsets[i], tops[i]) if in_line else (GAP_PX, offsets[i])
        words.append(Word(text, i, ((left - x0) / f, (top - y0) / f, w / f, h / f), float(conf)))
    return words


# No scale labels a mark "03": a leading zero is a misread (the mirror of "60" read as "03").
_NUMBER = re.compile(r"^(?:0|[1-9]\d{0,2})(?:[.,]\d{1,2})?$")
# A depth readout is a short line of its own: "11cm", "4.0 cm", "D 4cm", "Depth 40 mm", "D:4.5cm".
_READOUT = re.compile(r"^(?i:d(?:epth|ep)?\.?\s*[:=]?\s*)?([\dlIi|!oO]{1,3}(?:[.,][\dlIi|oO]{1,2})?)\s*((?i:cm|mm))$")
# Screen fonts draw 1 with a flag and 0 round: Tesseract often reads them as letters.
_AS_DIGIT = str.maketrans({"l": "1", "I": "1", "i": "1", "|": "1", "!": "1", "o": "0", "O": "0"})


# A label is only digits: letters Tesseract gives for digits of screen fonts read back as those
# digits ("so" is 50, "l0" is 10); the label must still fit the marks to count.
_LABEL_DIGIT = str.maketrans(dict(zip("lIioOsS", "1110055")))


def _ascii(text: str) -> str:
    """Without the accented letters and symbols Tesseract makes of a speck at a crop's edge."""
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in " .,:=")).strip(" .,:=")


def number(text: str) -> float | None:
    """A plain number ("3", "40", "2.5", "0.5"; "l0", "so" and "O" read as 10, 50 and 0), else None
    ("03" among them: no scale writes a leading zero)."""
    t = text.strip().translate(_LABEL_DIGIT)
    return float(t.replace(",", ".")) if _NUMBER.match(t) else None


def depth_readout(line: str, point: tuple[int, int] | None = None) -> float | None:
    """The depth in mm a readout line states ("11cm" -> 110, "Depth 40 mm" -> 40), else None.
    Only a line that is nothing but a depth counts: "Dist 1.06 cm" is a measurement, not a depth.

    point: (digits before, digits after) a decimal point seen in the line's picture (Tesseract
    drops the point of small text: "7.5cm" read as "75cm"); it is put into a number read without
    one that has exactly that many digits, else the line is read as it is."""
    m = _READOUT.match(" ".join(_ascii(line).split()))
    if m is None:
        return None
    digits = m.group(1)
    if point is not None and "." not in digits and "," not in digits and len(digits) == sum(point) and min(point) >= 1:
        digits = f"{digits[: point[0]]}.{digits[point[0] :]}"
    value = float(digits.translate(_AS_DIGIT).replace(",", "."))
    mm = value * 10.0 if m.group(2).lower() == "cm" else value
    return mm if 5.0 <= mm <= 400.0 else None
