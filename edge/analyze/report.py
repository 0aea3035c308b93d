"""What an analysis writes: each clip's folder, and the run's table (CSV and Parquet) and HTML index.

    OUT/analysis.json            the run: bundle, model hash, config, engine, counts, time
    OUT/clips.csv, clips.parquet one row per clip of the run (TABLE_COLUMNS), failed ones with their reason
    OUT/index.html               each clip's plot and B-mode thumbnail, its numbers, or why it failed
    OUT/clips/<id>/summary.json  the clip's summary row in full (status, key, numbers)
    OUT/clips/<id>/frames.jsonl  one measurement per frame (frames.csv: the same without the layout)
    OUT/clips/<id>/thickness.png thickness over time; roi.png: the B-mode region thumbnail

A clip's folder is written under a temporary name and renamed into place when complete, so an
interrupted run leaves whole clip folders only; its summary.json holds the key (bundle, config
and content hashes) by which a later run knows it is done. Nothing here holds a file name or a
path unless the run was asked to keep names.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
import uuid
from pathlib import Path

from edge.measure.quality import REJECTING, names

FRAME_COLUMNS = (
    "seq",
    "t",
    "thickness",
    "spread",
    "unit",
    "flags",
    "flag_names",
    "columns",
    "coverage",
    "filtered",
    "low",
    "high",
    "uncertainty",
    "calibration",
    "spacing_mm",
)
REJECT_NAMES = tuple(names(REJECTING)) + ("NOT_MEASURED",)
# (column, type) of the run table; its Parquet schema is made from the types.
TABLE_COLUMNS = (
    ("clip_id", str),
    ("name", str),
    ("kind", str),
    ("status", str),
    ("error", str),
    ("frames", int),
    ("accepted", int),
    ("rejected", int),
    *((f"rejected_{n}", int) for n in REJECT_NAMES),
    ("frozen", int),
    ("outliers", int),
    ("unit", str),
    ("thickness_median", float),
    ("thickness_iqr", float),
    ("filtered", float),
    ("filtered_low", float),
    ("filtered_high", float),
    ("spacing_source", str),
    ("spacing_detail", str),
    ("spacing_row_mm", float),
    ("spacing_col_mm", float),
    ("layout_changes", int),
    ("fps", float),
    ("fps_stated", bool),
    ("duration_s", float),
    ("frames_without_roi", int),
    ("frames_layout_changing", int),
    ("corrupt_frames", int),
    ("model_sha256", str),
    ("bundle_manifest_sha256", str),
    ("config_sha256", str),
    ("content_sha256", str),
)


def table_row(summary: dict) -> dict:
    """A clip summary flattened to TABLE_COLUMNS (missing values None)."""
    row = {name: summary.get(name) for name, _ in TABLE_COLUMNS}
    by_flag = summary.get("rejected_by_flag") or {}
    for n in REJECT_NAMES:
        row[f"rejected_{n}"] = by_flag.get(n, 0) if summary.get("status") == "done" else None
    spacing = summary.get("spacing_mm")
    row["spacing_row_mm"], row["spacing_col_mm"] = (spacing[0], spacing[1]) if spacing else (None, None)
    return row


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def json_text(data) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def frames_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FRAME_COLUMNS)
    for r in rows:
        w.writerow([_cell(k, r.get(k)) for k in FRAME_COLUMNS])
    return buf.getvalue()


def _cell(key: str, value):
    """A frames.csv field: flag names joined by '|', the spacing as 'row col', None empty."""
    if value is None:
        return ""
    if key == "flag_names":
        return "|".join(value)
    if key == "spacing_mm":
        return " ".join(str(v) for v in value)
    return value


def write_clip(out: Path, result) -> Path:
    """Write one ClipResult into OUT/clips/<id>/ (complete, or not at all); the folder."""
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    final = clips / result.clip_id
    tmp = clips / f".{result.clip_id}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        if result.error is None:
            (tmp / "frames.jsonl").write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in result.frames))
            (tmp / "frames.csv").write_text(frames_csv(result.frames))
            if result.plot_png:
                (tmp / "thickness.png").write_bytes(result.plot_png)
            if result.thumb_png:
                (tmp / "roi.png").write_bytes(result.thumb_png)
        (tmp / "summary.json").write_text(json_text(result.summary))  # last: the folder is whole
        old = None
        if final.exists():
            old = clips / f".{result.clip_id}.{uuid.uuid4().hex[:8]}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_summary(out: Path, clip_id: str) -> dict | None:
    """The summary.json of an analysed clip, None when absent or unreadable."""
    try:
        return json.loads((out / "clips" / clip_id / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def clean_leftovers(out: Path) -> int:
    """Remove the temporary clip folders an interrupted run left; how many."""
    clips = out / "clips"
    if not clips.is_dir():
        return 0
    gone = 0
    for d in clips.iterdir():
        if d.name.startswith(".") and (d.name.endswith(".tmp") or d.name.endswith(".old")):
            shutil.rmtree(d, ignore_errors=True)
            gone += 1
    return gone


def write_table(out: Path, summaries: list[dict]) -> None:
    """OUT/clips.csv and OUT/clips.parquet, one row per summary, in the order given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [table_row(s) for s in summaries]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([n for n, _ in TABLE_COLUMNS])
    for r in rows:
        w.writerow(["" if r[n] is None else (int(r[n]) if t is bool else r[n]) for n, t in TABLE_COLUMNS])
    _write_atomic(out / "clips.csv", buf.getvalue().encode())
    types = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    schema = pa.schema([(n, types[t]) for n, t in TABLE_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = out / f".clips.parquet.{uuid.uuid4().hex[:8]}.tmp"
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out / "clips.parquet")
    finally:
        tmp.unlink(missing_ok=True)


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:.2f}{' ' + unit if unit else ''}" if isinstance(v, float) else str(v)


