"""Live frames from a capture card (V4L2 device) or a GStreamer pipeline, newest frame first.

A USB or HDMI capture card appears as a V4L2 device; OpenCV opens it by index or path. The card
and driver keep a few frames in a buffer, so a reader that falls behind would see ever older
pictures. `read()` therefore drains the buffer: frames that come back from grab() at once were
waiting (stale) and are skipped and counted in `dropped`; the first grab that had to wait for
the card brought a fresh frame, and that one is decoded. No thread is started: the pipeline's
capture thread calls read().

A card that is unplugged (or a pipeline whose input dies) stops delivering: after `max_failures`
failed grabs in a row the device is released and reopened at once (a glitch, such as a driver
reset, costs nothing more). If that fails, the signal is lost: `read()` raises `SignalLost`
naming the wait until the next attempt, 0.1 s doubling up to `backoff[1]` (2 s), and each later
`read()` that is due tries once more, without sleeping; the caller waits in between (the
pipeline on its stop event, so a stop is never held up). When the device is back, `read()`
returns its frames again. `give_up` bounds the whole outage: after that many seconds without a
frame the loss is a plain SourceError that ends the run (None: keep trying; 0: at once).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import cv2

from edge.errors import SignalLost, SourceError
from edge.frame import Frame
from edge.sources.base import DEFAULT_MAX_PIXELS, Source, check_frame_size, check_options
from edge.sources.folder import to_uint8_image


def opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def _fourcc_code(fourcc: str) -> int:
    if len(fourcc) != 4:
        raise SourceError(f"fourcc {fourcc!r} must be four characters, e.g. 'MJPG' or 'YUYV'")
    return cv2.VideoWriter.fourcc(*fourcc)


def _non_negative(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0


class CaptureSource(Source):
    """A live capture device or pipeline.

    device: V4L2 index (0) or path ("/dev/video0"), or a GStreamer pipeline string (ending in
    appsink) with backend="gstreamer". width/height/fps/fourcc: requested mode (the card may
    pick another; the granted one is in `mode` after open()). max_drain: stale frames skipped
    per read at most. max_failures: failed grabs in a row before the device counts as lost.
    backoff: (first, longest) wait in seconds between attempts to reopen a lost device.
    give_up: seconds without signal before the loss ends the run (None: never, 0: at once).
    After open(), `reconnects` counts the reopenings and `failed_reopens` the attempts that failed.
    """

    live = True

    def __init__(
        self,
        device: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        backend: str = "v4l2",
        max_drain: int = 8,
        max_failures: int = 30,
        backoff: tuple[float, float] = (0.1, 2.0),
        give_up: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        capture_factory: Callable[..., object] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        if backend not in ("v4l2", "gstreamer", "any"):
            raise SourceError(f"unknown capture backend {backend!r} (v4l2, gstreamer or any)")
        self.device, self.backend = device, backend
        self.width, self.height, self.req_fps = width, height, fps
        self.fourcc = fourcc
        if fourcc is not None:
            _fourcc_code(fourcc)
        self.max_drain, self.max_failures = int(max_drain), int(max_failures)
        if not 0 < backoff[0] <= backoff[1]:
            raise SourceError(f"capture backoff must be (first, longest) with 0 < first <= longest, got {backoff!r}")
        if give_up is not None and give_up < 0:
            raise SourceError(f"capture give_up must be None or 0 or more seconds, got {give_up!r}")
        self.backoff, self.give_up = (float(backoff[0]), float(backoff[1])), give_up
        self.max_pixels = int(max_pixels)
        self._clock = clock
        self._factory = capture_factory or cv2.VideoCapture
        self._cap: cv2.VideoCapture | None = None
        self._seq = 0
        self._failures = 0
        self.dropped = 0
        self.fps = fps
        self.mode: dict = {}
        self.reconnects = 0
        self.failed_reopens = 0
        self._lost_at: float | None = None  # clock time the device was lost; None while it delivers
        self._why = ""
        self._delay = self.backoff[0]
        self._next_try = 0.0

    @classmethod
    def from_v4l2_url(cls, device: str, options: dict[str, str], max_pixels: int = DEFAULT_MAX_PIXELS) -> CaptureSource:
        check_options(options, {"width", "height", "fps", "fourcc", "retry_max", "give_up"}, "capture")
        if not device:
            raise SourceError("v4l2:// names no device (v4l2:///dev/video0)")
        try:
            for key in ("width", "height", "fps", "retry_max", "give_up"):
                if key in options and not _non_negative(options[key]):
                    raise ValueError(f"{key} {options[key]!r} must be a number of 0 or more")
            for key in ("width", "height"):
                if key in options and not float(options[key]).is_integer():
                    raise ValueError(f"{key} {options[key]!r} must be a whole number of pixels")
            dev: int | str = int(device) if device.isascii() and device.isdigit() else device
            return cls(
                dev,
                width=int(float(options["width"])) if "width" in options else None,
                height=int(float(options["height"])) if "height" in options else None,
                fps=float(options["fps"]) if "fps" in options else None,
                fourcc=options.get("fourcc"),
                backoff=(0.1, max(0.1, float(options.get("retry_max", 2.0)))),
                give_up=float(options["give_up"]) if "give_up" in options else None,
                max_pixels=max_pixels,
            )
        except ValueError as e:
            raise SourceError(f"bad capture option in {options!r}: {e}") from e

    def _name(self) -> str:
        return f"gst://{self.device}" if self.backend == "gstreamer" else repr(self.device)

    def open(self) -> CaptureSource:
        """Open the device; SourceError if it cannot be (at start the device must be there)."""
        self._cap = self._connect()
        self._seq = 0
        self._failures = 0
        self.dropped = 0
        self.reconnects = 0
        self.failed_reopens = 0
        self._lost_at = None
        return self

    def _connect(self):
        """An opened capture, its mode set and read back into `fps` and `mode`."""
        if self.backend == "gstreamer":
            if self._factory is cv2.VideoCapture and not opencv_has_gstreamer():
                raise SourceError(f"cannot open pipeline {self.device!r}: this OpenCV was built without GStreamer")
            api = cv2.CAP_GSTREAMER
        else:
            api = cv2.CAP_V4L2 if self.backend == "v4l2" else cv2.CAP_ANY
        try:
            cap = self._factory(self.device, api)
        except cv2.error as e:
            raise SourceError(f"cannot open capture {self._name()}: {e}") from e
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open capture {self._name()} (not connected, busy, or no permission)")
        if self.backend != "gstreamer":
            if self.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, _fourcc_code(self.fourcc))
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.req_fps:
                cap.set(cv2.CAP_PROP_FPS, self.req_fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames where the driver allows it
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        if width * height > self.max_pixels:
            cap.release()
            check_frame_size(width, height, self.max_pixels, f"capture {self._name()}")
        granted = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(granted) if granted and 0 < granted < 1000 else self.req_fps
        self.mode = {
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            "fps": self.fps,
        }
        return cap

    def _quick(self) -> float:
        """A grab faster than this came out of the buffer rather than from the card."""
        return 0.25 / self.fps if self.fps else 0.004

    @property
    def signal(self) -> bool:
        """False while the device is lost and being reopened."""
        return self._lost_at is None

    def read(self) -> Frame | None:
        """The newest frame. A live source never just ends: while the device is lost this
        raises SignalLost (wait `retry_in`, then read again), and SourceError once `give_up`
        has passed."""
        if self._cap is None and self._lost_at is None:
            raise SourceError(f"capture {self._name()} read before open()")
        while True:
            if self._cap is None:
                self._reopen()
            cap = self._cap
            assert cap is not None  # _reopen opened it or raised
            t0 = self._clock()
            if not cap.grab():
                self._fail("stopped delivering frames")
                continue
            t1 = self._clock()
            waited = t1 - t0
            drained = 0
            # Stale frames come back at once; keep grabbing until one had to be waited for.
            while waited < self._quick() and drained < self.max_drain:
                t0 = self._clock()
                if not cap.grab():
                    break
                t1 = self._clock()
                waited = t1 - t0
                drained += 1
            self.dropped += drained
            ok, img = cap.retrieve()
            img = to_uint8_image(img) if ok else None
            if img is None:
                self._fail("delivers frames that cannot be decoded")
                continue
            self._failures = 0
            frame = Frame(img, t1, self._seq)
            self._seq += 1
            return frame

    def _fail(self, what: str) -> None:
        self._failures += 1
        if self._failures <= self.max_failures:
            return
        why = f"{what} ({self._failures} failures in a row)"
        if self.give_up == 0:
            raise SourceError(f"capture {self._name()} {why}")
        self._release()
        self._failures = 0
        self._why = why
        self._lost_at = self._next_try = self._clock()  # the first reopen is tried at once
        self._delay = self.backoff[0]

    def _reopen(self) -> None:
        """Try to reopen the lost device if an attempt is due; SignalLost while it is not back."""
        now = self._clock()
        name = self._name()
        assert self._lost_at is not None  # called only while the device is lost, since _fail
        if self.give_up is not None and now - self._lost_at >= self.give_up:
            raise SourceError(f"capture {name} {self._why}; not back after {self.give_up:g} s")
        if now < self._next_try:
            raise SignalLost(f"capture {name} {self._why}", self._next_try - now)
        try:
            cap = self._connect()
        except SourceError as e:
            self.failed_reopens += 1
            wait, self._delay = self._delay, min(self._delay * 2, self.backoff[1])
            self._next_try = now + wait
            raise SignalLost(f"capture {name} {self._why}; reopening failed", wait) from e
        self._cap, self._lost_at = cap, None
        self.reconnects += 1

    def _release(self) -> None:
        if self._cap is not None:
            try:
                self._cap.release()
            except cv2.error:
                pass  # a device that vanished may fail to release
            self._cap = None

    def close(self) -> None:
        self._release()
        self._lost_at = None
