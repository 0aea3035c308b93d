"""Faults a cart meets in a day of unattended running, each survived by the running runtime.

Real parts only: video files written by OpenCV, the capture source reopening a real path that
disappears and comes back, the display emulator on real pseudo-terminals behind a stable symlink,
a real small filesystem (tmpfs) for the full disk, real signals to a `tlf-edge run` subprocess.

a  capture device vanishes and returns  test_a_capture_device_that_vanishes_shows_no_signal_and_resumes
b  display port vanishes and returns    test_the_display_port_vanishes_and_returns_during_a_run
c  damaged / truncated video            test_a_damaged_and_truncated_video_runs_to_its_end
d  wrong or tampered model bundle       test_a_wrong_or_tampered_bundle_is_refused_in_one_line
e  malformed config                     test_a_malformed_config_is_one_line_naming_the_key
f  full recording disk                  test_a_recording_disk_reaching_its_reserve_stops_recording_only,
                                        test_a_recording_disk_that_fills_up_stops_recording_only
g  SIGTERM while recording              test_sigterm_while_recording_leaves_playable_video_and_whole_logs
h  writes only under the data directory test_a_run_writes_only_under_its_data_dir
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest

from edge.sim import phantom
from edge.sim import phantom_screen as ps
from sandbox import listing, wait_until

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX (pseudo-terminals, signals)")
ENDLESS = "phantom://clip?seed=4&frames=1000000&size=256x256"


# -- helpers -------------------------------------------------------------------------------------


def cli_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def run_cli(args, cwd, timeout=240, **env):
    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=cli_env(**env))


def start_cli(args, cwd, **env) -> subprocess.Popen:
    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-u", "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env=cli_env(**env))


def run_dir_of(root: Path) -> Path:
    dirs = [d for d in root.iterdir() if d.is_dir()] if root.is_dir() else []
    assert len(dirs) == 1, dirs
    return dirs[0]


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def check_logs(run_dir: Path, frames: int, csv_too: bool = True) -> None:
    """One whole JSON line (and CSV row) per measured frame, in order, the last one complete."""
    lines = (run_dir / "frames.jsonl").read_text().splitlines()
    assert len(lines) == frames
    seqs = [json.loads(line)["seq"] for line in lines]  # every line parses
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    if csv_too:
        with open(run_dir / "frames.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert len(rows) == frames + 1 and all(len(r) == len(rows[0]) for r in rows)
        assert [int(r[0]) for r in rows[1:]] == seqs


def play(path: Path, api=cv2.CAP_ANY) -> list:
    cap = cv2.VideoCapture(str(path), api)
    frames = []
    while cap.isOpened():
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def write_phantom_avi(path: Path, n: int, seed: int = 3, size: int = 256) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (size, size))
    assert w.isOpened()
    for scan in phantom.clip(seed, frames=n, shape=(size, size)):
        w.write(cv2.cvtColor(scan.image, cv2.COLOR_GRAY2BGR))
    w.release()
    return path


def config_file(path: Path, text: str) -> Path:
    path.write_text("version = 1\n" + text)
    return path


class Text(io.StringIO):
    """A stream (the pipeline's `err`) that tests can wait on."""

    def __init__(self):
        super().__init__()
        self.cond = threading.Condition()

    def write(self, s):
        with self.cond:
            n = super().write(s)
            self.cond.notify_all()
        return n

    def wait_for(self, predicate, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.getvalue()), timeout)


# -- a: the capture device vanishes and comes back -----------------------------------------------


