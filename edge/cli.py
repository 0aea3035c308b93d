"""`tlf-edge`: the device runtime's command line."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from edge.cli_help import Parser, conventions
from edge.errors import BundleError, ConfigError, EdgeError, RunFailed
from edge.host import limit_malloc_arenas
from edge.measure.quality import REJECTING
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.runtime.config import SourceOptions

DEFAULT_SOURCE = SourceOptions.url


def build_parser() -> argparse.ArgumentParser:
    """The tlf-edge command line: one small function per group of subcommands."""
    parser = Parser(prog="tlf-edge", description="Live TLF segmentation and thickness on an ultrasound cart.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_bundle_tools(sub)
    _add_checks(sub)
    _add_calibrate(sub)
    from edge.analyze.cli import add_parser as add_analyze

    add_analyze(sub)
    conventions(parser, sub)
    return parser


def _add_run(sub) -> None:
    run = sub.add_parser(
        "run",
        help="run the pipeline (no arguments: bundled model, phantom scanner, emulated display)",
        description="Run the pipeline (no arguments: bundled model, phantom scanner, emulated display). Ctrl-C, "
        "SIGTERM or SIGHUP end a run as its source ending does: every frame measured is kept, the summary says "
        "what stopped it, and the exit status is 0 (1 if nothing was measured).",
    )
    run.add_argument("--config", help="TOML config file (see deploy/tlf-edge.example.toml); flags override it")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config key")
    run.add_argument("--bundle", help="model bundle folder (default: the bundled demo model)")
    run.add_argument("--source", help=f"frame source URL (default: {DEFAULT_SOURCE})")
    run.add_argument("--display", help="serial port URL of the display, 'emulate' (default) or 'none'")
    run.add_argument("--baud", type=int, help="display link baud rate (default 115200)")
    run.add_argument(
        "--threads",
        type=int,
        help="LiteRT threads (default: the count `tlf-edge bench` measured best in the data folder, else the physical cores but one)",
    )
    run.add_argument("--frames", type=int, default=None, help="stop after this many frames")
    run.add_argument("--out", help="folder under which the run folder is made (default: runs)")
    run.add_argument("--quiet", action="store_true", help="no live status line")


def _add_bundle_tools(sub) -> None:
    info = sub.add_parser("info", help="verify a bundle and print its manifest")
    info.add_argument("bundle", nargs="?", default=str(DEMO_BUNDLE))
    seal = sub.add_parser(
        "seal", help="seal the manifest of a bundle made before manifests were sealed (check its content first)"
    )
    seal.add_argument("bundle")


def _add_checks(sub) -> None:
    doctor = sub.add_parser("doctor", help="check capture device, display port, model, disk, CPU and config")
    doctor.add_argument("--config", help="TOML config file (default: the built-in defaults)")
    bench = sub.add_parser("bench", help="measure per-stage latency, fps, memory and accuracy on this device")
    bench.add_argument("--bundle", default=str(DEMO_BUNDLE))
    bench.add_argument("--source", default=None, help="frame source URL (default: a phantom clip)")
    bench.add_argument("--frames", type=int, default=100)
    bench.add_argument("--threads", default="1,2", help="comma-separated LiteRT thread counts to compare")
    bench.add_argument("--out", default="bench", help="folder for bench.json, bench.md, latency_hist.png")
    bench.add_argument(
        "--data",
        help="also score the model on labelled data: a data-set folder (images/, masks/, "
        "dataset.json) or 'phantom[:N]' (the first N scenes of tlf-convert's held-out phantom set, with exact truth, default 64)",
    )
    bench.add_argument(
        "--spacing-mm",
        metavar="R,C",
        help="mm per pixel (row,column) of the --data images; "
        "overrides the data set's spacing_mm (thickness in pixels without either)",
    )


def _add_calibrate(sub) -> None:
    calibrate = sub.add_parser(
        "calibrate",
        help="mm per pixel from two points a known distance apart on a still "
        "image of the screen; prints the [calibration] lines to paste into the config",
    )
    calibrate.add_argument("image", help="a still of the scanner screen (PNG, JPEG, TIFF, BMP)")
    calibrate.add_argument(
        "--points",
        required=True,
        metavar="X1,Y1,X2,Y2",
        help="two points in image pixels, e.g. two ticks of the depth scale",
    )
    calibrate.add_argument("--mm", required=True, type=float, help="their distance in mm (e.g. 10 for 1 cm apart)")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from edge import logs

    logs.one_line("tlf-edge")  # every warning of the product: one line on stderr
    quiet_third_parties()
    commands = {  # looked up at each call, so a command can be replaced (tests do)
        "run": cmd_run,
        "doctor": cmd_doctor,
        "bench": cmd_bench,
        "seal": cmd_seal,
        "calibrate": cmd_calibrate,
        "analyze": cmd_analyze,
        "info": cmd_info,
    }
    try:
        return commands[args.command](args)
    except RunFailed as e:  # the run went, but failed or measured nothing
        print(f"tlf-edge: error: {e}", file=sys.stderr)
        return 1
    except EdgeError as e:  # bad input, refused before anything ran
        print(f"tlf-edge: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`tlf-edge info | head`): nothing to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit then goes nowhere
        return 128 + signal.SIGPIPE
    except OSError as e:  # the machine refused something (a full disk, a device gone): one line, no traceback
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"tlf-edge: error: {type(e).__name__}{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_doctor(args) -> int:
    from edge.ops.doctor import main as doctor_main

    return doctor_main(args.config)


def cmd_seal(args) -> int:
    from edge.model.bundle import seal_bundle

    bundle, now = seal_bundle(args.bundle)
    print(
        f"{bundle.path}: manifest {'sealed' if now else 'already sealed'} "
        f"(manifest sha256 {bundle.manifest['manifest_sha256'][:12]}..., model sha256 {bundle.sha256[:12]}...)"
    )
    return 0


def cmd_analyze(args) -> int:
    from edge.analyze.cli import cmd_analyze as analyze

    return analyze(args)


def cmd_info(args) -> int:
    try:
        bundle = load_bundle(args.bundle)  # verifies the model and the manifest against their hashes
    except BundleError:
        unsealed = _unsealed(args.bundle)
        if unsealed is not None:  # made before manifests were sealed: shown, so it can be checked
            print(json.dumps(unsealed.manifest, indent=2))
        raise
    shown = dict(bundle.manifest)
    if isinstance(shown.get("domain"), dict) and "reference" in shown["domain"]:
        ref = shown["domain"]["reference"]  # hundreds of rows of numbers: said, not printed
        shown["domain"] = {**shown["domain"], "reference": f"<{len(ref)} training images' statistics>"}
    print(json.dumps(shown, indent=2))
    print(
        f"verified: model sha256 {bundle.sha256[:12]}..., manifest sha256 {bundle.manifest['manifest_sha256'][:12]}...",
        file=sys.stderr,
    )
    return 0


def _unsealed(path):
    """The bundle at `path` if all but its seal verifies and it has none; None otherwise."""
    from edge.model.bundle import MANIFEST_HASH

    try:
        bundle = load_bundle(path, sealed=False)
    except BundleError:
        return None
    return bundle if MANIFEST_HASH not in bundle.manifest else None


def quiet_third_parties() -> None:
    """Keep libraries' chatter off the console: OpenCV's warnings (two TIFF warnings per image on
    real scanner screenshots) below its errors. LiteRT's own INFO line is held back where the
    interpreter is made (edge.model.segmenter)."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def cmd_bench(args) -> int:
    from edge.model.segmenter import check_threads
    from edge.ops.bench import DEFAULT_SOURCE as BENCH_SOURCE
    from edge.ops.bench import markdown, parse_spacing, run_bench

    limit_malloc_arenas()  # as `tlf-edge run` does, so that bench's memory is a run's
    try:
        threads = tuple(int(t) for t in args.threads.split(","))
    except ValueError as e:
        raise EdgeError(f"--threads takes comma-separated whole numbers, not {args.threads!r}") from e
    threads = tuple(dict.fromkeys(check_threads(t) for t in threads))  # lowered to this machine's CPUs, once each
    if args.frames < 1:
        raise EdgeError(f"--frames must be at least 1, got {args.frames}")
    if args.spacing_mm is not None and args.data is None:
        raise EdgeError("--spacing-mm describes the --data images; give --data too")
    out = out_folder(args.out)
    report = run_bench(
        args.bundle,
        args.source or BENCH_SOURCE,
        args.frames,
        threads,
        out,
        data=args.data,
        spacing_mm=parse_spacing(args.spacing_mm),
    )
    print(markdown(report))
    print(f"written: {args.out}/bench.json, bench.md, latency_hist.png")
    return 0


