"""`tlf-edge doctor`: checks what a cart needs, one pass/fail line each (the scale line says how
the first frame gets its mm per pixel, and what the screen's scale read, or why it was refused)."""

from __future__ import annotations

import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge.errors import EdgeError
from edge.model.bundle import load_bundle

if TYPE_CHECKING:
    from edge.runtime.config import Config

MIN_FREE_BYTES = 1 << 30  # recordings need room: at least 1 GiB free
# Instruction-set features that make int8 inference fast (x86: VNNI/AVX2; Arm: dot product).


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'}  {self.name:<10} {self.detail}"


def check_config(path: str | None) -> tuple[Check, Config | None]:
    from edge.runtime.config import RUN_REQUIRED, load_config

    try:
        cfg = load_config(path, required=RUN_REQUIRED)  # what `tlf-edge run --config` asks of it
    except EdgeError as e:
        return Check("config", False, str(e)), None
    return Check("config", True, f"{path or 'defaults'} is valid"), cfg


def check_bundle(path: str) -> Check:
    from edge.model.segmenter import Segmenter

    try:
        bundle = load_bundle(path)
        seg = Segmenter(bundle, 1)
    except EdgeError as e:
        return Check("model", False, str(e))
    done = f"{path}: sha256 {bundle.sha256[:12]} verified, loads in {seg.runtime}"
    if bundle.gate_failures:
        return Check("model", False, f"{done}, but it failed its int8 validation: {'; '.join(bundle.gate_failures)}")
    # made before quantize rewrote them (no count in its manifest's export), with some still in its graph
    older = "transpose_conv_blockwise" not in bundle.manifest.get("export", {})
    hint = (
        "; its TRANSPOSE_CONV ops may run several times faster as `tlf-convert rewrite` writes them, with "
        "the same outputs (on the host PC)"
        if older and "TRANSPOSE_CONV" in bundle.manifest.get("ops", [])
        else ""
    )
    return Check("model", True, done + hint)


def check_source(url: str, service: bool = False) -> Check:
    """Open the source and read a frame. service: the config of a cart, where the built-in
    phantom scanner is a mistake (it measures nobody), not a demo."""
    from edge.runtime.factory import open_source

    try:
        source = open_source(url)
        if source.simulated and service:
            return Check(
                "capture",
                False,
                f"{url!r} is the built-in phantom scanner (SIMULATED), not a scanner: "
                "name the capture card in [source] url",
            )
        with source:
            frame = source.read()
    except EdgeError as e:
        return Check("capture", False, str(e))
    except Exception as e:  # a driver can fail in many ways; the cart needs one line
        return Check("capture", False, f"{url!r}: {type(e).__name__}: {e}")
    if frame is None:
        return Check("capture", False, f"{url!r} opened but delivered no frame")
    h, w = frame.image.shape[:2]
    return Check(
        "capture", True, f"{url!r} delivers {w}x{h} frames" + (" (SIMULATED: the demo)" if source.simulated else "")
    )


def check_scale(cfg) -> Check:
    """How the first frame of the configured source gets its mm per pixel: the source's own
    spacing, the config's, the depth setting, or the screen's scale read (and what it read),
    or why thickness would be in pixels."""
    from edge.runtime.factory import open_source
    from edge.screen.prepare import Prepare

    try:
        with open_source(cfg.source.url) as source:
            frame = source.read()
            cropped = bool(getattr(source, "cropped", False))
    except Exception as e:  # the capture check says what is wrong with the source
        return Check("scale", False, f"no frame to read the scale from ({type(e).__name__}: {e})")
    if frame is None:
        return Check("scale", False, "no frame to read the scale from")
    prepare = Prepare(cfg.roi, cfg.calibration)
    out, event = prepare(frame, cropped)
    if out is None or event is None:
        return Check("scale", False, "no B-mode region found on the first frame (set [roi] rect)")
    how = f"{event.calibration}" + (f": {event.calibration_note}" if event.calibration_note else "")
    if event.spacing_mm is None:
        hint = "; set [calibration] depth_mm, or spacing_mm from `tlf-edge calibrate IMAGE --points ... --mm ...`"
        return Check("scale", False, f"thickness would be in px ({how}){hint}")
    r, c = event.spacing_mm
    return Check("scale", True, f"{r:.4f} x {c:.4f} mm/px ({how})")


