"""`tlf-edge analyze INPUT... --out DIR`: the command line of the re-analysis."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from edge.errors import EdgeError, RunFailed

NEEDS = {"analyze": ("matplotlib", "pyarrow", "tqdm"), "scale": ("ray",)}


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze",
        help="re-analyse recorded clips (DICOM, videos, image folders, the cart's recordings): "
        "per-clip measurements and plots, a table and an HTML index",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (searched through) or glob patterns")
    p.add_argument(
        "--out", required=True, help="output folder (made if missing; a second run into it continues the first)"
    )
    p.add_argument(
        "--bundle", help="model bundle folder (default: [model] bundle of --config, else the bundled demo model)"
    )
    p.add_argument(
        "--config",
        help="TOML config file: its [roi], [calibration], [measurement], [temporal] and "
        "[source] max_pixels apply, as on the cart",
    )
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config key")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, each with one LiteRT thread (default: the physical cores; "
        "with --engine ray: the cluster's CPUs)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes (default) or Ray actors (the [scale] extra)",
    )
    p.add_argument(
        "--address", help="with --engine ray: the cluster, e.g. ray://HEAD:10001 or auto (default: a local Ray)"
    )
    p.add_argument(
        "--keep-names",
        action="store_true",
        help="name clips by their file names (default: by content hash, as file names can hold a patient's)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def missing_extra(engine: str) -> str | None:
    """The one line saying which extra is missing for this run, or None."""
    for extra in ("analyze", "scale") if engine == "ray" else ("analyze",):
        missing = [m for m in NEEDS[extra] if not _importable(m)]
        if missing:
            return (
                f"analyze{' --engine ray' if extra == 'scale' else ''} needs the [{extra}] extra "
                f"(missing: {', '.join(missing)}): pip install 'tlf-edge[{extra}]'"
            )
    return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import system that refuses it
        return False


def cmd_analyze(args) -> int:
    from edge.analyze import report
    from edge.analyze.inputs import find_clips
    from edge.cli import out_folder
    from edge.model.bundle import load_bundle
    from edge.runtime.config import load_config

    problem = missing_extra(args.engine)
    if problem:
        raise EdgeError(problem)
    if args.address and args.engine != "ray":
        raise EdgeError("--address names a Ray cluster; give --engine ray too")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise EdgeError(f"--workers must be from 1 to 1024, got {args.workers}")
    overrides = list(args.set) + ([f"model.bundle={args.bundle}"] if args.bundle else [])
    cfg = load_config(args.config, overrides)
    bundle = load_bundle(cfg.model.bundle_path)
    out = out_folder(args.out)
    clips, notes = find_clips(args.inputs, out)
    if not clips:
        raise EdgeError(f"no DICOM, video, image or recording in {' '.join(args.inputs)!r}")
    for note in notes:
        print(f"tlf-edge: note: {note}", file=sys.stderr)
    report.clean_leftovers(out)
    with _matplotlib_cache_in(out):
        return _analyze(args, cfg, bundle, out, clips)


@contextlib.contextmanager
def _matplotlib_cache_in(out: Path):
    """matplotlib keeps its font cache in the user's home unless told otherwise: for the command
    (and the workers it starts), in a hidden folder of the output folder, which no later run takes
    for input, as nothing else is written outside it. A MPLCONFIGDIR already set is kept."""
    if "MPLCONFIGDIR" in os.environ:
        yield
        return
    os.environ["MPLCONFIGDIR"] = str(out / ".matplotlib")
    try:
        yield
    finally:
        os.environ.pop("MPLCONFIGDIR", None)


def _analyze(args, cfg, bundle, out: Path, clips) -> int:
    from edge.analyze import report
    from edge.analyze.run import AnalysisJob, config_digest, run_tasks
    from edge.host import physical_cores

    config_sha = config_digest(cfg)
    order, tasks, summaries = plan_tasks(clips, bundle, config_sha, out, args.keep_names)
    workers = args.workers or (None if args.engine == "ray" else physical_cores())
    job = AnalysisJob(str(bundle.path), cfg, args.keep_names)
    skipped = len(order) - len(tasks)
    if skipped:
        print(
            f"tlf-edge: {skipped} of {len(order)} clips already analysed with this bundle and config: skipped",
            file=sys.stderr,
        )
    t0 = time.monotonic()
    failed = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _interrupt)
    bar = _bar(len(order), skipped, args.quiet)
    try:
        if tasks:
            for result in run_tasks(tasks, job, args.engine, workers, args.address):
                report.write_clip(out, result)
                summaries[result.clip_id] = result.summary
                if result.error is not None:
                    failed.append(result.clip_id)
                    bar.write(f"tlf-edge: {result.clip_id}: failed: {result.error}", file=sys.stderr)
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        signal.signal(signal.SIGTERM, previous)
    seconds = time.monotonic() - t0
    rows = [summaries[c] for c in order if c in summaries]
    run = {
        "tlf_edge_analysis": 1,
        "model_sha256": bundle.sha256,
        "bundle_name": bundle.path.name,
        "bundle_manifest_sha256": bundle.manifest.get("manifest_sha256"),
        "config_sha256": config_sha,
        "config": _config_dict(cfg),
        "engine": args.engine,
        "workers": workers,
        "clips": len(order),
        "analysed_now": len(rows) - skipped,
        "skipped": skipped,
        "failed": len(failed),
        "seconds": round(seconds, 2),
        "interrupted": interrupted,
    }
    (out / "analysis.json").write_text(report.json_text(run))
    report.write_table(out, rows)
    report.write_index(out, rows, run)
    done = sum(r.get("status") == "done" for r in rows)
    if interrupted:
        print(
            f"tlf-edge: interrupted: {len(rows)} of {len(order)} clips are in {out}/; the same command continues",
            file=sys.stderr,
        )
        return 130
    print(
        f"tlf-edge analyze: {done} of {len(order)} clips analysed ({len(tasks)} now, {skipped} before), "
        f"{len(failed)} failed; {_frame_totals(rows)}; table {out}/clips.csv, clips.parquet; index {out}/index.html"
    )
    if failed:
        raise RunFailed(
            f"{len(failed)} of {len(order)} clips failed ({', '.join(failed[:3])}"
            f"{', ...' if len(failed) > 3 else ''}); clips.csv gives each reason"
        )
    return 0


def plan_tasks(clips, bundle, config_sha: str, out, keep_names: bool):
    """(clip ids in input order, the tasks still to run, the summaries of clips already analysed
    with this bundle and config). The same content given twice is analysed once; a clip that
    cannot be read becomes a task that reports why."""
    from edge.analyze import report
    from edge.analyze.inputs import clip_id, content_hash
    from edge.analyze.run import Task, identity

    order, seen, tasks, summaries = [], set(), [], {}
    for clip in clips:
        clip = replace(clip, path=os.path.abspath(clip.path), files=tuple(os.path.abspath(f) for f in clip.files))
        try:
            digest = content_hash(clip)
        except OSError as e:
            digest = "unreadable-" + os.urandom(8).hex()
            clip = replace(clip, error=f"cannot read it: {e.strerror or e}")
        cid = clip_id(clip, digest, keep_names)
        if cid in seen:  # the same content twice among the inputs
            continue
        seen.add(cid)
        order.append(cid)
        ids = identity(bundle, config_sha, digest)
        done = report.read_summary(out, cid)
        if done is not None and done.get("status") == "done" and done.get("key") == ids["key"]:
            summaries[cid] = done
        else:
            tasks.append(Task(clip, cid, ids))
    return order, tasks, summaries


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _frame_totals(rows: list[dict]) -> str:
    """The analysed clips' frames in one phrase: accepted of measured, and those not measured."""
    done = [r for r in rows if r.get("status") == "done"]
    frames, accepted = (sum(r.get(k) or 0 for r in done) for k in ("frames", "accepted"))
    skipped = [
        f"{n} {why}"
        for key, why in (
            ("frames_without_roi", "without a B-mode region"),
            ("frames_layout_changing", "while the layout changed"),
        )
        if (n := sum(r.get(key) or 0 for r in done))
    ]
    return f"{accepted} of {frames} measured frames accepted" + (
        f" ({', '.join(skipped)}: not measured)" if skipped else ""
    )


def _config_dict(cfg) -> dict:
    import dataclasses

    return {k: dataclasses.asdict(getattr(cfg, k)) for k in ("roi", "calibration", "measurement", "temporal")} | {
        "source": {"max_pixels": cfg.source.max_pixels}
    }


def _bar(total: int, initial: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="clip", desc="analyse", disable=quiet, file=sys.stderr, dynamic_ncols=True
    )