def write_index(out: Path, summaries: list[dict], run: dict) -> None:
    """OUT/index.html: a row per clip with its thumbnail, plot and numbers (or its reason)."""
    e = html.escape
    done = sum(s.get("status") == "done" for s in summaries)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tlf-edge analysis</title><style>",
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;"
        "padding:6px;vertical-align:top;text-align:left}td.num{font-variant-numeric:tabular-nums}"
        ".failed{color:#b00}img{display:block}</style></head><body>",
        f"<h1>TLF thickness: {done} of {len(summaries)} clips analysed</h1>",
        f"<p>model sha256 {e(run['model_sha256'][:12])} ({e(run['bundle_name'])}), config sha256 "
        f"{e(run['config_sha256'][:12])}; table: <a href='clips.csv'>clips.csv</a>, "
        "<a href='clips.parquet'>clips.parquet</a>. Thumbnails show the B-mode region only.</p>",
        "<table><tr><th>clip</th><th>B-mode region</th><th>thickness over time</th><th>numbers</th></tr>",
    ]
    for s in summaries:
        cid = e(s["clip_id"])
        title = (
            cid + (f"<br><small>{e(s['name'])}</small>" if s.get("name") else "") + f"<br><small>{e(s['kind'])}</small>"
        )
        if s.get("status") != "done":
            parts.append(
                f"<tr><td>{title}</td><td colspan='3' class='failed'>failed: {e(s.get('error') or '')}</td></tr>"
            )
            continue
        unit = s.get("unit") or ""
        thumb = (
            f"<img src='clips/{cid}/roi.png' alt='B-mode region of {cid}'>"
            if (out / "clips" / s["clip_id"] / "roi.png").exists()
            else "–"
        )
        flags = ", ".join(f"{k} {v}" for k, v in (s.get("rejected_by_flag") or {}).items()) or "none"
        spacing = s.get("spacing_mm")
        numbers = (
            f"median {_fmt(s.get('thickness_median'), unit)} (IQR {_fmt(s.get('thickness_iqr'))})<br>"
            f"filtered {_fmt(s.get('filtered'), unit)} [{_fmt(s.get('filtered_low'))}, {_fmt(s.get('filtered_high'))}]<br>"
            f"{s['accepted']} of {s['frames']} frames accepted; rejected: {e(flags)}<br>"
            f"spacing {e(s.get('spacing_source') or 'none')}"
            + (f" {spacing[0]:.4f} x {spacing[1]:.4f} mm/px" if spacing else "")
            + "<br>"
            f"<small>{e(s.get('spacing_detail') or '')}</small>"
        )
        parts.append(
            f"<tr><td>{title}</td><td>{thumb}</td><td><img src='clips/{cid}/thickness.png' "
            f"alt='thickness of {cid}' width='576'></td><td class='num'>{numbers}</td></tr>"
        )
    parts.append("</table></body></html>\n")
    _write_atomic(out / "index.html", "".join(parts).encode())
