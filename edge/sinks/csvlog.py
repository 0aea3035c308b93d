"""CSV log sink: one row per frame, for spreadsheets and quick plots.

Each row goes out in a single write (edge.sinks.base.LineFile), so a crash loses at most the row
being written, and a row a full disk cannot take whole is cut back off the file. Numbers that are not finite (NaN: no measurement) are empty fields.
Appending to an existing log is allowed only when its header is the same as ours.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation
from edge.measure.quality import names
from edge.sinks.base import LineFile, Sink

COLUMNS = (
    "seq",
    "t_capture",
    "wall_time",
    "band",
    "bands",
    "thickness",
    "spread",
    "unit",
    "filtered",
    "low",
    "high",
    "flags",
    "flag_names",
    "columns",
    "latency_ms",
    "model_sha256",
    "simulated",
)


def _number(v, digits: int) -> str:
    if v is None:
        return ""
    v = float(v)
    return f"{v:.{digits}f}" if math.isfinite(v) else ""


class CsvLog(Sink):
    """Appends one CSV row per measurement (a frame's band) to `path` (columns: COLUMNS); flag
    names joined by '|'; simulated is 1 for a reading of the built-in phantom scanner; band is
    the band's place by depth (0 = the most superficial) of the frame's `bands`."""

    name = "csv"

    def __init__(self, path: str | Path, model_sha256: str, simulated: bool = False):
        self.path, self.model_sha256, self.simulated = Path(path), model_sha256, bool(simulated)
        self._file = LineFile(self.path)

    def _line(self, row) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(row)
        return buf.getvalue()

    def open(self) -> CsvLog:
        header = ",".join(COLUMNS)
        try:
            fresh = not (self.path.exists() and self.path.stat().st_size > 0)
            if not fresh:
                with open(self.path, newline="") as f:
                    first = f.readline().rstrip("\r\n")
                if first != header:
                    raise SinkError(
                        f"{str(self.path)!r} holds another kind of CSV (header {first[:60]!r}); not appending"
                    )
        except OSError as e:
            raise SinkError(f"cannot open the CSV log {str(self.path)!r}: {e.strerror or e}") from e
        self._file.open()
        if fresh:
            self._file.write_line(self._line(COLUMNS))
        return self

    def write(self, m: Measurement, seg: Segmentation) -> None:
        flag_names = names(m.flags)
        self._file.write_line(
            self._line(
                (
                    m.seq,
                    _number(m.t_capture, 6),
                    _number(time.time(), 3),
                    m.band,
                    m.bands,
                    _number(m.thickness, 4),
                    _number(m.spread, 4),
                    m.unit,
                    _number(m.extra.get("filtered"), 4),
                    _number(m.extra.get("low"), 4),
                    _number(m.extra.get("high"), 4),
                    int(m.flags),
                    "|".join(flag_names),
                    m.columns,
                    _number(m.latency_s * 1000, 2),
                    self.model_sha256,
                    int(self.simulated),
                )
            )
        )

    def close(self) -> None:
        self._file.close()
