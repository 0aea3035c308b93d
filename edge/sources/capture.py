"""Live frames from a capture card (V4L2 device) or a GStreamer pipeline, newest frame first.

A USB or HDMI capture card appears as a V4L2 device; OpenCV opens it by index or path. The card
and driver keep a few frames in a buffer, so a reader that falls behind would see ever older
pictures. `read()` therefore drains the buffer: frames that come back from grab() at once were
waiting (stale) and are skipped and counted in `dropped`; the first grab that had to wait for
the card brought a fresh frame, and that one is decoded. No thread is started: the pipeline's
capture thread calls read().
"""

from __future__ import annotations

import time
from typing import Callable

import cv2

from edge.errors import SourceError
from edge.frame import Frame
from edge.sources.base import Source
from edge.sources.folder import to_uint8_image


def opencv_has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def _fourcc_code(fourcc: str) -> int:
    if len(fourcc) != 4:
        raise SourceError(f"fourcc {fourcc!r} must be four characters, e.g. 'MJPG' or 'YUYV'")
    return cv2.VideoWriter_fourcc(*fourcc)


class CaptureSource(Source):
    """A live capture device or pipeline.

    device: V4L2 index (0) or path ("/dev/video0"), or a GStreamer pipeline string (ending in
    appsink) with backend="gstreamer". width/height/fps/fourcc: requested mode (the card may
    pick another; the granted one is in `mode` after open()). max_drain: stale frames skipped
    per read at most. max_failures: failed grabs in a row before the source reports it stopped.
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
        clock: Callable[[], float] = time.monotonic,
        capture_factory: Callable[..., object] | None = None,
    ):
        if backend not in ("v4l2", "gstreamer", "any"):
            raise SourceError(f"unknown capture backend {backend!r} (v4l2, gstreamer or any)")
        self.device, self.backend = device, backend
        self.width, self.height, self.req_fps = width, height, fps
        self.fourcc = fourcc
        if fourcc is not None:
            _fourcc_code(fourcc)
        self.max_drain, self.max_failures = int(max_drain), int(max_failures)
        self._clock = clock
        self._factory = capture_factory or cv2.VideoCapture
        self._cap = None
        self._seq = 0
        self._failures = 0
        self.dropped = 0
        self.fps = fps
        self.mode: dict = {}

    @classmethod
    def from_v4l2_url(cls, device: str, options: dict[str, str]) -> "CaptureSource":
        known = {"width", "height", "fps", "fourcc"}
        unknown = set(options) - known
        if unknown:
            raise SourceError(f"unknown capture option(s) {sorted(unknown)} (known: {sorted(known)})")
        try:
            dev: int | str = int(device) if device.isdigit() else device
            return cls(
                dev,
                width=int(options["width"]) if "width" in options else None,
                height=int(options["height"]) if "height" in options else None,
                fps=float(options["fps"]) if "fps" in options else None,
                fourcc=options.get("fourcc"),
            )
        except ValueError as e:
            raise SourceError(f"bad capture option in {options!r}: {e}") from e

    def _name(self) -> str:
        return f"gst://{self.device}" if self.backend == "gstreamer" else repr(self.device)

    def open(self) -> "CaptureSource":
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
        granted = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(granted) if granted and 0 < granted < 1000 else self.req_fps
        self.mode = {
            "width": int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            "height": int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            "fps": self.fps,
        }
        self._cap = cap
        self._seq = 0
        self._failures = 0
        self.dropped = 0
        return self

    def _quick(self) -> float:
        """A grab faster than this came out of the buffer rather than from the card."""
        return 0.25 / self.fps if self.fps else 0.004

    def read(self) -> Frame | None:
        """The newest frame; raises SourceError once the device has failed `max_failures` times
        in a row (a live source never just ends)."""
        if self._cap is None:
            raise SourceError(f"capture {self._name()} read before open()")
        cap = self._cap
        while True:
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
        if self._failures > self.max_failures:
            raise SourceError(f"capture {self._name()} {what} ({self._failures} failures in a row)")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
