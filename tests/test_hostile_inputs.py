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

from edge.bundle import DEMO_BUNDLE
from sandbox import listing, strict_json

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

    def cart_config(self, source: str = CLIP, display: str = "none", extra: str = "", console: bool = False) -> Path:
        """A config naming its source and display, writing under the data folder."""
        return self.config(f"[source]\nurl = '{source}'\n[display]\nurl = '{display}'\n[storage]\ndata_dir = '{self.data}'\n"
                           f"[console]\nenabled = {str(console).lower()}\n" + extra)

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