def test_a_capture_device_that_vanishes_shows_no_signal_and_resumes(tmp_path):
    """The capture source reads a stable device path (as /dev/v4l/by-id/... is a symlink made by
    udev). While the path is there the clip plays on and on (each end is a glitch reopened at
    once); when it is removed the source's reopen fails, the display shows NO SIGNAL, the
    retries back off (0.05 s doubling to 0.4 s, logged); when it is back, frames flow again,
    the display shows RUNNING and every measured frame is in the log. A display replugged during
    the outage is told NO SIGNAL again when it comes back."""
    from firmware_bridge.emulator import DisplayEmulator
    from firmware_bridge.messages import StatusCode

    from edge.runtime.pipeline import Pipeline
    from edge.model.segmenter import Segmenter, SegmenterOptions
    from edge.sinks.base import Sink
    from edge.sinks.display import DisplaySink
    from edge.sinks.jsonl import JsonLinesLog
    from edge.sources.capture import CaptureSource

    clip = write_phantom_avi(tmp_path / "card.avi", 24)
    device = tmp_path / "usb-capture-card-video-index0"
    device.symlink_to(clip)

    class Count(Sink):
        name = "count"

        def __init__(self):
            self.n, self.cond = 0, threading.Condition()

        def write(self, m, seg):
            with self.cond:
                self.n += 1
                self.cond.notify_all()

        def wait_for(self, n, timeout):
            with self.cond:
                return self.cond.wait_for(lambda: self.n >= n, timeout)

    source = CaptureSource(str(device), backend="any", max_failures=2, backoff=(0.05, 0.4))
    segmenter = Segmenter.create(SegmenterOptions(num_threads=1))
    port = tmp_path / "serial-by-id-display"
    emu = DisplayEmulator(320, 240, link_path=port).start()
    count, err, log = Count(), Text(), tmp_path / "frames.jsonl"
    sinks = [JsonLinesLog(log, segmenter.bundle.sha256), DisplaySink(str(port), 7, 921600), count]
    pipeline = Pipeline(source, segmenter, sinks, err=err)
    result = {}
    worker = threading.Thread(target=lambda: result.update(stats=pipeline.run()))
    worker.start()
    try:
        assert count.wait_for(3, 120), "no frames from the capture source"
        device.unlink()  # unplugged
        assert emu.wait_for(lambda s: s.status is not None and s.status.code == StatusCode.NO_SIGNAL, 30)
        assert emu.state.status.text == "no signal"
        assert err.wait_for(lambda t: "next try in 0.4 s" in t, 30), err.getvalue()
        emu.stop()  # the display is replugged while there is no signal
        emu = DisplayEmulator(320, 240, link_path=port).start()
        assert emu.wait_for(lambda s: s.status is not None and s.status.code == StatusCode.NO_SIGNAL, 30)
        at_loss, shown_at_loss = count.n, emu.frames_received
        device.symlink_to(clip)  # plugged back in
        assert emu.wait_for(lambda s: s.status.code == StatusCode.RUNNING, 30)
        assert count.wait_for(at_loss + 3, 120), "no frames after the device came back"
        assert emu.wait_for(lambda s: s.frames_received > shown_at_loss, 30)
    finally:
        pipeline.stop_event.set()
        worker.join(120)
        emu.stop()
    assert not worker.is_alive()
    stats = result["stats"]
    text = err.getvalue()
    assert stats.signal_losses == 1 and stats.no_signal_s > 0.5 and stats.dead_sinks == {}
    assert stats.source_reconnects >= 1 and source.failed_reopens >= 4
    waits = [float(w) for w in re.findall(r"next try in ([0-9.]+) s", text)]
    assert waits[:4] == [0.05, 0.1, 0.2, 0.4] and max(waits) == 0.4  # doubling, bounded, logged
    assert text.count("no signal: capture") == 1 and "signal back after" in text
    check_logs(tmp_path, stats.frames, csv_too=False)


# -- b: the display's serial port vanishes and comes back ----------------------------------------


