"""CSV log sink: one row per frame, for spreadsheets and quick plots.

The file is opened line-buffered and each row goes out in a single write, so a crash loses at
most the row being written. Numbers that are not finite (NaN: no measurement) are empty fields.
Appending to an existing log is allowed only when its header is the same as ours.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from edge.errors import SinkError
from edge.frame import Measurement, Segmentation
from edge.quality import names
from edge.sinks import Sink

COLUMNS = ("seq", "t_capture", "wall_time", "thickness", "spread", "unit", "filtered", "low", "high",
           "flags", "flag_names", "columns", "latency_ms", "model_sha256", "simulated")


def _number(v, digits: int) -> str:
    if v is None:
        return ""
    v = float(v)
    return f"{v:.{digits}f}" if math.isfinite(v) else ""


class CsvLog(Sink):
    """Appends one CSV row per measurement to `path` (columns: COLUMNS); flag names joined by '|';
    simulated is 1 for a reading of the built-in phantom scanner."""

    name = "csv"

    def __init__(self, path: str | Path, model_sha256: str, simulated: bool = False):
        self.path, self.model_sha256, self.simulated = Path(path), model_sha256, bool(simulated)
        self._f = None
        self._rows = None

    def open(self) -> "CsvLog":
        header = ",".join(COLUMNS)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and self.path.stat().st_size > 0:
                with open(self.path, newline="") as f:
                    first = f.readline().rstrip("\r\n")
                if first != header:
                    raise SinkError(f"{str(self.path)!r} holds another kind of CSV (header {first[:60]!r}); not appending")
                fresh = False
            else:
                fresh = True
            self._f = open(self.path, "a", buffering=1, newline="", encoding="utf-8")
        except OSError as e:
            raise SinkError(f"cannot open the CSV log {str(self.path)!r}: {e.strerror or e}") from e
        self._rows = csv.writer(self._f, lineterminator="\n")
        if fresh:
            self._rows.writerow(COLUMNS)
        return self

    def write(self, m: Measurement, seg: Segmentation) -> None:
        flag_names = names(m.flags)
        self._rows.writerow((
            m.seq,
            _number(m.t_capture, 6),
            _number(time.time(), 3),
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
        ))

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
