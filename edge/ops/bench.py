"""`tlf-edge bench`: qualify a cart with one command.

Per-stage latency (capture and decode, preprocessing, invoke, postprocessing and measurement,
sinks) at p50/p90/p99 from a sequential pass, and from the same pass the per-frame budget: each
part of the chain's CPU and wall time with the thread of `tlf-edge run` that runs it
(edge.ops.budget); the invoke's achieved int8 GMAC/s (the model's MACs counted from its .tflite,
edge.model.macs) beside the machine's int8 peak measured at the same thread count
(edge.ops.peak); end-to-end frames/s and latency from capture to the display write from the
threaded pipeline (the display written to a serial port that only listens, edge.ops.drain); peak resident memory, CPU use, model size, start to
first measurement, on-device accuracy against phantom truth, and a device fingerprint. Writes
bench.json, bench.md and latency_hist.png.

Given labelled data (`data`: a data-set folder, see edge.data.dataset, or "phantom[:N]") it also scores
the bundle's int8 model on it with the device's own preprocessing, kernels and measurement: pixel
accuracy, IoU and Dice per class and their means (pooled over all images, on the model grid, as
convert's validation does), and the thickness error against the thickness measured the same way
on the true mask (and, for phantom frames, against the phantom's exact thickness).
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import resource
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.data.dataset import DatasetError, LabelledFrame, labelled_frames, phantom_count
from edge.errors import EdgeError, RunFailed
from edge.frame import Frame
from edge.host import device_identity, installed_version
from edge.measure.metrics import scores
from edge.measure.thickness import ThicknessOptions, measure_thickness
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.model.macs import count_macs
from edge.model.preprocess import resize_labels
from edge.model.segmenter import Segmenter
from edge.model.threads import default_threads
from edge.numbers import rounded, significant
from edge.ops.budget import MODEL_STAGE, THREADS, StageMeter, instrumented, sink_stage
from edge.ops.drain import DrainedPort
from edge.ops.peak import gmac_per_s, peak_int8
from edge.runtime.chain import ChainOptions, FrameChain
from edge.runtime.factory import open_source
from edge.runtime.pipeline import Pipeline
from edge.screen.options import RoiOptions, SpacingOptions
from edge.sinks.base import Sink
from edge.sinks.display import DisplaySink
from edge.sinks.jsonl import JsonLinesLog
from edge.sinks.scoring import ScoringSink

STAGES = ("capture", "roi", "preprocess", "invoke", "postprocess", "sinks")
DEFAULT_SOURCE = "phantom://clip?seed=11&frames=120&size=400x400"


def fingerprint() -> dict:
    return {
        **device_identity(),
        "logical_cpus": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "ai_edge_litert": installed_version("ai-edge-litert"),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def percentiles(values_ms) -> dict:
    v = np.asarray(values_ms, float)
    if v.size == 0:
        return {"p50": None, "p90": None, "p99": None}
    return {f"p{q}": round(float(np.percentile(v, q)), 3) for q in (50, 90, 99)}


def stage_pass(segmenter: Segmenter, source_url: str, frames: int, sinks: list[Sink]) -> tuple[dict, dict, StageMeter]:
    """Times each stage of the per-frame chain one after the other; also scores the model against
    phantom truth.

    The chain is the runtime's own (edge.runtime.chain with the default [roi] and [calibration]
    options, as `tlf-edge run` without a config): a full screen is cut to its B-mode region and
    calibrated, a source that delivers the region already passes through. Screens on which no
    region is found are not measured (they count in the capture stage only). The preprocess stage
    holds the freeze check and the resize to the model grid; postprocess the argmax, the
    measurement, the out-of-domain guard and the temporal filter. The same pass times the parts
    of these stages on their own, CPU and wall (edge.ops.budget), over the measured frames.
    """
    times: dict[str, list[float]] = {s: [] for s in STAGES}  # ms per frame
    chain = FrameChain(segmenter, ChainOptions(roi=RoiOptions(), calibration=SpacingOptions()))
    meter = StageMeter()
    source = open_source(source_url)
    source.grayscale_only = chain.grayscale_input  # as in `tlf-edge run`
    with source, instrumented(chain, meter):
        scoring = ScoringSink(source.truth, chain.options.measurement, segmenter.spec, segmenter.classes)
        for sink in sinks:
            sink.open()
        for _ in range(frames):
            t0 = time.perf_counter()
            with meter.stage("decode"):
                frame = source.read()
            if frame is None:
                break
            t1 = time.perf_counter()
            with meter.stage("crop"):
                frame, _ = chain.crop(frame, source.cropped, source.calibration)
            if frame is None:
                meter.discard_frame()
                continue
            t2 = time.perf_counter()
            with meter.stage("resize"):
                staged = chain.model_input(frame)
            with meter.stage("tensor copy"):
                inference = chain.invoke(staged)
            t3 = time.perf_counter()
            with meter.stage("measurement"):
                result = chain.finish(inference)
            t4 = time.perf_counter()
            for sink in sinks:
                with meter.stage(sink_stage(sink.name)):
                    for m in result.measurements:
                        sink.write(m, result.segmentation)
            t5 = time.perf_counter()
            meter.end_frame()
            for m in result.measurements:
                scoring.write(m, result.segmentation)
            invoke = inference.t_done - inference.t_invoke
            for name, ms in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2 - invoke, invoke, t4 - t3, t5 - t4)):
                times[name].append(ms * 1000)
    chain.close()
    for sink in sinks:
        sink.close()
    if not times["invoke"]:
        raise RunFailed(
            f"the source {source_url!r} delivered no frame to measure"
            + (" (no B-mode region found on its screens)" if chain.prepare and chain.prepare.frames_without_roi else "")
        )
    scored = scoring.summary() or {}
    accuracy = {}
    if "mean_iou" in scored:
        accuracy = {
            "frames": scored["iou_frames"],
            "mean_iou": scored["mean_iou"],
            "thickness_mae_mm": scored.get("abs_error_mean_mm"),
            "measured_frames": scored["thickness_frames"],
        }
    return times, accuracy, meter


def parse_spacing(text: str | None) -> tuple[float, float] | None:
    """'R,C' (mm per pixel, row then column; one value for both) -> (R, C); None stays None."""
    if text is None:
        return None
    try:
        parts = tuple(float(v) for v in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(math.isfinite(v) and v > 0 for v in parts):
        raise EdgeError(f"spacing must be 'ROW_MM,COL_MM' with two positive numbers, not {text!r}")
    return parts  # type: ignore[return-value]


def _errors(measured: list[float], reference: list[float]) -> dict:
    m, r = np.asarray(measured, float), np.asarray(reference, float)
    ok = ~(np.isnan(m) | np.isnan(r))
    d = m[ok] - r[ok]
    if d.size == 0:
        return {"n": 0, "mae": None, "bias": None, "max_abs": None}
    return {
        "n": int(d.size),
        "mae": round(float(np.abs(d).mean()), 4),
        "bias": round(float(d.mean()), 4),
        "max_abs": round(float(np.abs(d).max()), 4),
    }


def labelled_data(
    data: str | Path, spacing_mm: tuple[float, float] | None = None, model_classes: int | None = None
) -> Iterator[LabelledFrame]:
    """The labelled frames `--data` names: a data-set folder or 'phantom[:N]' (the first N held-out
    phantom scans, the scenes of tlf-convert's validation set, with their exact truth). Bad
    arguments fail here, before the first frame is read."""
    n = phantom_count(str(data))
    if n is None:
        return labelled_frames(data, spacing_mm, model_classes=model_classes)
    if spacing_mm is not None:
        raise DatasetError("phantom data carries its own pixel spacing; give none")
    from edge.sim.recipes import held_out_frames

    return held_out_frames(n)


def accuracy_pass(
    segmenter: Segmenter, frames, data_name: str = "", options: ThicknessOptions = ThicknessOptions()
) -> dict:
    """Score the segmenter on labelled frames with the device's preprocessing, int8 kernels,
    argmax and thickness measurement.

    Segmentation scores are pooled over all images on the model grid (truth resized by nearest
    neighbour); `per_image_mean_iou` is the mean of the images' own mean IoUs. Thickness: the
    runtime's per-frame chain (edge.runtime.chain, each image on its own: sub-pixel, from the
    scores in logit units, log-probabilities for a softmax model, with the out-of-domain guard)
    against the same measurement on the true mask with the model's class count; frames where
    either is rejected are counted, not scored.
    """
    spec, tlf, k = segmenter.spec, segmenter.bundle.tlf_class, segmenter.classes
    truths, preds, per_image = [], [], []
    device_mm, truth_mm, exact_mm = [], [], []
    unit = None
    t0 = time.perf_counter()
    chain = FrameChain(segmenter, ChainOptions(measurement=options, independent=True))
    for i, f in enumerate(frames):
        if f.classes and len(f.classes) != k:
            raise DatasetError(
                f"the data set has {len(f.classes)} classes {list(f.classes)} but the model has {k} "
                f"{segmenter.bundle.manifest.get('classes')}"
            )
        truth = resize_labels(f.labels, spec)
        top = int(truth.max(initial=0))
        if top >= k:
            raise DatasetError(
                f"labels of {f.stem!r} hold class {top} but the model has {k} classes "
                f"{segmenter.bundle.manifest.get('classes')}"
            )
        result = chain(Frame(f.image, 0.0, i, f.spacing_mm), cropped=True)
        assert result is not None  # without [roi] options every frame is measured as it is
        seg, device = result.segmentation, result.measurements[0]
        truths.append(truth)
        preds.append(seg.labels)
        per_image.append(scores(truth, seg.labels, k)["mean_iou"])
        device_mm.append(device.thickness)
        truth_mm.append(
            measure_thickness(truth, None, seg.spacing_mm, options, tlf=tlf, classes=k, pixel_size=seg.pixel_size).value
        )
        exact_mm.append(f.exact_mm if f.exact_mm is not None else math.nan)
        if unit is None:
            unit = device.unit
        elif unit != device.unit:
            raise DatasetError(
                f"image {f.stem!r} has {'no ' if device.unit == 'px' else ''}pixel spacing unlike the "
                "images before it: give --spacing-mm or spacing for every image"
            )
    if not truths:
        raise DatasetError(f"no labelled images in {data_name!r}")
    pooled = scores(np.stack(truths), np.stack(preds), k)
    dev, tru = np.asarray(device_mm), np.asarray(truth_mm)
    thickness: dict[str, Any] = {
        "unit": unit,
        "vs_mask": _errors(device_mm, truth_mm),
        "device_rejected": int(np.isnan(dev).sum()),
        "truth_unmeasurable": int(np.isnan(tru).sum()),
    }
    if not np.isnan(exact_mm).all():
        thickness["vs_exact"] = _errors(device_mm, exact_mm)
        thickness["mask_vs_exact"] = _errors(truth_mm, exact_mm)
    return {
        "data": data_name,
        "images": len(truths),
        "threads": segmenter.num_threads,
        "classes": segmenter.bundle.manifest.get("classes"),
        "pixel_accuracy": rounded(pooled["pixel_accuracy"]),
        "mean_iou": rounded(pooled["mean_iou"]),
        "mean_dice": rounded(pooled["mean_dice"]),
        "iou": [rounded(v) for v in pooled["iou"]],
        "dice": [rounded(v) for v in pooled["dice"]],
        "per_image_mean_iou": rounded(float(np.mean(per_image))),
        "thickness_mae": thickness["vs_mask"]["mae"],
        "thickness": thickness,
        "seconds": round(time.perf_counter() - t0, 2),
    }


class _Latency(Sink):
    """Records the time from capture to the moment the display sink has written the frame."""

    name = "latency"

    def __init__(self):
        self.ms = []

    def write(self, m, seg):
        self.ms.append((time.monotonic() - m.t_capture) * 1000)


def invoke_rate(model_macs: int, budget: dict, peak: dict) -> dict:
    """The model's achieved int8 rate (its MACs over the median invoke of the stage pass) beside
    the peak convolution's at the same thread count, and their ratio; the same by CPU time (the
    process's during the invoke), which a machine shared with other work stretches less."""
    invoke = budget["stages"][MODEL_STAGE]
    invoke_ms, invoke_cpu_ms = invoke["wall_ms_p50"], invoke["cpu_ms_p50"]
    rate = gmac_per_s(model_macs, invoke_ms) if invoke_ms else None
    cpu_rate = gmac_per_s(model_macs, invoke_cpu_ms) if invoke_cpu_ms else None
    peak_cpu_rate = peak["gmac_per_cpu_s"]
    return {
        "threads": peak["threads"],
        "model_gmac": round(model_macs / 1e9, 4),
        "invoke_ms_p50": invoke_ms,
        "invoke_gmac_per_s": significant(rate, 4) if rate else None,
        "peak_gmac_per_s": peak["gmac_per_s"],
        "peak_invoke_ms_p50": peak["invoke_ms_p50"],
        "of_peak": significant(rate / peak["gmac_per_s"]) if rate else None,
        "invoke_cpu_ms_p50": invoke_cpu_ms,
        "invoke_gmac_per_cpu_s": significant(cpu_rate, 4) if cpu_rate else None,
        "peak_gmac_per_cpu_s": peak_cpu_rate,
        "of_peak_by_cpu": significant(cpu_rate / peak_cpu_rate) if cpu_rate and peak_cpu_rate else None,
    }