def check_display(url: str, baud: int, service: bool = False) -> Check:
    """Open the display port. service: the config of a cart, where the emulator shows nothing."""
    if url == "emulate" and service:
        return Check(
            "display",
            False,
            "'emulate' is the display emulator, which shows nothing on a cart: "
            "name the display's port in [display] url (or 'none')",
        )
    if url in ("none", "emulate"):
        return Check("display", True, f"{url!r}: no serial port to check")
    from firmware_bridge.errors import BridgeError, PortBusy
    from firmware_bridge.ports import lock_holder, open_port, resolve_port

    try:
        open_port(url, baud).close()  # with the runtime's exclusive lock: a port in use says so
    except PortBusy as e:
        # Held by the cart's own running runtime (the service, checked after an upgrade) is fine;
        # held by anything else, or by an unknown process, is not.
        try:
            holder = lock_holder(resolve_port(url))
        except BridgeError:
            holder = None
        if holder is not None and _is_tlf_edge(holder[1]):
            return Check(
                "display",
                True,
                f"{url!r} is driven by the running tlf-edge (pid {holder[0]}); not opened while it runs",
            )
        who = f" by pid {holder[0]} ({holder[1][:80]})" if holder is not None else ""
        return Check("display", False, f"{e}{who}")
    except BridgeError as e:
        return Check("display", False, str(e))
    return Check("display", True, f"{url!r} opens at {baud} baud")


def _is_tlf_edge(cmdline: str) -> bool:
    """Whether a process's command line is a tlf-edge runtime (the console script or edge.cli)."""
    words = cmdline.split()
    return any(w.endswith("/tlf-edge") or w == "tlf-edge" for w in words) or "edge.cli" in words


def check_cpu() -> Check:
    from edge.host import FAST_INT8_FLAGS, cpu_flags, physical_cores

    flags = cpu_flags()
    fast = sorted(flags & FAST_INT8_FLAGS)
    machine = platform.machine()
    cores = physical_cores()
    detail = f"{machine}, {cores} physical core(s), int8 features: {', '.join(fast) or 'none'}"
    return Check("cpu", cores >= 2 and bool(fast), detail)


def check_disk(directory: str, cfg=None) -> Check:
    """Free space and write access where the logs go; with a config, its [storage] data_dir must
    be an existing, writable folder (as `tlf-edge run` asks)."""
    from edge.runtime.config import check_data_dir, folder_problem

    if cfg is not None:
        try:
            check_data_dir(cfg)
        except EdgeError as e:
            return Check("disk", False, str(e))
    path = Path(directory)
    probe = path if path.exists() else next((p for p in path.absolute().parents if p.exists()), Path("/"))
    problem = folder_problem(probe)
    if problem is not None and problem.startswith(":"):
        return Check("disk", False, f"cannot check {str(probe)!r}{problem}")
    if problem == " is not a folder":
        return Check("disk", False, f"{str(probe)!r} is not a folder")
    try:
        free = shutil.disk_usage(probe).free
    except OSError as e:
        return Check("disk", False, f"cannot check {str(probe)!r}: {e.strerror or e}")
    ok = free >= MIN_FREE_BYTES and problem is None
    return Check(
        "disk", ok, f"{free / 2**30:.1f} GiB free at {str(probe)!r}" + (f" ({problem.strip()})" if problem else "")
    )


def _log_directory(cfg):
    """Where the runtime writes its logs: under [storage] data_dir when set (checked by the config)."""
    from edge.errors import ConfigError
    from edge.runtime.config import data_paths

    try:
        return data_paths(cfg)[0]
    except ConfigError:
        return Path(cfg.log.directory)


def run_checks(config_path: str | None = None) -> list[Check]:
    config_check, cfg = check_config(config_path)
    checks = [config_check]
    if cfg is not None:
        service = config_path is not None  # a config file is a cart's; the defaults are the demo
        checks += [
            check_source(cfg.source.url, service),
            check_scale(cfg),
            check_display(cfg.display.url if cfg.display.enabled else "none", cfg.display.baud, service),
            check_bundle(str(cfg.model.bundle_path)),
            check_disk(str(_log_directory(cfg)), cfg),
        ]
    checks.append(check_cpu())
    return checks


def main(config_path: str | None = None, out=sys.stdout) -> int:
    checks = run_checks(config_path)
    for c in checks:
        out.write(c.line() + "\n")
    failed = [c.name for c in checks if not c.ok]
    out.write(("all checks passed" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}") + "\n")
    return 0 if not failed else 1
