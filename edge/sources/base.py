"""The Source contract and the URL dispatcher.

A source starts no threads of its own; the pipeline calls `read()` from its capture thread.
`read()` returns the next Frame, or None when a finite source is exhausted. A live source
returns the newest frame and counts the ones it had to drop (`dropped`); while its device is
lost it raises `edge.errors.SignalLost` (wait `retry_in` seconds, then read again) and, when it
has given up, SourceError.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from edge.errors import SourceError
from edge.frame import Frame


class Source:
    """Base class; also a usable fake in tests (it yields nothing)."""

    live: bool = False
    simulated: bool = False  # the built-in phantom scanner: its readings are nobody's
    dropped: int = 0
    fps: float | None = None  # nominal frame rate, when the source knows it

    def open(self) -> "Source":
        return self

    def read(self) -> Frame | None:
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    def __iter__(self):
        while (frame := self.read()) is not None:
            yield frame


def parse_options(query: str) -> dict[str, str]:
    return dict(parse_qsl(query, keep_blank_values=True))


def open_source(url: str) -> Source:
    """Build the source named by `url` (not yet opened).

    phantom://clip?seed=7&frames=90&fps=30&size=400x400&preset=default  the built-in phantom
    phantom://screen?seed=7&frames=90&size=1280x720&depth=40,50&change_at=45  its whole screen
    0, /dev/video0, v4l2:///dev/video0?width=1280&height=720&fps=30&fourcc=MJPG  a capture card
        (also retry_max=2: longest wait in s between attempts to reopen a lost card;
        give_up=600: end the run after that many s without signal; absent: keep trying)
    gst://videotestsrc ! videoconvert ! appsink  an OpenCV GStreamer pipeline
    file:///data/clip.mp4?pace=1, /data/clip.avi                        a video file
    /data/frames/, /data/frames/*.png, /data/one.png                    image files
    dicom:///data/cine.dcm?region=0&crop=1, /data/cine.dcm              a DICOM file
    """
    url = str(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "phantom":
        from edge.sources.phantom import PhantomScreenSource, PhantomSource

        kind = parts.netloc or parts.path
        if kind == "screen":
            return PhantomScreenSource.from_url(parse_options(parts.query))
        return PhantomSource.from_url(kind, parse_options(parts.query))
    if scheme == "gst":
        from edge.sources.capture import CaptureSource

        pipeline = url[len("gst://") :].strip()
        if not pipeline:
            raise SourceError(f"empty GStreamer pipeline in {url!r}")
        return CaptureSource(pipeline, backend="gstreamer")
    if scheme == "v4l2":
        from edge.sources.capture import CaptureSource

        return CaptureSource.from_v4l2_url(parts.netloc + parts.path, parse_options(parts.query))
    if scheme in ("file", "dicom"):
        return _file_source(parts.path, parse_options(parts.query), dicom=scheme == "dicom", url=url)
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # a plain path (or C:\...)
        if url.strip().isdigit():
            from edge.sources.capture import CaptureSource

            return CaptureSource(int(url.strip()))
        if url.startswith("/dev/video"):
            from edge.sources.capture import CaptureSource

            return CaptureSource(url)
        return _file_source(url, {}, dicom=False, url=url)
    raise SourceError(
        f"unknown source {url!r} (expected phantom://, v4l2://, gst://, file://, dicom://, "
        "a device index, or a path to a video, image folder or DICOM file)"
    )


def _file_source(path: str, options: dict[str, str], dicom: bool, url: str) -> Source:
    """A source for a path: DICOM, video, or image files, by what the path is."""
    from pathlib import Path

    from edge.sources.folder import IMAGE_SUFFIXES, FolderSource
    from edge.sources.video import VIDEO_SUFFIXES, VideoSource

    suffix = Path(path).suffix.lower()
    if dicom or suffix in (".dcm", ".dicom"):
        from edge.sources.dicom import DicomSource

        return DicomSource.from_url(path, options)
    if suffix in VIDEO_SUFFIXES:
        return VideoSource.from_url(path, options)
    if options:
        raise SourceError(f"options {sorted(options)} are not understood for {url!r}")
    if Path(path).is_dir() or suffix in IMAGE_SUFFIXES or any(c in path for c in "*?["):
        return FolderSource(path)
    if not Path(path).exists():
        raise SourceError(f"no such file, folder or device {path!r}")
    raise SourceError(f"cannot tell what kind of source {path!r} is (video, image, folder or .dcm expected)")
