"""The JSON lines log: one object per frame and band."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge.frame import Measurement, Segmentation
from edge.measure.quality import names
from edge.numbers import rounded
from edge.sinks.base import LineFile, Sink


class JsonLinesLog(Sink):
    """One JSON object per frame and band: time, band index (0 = the most superficial) and the
    frame's band count, thickness and spread, flags, latency, model hash, and whether the
    source is simulated (the built-in phantom: a reading of nobody)."""

    name = "log"

    def __init__(self, path: Path, model_sha256: str, simulated: bool = False):
        self.path, self.model_sha256, self.simulated = Path(path), model_sha256, bool(simulated)
        self._file = LineFile(self.path)

    def open(self):
        self._file.open()
        return self

    def write(self, m: Measurement, seg: Segmentation) -> None:
        record = {
            "seq": m.seq,
            "t_capture": round(m.t_capture, 6),
            "wall_time": round(time.time(), 3),
            "band": m.band,
            "bands": m.bands,
            "thickness": rounded(m.thickness),
            "spread": rounded(m.spread),
            "unit": m.unit,
            "flags": m.flags,
            "flag_names": names(m.flags),
            "columns": m.columns,
            "latency_ms": round(m.latency_s * 1000, 2),
            "model_sha256": self.model_sha256,
            "simulated": self.simulated,
            **{k: rounded(v) if isinstance(v, float) else v for k, v in m.extra.items()},
        }
        self._file.write_line(json.dumps(record))

    def close(self):
        self._file.close()
