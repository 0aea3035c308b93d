"""``tlf-bridge``: tools around the display link.

tlf-bridge monitor PORT [--baud 115200]       decode a live line and print it
tlf-bridge emulate [--link PATH] [--png OUT]  play the display on a pseudo-terminal
tlf-bridge demo PORT [--fps 20]               send a synthetic TLF stream to a display
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version

from firmware_bridge.errors import BridgeError

EXIT_CODES = "exit codes: 0 ok, 1 runtime failure, 2 usage or bad input, 130 interrupted"


def _version() -> str:
    try:
        return version("tlf-edge")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """Usage errors in the form of the other refusals, "tlf-bridge: error: demo: ..." (the bridge
    does not import tlf-edge's own command-line helpers)."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        tool, _, command = self.prog.partition(" ")
        self.exit(2, f"{tool}: error: {command + ': ' if command else ''}{message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tlf-bridge", description="TLF display link tools", epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    m = sub.add_parser(
        "monitor",
        help="decode and print what arrives on a port (never writes to it)",
        description="Decode and print what arrives on a port (never writes to it).",
        epilog=EXIT_CODES,
    )
    m.add_argument("port", help="port URL or path: /dev/ttyUSB0, /dev/serial/by-id/..., usb:VID:PID, loop://")
    m.add_argument("--baud", type=int, default=115200)
    m.add_argument("--count", type=int, help="stop after this many packets")
    m.add_argument("--seconds", type=float, help="stop after this long")
    m.add_argument("--full", action="store_true", help="print every mask column / label digest")
    m.add_argument("--quiet", action="store_true", help="print only the once-a-second summary")
    m.add_argument("--size", help="display WIDTHxHEIGHT to check masks against (default: accept any)")
    m.add_argument("--png", help="draw the last display state to this PNG at exit")

    e = sub.add_parser(
        "emulate",
        help="emulate the display on a pseudo-terminal and print its path",
        description="Emulate the display on a pseudo-terminal and print its path.",
        epilog=EXIT_CODES,
    )
    e.add_argument("--width", type=int, default=320)
    e.add_argument("--height", type=int, default=240)
    e.add_argument("--link", help="also make this symlink to the pty (a stable path, like /dev/serial/by-id)")
    e.add_argument("--png", help="draw the display to this PNG at exit")
    e.add_argument("--seconds", type=float, help="stop after this long")
    e.add_argument("--frames", type=int, help="stop after this many measurements")
    e.add_argument("--quiet", action="store_true", help="no status line")

    d = sub.add_parser(
        "demo",
        help="send a synthetic measurement and band stream to a display port",
        description="Send a synthetic measurement and band stream to a display port.",
        epilog=EXIT_CODES,
    )
    d.add_argument("port")
    d.add_argument("--baud", type=int, default=115200)
    d.add_argument("--fps", type=float, default=20.0)
    d.add_argument("--seconds", type=float, default=10.0)
    d.add_argument("--encoding", default="auto")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"monitor": _monitor, "emulate": _emulate, "demo": _demo}[args.command](args)
    except BridgeError as e:
        print(f"tlf-bridge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _size(text: str | None):
    if text is None:
        return None, None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        from firmware_bridge.errors import ConfigError

        raise ConfigError(f"--size must look like 320x240, got {text!r}") from e
    return w, h


def _monitor(args) -> int:
    from firmware_bridge.monitor import monitor
    from firmware_bridge.render import render_png

    w, h = _size(args.size)
    dev = monitor(
        args.port,
        args.baud,
        count=args.count,
        seconds=args.seconds,
        full=args.full,
        quiet=args.quiet,
        width=w,
        height=h,
    )
    if args.png:
        print(f"display drawn to {render_png(dev.state, args.png)}")
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _emulate(args) -> int:
    from firmware_bridge.emulator import DisplayEmulator

    emu = DisplayEmulator(args.width, args.height, link_path=args.link).start()
    # stopped by a service manager or a closing terminal: end as for Ctrl-C, so the link is removed
    t0 = time.monotonic()
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        print(emu.port, flush=True)  # first line: the path to point the runtime at
        if args.link:
            print(f"stable path {args.link} -> {emu.port}", flush=True)
        while True:
            left = None if args.seconds is None else args.seconds - (time.monotonic() - t0)
            if left is not None and left <= 0:
                break
            target = args.frames if args.frames is not None else math.inf
            if emu.wait_for(
                lambda s, target=target: s.frames_received >= target,
                timeout=min(1.0, left if left is not None else 1.0),
            ):
                emu.wait_idle(timeout=1.0)
                break
            if not args.quiet:
                s = emu.state
                m = s.measurement
                value = (m.shown if m is not None else None) or "--"
                print(f"frames {s.frames_received}  TLF {value}  counters {s.counters}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if args.png:
            emu.render_png(args.png)
        s = emu.state
        emu.stop()
    shown = (s.measurement.shown if s.measurement is not None else None) or "--"
    print(
        f"received {s.frames_received} frames, showing TLF {shown}, counters {s.counters}"
        + (f"; display drawn to {args.png}" if args.png else "")
    )
    return 0


def _demo(args) -> int:
    from firmware_bridge.link import DisplayLink
    from firmware_bridge.messages import Measurement
    from firmware_bridge.synthetic import band_labels

    link = DisplayLink(args.port, args.baud, encoding=args.encoding).open(handshake_timeout=5.0)
    period = 1.0 / args.fps
    stop = threading.Event()
    t0 = time.monotonic()
    n = 0
    try:
        while not stop.is_set() and time.monotonic() - t0 < args.seconds:
            t = time.monotonic()
            thickness = 3.0 + 0.4 * math.sin(t - t0)
            link.offer(
                Measurement(thickness, 0.2, 0.1, 0, True, 0xDE30, int(t * 1e6) & 0xFFFFFFFF),
                band_labels(256, 256, phase=0.05 * n),
            )
            link.pump()
            n += 1
            stop.wait(max(0.0, t0 + n * period - time.monotonic()))  # pace the synthetic source
        link.pump(timeout=5.0)  # returns as soon as the last bytes are out
    except KeyboardInterrupt:
        pass
    finally:
        stats = link.stats
        link.close()
    keys = (
        "frames_offered",
        "frames_sent",
        "frames_replaced",
        "bytes_sent",
        "encoding",
        "sent_fps",
        "latency_ms",
        "reconnects",
        "device",
        "last_error",
    )
    for k in keys:
        print(f"{k:16s} {stats[k]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
