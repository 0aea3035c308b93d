"""The soak benchmark as a test: memory stays flat and no log line is lost with every output on.

One minute when CI is set (CI=true), a short run otherwise so that local runs stay fast; the
30-minute soak is run by hand: python benchmarks/soak.py --minutes 30.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.mark.skipif(not hasattr(os, "openpty") or not Path("/proc/self/statm").exists(),
                    reason="needs pseudo-terminals and /proc")
def test_soak_keeps_memory_flat_and_loses_no_log_line(tmp_path):
    minutes = 1.0 if IN_CI else 0.2
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "soak.py"), "--minutes", str(minutes),
                        "--out", str(tmp_path / "soak")], capture_output=True, text=True, timeout=minutes * 60 + 240,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    report = json.loads(r.stdout)
    assert report["frames"] >= 3, report
    assert report["rss_growth_mb"] is not None and report["rss_growth_mb"] <= 5.0, report
    assert report["log_lines"] == {"jsonl": report["frames"], "csv": report["frames"], "lost": 0}
    assert report["recording"]["lost"] == 0 and report["dead_outputs"] == {}
    assert report["display"]["crc_errors"] == 0 and report["display"]["frames_received"] >= 1
    assert {"p5", "p50", "p95", "window_s"} <= set(report["fps"])
    assert report["ok"] and r.returncode == 0, r.stderr[-2000:]
