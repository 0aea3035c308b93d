"""The CSV log sink on real phantom measurements: round trip, NaN as empty, header once, no lost rows."""

import csv
from dataclasses import replace

import pytest

from edge.sim import phantom
from edge.sinks.csvlog import COLUMNS, CsvLog
from edge.errors import SinkError
from edge.frame import Frame, Segmentation
from edge.runtime.chain import measure, smooth
from edge.model.preprocess import PreprocessSpec, model_spacing, resize_labels
from edge.measure.quality import Quality
from edge.measure.temporal import TemporalFilter
from edge.measure.thickness import ThicknessOptions

SPEC = PreprocessSpec()


@pytest.fixture(scope="module")
def outputs():
    s = phantom.scan(3, shape=(300, 300))
    spacing = model_spacing(s.spacing_mm, s.image.shape, SPEC)
    labels = resize_labels(s.labels, SPEC)
    temporal = TemporalFilter()
    out = []
    for i in range(10):
        seg = Segmentation(Frame(s.image, i / 30, i, s.spacing_mm), labels, None, spacing, t_done=i / 30 + 0.01)
        out.append((smooth(measure(seg, ThicknessOptions()), temporal, spacing), seg))
    # one frame with nothing measurable and two flags raised
    m, seg = out[4]
    out[4] = (replace(m, thickness=float("nan"), spread=float("nan"), flags=int(Quality.NO_BAND | Quality.FROZEN),
                      extra={**m.extra, "filtered": float("nan")}), seg)
    return out


def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_rows_round_trip_with_nan_as_empty(tmp_path, outputs):
    log = CsvLog(tmp_path / "run" / "frames.csv", "ab" * 32).open()
    for m, seg in outputs:
        log.write(m, seg)
    log.close()
    header, rows = read_rows(tmp_path / "run" / "frames.csv")
    assert tuple(header) == COLUMNS and len(rows) == 10
    for (m, _), row in zip(outputs, rows):
        assert int(row["seq"]) == m.seq
        assert float(row["t_capture"]) == pytest.approx(m.t_capture, abs=1e-6)
        assert row["unit"] == m.unit == "mm"
        assert int(row["flags"]) == m.flags and int(row["columns"]) == m.columns
        assert row["model_sha256"] == "ab" * 32
        assert float(row["latency_ms"]) == pytest.approx(m.latency_s * 1000, abs=0.01)
        assert float(row["wall_time"]) > 1e9
    last = outputs[-1][0]  # the temporal filter has settled by then
    assert float(rows[-1]["thickness"]) == pytest.approx(last.thickness, abs=1e-4)
    for k in ("filtered", "low", "high"):
        assert float(rows[-1][k]) == pytest.approx(last.extra[k], abs=1e-4)
    bad = rows[4]
    assert bad["thickness"] == bad["spread"] == bad["filtered"] == ""
    assert bad["flag_names"] == "NO_BAND|FROZEN"
    assert all(r["low"] != "" or r["high"] == "" for r in rows)


def test_appending_writes_the_header_once(tmp_path, outputs):
    path = tmp_path / "frames.csv"
    for _ in range(2):
        log = CsvLog(path, "x").open()
        for m, seg in outputs[:3]:
            log.write(m, seg)
        log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 7 and lines.count(",".join(COLUMNS)) == 1
    assert [int(r["seq"]) for r in read_rows(path)[1]] == [0, 1, 2, 0, 1, 2]


def test_a_foreign_csv_is_not_appended_to(tmp_path):
    path = tmp_path / "frames.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(SinkError, match="another kind of CSV"):
        CsvLog(path, "x").open()
    assert path.read_text() == "a,b,c\n1,2,3\n"


def test_every_row_is_on_disk_before_the_next_frame(tmp_path, outputs):
    path = tmp_path / "frames.csv"
    log = CsvLog(path, "x").open()
    for i, (m, seg) in enumerate(outputs[:3]):
        log.write(m, seg)
        assert len(read_rows(path)[1]) == i + 1  # read by another handle, without close or flush
    log.close()


def test_missing_filter_values_are_empty(tmp_path, outputs):
    m, seg = outputs[0]
    log = CsvLog(tmp_path / "f.csv", "x").open()
    log.write(replace(m, extra={}), seg)
    log.close()
    row = read_rows(tmp_path / "f.csv")[1][0]
    assert row["filtered"] == row["low"] == row["high"] == ""
