"""Frames from a video file (a recorded capture): every frame, optionally paced at its fps, or played live."""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceError
from edge.frame import Frame
from edge.sources.base import DEFAULT_MAX_PIXELS, Source, check_frame_size, check_options, flag_option
from edge.sources.folder import to_uint8_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".mjpg", ".mjpeg")


class VideoSource(Source):
    """Every frame of a video file, in order; or, with `live`, the newest one, as the capture card gave it.

    pace: deliver frames at the file's frame rate (as a replay of a live session would): frame k
    is held back until k / fps after the first read; by default frames come as fast as they
    decode. Either way nothing is dropped, and `seq` counts the frames delivered.
    live: play the clip as the card that recorded it delivered it (implies pace; refused at open
    when the file states no usable frame rate). Frame n of the file arrives n / fps after the
    first read; `read()` returns the newest frame that has arrived, and waits for the next one
    when none is newer than the last delivered. Frames overtaken by a newer one are passed over
    (grabbed, not retrieved: frames read encoded are not even decompressed) and counted in
    `dropped`; a damaged one among them counts as dropped, not corrupt. A frame's `t_capture` is
    its arrival time on `clock` (time.monotonic, the runtime's clock, unless a test gives its
    own), so the latency measured from it includes the time it waited; its `seq` is n, its place
    in the clip, so gaps show the frames dropped or corrupt. `live` is True on the instance: the
    runtime queues its frames keep-newest.
    A frame that fails to decode is skipped and counted in `corrupt`; frames missing at the end
    of a truncated file are counted too. `max_bad` failures in a row end the clip. A video whose
    frames hold more than `max_pixels` pixels is refused at open. loop: at the end, start again
    from the first frame (a clip played over and over, as for a soak test; frame numbers, pacing
    and arrival times go on). With `grayscale_only` set, a video of JPEG frames (MJPEG, what
    capture cards record) is read as its encoded frames, and each is decoded to its grayscale
    only (about half the cost of a colour decode); its colour is decoded when asked for.
    """

    def __init__(
        self,
        path,
        pace: bool = False,
        max_bad: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        loop: bool = False,
        live: bool = False,
    ):
        self.path = str(path)
        self.loop, self.live = bool(loop), bool(live)
        self.passes = 0  # times the clip was started again (loop)
        self.max_pixels = int(max_pixels)
        self.pace, self.max_bad = bool(pace or live), int(max_bad)
        self._clock, self._sleep = clock, sleep
        self.corrupt = 0
        self.frame_count = 0  # from the container; 0 when unknown
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._in_pass = 0  # frames of this pass through the file read so far: good, counted corrupt or dropped
        self._good_in_pass = 0
        self._before = 0  # frames of the passes before this one (live: the clip's numbering goes on)
        self._t0: float | None = None  # the first read
        self._shape: tuple[int, ...] | None = None  # the last good frame's: a frame of another size is broken
        self.encoded = False  # frames are read as JPEG data and decoded here (grayscale_only on MJPEG)

    @classmethod
    def from_url(cls, path: str, options: dict[str, str], max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoSource:
        check_options(options, {"pace", "loop", "live"}, "video")
        pace, loop = flag_option(options, "pace", False), flag_option(options, "loop", False)
        return cls(path, pace=pace, max_pixels=max_pixels, loop=loop, live=flag_option(options, "live", False))

    def open(self) -> VideoSource:
        if not Path(self.path).is_file():
            raise SourceError(f"no such video file {self.path!r}")
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open video {self.path!r} (unknown format, or the file is damaged)")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if w * h > self.max_pixels:
            cap.release()
            check_frame_size(w, h, self.max_pixels, f"video {self.path!r}")
        self._cap = cap
        self.encoded = self.grayscale_only and _jpeg_frames(cap) and self._reads_encoded()
        cap = self._cap  # (opened again to switch to encoded frames)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else None
        if self.live and self.fps is None:
            self.close()
            raise SourceError(
                f"live=1 needs the frame rate of video {self.path!r}, and it states none usable ({fps:g} fps)"
            )
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._seq = self._in_pass = self._good_in_pass = self._before = self.passes = 0
        self.corrupt = self.dropped = 0
        self._shape = None
        self._t0 = None
        return self

    def _again(self) -> bool:
        """With `loop`, start the file again (when this pass gave a frame); False at the end."""
        if not self.loop or not self._good_in_pass:
            return False
        if not self._reopen(self.encoded):
            return False
        self._before += self._in_pass
        self._in_pass = self._good_in_pass = 0
        self.passes += 1
        return True

    def _reads_encoded(self) -> bool:
        """Switch the capture to encoded frames if its first frame then decodes as a JPEG;
        otherwise (or if the switch fails) reopen it to decode as usual."""
        assert self._cap is not None
        if self._cap.set(cv2.CAP_PROP_FORMAT, -1):
            ok, data = self._cap.read()
            if ok and data is not None and data.size and cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) is not None:
                if self._reopen(encoded=True):
                    return True
        self._reopen(encoded=False)
        return False

    def _reopen(self, encoded: bool) -> bool:
        """Open the file again from its first frame (as encoded frames when `encoded`); False if that fails."""
        assert self._cap is not None
        self._cap.release()
        self._cap = cv2.VideoCapture(self.path)
        return self._cap.isOpened() and (not encoded or self._cap.set(cv2.CAP_PROP_FORMAT, -1))

    def _decode(self) -> tuple[np.ndarray | None, Callable[[], np.ndarray] | None]:
        """The next frame's image (None when it cannot be had) and, for an encoded frame, its colour."""
        assert self._cap is not None
        ok, data = self._cap.read()
        if not ok:
            return None, None
        if not self.encoded:
            return to_uint8_image(data), None
        gray = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data is not None and data.size else None
        return (None, None) if gray is None else (gray, _colour_of(data.copy(), gray))

    def _grab(self) -> bool:
        """Pass over the next frame without retrieving it (an encoded frame is not even decompressed)."""
        assert self._cap is not None
        return bool(self._cap.grab())

    def _due(self, n: int) -> float:
        """When frame n is due (live: when it arrives): n / fps after the first read."""
        assert self.fps and self._t0 is not None
        return self._t0 + n / self.fps

    def _overtaken(self, at: int) -> bool:
        """Live: a frame newer than frame `at` of this pass has arrived by now (none comes after the
        last frame of a clip that is not looped)."""
        assert self.fps and self._t0 is not None
        if not self.loop and self.frame_count and at + 1 >= self.frame_count:
            return False
        newest = math.floor((self._clock() - self._t0) * self.fps + 1e-6)  # (a frame due now has arrived)
        return newest > self._before + at

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video {self.path!r} read before open()")
        if self._t0 is None:
            self._t0 = self._clock()
        bad = 0  # failures since the last good frame
        while True:
            if self.live and self._overtaken(self._in_pass + bad):
                img, colour = None, None
                had = self._grab()  # let go undecoded
            else:
                img, colour = self._decode()
                if img is not None and self._shape is not None and img.shape != self._shape:
                    img = None  # a broken frame decoded at another size
                had = img is not None
            if had:
                self.corrupt += bad
                self._in_pass += bad + 1
                bad = 0
                if img is not None:
                    self._good_in_pass += 1
                    break
                self.dropped += 1
                continue
            end = bool(self.frame_count) and self._in_pass + bad >= self.frame_count
            if end:  # the container's count is reached: the end (the failures were frames)
                self.corrupt += bad
                self._in_pass += bad
            elif bad + 1 > self.max_bad:
                if self.frame_count:  # truncated: what the container promised is lost
                    self.corrupt += self.frame_count - self._in_pass
                end = True  # (with no count known, failures at the end are just the end)
            if end:
                if not self._again():
                    return None
                bad = 0
                continue
            bad += 1
        self._shape = img.shape
        if self.live:
            n = self._before + self._in_pass - 1  # its place in the clip
            arrival = self._due(n)
            self._wait_until(arrival)
            return Frame(img, arrival, n, colour=colour)
        if self.pace and self.fps:
            self._wait_until(self._due(self._seq))
        frame = Frame(img, self._clock(), self._seq, colour=colour)
        self._seq += 1
        return frame

    def _wait_until(self, t: float) -> None:
        wait = t - self._clock()
        if wait > 0:
            self._sleep(wait)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _jpeg_frames(cap: cv2.VideoCapture) -> bool:
    """The video's frames are JPEG pictures (MJPEG)."""
    code = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    return "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4)).upper() in ("MJPG", "JPEG", "AVRN", "LJPG")


def _colour_of(data: np.ndarray, gray: np.ndarray) -> Callable[[], np.ndarray]:
    """The colour picture of JPEG `data`, decoded at the first call and kept (its grayscale as
    three channels should the colour decode fail where the grayscale one did not)."""

    @functools.cache
    def colour() -> np.ndarray:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
        return img if img is not None else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)

    return colour