def out_folder(text: str) -> Path:
    """The --out folder, made if missing; EdgeError (one line) when it cannot be made or written."""
    from edge.runtime.config import folder_problem

    out = Path(text)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeError(f"--out {text!r}: cannot make the folder: {e.strerror or e}") from e
    problem = folder_problem(out)
    if problem is not None:
        raise EdgeError(f"--out {text!r}{problem}")
    return out


def cmd_calibrate(args) -> int:
    """Two points `--mm` apart on a still: the spacing, as config lines (square pixels)."""
    import cv2

    from edge.screen.spacing import from_points

    img = cv2.imread(str(args.image), cv2.IMREAD_UNCHANGED) if Path(args.image).is_file() else None
    if img is None:
        raise EdgeError(f"cannot read an image from {args.image!r}")
    try:
        x1, y1, x2, y2 = (float(v) for v in args.points.split(","))
    except ValueError as e:
        raise EdgeError(f"--points takes X1,Y1,X2,Y2 (four numbers), not {args.points!r}") from e
    h, w = img.shape[:2]
    for x, y in ((x1, y1), (x2, y2)):
        if not (0 <= x < w and 0 <= y < h):
            raise EdgeError(f"point ({x:g}, {y:g}) is outside the {w}x{h} image")
    mm_px = from_points((x1, y1), (x2, y2), args.mm)
    d = math.hypot(x2 - x1, y2 - y1)
    print(
        f"# tlf-edge calibrate: {args.mm:g} mm over {d:.1f} px from ({x1:g}, {y1:g}) to ({x2:g}, {y2:g}) "
        f"on {Path(args.image).name}: {mm_px:.6f} mm per pixel, square pixels"
    )
    print("[calibration]")
    print(f"spacing_mm = [{mm_px:.6f}]")
    return 0