def test_the_display_port_vanishes_and_returns_during_a_run(tmp_path):
    """`tlf-edge run` drives a display behind a stable path (/dev/serial/by-id/... style). The
    display is unplugged (its pty closes, the path disappears) mid-run: measurement and logging
    go on; a new display appears at the same path: it receives frames again; at SIGTERM the log
    holds every frame and no output died."""
    from firmware_bridge.emulator import DisplayEmulator

    port, runs = tmp_path / "serial-by-id-tlf-display", tmp_path / "runs"
    first = DisplayEmulator(320, 240, link_path=port).start()
    p = start_cli(["run", "--source", ENDLESS, "--display", str(port), "--baud", "921600", "--quiet",
                   "--out", str(runs), "--set", "log.csv=true"], tmp_path)
    second = None
    try:
        assert first.wait_frames(3, 120), "the display received no frames"
        first.stop()  # unplugged
        assert not port.exists()
        log = run_dir_of(runs) / "frames.jsonl"
        away = line_count(log)
        wait_until(lambda: line_count(log) >= away + 5, 60, "frames logged while the display is away")
        second = DisplayEmulator(320, 240, link_path=port).start()  # plugged back in
        assert second.wait_frames(3, 60), "the display that came back received no frames"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
        if second is not None:
            second.stop()
    assert p.returncode == 0, err
    run_dir = run_dir_of(runs)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dead_outputs"] == {}
    check_logs(run_dir, summary["frames"])
    assert "Traceback" not in err


# -- c: damaged and truncated video --------------------------------------------------------------


