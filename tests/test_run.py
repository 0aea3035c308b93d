"""`tlf-edge run` end to end on the bundled model, the phantom scanner and the emulated display."""

import json
import subprocess
import sys

import pytest


def run_cli(args, tmp_path, timeout=180):
    code = (
        "import sys; from edge.cli import main; rc = main(sys.argv[1:]);"
        "bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow'];"
        "print('TENSORFLOW LOADED' if bad else 'no tensorflow');"
        "net = [m for m in ('ssl', 'http.client', 'urllib.request') if m in sys.modules];"
        "print(f'network libraries {net}' if net else 'no network libraries'); sys.exit(rc)"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


def test_run_writes_log_summary_and_display_and_loads_no_tensorflow(tmp_path):
    r = run_cli(["run", "--frames", "12", "--out", str(tmp_path / "runs"), "--source", "phantom://clip?seed=3&frames=30&size=320x320"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no tensorflow" in r.stdout
    assert "no network libraries" in r.stdout  # nor their memory (OpenSSL's libraries)
    assert "tlf-edge run summary" in r.stdout and "phantom truth" in r.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    lines = (run_dir / "frames.jsonl").read_text().splitlines()
    assert len(lines) == 12
    rec = json.loads(lines[0])
    assert {"seq", "t_capture", "thickness", "spread", "flags", "latency_ms", "model_sha256"} <= set(rec)
    assert "truth_mm" not in rec  # the truth is scored apart (edge.sinks.scoring), not logged as a reading
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["frames"] == 12
    assert summary["scored"]["frames"] == 12 and summary["scored"]["thickness_frames"] == summary["accepted"]
    assert summary["display"]["frames_received"] >= 1 and summary["display"]["crc_errors"] == 0
    assert (run_dir / "display.png").stat().st_size > 0
    assert abs(summary["error_median_mm"]) <= 0.3


def test_bad_bundle_is_one_clear_line(tmp_path):
    r = run_cli(["run", "--bundle", str(tmp_path), "--out", str(tmp_path / "runs")], tmp_path)
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tlf-edge: error: not a model bundle")


def test_unknown_source_is_one_clear_line(tmp_path):
    r = run_cli(["run", "--source", "nonsense://x", "--out", str(tmp_path / "runs"), "--display", "none"], tmp_path)
    assert r.returncode == 2 and "unknown source 'nonsense://x'" in r.stderr


@pytest.mark.parametrize("url", ["phantom://clip?preset=martian", "phantom://clip?frames=ten", "phantom://clip?colour=1"])
def test_bad_phantom_options_are_clear_errors(url, tmp_path):
    r = run_cli(["run", "--source", url, "--out", str(tmp_path / "runs"), "--display", "none"], tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("tlf-edge: error:")


def test_malformed_config_is_one_clear_line(tmp_path):
    cfg = tmp_path / "cart.toml"
    cfg.write_text("version = 1\n[display]\nbaud = 'fast'\n")
    r = run_cli(["run", "--config", str(cfg), "--out", str(tmp_path / "runs")], tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "baud" in lines[0] and "cart.toml" in lines[0]


def test_unknown_override_key_is_refused(tmp_path):
    r = run_cli(["run", "--set", "display.speed=9600", "--out", str(tmp_path / "runs")], tmp_path)
    assert r.returncode == 2 and "speed" in r.stderr


def test_config_file_drives_the_run(tmp_path):
    cfg = tmp_path / "cart.toml"
    cfg.write_text(
        "version = 1\n[source]\nurl = 'phantom://clip?seed=5&frames=6&size=256x256'\n"
        "[display]\nurl = 'none'\n[console]\nenabled = false\n[log]\ndirectory = '%s'\n" % (tmp_path / "logs")
    )
    r = run_cli(["run", "--config", str(cfg)], tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = next((tmp_path / "logs").iterdir())
    assert len((run_dir / "frames.jsonl").read_text().splitlines()) == 6
    assert "frame " not in r.stdout  # no live status line


def test_sigterm_stops_cleanly_with_the_log_complete(tmp_path):
    import signal

    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["run", "--source", "phantom://clip?seed=2&frames=100000&size=256x256", "--display", "none",
            "--out", str(tmp_path / "runs")]
    p = subprocess.Popen([sys.executable, "-u", "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=tmp_path, text=True)
    try:
        assert p.stdout.read(17).strip() == "SIMULATED  frame"  # the first status line: frames are flowing
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert "tlf-edge run summary" in out
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = (run_dir / "frames.jsonl").read_text().splitlines()
    assert summary["frames"] == len(lines) >= 1
    json.loads(lines[-1])  # the last line is whole


def test_recording_and_csv_outputs_from_config(tmp_path):
    import cv2

    cfg = tmp_path / "cart.toml"
    cfg.write_text(
        "version = 1\n[source]\nurl = 'phantom://clip?seed=5&frames=5&size=300x260'\n[display]\nurl = 'none'\n"
        "[recording]\nenabled = true\npath = '%s'\n[log]\ncsv = true\ndirectory = '%s'\n" % (tmp_path / "rec", tmp_path / "logs")
    )
    r = run_cli(["run", "--config", str(cfg), "--quiet"], tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = next((tmp_path / "logs").iterdir())
    assert len((run_dir / "frames.csv").read_text().splitlines()) == 6  # header and 5 rows
    video = next((tmp_path / "rec").glob("*.avi"))
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    ok, frame = cap.read()
    assert ok and frame.shape[:2] == (260, 300)  # the B-mode region, nothing more
    # the recording read back as a video source: no network libraries loaded for it either (an
    # image-header reader that imports urllib.request is imported only for image files)
    r = run_cli(["run", "--source", str(video), "--display", "none", "--quiet", "--out", str(tmp_path / "again")], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "no network libraries" in r.stdout


def test_doctor_and_bench_commands(tmp_path):
    r = run_cli(["doctor"], tmp_path)
    assert "PASS  model" in r.stdout and "PASS  config" in r.stdout
    r = run_cli(["bench", "--frames", "3", "--threads", "1", "--out", str(tmp_path / "b"),
                 "--source", "phantom://clip?seed=1&frames=5&size=256x256"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "bench.json").is_file() and "| threads |" in r.stdout
    r = run_cli(["bench", "--threads", "one"], tmp_path)
    assert r.returncode == 2 and "--threads" in r.stderr


def test_a_source_that_fails_mid_run_ends_with_its_summary_and_exit_1(tmp_path, monkeypatch, capsys):
    """A capture card that gives up after frames were measured: the run stops, its summary is
    printed and written, and it exits 1 (a runtime failure), not 2 (input refused at start)."""
    import edge.runtime.factory
    from edge.cli import main
    from edge.errors import SourceError
    from edge.sources.base import Source

    real = edge.runtime.factory.open_source

    class GivesUp(Source):
        live = True
        cropped = True

        def __init__(self):
            self.inner = real("phantom://clip?seed=3&frames=20&size=256x256")

        def open(self):
            self.inner.open()
            self.n = 0
            return self

        def read(self):
            self.n += 1
            if self.n > 4:
                raise SourceError("capture '/dev/video0' lost and not back after 0 s (give_up)")
            return self.inner.read()

    monkeypatch.setattr(edge.runtime.factory, "open_source", lambda url, **kw: GivesUp())
    rc = main(["run", "--source", "phantom://clip", "--display", "none", "--quiet", "--out", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert rc == 1, err
    assert "tlf-edge run summary" in out and "failed     capture '/dev/video0' lost" in out
    assert err.strip().splitlines()[-1].startswith("tlf-edge: error: the run stopped after")
    run_dir = next((tmp_path / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["failed"].startswith("capture '/dev/video0' lost") and summary["frames"] >= 1
    assert len((run_dir / "frames.jsonl").read_text().splitlines()) == summary["frames"]


def test_a_frame_the_fixed_rect_does_not_fit_mid_run_is_skipped_and_counted(tmp_path):
    """A folder of screens of two sizes with a [roi] rect that fits only the larger: the smaller
    frames are skipped and counted, the others measured; the run ends normally."""
    import cv2
    import numpy as np

    from edge.sim import phantom_screen

    folder = tmp_path / "screens"
    folder.mkdir()
    for i, size in enumerate([(640, 480), (640, 480), (320, 240), (640, 480)]):
        shot = phantom_screen.screen(11 + i, (640, 480))
        cv2.imwrite(str(folder / f"{i}.png"), cv2.resize(shot.image, size) if size != (640, 480) else shot.image)
    x, y, w, h = phantom_screen.screen(11, (640, 480)).roi
    cfg = tmp_path / "cart.toml"
    cfg.write_text(f"version = 1\n[source]\nurl = '{folder}'\n[display]\nurl = 'none'\n[console]\nenabled = false\n"
                   f"[roi]\nrect = [{x}, {y}, {w}, {h}]\n[calibration]\nspacing_mm = [0.1, 0.1]\n"
                   f"[log]\ndirectory = '{tmp_path / 'logs'}'\n")
    r = run_cli(["run", "--config", str(cfg)], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "too small  1 frames skipped, smaller than the [roi] rect" in r.stdout
    run_dir = next((tmp_path / "logs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["rect_misfit_frames"] == 1 and summary["frames"] == 3
    assert np.isfinite(summary["thickness_median"])
