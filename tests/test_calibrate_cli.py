"""The operator's ways to a scale (`tlf-edge calibrate` with two points, `[calibration]
depth_mm`), how `tlf-edge doctor` reports the scale of the configured source, and the
SCALE_UNCERTAIN flag a refused scale puts on every measurement."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from edge.ops import doctor
from edge.screen import ocr
from edge.runtime.config import load_config
from edge.frame import Frame, Segmentation
from edge.runtime.chain import measure
from edge.measure.quality import Quality
from edge.measure.thickness import ThicknessOptions

from conftest import APO_FEW

SHOT = APO_FEW / "images" / "img_00003.tif"  # its depth scale: ticks 1 cm apart, 0 at row 43, 50 at row 674


def tlf_edge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_two_points_print_config_lines_that_load_back(tmp_path):
    r = tlf_edge("calibrate", str(SHOT), "--points", "1155,43,1155,674", "--mm", "50")
    assert r.returncode == 0, r.stderr
    assert "50 mm over 631.0 px" in r.stdout
    cfg = tmp_path / "cart.toml"
    cfg.write_text("version = 1\n" + r.stdout)
    spacing = load_config(cfg).calibration.spacing_mm
    assert spacing == pytest.approx((50 / 631,), rel=1e-5)


@pytest.mark.parametrize("args,message", [
    (["missing.png", "--points", "1,2,3,40", "--mm", "5"], "cannot read an image from 'missing.png'"),
    ([str(SHOT), "--points", "1,2,3", "--mm", "5"], "--points takes X1,Y1,X2,Y2"),
    ([str(SHOT), "--points", "1,2,3,5", "--mm", "5"], "at least 10 px"),
    ([str(SHOT), "--points", "1,2,3,5000", "--mm", "5"], "outside the 1234x688 image"),
    ([str(SHOT), "--points", "1,2,3,500", "--mm", "0"], "out of range"),
])
def test_calibrate_refuses_bad_input_in_one_line(args, message):
    r = tlf_edge("calibrate", *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"tlf-edge: error: {r.stderr.split('error: ', 1)[1].strip()}"]
    assert message in r.stderr


def test_depth_setting_is_validated(tmp_path):
    from edge.errors import ConfigError

    for bad, why in (("depth_mm = 5.0", "10-300 mm"), ("width_mm = 40.0", "together with depth_mm"),
                     ("depth_mm = 40.0\nspacing_mm = [0.1]", "both set")):
        p = tmp_path / "bad.toml"
        p.write_text(f"version = 1\n[calibration]\n{bad}\n")
        with pytest.raises(ConfigError, match=why):
            load_config(p)


def folder_of_screenshots(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    shutil.copy(APO_FEW / "images" / "img_00001.tif", folder / "a.tif")  # ticks, no number on screen
    return folder


def test_doctor_says_why_a_screen_gives_no_mm_and_passes_with_the_depth_setting(tmp_path):
    folder = folder_of_screenshots(tmp_path)
    base = f'version = 1\n[source]\nurl = "{folder}"\n[display]\nurl = "none"\n'
    (tmp_path / "plain.toml").write_text(base)
    out = io.StringIO()
    doctor.main(str(tmp_path / "plain.toml"), out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.split()[1] == "scale")
    assert line.startswith("FAIL") and "thickness would be in px" in line and "depth_mm" in line
    assert "refused" in line and "no number on screen" in line
    (tmp_path / "depth.toml").write_text(base + "[calibration]\ndepth_mm = 40.0\n")
    out = io.StringIO()
    doctor.main(str(tmp_path / "depth.toml"), out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.split()[1] == "scale")
    assert line.startswith("PASS") and "(depth_mm: depth 40 mm over 467 rows)" in line


def test_doctor_shows_what_the_screen_scale_read(tmp_path):
    if ocr.available() is not None:
        pytest.skip(f"OCR is not installed: {ocr.available()}")
    folder = tmp_path / "shots"
    folder.mkdir()
    shutil.copy(SHOT, folder / "a.tif")
    (tmp_path / "c.toml").write_text(f'version = 1\n[source]\nurl = "{folder}"\n[display]\nurl = "none"\n')
    out = io.StringIO()
    doctor.main(str(tmp_path / "c.toml"), out)
    line = next(ln for ln in out.getvalue().splitlines() if ln.split()[1] == "scale")
    assert line.startswith("PASS") and "screen" in line and "labels ['0', '50']" in line


def test_a_refused_scale_flags_every_measurement():
    labels = np.zeros((64, 64), np.uint8)
    labels[30:34] = 1
    labels[34:] = 2
    for source, flagged in (("refused", True), ("none", False), ("screen", False)):
        spacing = (0.1, 0.1) if source == "screen" else None
        frame = Frame(np.zeros((64, 64), np.uint8), 0.0, 1, spacing, spacing_source=source)
        seg = Segmentation(frame, labels, None, spacing, 0.0)
        m = measure(seg, ThicknessOptions())
        assert bool(m.flags & Quality.SCALE_UNCERTAIN) == flagged
        assert bool(m.flags & Quality.UNCALIBRATED) == (spacing is None)
        assert m.extra["calibration"] == source


def test_run_on_a_quarter_tick_screen_measures_in_mm_with_the_screen_scale(tmp_path):
    """The layout once read 4x too coarse, end to end: cm labels, 3 short ticks between, focus
    markers on the line, left side, "D 4cm"; every logged frame says its calibration."""
    if ocr.available() is not None:
        pytest.skip(f"OCR is not installed: {ocr.available()}")
    import json

    src = "phantom://screen?seed=5&frames=4&size=1024x768&style=quarter&depth=40"
    r = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--source", src, "--display", "none", "--quiet",
                        "--threads", "1", "--out", str(tmp_path / "runs")], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    lay = json.loads((run_dir / "summary.json").read_text())["layout"]
    assert lay["calibration"] == "screen" and "ticks of 2.5 mm" in lay["calibration_note"]
    from edge.sim import phantom_screen as ps

    truth = ps.layout((1024, 768), 40.0, 40.0, 5, style="quarter").spacing_mm[0]
    assert abs(lay["spacing_mm"][0] / truth - 1) < 0.01
    records = [json.loads(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
    assert records and all(rec["calibration"] == "screen" and rec["unit"] == "mm" for rec in records)