def test_a_damaged_and_truncated_video_runs_to_its_end(tmp_path):
    """A screen recording written by OpenCV, one frame's JPEG overwritten mid-file and the file
    cut at 80 %: the run goes to the end of what is there, skips and counts the broken frames,
    and logs one line per measured frame."""
    path = tmp_path / "screen.avi"
    n = 16
    ps.write_clip(path, 11, frames=n, size=(640, 480))
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i] == 0xFF and data[i + 1] == 0xD8 and data[i + 2] == 0xFF]
    assert len(starts) == n
    data[starts[6] : starts[6] + 600] = bytes(600)  # frame 6 loses its JPEG header and tables
    cut = int(len(data) * 0.8)
    path.write_bytes(bytes(data[:cut]))
    whole = sum(1 for a, b in zip(starts, starts[1:]) if b <= cut) - 1  # frames wholly on disk, less the damaged one
    runs = tmp_path / "runs"
    r = run_cli(["run", "--source", str(path), "--display", "none", "--quiet", "--out", str(runs),
                 "--set", "log.csv=true"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    run_dir = run_dir_of(runs)
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["corrupt_frames"] >= n - whole - 1  # the damaged frame and those cut off (one may be half there)
    lay = s["layout"]
    assert s["frames"] + s["corrupt_frames"] + lay["frames_without_roi"] + lay["frames_layout_changing"] == n  # every frame accounted for
    assert s["frames"] >= whole - 1
    check_logs(run_dir, s["frames"])
    assert f"{s['corrupt_frames']} source frames could not be decoded" in r.stdout


# -- d, e: refused at start in one line ----------------------------------------------------------


def _flip_a_model_byte(bundle: Path) -> str:
    model = bundle / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return "does not match its manifest"


def _future_schema(bundle: Path) -> str:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema"] = "tlf-edge.bundle/99"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    return "unsupported bundle schema"


def _cut_manifest(bundle: Path) -> str:
    (bundle / "manifest.json").write_text('{"schema": ')
    return "unreadable manifest"


@pytest.mark.parametrize("damage", [_flip_a_model_byte, _future_schema, _cut_manifest])
def test_a_wrong_or_tampered_bundle_is_refused_in_one_line(tmp_path, damage):
    from edge.model.bundle import DEMO_BUNDLE

    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    expected = damage(bundle)
    r = run_cli(["run", "--bundle", str(bundle), "--display", "none", "--out", str(tmp_path / "runs")], tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("tlf-edge: error:") and expected in lines[0]
    assert not (tmp_path / "runs").exists()  # refused before anything was written


@pytest.mark.parametrize("text, names", [
    ("[display]\nbaud = 'fast'\n", "[display] baud: expected int"),
    ("[recording]\nmin_free = 5\n", "[recording] min_free: unknown key (did you mean 'min_free_mb'?)"),
    ("[recording]\nmin_free_mb = -1\n", "[recording] min_free_mb: must be 0 or more"),
    ("[log]\ndirectory = runs\n", "cart.toml:3:13: malformed TOML"),
    ("[source]\nurl = 'phantom://clip'\n[display]\nurl = 'none'\n[storage]\ndata_dir = '{data}'\n"
     "[log]\ndirectory = '/var/tmp/elsewhere'\n", "[log] directory: '/var/tmp/elsewhere' is outside [storage] data_dir"),
    ("[display]\nurl = 'none'\n", "[source] url: not set; a config file must name the frame source"),
    ("[source]\nurl = 'phantom://clip'\n", "[display] url: not set; a config file must name the display"),
])
def test_a_malformed_config_is_one_line_naming_the_key(tmp_path, text, names):
    cfg = config_file(tmp_path / "cart.toml", text.format(data=tmp_path / "data"))
    (tmp_path / "data").mkdir()
    r = run_cli(["run", "--config", str(cfg)], tmp_path)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("tlf-edge: error:") and names in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["cart.toml", "data"] and not os.listdir(tmp_path / "data")  # nothing written


# -- f: the recording disk fills up --------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs mounted at tmp_path/data/rec; yields a function that mounts it with a size."""
    mounted = []

    def mount(size: str) -> Path:
        where = tmp_path / "data" / "rec"
        where.mkdir(parents=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def full_disk_run(tmp_path, frames: int, min_free_mb: float):
    cfg = config_file(tmp_path / "cart.toml", (
        f"[source]\nurl = 'phantom://clip?seed=5&frames={frames}&size=256x256'\n[display]\nurl = 'none'\n"
        f"[storage]\ndata_dir = '{tmp_path / 'data'}'\n"
        f"[recording]\nenabled = true\npath = 'rec'\nmin_free_mb = {min_free_mb}\n"
        "[log]\ncsv = true\ndirectory = 'logs'\n[console]\nenabled = false\n"))
    r = run_cli(["run", "--config", str(cfg)], tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = run_dir_of(tmp_path / "data" / "logs")  # on the real disk, apart from the recording
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["frames"] == frames  # measurement went on to the end
    check_logs(run_dir, frames)  # and so did logging
    return r, summary, [p for p in (tmp_path / "data" / "rec").iterdir() if p.suffix == ".avi"]


def test_a_recording_disk_reaching_its_reserve_stops_recording_only(tmp_path, small_disk):
    """A 4 MB filesystem, 2.4 MB of it taken by another file, a 1 MB reserve: recording stops
    with one message once the reserve is reached; the part written plays (its index fitted in
    the reserve); every frame is measured and logged on the other disk."""
    rec = small_disk("4m")
    ballast = rec / "other-files.bin"
    ballast.write_bytes(bytes(int(2.4 * 2**20)))
    r, summary, videos = full_disk_run(tmp_path, 30, 1.0)
    stopped = [line for line in r.stderr.splitlines() if "recording output stopped" in line]
    assert len(stopped) == 1 and "disk nearly full" in stopped[0] and "frames kept" in stopped[0]
    assert "disk nearly full" in summary["dead_outputs"]["recording"]
    assert len(videos) == 1
    kept = len(play(videos[0], cv2.CAP_OPENCV_MJPEG))  # the strict reader: the index is there
    assert 1 <= kept < 30


def test_a_recording_disk_that_fills_up_stops_recording_only(tmp_path, small_disk):
    """No reserve on a 384 KB filesystem: writes fail silently once it is full, the file stops
    growing, and recording stops with one message; the frames on disk play with FFmpeg."""
    small_disk("384k")
    r, summary, videos = full_disk_run(tmp_path, 36, 0)
    stopped = [line for line in r.stderr.splitlines() if "recording output stopped" in line]
    assert len(stopped) == 1 and "stopped growing" in stopped[0], r.stderr
    assert len(videos) == 1 and shutil.disk_usage(videos[0].parent).free < 64 * 1024
    ffmpeg = "FFMPEG" in [cv2.videoio_registry.getBackendName(b) for b in cv2.videoio_registry.getBackends()]
    if ffmpeg:
        assert len(play(videos[0], cv2.CAP_FFMPEG)) >= 5


# -- g: SIGTERM while recording ------------------------------------------------------------------


def test_sigterm_while_recording_leaves_playable_video_and_whole_logs(tmp_path):
    """systemd stops the service with SIGTERM mid-recording: the process exits by itself with
    status 0 (how fast depends on the machine; no wall-clock bound here), the recording is closed with its index (every measured frame plays, with OpenCV's own strict
    reader too), and the JSON lines and CSV rows match the frames measured, the last one whole."""
    cfg = config_file(tmp_path / "cart.toml", (
        f"[source]\nurl = '{ENDLESS}'\n[display]\nurl = 'none'\n[storage]\ndata_dir = '{tmp_path / 'data'}'\n"
        "[recording]\nenabled = true\nmin_free_mb = 1\n[log]\ncsv = true\n[console]\nhz = 20.0\n"))
    (tmp_path / "data").mkdir()
    p = start_cli(["run", "--config", str(cfg)], tmp_path)
    seen = ""
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"frame +([1-9]\d|\d{3,}) ", seen):  # ten frames or more measured
            assert time.monotonic() < deadline and p.poll() is None, seen
            ready, _, _ = select.select([p.stdout], [], [], 1.0)
            if ready:
                seen += os.read(p.stdout.fileno(), 4096).decode(errors="replace")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err
    assert "  stopped    by SIGTERM (every frame measured until then is kept)" in out  # the console's summary says so
    run_dir = run_dir_of(tmp_path / "data" / "runs")
    summary = json.loads((run_dir / "summary.json").read_text())
    frames = summary["frames"]
    assert frames >= 10 and summary["dead_outputs"] == {} and summary["stopped_by"] == "SIGTERM"
    check_logs(run_dir, frames)
    video = next((tmp_path / "data" / "recordings").glob("*.avi"))
    assert len(play(video)) == frames  # every measured frame plays
    assert len(play(video, cv2.CAP_OPENCV_MJPEG)) == frames  # the index was written: plays anywhere


# -- h: nothing written outside the data directory -----------------------------------------------


def test_a_run_writes_only_under_its_data_dir(tmp_path):
    """Working directory, HOME and TMPDIR are watched folders; a run with every output on
    (emulated display, recording, JSON lines and CSV) leaves them as they were and writes its
    files under [storage] data_dir only."""
    for d in ("cwd", "home", "tmp", "etc", "data"):
        (tmp_path / d).mkdir()
    cfg = config_file(tmp_path / "etc" / "cart.toml", (
        "[source]\nurl = 'phantom://clip?seed=6&frames=6&size=256x256'\n[display]\nurl = 'emulate'\n"
        f"[storage]\ndata_dir = '{tmp_path / 'data'}'\n[recording]\nenabled = true\nmin_free_mb = 1\n[log]\ncsv = true\n"))
    before = listing(tmp_path, tmp_path / "data")
    r = run_cli(["run", "--config", str(cfg)], tmp_path / "cwd", HOME=str(tmp_path / "home"), TMPDIR=str(tmp_path / "tmp"))
    assert r.returncode == 0, r.stderr
    assert listing(tmp_path, tmp_path / "data") == before  # nothing in cwd, HOME, TMPDIR or beside the config
    written = sorted(str(p.relative_to(tmp_path / "data")) for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert [Path(w).name for w in written if w.startswith("runs/")] == ["display.png", "frames.csv", "frames.jsonl", "summary.json"]
    assert len([w for w in written if w.startswith("recordings/tlf-") and w.endswith(".avi")]) == 1
    assert len([w for w in written if w.startswith("recordings/tlf-") and w.endswith(".jsonl")]) == 1  # its sidecar
    assert len(written) == 6
