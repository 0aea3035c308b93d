"""The bridge over real pseudo-terminal pairs: the emulated display, the port vanishing and
coming back at a stable path mid-stream, and the tlf-bridge monitor / emulate / demo commands."""

from __future__ import annotations

import contextlib
import io
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import tty
import zlib
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge import cli
from firmware_bridge.emulator import DisplayEmulator
from firmware_bridge.framing import DELIMITER, frame
from firmware_bridge.link import DisplayLink, PumpThread
from firmware_bridge.masks import boundaries_from_labels
from firmware_bridge.messages import Encoding, Measurement, Status, StatusCode
from firmware_bridge.monitor import monitor
from firmware_bridge.synthetic import band_labels

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs pseudo-terminals (POSIX)")


def meas(i: int) -> Measurement:
    return Measurement(3.0 + i / 16, 0.25, 0.125, 0, True, 0xD15, 5000 + i)


def drive(link: DisplayLink, emu: DisplayEmulator, until, timeout: float = 60.0) -> bool:
    """Pump the link from this thread (as the pipeline does) until ``until()`` holds; between
    passes wait on the emulator's condition, never sleep. The timeout only ends a test that
    would otherwise hang: a loaded machine may take long, and no speed is asserted."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            return False
        link.pump(timeout=0.02)
        emu.wait_for(lambda s: until(), timeout=0.01)
    return True


@pytest.fixture
def emulator():
    emu = DisplayEmulator(320, 240).start()
    yield emu
    emu.stop()


def test_frames_reach_the_emulated_display(emulator, tmp_path):
    link = DisplayLink(emulator.port, 921600).open(handshake_timeout=60.0)
    assert link.device is not None and (link.device.width, link.device.height) == (320, 240)
    labels = band_labels(256, 256, phase=0.4)
    for i in range(10):
        link.offer(meas(i), labels)
        link.pump()
    link.offer_status(Status(StatusCode.LOW_QUALITY, 8, "low confidence"))
    assert drive(link, emulator, lambda: emulator.frames_received >= 1 and emulator.state.status is not None)
    assert link.pump(timeout=60.0)
    assert emulator.wait_idle(timeout=60.0)
    s = emulator.state
    assert s.measurement.same_on_wire(meas(9))  # the newest frame is on screen
    top, bottom = boundaries_from_labels(labels, 1, 320, 240)
    assert s.mask.top is not None or s.mask.labels is not None
    if s.mask.top is not None:
        assert np.array_equal(s.mask.top, top) and np.array_equal(s.mask.bottom, bottom)
    else:
        assert s.mask.labels.shape == (240, 320)
    assert s.status.code == StatusCode.LOW_QUALITY and emulator.crc_errors == 0
    assert all(s.counters[k] == 0 for k in ("truncated", "overlong", "crc", "malformed", "version", "type"))
    assert link.stats["frames_sent"] == emulator.frames_received
    png = emulator.render_png(tmp_path / "display.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    link.close()


def test_boundary_mask_over_a_pty_at_115200(emulator):
    link = DisplayLink(emulator.port, 115200, encoding="bounds_delta").open(handshake_timeout=60.0)
    labels = band_labels(256, 256, phase=0.1)
    link.offer(meas(0), labels)
    assert drive(link, emulator, lambda: emulator.state.masks_received >= 1)
    s = emulator.state
    top, bottom = boundaries_from_labels(labels, 1, 320, 240)
    assert s.mask.encoding == Encoding.BOUNDS_DELTA and np.array_equal(s.mask.top, top)
    link.close()


def test_port_vanishes_and_returns_at_a_stable_path_mid_stream(tmp_path):
    stable = tmp_path / "serial-by-id-tlf-display"
    first = DisplayEmulator(320, 240, link_path=stable).start()
    link = DisplayLink(str(stable), 921600, backoff=(0.05, 0.2)).open(handshake_timeout=60.0)
    labels = band_labels(256, 256)
    try:
        k = 0

        def send_until(emu, cond, timeout=60.0):
            """Offer a frame per pass, like a pipeline at about 30 fps, until ``cond()``."""
            nonlocal k
            deadline = time.monotonic() + timeout
            while not cond():
                if time.monotonic() > deadline:
                    return False
                link.offer(meas(k), labels)
                k += 1
                link.pump(timeout=0.02)
                emu.wait_for(lambda s: cond(), timeout=0.02)
            return True

        assert send_until(first, lambda: first.frames_received >= 3)
        first_port = first.port
        first.stop()  # unplugged: the pty closes and the stable path disappears
        assert not stable.exists()
        link.offer(meas(k), labels)
        k += 1
        assert drive(link, first, lambda: not link.connected, timeout=60.0)
        assert link.stats["disconnects"] == 1 and "lost" in link.stats["last_error"]
        link.offer(meas(k), labels)  # the pipeline keeps offering while the display is away
        k += 1
        link.pump()

        second = DisplayEmulator(320, 240, link_path=stable).start()  # re-enumerated under the same name
        try:
            assert drive(link, second, lambda: link.connected and second.frames_received >= 1, timeout=60.0)
            assert send_until(second, lambda: second.frames_received >= 3)
            assert link.stats["reconnects"] == 1 and link.device is not None
            assert second.port != first_port or os.readlink(stable) == second.port
            assert second.state.counters["crc"] == 0 and second.state.counters["truncated"] <= 1
            link.pump(timeout=60.0)
            assert second.wait_idle(timeout=60.0)
            assert second.state.measurement.same_on_wire(meas(k - 1))
        finally:
            second.stop()
    finally:
        link.close()


def test_pump_thread_runs_the_link_for_tools(emulator):
    link = DisplayLink(emulator.port, 921600).open()
    with PumpThread(link, interval=0.01):
        for i in range(5):
            link.offer(meas(i), band_labels(64, 64, phase=i / 5))
        assert emulator.wait_for(lambda s: s.measurement is not None and s.measurement.t_capture_us == 5004, timeout=60.0)
    link.close()


class Opened(io.StringIO):
    """An output stream that signals the monitor's first line (written once the port is open:
    opening a port discards what arrived before)."""

    def __init__(self):
        super().__init__()
        self.opened = threading.Event()

    def write(self, text):
        self.opened.set()
        return super().write(text)


def run_monitor_on(path, data: bytes, argv_or_kwargs, master, via_cli: bool, monkeypatch=None):
    out = Opened()
    result = {}
    if via_cli:
        monkeypatch.setattr(sys, "stdout", out)
        target = lambda: result.update(rc=cli.main(argv_or_kwargs))  # noqa: E731
    else:
        target = lambda: result.update(dev=monitor(path, out=out, **argv_or_kwargs))  # noqa: E731
    t = threading.Thread(target=target)
    t.start()
    assert out.opened.wait(60)
    os.write(master, data)
    t.join(60)
    assert not t.is_alive()
    return out.getvalue(), result


def test_monitor_command_prints_a_live_pty(monkeypatch):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    m = Measurement(4.25, 0.5, float("nan"), 1, False, 7, 8)
    data = (b"junk" + DELIMITER + frame(m.TYPE, 0, 10, m.pack())
            + frame(Status.TYPE, 1, 20, Status(StatusCode.NO_SIGNAL, 0, "no signal").pack()))
    try:
        out, result = run_monitor_on(path, data, ["monitor", path, "--count", "2", "--seconds", "5"], master, True,
                                     monkeypatch)
    finally:
        os.close(master)
        os.close(slave)
    assert result["rc"] == 0
    assert "MEASUREMENT seq=0" in out and "thickness=4.2500" in out and "unit=px" in out
    assert "STATUS seq=1" in out and "NO_SIGNAL" in out and "junk" not in out  # joined mid-stream: skipped


def test_monitor_summarises_masks_and_counts_drops():
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        link = DisplayLink(path, 921600, 64, 48).open()
        link.offer(meas(0), band_labels(48, 64))
        link.pump(timeout=60.0)
        sent = os.read(master, 65536)  # what the host wrote: replay it to the monitor, plus a cut frame
        link.close()
        out, result = run_monitor_on(path, sent + b"\x09\x01\x02\x00", dict(count=3, seconds=5), master, False)
    finally:
        os.close(master)
        os.close(slave)
    assert "HELLO" in out and "MASK" in out and "band in 64/64 columns" in out and "DROP truncated" in out
    assert result["dev"].state.counters["truncated"] == 1


def test_monitor_names_a_missing_port(capsys, tmp_path):
    assert cli.main(["monitor", str(tmp_path / "nothing-here")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tlf-bridge: error: cannot open display port") and err.count("\n") == 1


@contextlib.contextmanager
def emulator_command(stable, *args):
    """`tlf-bridge emulate --link STABLE --quiet ARGS` in a subprocess, once it has printed its pty
    path and its link; killed at the end if still running."""
    proc = subprocess.Popen([sys.executable, "-m", "firmware_bridge.cli", "emulate", "--link", str(stable), "--quiet",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the emulator printed no pty path"
        assert proc.stdout.readline().strip().startswith("/dev/")
        assert proc.stdout.readline().startswith("stable path")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_emulate_command_plays_the_display_for_the_demo_command(tmp_path):
    stable = tmp_path / "display"
    png = tmp_path / "shown.png"
    with emulator_command(stable, "--frames", "5", "--png", str(png), "--seconds", "30") as proc:
        assert cli.main(["demo", str(stable), "--baud", "921600", "--fps", "40", "--seconds", "2"]) == 0
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    received = re.search(r"received (\d+) frames", out)
    assert received and int(received.group(1)) >= 1, out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_render_without_opencv_writes_a_plain_png(tmp_path, monkeypatch, emulator):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now fails
    link = DisplayLink(emulator.port, 921600, encoding="bounds16").open(handshake_timeout=60.0)
    link.offer(meas(0), band_labels(240, 320))
    assert drive(link, emulator, lambda: emulator.state.masks_received >= 1)
    link.close()
    data = emulator.render_png(tmp_path / "plain.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (w, h) == (320, 240)
    idat = data.index(b"IDAT")
    raw = zlib.decompress(data[idat + 4 : idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")])
    rows = np.frombuffer(raw, np.uint8).reshape(240, 1 + 320 * 3)[:, 1:].reshape(240, 320, 3)
    assert (rows == (250, 200, 40)).all(axis=2).any()  # the band is drawn


def test_stop_removes_the_link_before_it_gives_up_the_pty(tmp_path, monkeypatch):
    """Once the pty is closed its /dev/pts number can go to another emulator making the same
    link; the link must be gone by then, or this stop() would remove the other's."""
    link = tmp_path / "display"
    emu = DisplayEmulator(320, 240, link_path=link).start()
    slave, seen = emu._slave, []
    real_close = os.close

    def close(fd):
        if fd == slave:
            seen.append(os.path.lexists(link))
        real_close(fd)

    monkeypatch.setattr(os, "close", close)
    emu.stop()
    monkeypatch.undo()
    assert seen == [False] and not os.path.lexists(link)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_an_emulator_stopped_by_a_signal_removes_its_link(tmp_path, sig):
    """Stopped by a service manager (SIGTERM) or a closing terminal (SIGHUP), the emulator ends
    as for Ctrl-C: it prints its last line and removes the link it made (a link left behind
    would name a pty another program may get next)."""
    stable = tmp_path / "display"
    with emulator_command(stable, "--seconds", "120") as proc:
        assert os.path.islink(stable)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "received 0 frames" in out
    assert not os.path.lexists(stable)