def bench_threads(bundle_path, source_url: str, frames: int, threads: int, work: Path, model_macs: int) -> dict:
    t_start = time.monotonic()
    cpu0 = os.times()
    segmenter = Segmenter(load_bundle(bundle_path), threads)
    with DrainedPort() as port:  # the display: a serial port that only listens, as on a cart
        stage_sinks: list[Sink] = [
            DisplaySink(port, segmenter.bundle.model_id),
            JsonLinesLog(work / f"stage_pass_t{threads}.jsonl", segmenter.bundle.sha256),
        ]
        times, accuracy, meter = stage_pass(segmenter, source_url, frames, stage_sinks)
    budget = meter.budget([*THREADS, *(sink_stage(s.name) for s in stage_sinks)])
    rate = invoke_rate(model_macs, budget, peak_int8(segmenter.num_threads))
    latency = _Latency()
    with DrainedPort() as port:
        sinks = [
            JsonLinesLog(work / f"frames_t{threads}.jsonl", segmenter.bundle.sha256),
            DisplaySink(port, segmenter.bundle.model_id),
            latency,
        ]
        pipeline = Pipeline(
            open_source(source_url), segmenter, sinks, err=io.StringIO(), roi=RoiOptions(), calibration=SpacingOptions()
        )
        t_run = time.monotonic()
        stats = pipeline.run(max_frames=frames)
    cpu1 = os.times()
    wall = time.monotonic() - t_start
    invoke_fps = 1000.0 / np.median(times["invoke"]) if times["invoke"] else None
    return {
        "threads": threads,
        "frames": stats.frames,
        "stage_ms": {name: percentiles(v) for name, v in times.items()},
        "budget": budget,
        "int8_rate": rate,
        "invoke_fps": round(invoke_fps, 2) if invoke_fps else None,
        "pipeline_fps": round(stats.steady_fps, 2),  # from the first measurement on
        "pipeline_fps_from_start": round(stats.fps, 2),  # the start (finding the region and scale) counted
        "pipeline_vs_invoke": round(stats.steady_fps / invoke_fps, 3) if invoke_fps else None,
        "capture_to_display_ms": percentiles(latency.ms),
        "start_to_first_measurement_s": round(stats.t_first_measurement - t_run, 3)
        if stats.t_first_measurement
        else None,
        "cpu_percent": round(100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / wall, 1),
        "dropped_frames": stats.dropped_frames,
        "frames_without_roi": stats.frames_without_roi,
        "frames_layout_changing": stats.frames_layout_changing,
        "accuracy": accuracy,
        "_invoke_ms": times["invoke"],
    }


