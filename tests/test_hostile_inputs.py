"""Hostile but realistic input, each case through the real command line in a subprocess (issue 20).

Every case runs `tlf-edge` (or `tlf-bridge`) as a user would, in a sandbox: a working directory,
HOME and TMPDIR of its own and a data folder. After every run the sandbox is checked: nothing
outside the data folder changed, and every JSON file and every line of every JSON-lines log in
it parses as strict JSON (no NaN), to the last line. A refusal is one `tlf-edge: error:` line,
exit code 2 for bad input (found before anything runs), 1 for a run that failed or measured
nothing, and never a traceback.

The numbers in the test names are the cases of issue 20.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.model.bundle import DEMO_BUNDLE
from sandbox import listing, strict_json, wait_until

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX (pseudo-terminals, signals)")
CLIP = "phantom://clip?seed=5&frames=4&size=256x256"
ENDLESS = "phantom://clip?seed=4&frames=1000000&size=256x256"


def check_data(data: Path) -> None:
    """Every JSON file and every JSON-lines log under `data` parses, to its last line."""
    if not data.is_dir() or data.is_symlink():
        return
    for p in data.rglob("*"):
        if p.is_symlink() or not p.is_file():
            continue
        if p.suffix == ".jsonl":
            text = p.read_text()
            assert text == "" or text.endswith("\n"), f"{p}: the last line is cut"
            for n, line in enumerate(text.splitlines(), 1):
                try:
                    strict_json(line)
                except ValueError as e:
                    raise AssertionError(f"{p}:{n}: {e}: {line[:200]!r}") from None
        elif p.suffix == ".json":
            strict_json(p.read_text())


@dataclass
class Cart:
    """A sandbox for one case: root/{cwd,home,tmp,etc,data}."""

    root: Path

    def __post_init__(self):
        for d in ("cwd", "home", "tmp", "etc", "data"):
            (self.root / d).mkdir(exist_ok=True)

    cwd = property(lambda self: self.root / "cwd")
    etc = property(lambda self: self.root / "etc")
    data = property(lambda self: self.root / "data")

    def env(self, **extra) -> dict:
        return {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(self.root / "home"), "TMPDIR": str(self.root / "tmp"),
                **extra}

    def config(self, text: str, name: str = "cart.toml") -> Path:
        path = self.etc / name
        path.write_text("version = 1\n" + text)
        return path

    def cart_config(self, source: str = CLIP, display: str = "none", extra: str = "", console: bool = False,
                    name: str = "cart.toml") -> Path:
        """A config naming its source and display, writing under the data folder; console: the
        live status line on, redrawn 20 times a second."""
        return self.config(f"[source]\nurl = '{source}'\n[display]\nurl = '{display}'\n[storage]\ndata_dir = '{self.data}'\n"
                           + ("[console]\nhz = 20.0\n" if console else "[console]\nenabled = false\n") + extra, name)

    def run(self, *args, prog: str = "edge.cli", timeout: float = 240, outside: bool = False,
            **env) -> subprocess.CompletedProcess:
        """Run the command; outside: it is meant to change something outside the data folder."""
        before = listing(self.root, self.data)
        r = subprocess.run([sys.executable, "-m", prog, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                           cwd=self.cwd, env=self.env(**env))
        if not outside:
            assert listing(self.root, self.data) == before, "a run wrote outside its data folder\n" + r.stderr
        check_data(self.data)
        return r

    def start(self, *args, prog: str = "edge.cli", **env) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-u", "-m", prog, *map(str, args)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=self.cwd, env=self.env(**env))

    def run_dir(self) -> Path:
        runs = [d for d in (self.data / "runs").iterdir() if d.is_dir()]
        assert len(runs) == 1, runs
        return runs[0]


@pytest.fixture
def cart(tmp_path) -> Cart:
    return Cart(tmp_path)


def refused(r: subprocess.CompletedProcess, rc: int, *words: str, prog: str = "tlf-edge", only: bool = False) -> str:
    """The one error line of a refused command, after checking its exit code and that no
    traceback was printed; `words` must be in it; only: it is all that went to stderr."""
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode == rc, f"exit {r.returncode}, expected {rc}\n{r.stdout}\n{r.stderr}"
    errors = [line for line in r.stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(errors) == 1, r.stderr
    for w in words:
        assert w in errors[0], errors[0]
    if only:
        assert r.stderr.strip() == errors[0], r.stderr
    return errors[0]


def source_refused(cart: Cart, url: str, words: str) -> None:
    """`tlf-edge run --source URL` is refused at start in one line holding `words`."""
    refused(cart.run("run", "--source", url, "--display", "none", "--out", cart.data / "runs"), 2, words, only=True)


def edited_bundle(cart: Cart, change) -> Path:
    bundle = cart.etc / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))
    return bundle


# -- 1: a config must name its source and display; a simulated source says so everywhere ----------


@pytest.mark.parametrize("sections, missing", [
    ("[display]\nurl = 'none'\n", "[source] url: not set"),
    ("[source]\nurl = 'phantom://clip'\n", "[display] url: not set"),
    ("[console]\nenabled = false\n", "[source] url: not set"),
])
def test_01_a_config_that_names_no_source_or_display_is_refused(cart, sections, missing):
    cfg = cart.config(sections + f"[storage]\ndata_dir = '{cart.data}'\n")
    refused(cart.run("run", "--config", cfg), 2, missing, "cart.toml", only=True)
    assert not any(cart.data.iterdir())


def test_01_a_phantom_run_is_marked_simulated_on_console_log_summary_and_display(cart):
    from firmware_bridge.emulator import DisplayEmulator

    port = cart.root / "display"
    cfg = cart.cart_config(ENDLESS, str(port), "[log]\ncsv = true\n", console=True)
    with DisplayEmulator(320, 240, link_path=port) as emu:
        p = cart.start("run", "--config", cfg)
        try:
            shown = emu.wait_for(lambda s: s.status is not None and s.status.text == "SIMULATED" and s.frames_received, 120)
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        last = emu.state.status
    assert shown, "the display was never told SIMULATED"
    assert p.returncode == 0, err
    assert last.text == "runtime stopped, SIMULATED"
    assert "SIMULATED  frame" in out and "(SIMULATED: the built-in phantom scanner" in out
    run_dir = cart.run_dir()
    assert strict_json((run_dir / "summary.json").read_text())["simulated"] is True
    records = [strict_json(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
    assert records and all(r["simulated"] is True for r in records)
    rows = (run_dir / "frames.csv").read_text().splitlines()
    assert rows[0].endswith(",simulated") and all(row.endswith(",1") for row in rows[1:])
    check_data(cart.data)


def test_01_doctor_fails_a_cart_config_on_the_phantom(cart):
    r = cart.run("doctor", "--config", cart.cart_config(display="emulate"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "FAIL  capture    'phantom://clip" in r.stdout and "SIMULATED" in r.stdout
    assert "FAIL  display    'emulate'" in r.stdout


# -- 2: the emulator's --link never replaces or removes what it did not make -----------------------


@pytest.mark.parametrize("kind", ["file", "symlink", "folder"])
def test_02_emulate_refuses_an_existing_link_path_and_leaves_it_alone(cart, kind):
    target = cart.root / "system-file"
    target.write_text("precious\n")
    link = cart.root / "scratch"
    if kind == "file":
        link.write_text("mine\n")
    elif kind == "symlink":
        link.symlink_to(target)
    else:
        link.mkdir()
    sibling = cart.root / "scratch.new"
    sibling.write_text("also mine\n")
    r = cart.run("emulate", "--link", link, "--seconds", "1", "--quiet", prog="firmware_bridge.cli")
    refused(r, 2, "already exists", "refusing to replace it", prog="tlf-bridge", only=True)
    assert target.read_text() == "precious\n" and sibling.read_text() == "also mine\n"
    if kind == "file":
        assert link.read_text() == "mine\n"
    elif kind == "symlink":
        assert link.is_symlink() and os.readlink(link) == str(target)
    else:
        assert link.is_dir()


def test_02_emulate_replaces_only_a_stale_link_of_its_own_and_removes_it_at_exit(cart):
    link = cart.root / "display"
    gone = "/dev/pts/999999"
    assert not os.path.exists(gone)
    link.symlink_to(gone)  # what a killed emulator leaves
    r = cart.run("emulate", "--link", link, "--seconds", "0.5", "--quiet", prog="firmware_bridge.cli", outside=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith(f"stable path {link} -> /dev/")
    assert not os.path.lexists(link)


# -- 3: the whole bundle is sealed ----------------------------------------------------------------


@pytest.mark.parametrize("change", [
    lambda m: m["thickness_calibration"].update(b=m["thickness_calibration"]["b"] * 1.9),
    lambda m: m["preprocess"].update(scale=m["preprocess"]["scale"] * 1.2),
], ids=["response", "preprocess-scale"])
def test_03_an_edited_manifest_is_refused_by_run_info_and_doctor(cart, change):
    bundle = edited_bundle(cart, change)
    cfg = cart.cart_config(extra=f"[model]\nbundle = '{bundle}'\n")
    refused(cart.run("run", "--config", cfg), 2, "does not match its manifest_sha256", only=True)
    refused(cart.run("info", bundle), 2, "refusing an edited manifest", only=True)
    r = cart.run("doctor", "--config", cfg)
    assert r.returncode == 1 and "FAIL  model      manifest" in r.stdout and "manifest_sha256" in r.stdout
    assert not any(cart.data.iterdir())


def test_03_info_verifies_the_sealed_bundle(cart):
    r = cart.run("info")
    assert r.returncode == 0, r.stderr
    assert "manifest_sha256" in strict_json(r.stdout) and "verified: model sha256" in r.stderr


def test_03_a_reader_that_goes_away_ends_info_quietly():
    """`tlf-edge info | head`: once the pipe's reader has gone, info stops without a word, as a
    tool killed by SIGPIPE would (exit 141), not with an error line about the pipe."""
    r, w = os.pipe()
    os.close(r)  # no reader at all: the first write fails
    with os.fdopen(w, "wb") as out:
        done = subprocess.run([sys.executable, "-m", "edge.cli", "info"], stdout=out, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGPIPE and "Error" not in done.stderr, done.stderr


# -- helpers for the cases below ----------------------------------------------------------------


@pytest.fixture
def mount_tmpfs():
    """Mounts a small tmpfs (root only; the case is skipped elsewhere) and unmounts it after."""
    mounted = []

    def mount(where: Path, size: str, read_only: bool = False) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        opts = f"size={size}" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], check=False)


def image_folder(path: Path, images) -> Path:
    import cv2

    path.mkdir(parents=True)
    for i, img in enumerate(images):
        assert cv2.imwrite(str(path / f"{i:03d}.png"), img)
    return path


def read_until(p: subprocess.Popen, pattern: str, timeout: float = 120) -> str:
    """What the process printed on stdout until `pattern` (a regular expression) appears."""
    import re
    import select
    import time

    seen, deadline = "", time.monotonic() + timeout
    while not re.search(pattern, seen):
        assert time.monotonic() < deadline and p.poll() is None, seen + p.stderr.read() if p.poll() is not None else seen
        ready, _, _ = select.select([p.stdout], [], [], 1.0)
        if ready:
            seen += os.read(p.stdout.fileno(), 4096).decode(errors="replace")
    return seen


def stop(p: subprocess.Popen, sig=signal.SIGTERM) -> tuple[str, str]:
    try:
        p.send_signal(sig)
        return p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


# -- 4: a full disk: one line, exit 1, every log whole to its last line --------------------------


def test_04_a_full_disk_under_a_logging_run_is_one_line_and_the_log_stays_whole(cart, mount_tmpfs):
    mount_tmpfs(cart.data, "200k")
    (cart.data / "other-files.bin").write_bytes(bytes(180_000))  # what the disk held already
    r = cart.run("run", "--config", cart.cart_config("phantom://clip?seed=5&frames=80&size=256x256"))
    line = refused(r, 1, "log output stopped", "No space left on device")
    assert "tlf-edge run summary" in r.stdout  # the console still gets the summary
    assert "summary.json not written" in line or (cart.run_dir() / "summary.json").is_file()
    log = cart.run_dir() / "frames.jsonl"
    assert 0 < len(log.read_text().splitlines()) < 80  # check_data: every line whole, the last too


# -- 5: a data folder that is a file, read-only, under /proc or missing -------------------------


@pytest.mark.parametrize("kind, words", [
    ("file", "is not a folder"),
    ("missing", "no such folder (it is not created: is its drive mounted?)"),
    ("proc", "/proc/self"),
    ("read-only", "read-only file system"),
])
def test_05_a_data_dir_that_cannot_hold_the_run_is_refused(cart, mount_tmpfs, kind, words):
    target = {"file": cart.root / "a-file", "missing": cart.root / "usb-stick", "proc": Path("/proc/self"),
              "read-only": cart.root / "ro"}[kind]
    if kind == "file":
        target.write_text("not a folder\n")
    elif kind == "read-only":
        mount_tmpfs(target, "64k", read_only=True)
    cfg = cart.config(f"[source]\nurl = '{CLIP}'\n[display]\nurl = 'none'\n[storage]\ndata_dir = '{target}'\n")
    refused(cart.run("run", "--config", cfg), 2, "[storage] data_dir", words, only=True)
    assert not (cart.root / "usb-stick").exists()  # not created
    r = cart.run("doctor", "--config", cfg)
    assert r.returncode == 1 and "FAIL  disk       [storage] data_dir" in r.stdout, r.stdout


# -- 6: thread counts beyond the machine ----------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["run", "--threads", "100000"],
    ["run", "--set", "model.num_threads=100000"],
    ["bench", "--threads", "1,100000", "--frames", "2"],
])
def test_06_an_impossible_thread_count_is_refused(cart, args):
    extra = ["--source", CLIP, "--display", "none", "--out", cart.data / "runs"] if args[0] == "run" else ["--out", cart.data / "b"]
    refused(cart.run(*args, *extra), 2, "LiteRT threads", "100000", only=True)


def test_06_more_threads_than_cpus_run_on_the_cpus_there_are_with_a_warning(cart):
    """A config written for a bigger cart still runs: the count is lowered to this machine's CPUs."""
    from edge.host import usable_cpus

    asked = usable_cpus() + 2
    r = cart.run("run", "--source", CLIP, "--display", "none", "--out", cart.data / "runs", "--quiet",
                 "--threads", asked)
    assert r.returncode == 0, r.stderr
    assert f"tlf-edge: warning: {asked} LiteRT threads asked for" in r.stderr
    assert f"using {usable_cpus()}" in r.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_06_bench_with_its_default_threads_runs_on_a_one_cpu_cart(cart):
    cpu = min(os.sched_getaffinity(0))
    r = subprocess.run([sys.executable, "-m", "edge.cli", "bench", "--frames", "2", "--out", str(cart.data / "b")],
                       capture_output=True, text=True, timeout=600, cwd=cart.cwd, env=cart.env(),
                       preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    assert r.returncode == 0, r.stderr
    runs = json.loads((cart.data / "b" / "bench.json").read_text())["runs"]
    assert [run["threads"] for run in runs] == [1]  # 1 and 2 asked for: both are 1 on one CPU


# -- 7: a fixed B-mode rectangle off the screen ---------------------------------------------------


@pytest.mark.parametrize("rect", ["[5000, 5000, 100, 100]", "[600, 400, 100, 100]"])
def test_07_a_roi_rect_off_the_screen_is_one_line(cart, rect):
    cfg = cart.cart_config("phantom://screen?seed=3&frames=3&size=640x480", extra=f"[roi]\nrect = {rect}\n")
    refused(cart.run("run", "--config", cfg), 2, "[roi] rect", "does not fit the 640x480 screen")
    runs = cart.data / "runs"
    assert not runs.exists() or not list(runs.iterdir()), "a refused run left a run folder"


# -- 8, 12: hostile packets on the display side ---------------------------------------------------


def hostile_packets() -> bytes:
    """A STATUS whose text is not UTF-8, and a MEASUREMENT of 5e9 mm: CRC-valid, well framed."""
    import struct

    from firmware_bridge.framing import DELIMITER, frame
    from firmware_bridge.messages import Measurement, MessageType

    status = struct.pack("<BI", 4, 0) + b"caf\xe9 \xff fault"
    huge = Measurement(5e9, 0.1, 0.1, 0, True, 1, 1).pack()
    return DELIMITER + frame(MessageType.STATUS, 0, 0, status) + DELIMITER + frame(MessageType.MEASUREMENT, 1, 0, huge) + DELIMITER


def test_08_12_emulate_draws_a_status_that_is_not_utf8_and_never_shows_an_impossible_value(cart):
    import serial

    png = cart.data / "display.png"
    p = cart.start("emulate", "--frames", "1", "--png", png, "--seconds", "60", prog="firmware_bridge.cli")
    try:
        port = p.stdout.readline().strip()
        assert port.startswith("/dev/"), port + p.stderr.read()
        with serial.serial_for_url(port, baudrate=115200) as link:
            link.write(hostile_packets())
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 0, err  # not a segmentation fault in the text drawing
    assert "Traceback" not in err and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "TLF 5000000000" not in out and "TLF --" in out


def test_08_monitor_draws_a_status_that_is_not_utf8(cart):
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    png = cart.data / "monitor.png"
    try:
        p = cart.start("monitor", os.ttyname(slave), "--count", "2", "--png", png, prog="firmware_bridge.cli")
        read_until(p, "monitoring")
        os.write(master, hostile_packets())
        out, err = p.communicate(timeout=60)
    finally:
        os.close(master)
        os.close(slave)
    assert p.returncode == 0, err
    assert "Traceback" not in err and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_12_the_display_caption_refuses_impossible_values_and_unprintable_text():
    from firmware_bridge.device import DisplayState
    from firmware_bridge.messages import Measurement, Status
    from firmware_bridge.render import caption

    state = DisplayState(320, 240, measurement=Measurement(5e9, 0.1, 0.1, 0, True, 1, 1),
                         status=Status(4, 0, b"caf\xe9".decode("utf-8", "surrogateescape")))
    assert caption(state) == ["TLF --", "fault: caf?"]
    for value, shown in ((-1.0, "--"), (float("nan"), "--"), (100.0, "100.00 mm"), (1.04, "1.04 mm")):
        state.measurement = Measurement(value, 0.1, 0.1, 0, True, 1, 1)
        assert caption(state)[0] == f"TLF {shown}"


# -- 9: bench misuse, phantom options out of range -----------------------------------------------


def test_09_bench_misuse_is_one_line(cart, mount_tmpfs):
    import numpy as np

    for frames in ("0", "-3"):
        refused(cart.run("bench", "--frames", frames, "--out", cart.data / "b"), 2, "--frames must be at least 1", only=True)
    (cart.root / "a-file").write_text("x\n")
    refused(cart.run("bench", "--frames", "2", "--threads", "1", "--out", cart.root / "a-file"), 2, "--out", only=True)
    black = image_folder(cart.data / "black", [np.zeros((480, 640), np.uint8)] * 2)
    refused(cart.run("bench", "--frames", "2", "--threads", "1", "--source", black, "--out", cart.data / "b"), 1,
            "delivered no frame to measure")
    ro = mount_tmpfs(cart.root / "ro", "64k", read_only=True)  # last: it skips where mounting is not allowed
    refused(cart.run("bench", "--frames", "2", "--threads", "1", "--out", ro), 2, "read-only file system", only=True)


@pytest.mark.parametrize("url, words", [
    ("phantom://clip?size=0x0", "size '0x0' is too small"),
    ("phantom://clip?seed=-1", "seed '-1' is out of range"),
    ("phantom://clip?frames=0", "frames '0' must be at least 1"),
    ("phantom://screen?depth=nan", "must be finite numbers"),
])
def test_09_phantom_options_out_of_range_are_one_line(cart, url, words):
    source_refused(cart, url, words)


# -- 10, 11: a run that measures nothing ----------------------------------------------------------


@pytest.mark.parametrize("kind, why", [
    ("black", "no B-mode region was found on 3 screens"),
    ("white", "all 3 frames were rejected"),
    ("noise", "all 3 frames were rejected"),
])
def test_10_11_a_run_that_measures_nothing_says_why_exits_1_and_writes_strict_json(cart, kind, why):
    import numpy as np

    rng = np.random.default_rng(1)
    make = {"black": lambda: np.zeros((480, 640), np.uint8), "white": lambda: np.full((256, 256), 255, np.uint8),
            "noise": lambda: rng.integers(0, 256, (256, 256), dtype=np.uint8)}[kind]
    folder = image_folder(cart.etc / kind, [make() for _ in range(3)])
    rect = "" if kind == "black" else "[roi]\nrect = [0, 0, 256, 256]\n[calibration]\nspacing_mm = [0.1]\n"
    r = cart.run("run", "--config", cart.cart_config(str(folder), extra=rect))
    refused(r, 1, "no frame was measured", why)
    assert f"why        no frame was measured: {why}" in r.stdout
    summary = strict_json((cart.run_dir() / "summary.json").read_text())  # strict: no NaN
    assert summary["accepted"] == 0 and why in summary["nothing_measured"] and summary["thickness_median"] is None
    if summary["frames"] == 0:
        assert summary["latency_ms"] == {"p50": None, "p90": None}  # was NaN, which is not JSON


# -- 12: values outside physics -------------------------------------------------------------------


def test_12_a_dicom_pixel_size_no_scanner_has_is_not_used(cart):
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(REPO / "tests" / "data" / "dicom_us" / "OBXXXX1A.dcm")  # a real Philips file
    for region in ds.SequenceOfUltrasoundRegions:
        region.PhysicalDeltaX = region.PhysicalDeltaY = 10.0  # 10 cm per pixel
    path = cart.etc / "ten-cm-pixels.dcm"
    ds.save_as(path)
    r = cart.run("run", "--config", cart.cart_config(str(path)))
    assert "Traceback" not in r.stderr and r.returncode in (0, 1), r.stderr
    run_dir = cart.run_dir()
    records = [strict_json(line) for line in (run_dir / "frames.jsonl").read_text().splitlines()]
    assert records and all(rec["unit"] == "px" and "UNCALIBRATED" in rec["flag_names"] for rec in records)
    summary = strict_json((run_dir / "summary.json").read_text())
    assert "100 x 100 mm per pixel is outside 0.001-10 mm: not used" in summary["source_note"]
    # the console's b-mode line says why there is no scale, not that the file states none
    bmode = next(line for line in r.stdout.splitlines() if line.strip().startswith("b-mode"))
    assert "not used" in bmode and "states no spacing" not in bmode, bmode


@pytest.mark.parametrize("baud", ["7", str(10**17)])
def test_12_a_baud_rate_no_port_runs_at_is_refused(cart, baud):
    refused(cart.run("run", "--source", CLIP, "--baud", baud, "--out", cart.data / "runs"), 2, "[display] baud", only=True)
    refused(cart.run("demo", "loop://", "--baud", baud, "--seconds", "0.1", prog="firmware_bridge.cli"), 2,
            "baudrate must be a whole number", prog="tlf-bridge", only=True)


# -- 13: one display, one runtime -----------------------------------------------------------------


def test_13_a_second_runtime_on_the_same_display_port_is_refused(cart):
    from firmware_bridge.emulator import DisplayEmulator

    port = cart.root / "display"
    with DisplayEmulator(320, 240, link_path=port) as emu:
        first = cart.start("run", "--config", cart.cart_config(ENDLESS, str(port)))
        try:
            assert emu.wait_frames(2, 120), "the first runtime sent nothing"
            second = cart.run("run", "--config", cart.cart_config(CLIP, str(port), name="second.toml"))
            refused(second, 2, "is in use by another program", only=True)
            # doctor on the cart while its runtime drives the display (install.sh after an upgrade)
            checked = cart.run("doctor", "--config", cart.cart_config(CLIP, str(port), name="doctor.toml"))
            display = [line for line in checked.stdout.splitlines() if " display " in f" {line} "]
            assert display and display[0].startswith("PASS") and "driven by the running tlf-edge" in display[0], \
                checked.stdout
            lost = emu.state.counters["lost"]
        finally:
            out, err = stop(first)
    assert first.returncode == 0, err
    assert lost == 0  # no interleaved stream reached the display


def test_13_doctor_names_another_program_that_holds_the_display_port(cart):
    from firmware_bridge.emulator import DisplayEmulator

    port = cart.root / "display"
    hold = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n")
    with DisplayEmulator(320, 240, link_path=port):
        holder = subprocess.Popen([sys.executable, "-c", hold, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            checked = cart.run("doctor", "--config", cart.cart_config(CLIP, str(port)))
        finally:
            holder.stdin.close()
            holder.wait(60)
    display = [line for line in checked.stdout.splitlines() if " display " in f" {line} "]
    assert display and display[0].startswith("FAIL") and f"by pid {holder.pid}" in display[0], checked.stdout
    assert checked.returncode != 0


# -- 14: SIGHUP -----------------------------------------------------------------------------------


def test_14_sighup_stops_the_run_like_sigterm(cart):
    import cv2

    cfg = cart.cart_config(ENDLESS, console=True, extra="[recording]\nenabled = true\nmin_free_mb = 1\n")
    p = cart.start("run", "--config", cfg)
    read_until(p, r"frame +([5-9]|\d{2,}) ")
    out, err = stop(p, signal.SIGHUP)
    assert p.returncode == 0, err
    assert "tlf-edge run summary" in out
    summary = strict_json((cart.run_dir() / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGHUP" and summary["frames"] >= 5
    video = next((cart.data / "recordings").glob("*.avi"))
    cap = cv2.VideoCapture(str(video), cv2.CAP_OPENCV_MJPEG)  # the strict reader: the AVI index was written
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == summary["frames"]
    check_data(cart.data)


# -- 15: what reached the display -----------------------------------------------------------------


def test_15_a_display_that_vanished_and_came_back_is_in_the_summary(cart):
    from firmware_bridge.emulator import DisplayEmulator

    port = cart.root / "display"
    first = DisplayEmulator(320, 240, link_path=port).start()
    p = cart.start("run", "--config", cart.cart_config(ENDLESS, str(port)))
    second = None
    try:
        assert first.wait_frames(2, 120)
        first.stop()  # unplugged
        log = cart.run_dir() / "frames.jsonl"
        away = len(log.read_text().splitlines())
        wait_until(lambda: len(log.read_text().splitlines()) >= away + 10, 60, "frames logged while the display is away")
        second = DisplayEmulator(320, 240, link_path=port).start()  # plugged back in
        assert second.wait_frames(2, 60)
        out, err = stop(p)
    finally:
        if p.poll() is None:
            stop(p)
        if second is not None:
            second.stop()
    assert p.returncode == 0, err
    d = strict_json((cart.run_dir() / "summary.json").read_text())["display"]
    assert d["port"] == str(port) and d["answered"] is True
    assert d["disconnects"] >= 1 and d["reconnects"] >= 1 and d["seconds_disconnected"] > 0
    assert d["frames_not_sent"] == d["frames_offered"] - d["frames_sent"] >= 1
    assert f"display    {port}: " in out and "lost " in out


def test_15_a_display_that_never_answers_is_in_the_summary(cart):
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    try:  # nobody reads the other end: a display that is there but dead
        r = cart.run("run", "--config", cart.cart_config("phantom://clip?seed=5&frames=10&size=256x256", os.ttyname(slave)))
    finally:
        os.close(master)
        os.close(slave)
    assert r.returncode == 0, r.stderr
    d = strict_json((cart.run_dir() / "summary.json").read_text())["display"]
    assert d["answered"] is False and d["frames_offered"] == 10
    assert "the display never answered" in r.stdout


# -- 16: symlinks out of the data folder ----------------------------------------------------------


@pytest.mark.parametrize("key, folder", [("[log] directory", "runs"), ("[recording] path", "recordings")])
def test_16_a_symlink_inside_data_dir_that_leads_outside_is_refused(cart, key, folder):
    outside = cart.root / "elsewhere"
    outside.mkdir()
    (cart.data / folder).symlink_to(outside)
    cfg = cart.cart_config(extra="[recording]\nenabled = true\nmin_free_mb = 1\n")
    refused(cart.run("run", "--config", cfg), 2, key, "is outside [storage] data_dir", "through a symlink", only=True)
    assert not any(outside.iterdir())


# -- 17: a byte-order mark; malformed or unknown URL options --------------------------------------


def test_17_a_config_with_a_byte_order_mark_runs(cart):
    cfg = cart.cart_config()
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes())
    r = cart.run("run", "--config", cfg)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("url, words", [
    ("file:///data/clip.mp4?pace=abc", "pace='abc' is not 1 or 0"),
    ("dicom:///data/cine.dcm?crop=abc", "crop='abc' is not 1 or 0"),
    ("file:///data/clip.mp4?speed=2", "unknown video option(s) ['speed']"),
    ("phantom://clip?seed=1&seed=2", "'seed' is given twice"),
    ("phantom://clip?live=maybe", "live='maybe'"),
    ("v4l2:///dev/video0?width=abc", "width 'abc' must be a number of 0 or more"),
    ("v4l2:///dev/video0?height=12.5", "height '12.5' must be a whole number of pixels"),
    ("phantom://screen?depth=nan", "depth 'nan' and width '40' (mm) must be finite numbers"),
    ("file://data/clip.mp4", "takes an absolute path"),
    ("http://[::1", "malformed source URL"),
])
def test_17_a_malformed_or_unknown_url_option_is_refused_by_name(cart, url, words):
    source_refused(cart, url, words)


# -- 18: huge pictures, pipes named like pictures -------------------------------------------------


def test_18_a_huge_image_and_a_fifo_in_a_folder_are_skipped_not_decoded_or_waited_on(cart):
    import cv2
    import numpy as np

    from edge.sim import phantom

    folder = cart.etc / "frames"
    image_folder(folder, [phantom.scan(s, (256, 256)).image for s in (1, 2)])
    assert cv2.imwrite(str(folder / "999-huge.png"), np.zeros((8000, 8000), np.uint8))  # 64 M pixels
    os.mkfifo(folder / "500-a.png")  # nobody writes to it: reading it would wait for ever
    r = cart.run("run", "--config", cart.cart_config(str(folder), extra="[calibration]\nspacing_mm = [0.1]\n"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    summary = strict_json((cart.run_dir() / "summary.json").read_text())
    assert summary["frames"] == 2 and summary["oversize_frames"] == 1
    assert "999-huge.png is 8000x8000 pixels, more than [source] max_pixels (16777216)" in summary["source_note"]
    assert "too large  1 images skipped" in r.stdout


def test_18_a_video_larger_than_max_pixels_is_refused(cart):
    import cv2

    from edge.sim import phantom

    clip = cart.etc / "clip.avi"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (256, 256))
    for scan in phantom.clip(3, frames=2, shape=(256, 256)):
        w.write(cv2.cvtColor(scan.image, cv2.COLOR_GRAY2BGR))
    w.release()
    cfg = cart.config(f"[source]\nurl = '{clip}'\nmax_pixels = 10000\n[display]\nurl = 'none'\n"
                      f"[storage]\ndata_dir = '{cart.data}'\n")
    refused(cart.run("run", "--config", cfg), 2, "256x256 pixels, more than [source] max_pixels (10000)", only=True)


# -- 19: third-party noise ------------------------------------------------------------------------


def test_19_opencv_and_litert_noise_stays_off_the_console(cart):
    real = REPO.parent / "shared" / "realdata" / "dltrack_apo" / "images"
    names = ["img_00036.tif", "img_00049.tif"]  # real screenshots whose TIFF tags OpenCV warns about
    if not all((real / n).is_file() for n in names):
        pytest.skip("shared real data (../shared/realdata/dltrack_apo) is absent")
    folder = cart.etc / "screens"
    folder.mkdir()
    for n in names:
        shutil.copy(real / n, folder / n)
    r = cart.run("run", "--config", cart.cart_config(str(folder)))
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr
    noise = [line for line in r.stderr.splitlines() if line.strip() and not line.startswith("tlf-edge: error:")]
    assert not noise, r.stderr  # no "[ WARN:0@...] TIFF_Warning", no "INFO: Created TensorFlow Lite XNNPACK"


# -- 20: the recording's text ---------------------------------------------------------------------


def test_20_the_recorded_reading_is_legible_and_says_filtered(cart):
    """A 1280x720 screen video recorded with the overlay: in frames that carry the filtered value,
    the text area of the decoded recording matches a fresh drawing of the expected words: each
    glyph yellow, each pixel of its rim dark (outline and glyphs drawn apart drift along the
    line and fail both)."""
    import cv2
    import numpy as np

    from edge.sim import phantom_screen as ps
    from edge.sinks.recording import text_layout, text_masks

    clip = cart.etc / "screen.avi"
    ps.write_clip(clip, 11, frames=8, size=(1280, 720))
    r = cart.run("run", "--config", cart.cart_config(str(clip), extra="[recording]\nenabled = true\nmin_free_mb = 1\n"))
    assert r.returncode == 0, r.stderr
    records = [strict_json(line) for line in (cart.run_dir() / "frames.jsonl").read_text().splitlines()]
    cap = cv2.VideoCapture(str(next((cart.data / "recordings").glob("*.avi"))))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    assert len(frames) == len(records) == 8

    def on_a_boundary(v):  # the log keeps 4 decimals: a value this close to x.xx5 may print either way
        return abs((v * 100) % 1 - 0.5) < 0.02

    checked = 0
    for frame, rec in zip(frames, records):
        values = [rec[k] for k in ("thickness", "filtered", "low", "high")]
        if None in values or any(on_a_boundary(v) for v in values):
            continue
        t, f, lo, hi = values
        expected = f"TLF {t:.2f} mm  filtered {f:.2f} mm ({lo:.2f}-{hi:.2f})"
        h, w = frame.shape[:2]
        glyphs = text_masks(h, w, [expected, "ok"])[0]
        _, _, pad = text_layout(w)
        rim = (cv2.dilate(glyphs, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pad + 1,) * 2)) > 0) & (glyphs == 0)
        strip = frame[: glyphs.shape[0]].astype(int)
        luma = cv2.cvtColor(frame[: glyphs.shape[0]], cv2.COLOR_BGR2GRAY)
        yellow = (strip[..., 1] + strip[..., 2]) / 2 - strip[..., 0]  # high for yellow, about 0 for grey
        assert np.mean(luma[rim] < 80) >= 0.9, f"the outline is not around the glyphs of {expected!r}"
        assert np.median(yellow[glyphs > 200]) >= 150, f"the glyphs of {expected!r} are not where they are drawn"
        checked += 1
    assert checked >= 2