def resolve_options(args):
    """The run's Config: the config file, then --set overrides, then the dedicated flags."""
    from edge.runtime.config import RUN_REQUIRED, load_config

    flags = {
        "source.url": args.source,
        "model.bundle": args.bundle,
        "display.url": args.display,
        "display.baud": args.baud,
        "model.num_threads": args.threads,
        "log.directory": args.out,
    }
    overrides = list(args.set) + [f"{k}={v}" for k, v in flags.items() if v is not None]
    return load_config(args.config, overrides, required=RUN_REQUIRED)  # a file must name its devices


def make_run_dir(log_root: Path, cfg) -> Path:
    """A new time-stamped run folder under `log_root`; ConfigError naming the key if it cannot be made."""
    run_dir = log_root / time.strftime("%Y%m%d-%H%M%S")
    while run_dir.exists():
        run_dir = run_dir.with_name(run_dir.name + "+")
    try:
        run_dir.mkdir(parents=True)
    except OSError as e:
        key = "[storage] data_dir" if cfg.storage.data_dir else "[log] directory"
        raise ConfigError(f"{key}: cannot make the run folder {str(run_dir)!r}: {e.strerror or e}") from e
    return run_dir


def remove_if_empty(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but empty files: a run refused at its first frame
    leaves no trace. A folder with any data in it is kept."""
    files = list(run_dir.iterdir())
    if all(f.is_file() and not f.is_symlink() and f.stat().st_size == 0 for f in files):
        for f in files:
            f.unlink()
        run_dir.rmdir()


def cmd_run(args) -> int:
    from edge.model.segmenter import Segmenter
    from edge.model.threads import BENCH_FILE
    from edge.runtime.config import check_data_dir, data_paths, data_root
    from edge.runtime.factory import build_outputs, open_display, open_source
    from edge.runtime.pipeline import Pipeline
    from edge.sinks import systemd

    limit_malloc_arenas()  # before the source, the model and the pipeline start their threads
    if args.frames is not None and args.frames < 1:
        raise EdgeError(f"--frames must be at least 1, got {args.frames}")
    cfg = resolve_options(args)
    check_data_dir(cfg)  # an existing, writable folder (not created: an unmounted drive is refused)
    log_root, recording_root = data_paths(cfg)  # both under [storage] data_dir, symlinks resolved
    source = open_source(cfg.source.url, max_pixels=cfg.source.max_pixels)
    segmenter = Segmenter.create(cfg.model, bench=data_root(cfg) / BENCH_FILE)
    display = open_display(cfg.display, segmenter, source.simulated)  # a port another program holds is refused here
    try:
        run_dir = make_run_dir(log_root, cfg)
        console = not args.quiet and cfg.console.enabled
        outputs = build_outputs(cfg, segmenter, source, run_dir, recording_root, display, console)
        pipeline = Pipeline(
            source, segmenter, outputs.sinks, cfg.measurement, cfg.temporal, roi=cfg.roi, calibration=cfg.calibration
        )
        stats, failed, stopped_by, shown = _run_until_done(pipeline, args.frames, display, run_dir)
    finally:
        systemd.stopping()
        display.stop()
    summary = summarize(stats, segmenter, cfg, shown, source.simulated, outputs.scoring)
    summary["source_note"] = source.note or None
    summary["stopped_by"] = stopped_by[0] if stopped_by else None
    summary["nothing_measured"] = nothing_measured(stats, stopped_by)
    summary["failed"] = failed
    print_summary(summary, run_dir)
    problems = shown.pop("problems", []) if shown else []
    problems += [f"{name} output stopped: {why}" for name, why in stats.dead_sinks.items() if name in ("log", "csv")]
    try:
        write_json(run_dir / "summary.json", summary)
    except OSError as e:
        problems.append(f"summary.json not written: {e.strerror or e}")
    if summary["nothing_measured"]:
        problems.insert(0, summary["nothing_measured"])
    if failed:
        problems.insert(0, f"the run stopped after {stats.measured} frames: {failed}")
    if problems:
        raise RunFailed("; ".join(problems))
    return 0


def _run_until_done(pipeline, frames: int | None, display, run_dir: Path):
    """Run the pipeline until it ends or a signal stops it; (stats, why it failed mid-run or None,
    the signals that stopped it, what reached the display). A run refused at its first frame
    leaves no run folder and raises."""
    from edge.sinks import systemd

    stopped_by: list[str] = []

    def on_signal(signum, _frame):
        stopped_by.append(signal.Signals(signum).name)
        systemd.stopping()
        pipeline.stop_event.set()

    # SIGHUP too: an SSH session that closes must stop the run as cleanly as systemd's SIGTERM.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        failed = None
        try:
            stats = pipeline.run(max_frames=frames)
        except EdgeError as e:
            stats = pipeline.stats
            if stats is None or not stats.measured:  # refused at its first frame (an [roi] rect off the screen)
                remove_if_empty(run_dir)
                raise
            failed = str(e)  # ended mid-run (a capture card that gave up): what was measured is summarised
        return stats, failed, stopped_by, _display_outcome(display, run_dir)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _display_outcome(display, run_dir: Path) -> dict | None:
    """What reached the display: the emulator's decoded frames and its picture (display.png), the
    serial link's statistics; "problems" lists what could not be written."""
    if display.sink is None:
        return None
    shown: dict = {"problems": []}
    emulator = display.emulator
    if emulator is not None:
        emulator.wait_idle(timeout=2.0)
        try:
            emulator.render_png(run_dir / "display.png")
        except OSError as e:
            shown["problems"].append(f"display.png not written: {e.strerror or e}")
        shown.update(emulated=True, frames_received=emulator.frames_received, crc_errors=emulator.crc_errors)
    return {**shown, **display_report(display.sink)}


def write_json(path: Path, data: dict) -> None:
    """Write `data` as strict JSON (a NaN becomes null) through a temporary file, so that `path`
    is either the whole document or absent, never cut short; OSError when the disk refuses."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def _finite(v):
    """`v` with every float that is not finite replaced by None, through dicts and lists."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def nothing_measured(stats, stopped_by=()) -> str | None:
    """Why no frame gave a thickness, in one line; None when one did."""
    if stats.accepted:
        return None
    if stats.frames:
        rejected = ", ".join(f"{k} x{v}" for k, v in stats.flagged.items()) or "no thickness"
        return f"no frame was measured: all {stats.frames} frames were rejected ({rejected})"
    why = []
    if stats.frames_without_roi:
        why.append(f"no B-mode region was found on {stats.frames_without_roi} screens")
    if stats.frames_layout_changing:
        why.append(f"{stats.frames_layout_changing} screens were skipped while the layout changed")
    if stats.frames_rect_misfit:
        why.append(f"{stats.frames_rect_misfit} frames were too small for the [roi] rect")
    if stats.corrupt_frames:
        why.append(f"{stats.corrupt_frames} source frames could not be decoded")
    if stats.oversize_frames:
        why.append(f"{stats.oversize_frames} images were larger than [source] max_pixels")
    if stats.signal_losses:
        why.append(f"the source had no signal for {stats.no_signal_s:.1f} s")
    if stopped_by and not why:
        why.append(f"stopped by {stopped_by[0]} before the first frame")
    return "no frame was measured: " + ("; ".join(why) if why else "the source delivered no frame")


def display_report(sink) -> dict:
    """What reached a serial display: frames sent and not, outages, whether it ever answered."""
    s = sink.link_stats or (sink.link.stats if sink.link is not None else None)
    if s is None:
        return {"port": sink.url, "opened": False, "error": sink.dead}
    return {
        "port": sink.url,
        "opened": True,
        "answered": s["device"] is not None or s["rx_packets"] > 0,
        "frames_offered": s["frames_offered"],
        "frames_sent": s["frames_sent"],
        "frames_not_sent": s["frames_offered"] - s["frames_sent"],
        "disconnects": s["disconnects"],
        "reconnects": s["reconnects"],
        "seconds_disconnected": round(s["seconds_disconnected"], 1),
        "last_error": s["last_error"],
        "error": sink.dead,
    }


def summarize(stats, segmenter, cfg, display, simulated: bool = False, scoring=None) -> dict:
    """The run summary (summary.json): the model, the source, counts, speed, thickness, layout,
    the display; for the phantom scanner, the scores against its truth (edge.sinks.scoring)."""
    ms = stats.measurements  # the most recent ones: values and latency are over these
    ok = [m for m in ms if not (m.flags & REJECTING) and not math.isnan(m.thickness)]
    accepted = [m for m in ok if m.band == 0]  # the TLF, or the most superficial band of a two-class model
    by_band = {}
    if any(m.bands > 1 for m in ms):
        for b in sorted({m.band for m in ms}):
            v = np.array([m.thickness for m in ok if m.band == b])
            by_band[str(b)] = {
                "measured": sum(m.band == b for m in ms),
                "accepted": int(v.size),
                "median": round(float(np.median(v)), 3) if v.size else None,
            }
    lat = np.array([m.latency_s for m in ms]) * 1000
    values = np.array([m.thickness for m in accepted])
    out = {
        "bundle": str(cfg.model.bundle_path),
        "model_sha256": segmenter.bundle.sha256,
        "runtime": segmenter.runtime,
        "threads": segmenter.num_threads,
        "threads_chosen_by": segmenter.threads_chosen_by,
        "thickness_response": segmenter.response.fitted_on if segmenter.response is not None else None,
        "source": cfg.source.url,
        "simulated": bool(simulated),
        "frames": stats.frames,
        "accepted": stats.accepted,
        "flagged": stats.flagged,
        "fps": round(stats.fps, 2),
        "dropped_frames": stats.dropped_frames,
        "corrupt_frames": stats.corrupt_frames,
        "oversize_frames": stats.oversize_frames,
        "rect_misfit_frames": stats.frames_rect_misfit,
        "signal": {
            "losses": stats.signal_losses,
            "seconds_without": round(stats.no_signal_s, 1),
            "reconnects": stats.source_reconnects,
        },
        "latency_ms": {f"p{q}": round(float(np.percentile(lat, q)), 2) if lat.size else None for q in (50, 90)},
        "start_to_first_measurement_s": round(stats.t_first_measurement - stats.t_start, 3)
        if stats.t_first_measurement
        else None,
        "unit": ms[0].unit if ms else None,
        "thickness_median": round(float(np.median(values)), 3) if values.size else None,
        "thickness_iqr": round(float(np.subtract(*np.percentile(values, [75, 25]))), 3) if values.size else None,
        "dead_outputs": stats.dead_sinks,
        **(
            {"bands": by_band, "bands_measured": stats.bands_measured, "bands_accepted": stats.bands_accepted}
            if by_band
            else {}
        ),
        "display": display,
        "layout": _layout_summary(stats),
    }
    scored = scoring.summary() if scoring is not None else None
    if scored is not None and "truth_median_mm" in scored:
        out["scored"] = scored
        out["truth_median_mm"] = scored["truth_median_mm"]
        out["error_median_mm"] = scored["error_median_mm"]
        out["abs_error_mean_mm"] = scored["abs_error_mean_mm"]
    return out


def _layout_summary(stats) -> dict | None:
    """The B-mode region and spacing the run ended with, how it got them, how often they changed."""
    events = getattr(stats, "layout_events", [])
    if not events:
        return None
    last = events[-1].as_dict()
    return {
        "roi": last["roi"],
        "spacing_mm": last["spacing_mm"],
        "calibration": last["calibration"],
        "calibration_note": last["calibration_note"],
        "changes": stats.layout_changes,
        "frames_without_roi": stats.frames_without_roi,
        "frames_layout_changing": stats.frames_layout_changing,
    }


def print_summary(s: dict, run_dir: Path) -> None:
    unit = s["unit"] or ""
    print("tlf-edge run summary")
    print(f"  model      {s['bundle']} (sha256 {s['model_sha256'][:12]}, {s['runtime']})")
    print(f"  threads    {s['threads']} LiteRT thread(s): {s['threads_chosen_by']}")
    if s.get("thickness_response"):
        print(f"  response   thickness corrected by the bundle's measured response ({s['thickness_response']})")
    print(
        f"  source     {s['source']}"
        + (" (SIMULATED: the built-in phantom scanner, no patient)" if s["simulated"] else "")
    )
    flagged = ", ".join(f"{k} x{v}" for k, v in s["flagged"].items()) or "none"
    dropped = f" ({s['dropped_frames']} older frames dropped: the newest frame wins)" if s["dropped_frames"] else ""
    print(
        f"  frames     {s['frames']} measured{dropped}, {s['accepted']} accepted"
        + (f"; rejected: {flagged}" if s["frames"] else "")
    )
    if s["frames"]:
        print(
            f"  speed      {s['fps']:.1f} fps, latency p50 {s['latency_ms']['p50']:.1f} ms, p90 {s['latency_ms']['p90']:.1f} ms"
        )
    if s["thickness_median"] is None:
        print("  thickness  no accepted frame")
    else:
        line = f"  thickness  median {s['thickness_median']:.2f} {unit} (IQR {s['thickness_iqr']:.2f})"
        if "truth_median_mm" in s:
            line += f" | phantom truth {s['truth_median_mm']:.2f} mm | error {s['error_median_mm']:+.2f} mm"
        print(line)
    for b, e in (s.get("bands") or {}).items():
        median = "no accepted value" if e["median"] is None else f"median {e['median']:.2f} {unit}"
        print(
            f"  band {int(b) + 1}     {e['accepted']} of {e['measured']} accepted, {median}"
            + (" (the most superficial)" if b == "0" else "")
        )
    lay = s.get("layout")
    if lay is not None:
        x, y, w, h = lay["roi"]
        note = f": {lay['calibration_note']}" if lay.get("calibration_note") else ""
        spacing = (
            f"no scale (thickness in px; {lay['calibration']}{note})"
            if lay["spacing_mm"] is None
            else f"{lay['spacing_mm'][0]:.4f} x {lay['spacing_mm'][1]:.4f} mm/px ({lay['calibration']}{note})"
        )
        print(
            f"  b-mode     {w}x{h} at ({x}, {y}), {spacing}; {lay['changes']} layout changes"
            + (f", {lay['frames_without_roi']} screens without B-mode" if lay["frames_without_roi"] else "")
            + (
                f", {lay['frames_layout_changing']} screens skipped while the layout changed"
                if lay["frames_layout_changing"]
                else ""
            )
        )
    d = s["display"]
    if d is not None:
        if d.get("emulated"):
            print(
                f"  display    {d['frames_received']} frames decoded by the emulated display, {d['crc_errors']} CRC errors"
            )
        elif not d.get("opened"):
            print(f"  display    {d['port']} never opened: {d['error']}")
        else:
            line = f"  display    {d['port']}: {d['frames_sent']} of {d['frames_offered']} frames sent"
            if d["disconnects"]:
                line += f", lost {d['disconnects']} times ({d['seconds_disconnected']:.1f} s away, {d['reconnects']} reconnects)"
            if not d["answered"]:
                line += "; the display never answered"
            print(line)
    if s.get("nothing_measured"):
        print(f"  why        {s['nothing_measured']}")
    if s.get("stopped_by"):
        print(f"  stopped    by {s['stopped_by']} (every frame measured until then is kept)")
    if s["corrupt_frames"]:
        print(f"  damaged    {s['corrupt_frames']} source frames could not be decoded (skipped)")
    if s["oversize_frames"]:
        print(
            f"  too large  {s['oversize_frames']} images skipped, larger than [source] max_pixels ({s['source_note']})"
        )
    if s["rect_misfit_frames"]:
        print(f"  too small  {s['rect_misfit_frames']} frames skipped, smaller than the [roi] rect")
    if s.get("failed"):
        print(f"  failed     {s['failed']}")
    if s["signal"]["losses"]:
        print(f"  signal     lost {s['signal']['losses']} times, {s['signal']['seconds_without']:.1f} s without")
    for name, why in s["dead_outputs"].items():
        print(f"  stopped    {name}: {why}")
    print(f"  outputs    {run_dir}/")


if __name__ == "__main__":
    sys.exit(main())