def histogram_png(results: list[dict], path: Path, width: int = 640, height: int = 320) -> None:
    """Invoke-latency histograms, one colour per thread count (drawn with OpenCV: no plotting library on the cart)."""
    img = np.full((height, width, 3), 255, np.uint8)
    all_ms = np.concatenate([r["_invoke_ms"] for r in results if r["_invoke_ms"]]) if results else np.array([])
    if all_ms.size == 0:
        cv2.imwrite(str(path), img)
        return
    lo, hi = 0.0, float(np.percentile(all_ms, 99.5)) * 1.1
    bins = np.linspace(lo, hi, 41)
    colours = [(200, 80, 0), (0, 140, 255), (0, 160, 0), (160, 0, 160)]
    counts = [np.histogram(r["_invoke_ms"], bins)[0] for r in results]
    top = max(c.max() for c in counts) or 1
    left, bottom, plot_h = 50, height - 40, height - 80
    bar_w = (width - left - 20) / (len(bins) - 1)
    for k, (r, c) in enumerate(zip(results, counts)):
        for i, n in enumerate(c):
            x0 = int(left + i * bar_w + k * bar_w / len(results))
            x1 = int(x0 + bar_w / len(results)) - 1
            cv2.rectangle(img, (x0, bottom), (x1, int(bottom - n / top * plot_h)), colours[k % 4], -1)
        cv2.putText(
            img,
            f"{r['threads']} thread(s)",
            (left + 10, 20 + 16 * k),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            colours[k % 4],
            1,
        )
    cv2.line(img, (left, bottom), (width - 20, bottom), (0, 0, 0), 1)
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        x = int(left + frac * (width - left - 20))
        cv2.putText(
            img, f"{lo + frac * (hi - lo):.1f}", (x - 10, bottom + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1
        )
    cv2.putText(img, "invoke latency (ms)", (width // 2 - 70, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.imwrite(str(path), img)


def budget_lines(run: dict) -> list[str]:
    """One run's per-frame budget table (stage, thread of `tlf-edge run`, CPU and wall ms), the
    CPU outside the model, and the invoke's int8 rate beside the peak convolution's."""
    b, rate = run["budget"], run["int8_rate"]
    lines = [
        f"Per-frame budget at {run['threads']} interpreter thread(s) (sequential pass, {b['frames']} measured "
        "frames; CPU: the stage's own thread, invoke: all the process's threads; each stage without the ones inside it):",
        "",
        "| stage | thread in `tlf-edge run` | CPU ms p50 | CPU ms mean | wall ms p50 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, st in b["stages"].items():
        ran = "" if st["frames"] else " (not run)"
        lines.append(
            f"| {name}{ran} | {st['thread']} | {st['cpu_ms_p50']} | {st['cpu_ms_mean']} | {st['wall_ms_p50']} |"
        )
    out = b.get("outside_model_cpu_ms")
    if out:
        lines += [
            "",
            f"CPU outside the model: {out['p50']} ms per frame (p50 of the per-frame sum; mean {out['mean']}). "
            "Mean CPU ms per frame by thread: "
            + ", ".join(f"{t} {ms}" for t, ms in b["thread_cpu_ms_mean"].items())
            + ".",
        ]
    lines.append(
        f"Invoke: {rate['invoke_gmac_per_s']} GMAC/s ({rate['model_gmac']} GMAC per frame in {rate['invoke_ms_p50']} ms); "
        f"peak int8 {rate['peak_gmac_per_s']} GMAC/s (one 3x3 int8 convolution, {rate['peak_invoke_ms_p50']} ms); "
        f"ratio {rate['of_peak']}, at {rate['threads']} thread(s). By CPU time (all the interpreter's threads): "
        f"{rate['invoke_gmac_per_cpu_s']} against {rate['peak_gmac_per_cpu_s']} GMAC per CPU-second, "
        f"ratio {rate['of_peak_by_cpu']}."
    )
    return lines


def markdown(report: dict) -> str:
    fp = report["device"]
    lines = [
        "# tlf-edge bench",
        "",
        f"Device: {fp['cpu']} ({fp['machine']}), {fp['physical_cores']} physical cores, int8 features: "
        f"{', '.join(fp['int8_features']) or 'none'}; {fp['os']}; Python {fp['python']}, ai-edge-litert {fp['ai_edge_litert']}.",
        f"Model: {report['bundle']} ({report['model_bytes']} bytes, sha256 {report['model_sha256'][:12]}). "
        f"Source: `{report['source']}`, {report['frames']} frames. Peak resident memory {report['peak_rss_mb']} MB.",
        "",
        "| threads | "
        + " | ".join(f"{s} p50/p90/p99 ms" for s in STAGES)
        + " | invoke fps | pipeline fps | capture to display p50/p90 ms | first measurement s | CPU % |",
        "|" + " --- |" * (len(STAGES) + 6),
    ]
    notes = [
        "",
        "Pipeline fps: the threaded pipeline's frames per second from its first measurement to its last (the "
        "start, which finds the B-mode region and reads the scale, is the first-measurement column).",
    ]
    for r in report["runs"]:
        st = " | ".join("/".join(str(r["stage_ms"][s][p]) for p in ("p50", "p90", "p99")) for s in STAGES)
        lat = r["capture_to_display_ms"]
        lines.append(
            f"| {r['threads']} | {st} | {r['invoke_fps']} | {r['pipeline_fps']} | {lat['p50']}/{lat['p90']} | "
            f"{r['start_to_first_measurement_s']} | {r['cpu_percent']} |"
        )
    lines += notes
    for r in report["runs"]:
        lines += ["", *budget_lines(r)]
    best = report.get("best_threads")
    if best and len(report["runs"]) < 2:  # edge.model.threads takes a count only from a comparison
        lines += [
            "",
            f"One thread count measured ({best['threads']}): `tlf-edge run` takes a count from a bench.json only "
            f"when it compared two or more (`--threads 1,2`); without that it uses {default_threads()} "
            "(the physical cores but one).",
        ]
    elif best:
        lines += [
            "",
            f"Most frames end to end: {best['threads']} interpreter thread(s), {best['pipeline_fps']} fps "
            f"({best['of_invoke']}x the invoke-only rate). `tlf-edge run` takes this count by itself when this "
            f"bench.json is `bench/bench.json` in its data folder ([storage] data_dir, else the working directory) "
            f"and `[model] num_threads` is 0; without it, it uses {default_threads()} (the physical cores but one).",
        ]
    acc = report["runs"][0]["accuracy"] if report["runs"] else {}
    if acc:
        lines += [
            "",
            f"On-device accuracy against phantom truth ({acc['frames']} frames): mean IoU {acc['mean_iou']}, "
            f"thickness MAE {acc['thickness_mae_mm']} mm over {acc['measured_frames']} measured frames.",
        ]
    data = report.get("accuracy")
    if data:
        th = data["thickness"]
        unit = th["unit"]
        lines += [
            "",
            f"On-device accuracy on `{data['data']}` ({data['images']} images, int8 model, {data['threads']} thread(s)): "
            f"pixel accuracy {data['pixel_accuracy']}, mean IoU {data['mean_iou']}, mean Dice {data['mean_dice']} "
            f"(pooled over the images; per-image mean IoU {data['per_image_mean_iou']}).",
            "",
            "| class | IoU | Dice |",
            "| --- | --- | --- |",
        ]
        names = data["classes"] or [str(i) for i in range(len(data["iou"]))]
        lines += [f"| {n} | {i} | {d} |" for n, i, d in zip(names, data["iou"], data["dice"])]
        vm = th["vs_mask"]
        lines += [
            "",
            f"Thickness against the same measurement on the true mask: MAE {vm['mae']} {unit}, bias {vm['bias']} {unit}, "
            f"max {vm['max_abs']} {unit} over {vm['n']} images ({th['device_rejected']} rejected by the device, "
            f"{th['truth_unmeasurable']} unmeasurable on the mask).",
        ]
        if "vs_exact" in th:
            ve, me = th["vs_exact"], th["mask_vs_exact"]
            lines.append(
                f"Against the phantom's exact thickness: device MAE {ve['mae']} {unit} (bias {ve['bias']}) over {ve['n']} images; "
                f"the true mask itself, measured on the model grid: MAE {me['mae']} {unit}."
            )
    lines += ["", "![invoke latency](latency_hist.png)", ""]
    return "\n".join(lines)


def run_bench(
    bundle=DEMO_BUNDLE,
    source=DEFAULT_SOURCE,
    frames: int = 100,
    threads=(1, 2),
    out: Path = Path("bench"),
    data: str | Path | None = None,
    spacing_mm: tuple[float, float] | None = None,
) -> dict:
    """Bench the bundle on `source` once per thread count; with `data` (a labelled folder or
    'phantom[:N]') also score it there. Writes bench.json, bench.md and latency_hist.png to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    b = load_bundle(bundle)
    classes = len(b.manifest["classes"])
    labelled = labelled_data(data, spacing_mm, model_classes=classes) if data is not None else None  # fail now
    model_macs = count_macs(b.model_path).total
    runs = [bench_threads(bundle, source, frames, t, out, model_macs) for t in threads]
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # before scoring holds the masks
    accuracy = accuracy_pass(Segmenter(b, max(threads)), labelled, str(data)) if labelled is not None else None
    report = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
        "device": fingerprint(),
        "bundle": str(bundle),
        "model_sha256": b.sha256,
        "model_bytes": b.model_path.stat().st_size,
        "source": source,
        "frames": frames,
        "peak_rss_mb": peak_rss_mb,
        "runs": runs,
    }
    if runs:
        top = max(runs, key=lambda r: r["pipeline_fps"])
        report["best_threads"] = {
            "threads": top["threads"],
            "pipeline_fps": top["pipeline_fps"],
            "of_invoke": round(top["pipeline_fps"] / top["invoke_fps"], 3),
        }
    if accuracy is not None:
        report["accuracy"] = accuracy
    histogram_png(runs, out / "latency_hist.png")
    for r in runs:
        r.pop("_invoke_ms")
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(report))
    return report
