"""One machine, the same weights, five ways to run the U-Net: which is fastest, and does each agree?

    pip install -e ".[convert,compare]"
    python benchmarks/compare_runtimes.py --model build/demo/stage2/model.keras [--threads 1,2]
    python benchmarks/compare_runtimes.py            # no weights at hand: a fresh paper-size U-Net

Rows (each at 1 and at 2 threads, every runtime held to that many threads):
  keras float32     the Keras model in TensorFlow (predict_on_batch; intra-op threads = n, inter-op 1)
  tflite float32    the same weights converted to float TFLite, run by LiteRT with XNNPACK
  tflite int8       ours: the bundle's full-integer model through edge.model.segmenter (LiteRT, XNNPACK)
  onnxrt float32    the Keras model converted by tf2onnx, ONNX Runtime CPU (for reference)
  onnxrt int8       that ONNX model quantized statically by onnxruntime.quantization (QDQ,
                    per-channel weights) on the same calibration images as the bundle
and the source study's 0.49 s per image (43 s for 87 images on Google Colab) as a reference line.

Weights: with --model, that Keras file (e.g. the demo bundle's float model; --bundle names its
int8 bundle, the demo bundle by default, or "quantize" to quantize it here). Without --model, a
paper-size U-Net (convert.unet.build_unet, seeded random weights) quantized here by
convert.quantize with the phantom calibration set: timings are valid, accuracy is meaningless.
The output says which weights were used.

Each runtime runs in its own fresh process (TensorFlow fixes its thread pools once per process;
it also gives each runtime its own peak memory). Invoke time is the model call alone, input
already preprocessed: for ours, edge.model.segmenter's infer (int8 lookup, set, invoke, get). Every
runtime's label maps on held-out phantom images are compared with Keras float (pixel agreement,
mean IoU) and with the phantom truth, so a broken conversion or quantization shows in the table.

On a shared machine timings vary with its load: the load average is printed with each row, and
the process CPU time per invoke is shown beside the wall-clock time (it leaves out the time spent
waiting for a core, though not the slowdown of sharing caches or a hyper-threaded core). Use
--rounds to interleave several passes (all samples are pooled), and re-run when it is quiet.
Not a test: run it by hand. Needs the [convert] and [compare] extras.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

RUNTIMES = ("keras_f32", "tflite_f32", "tflite_int8", "onnxrt_f32", "onnxrt_int8")
LABELS = {
    "keras_f32": "Keras float32 (TensorFlow)",
    "tflite_f32": "TFLite float32 (LiteRT, XNNPACK)",
    "tflite_int8": "TFLite int8, ours (edge.model.segmenter)",
    "onnxrt_f32": "ONNX Runtime float32",
    "onnxrt_int8": "ONNX Runtime int8 (static QDQ, per-channel)",
}
PAPER_S_PER_IMAGE = 43.0 / 87  # the source study: 43 s for 87 test images on Google Colab
DEFAULT_MODEL = ROOT / "build" / "demo" / "stage2" / "model.keras"
OPSET = 17


# --------------------------------------------------------------------------- machine


def machine() -> dict:
    from edge.ops.bench import fingerprint
    from edge.host import cpu_flags

    flags = cpu_flags()
    fp = fingerprint()
    return {
        "cpu": fp["cpu"],
        "physical_cores": fp["physical_cores"],
        "logical_cpus": fp["logical_cpus"],
        "avx2": "avx2" in flags,
        "avx512f": "avx512f" in flags,
        "vnni": bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"}),
        "os": fp["os"],
        "python": fp["python"],
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    names = ("tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "onnxruntime", "onnx", "tf2onnx", "numpy", "protobuf")
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


# --------------------------------------------------------------------------- preparation (TensorFlow)


class _CalibrationReader:
    """onnxruntime's calibration data reader over the bundle's calibration images (float input)."""

    def __init__(self, name: str, images: np.ndarray, spec):
        from edge.model.preprocess import to_float

        self._feeds = [{name: to_float(img, spec)[None]} for img in images]
        self._i = 0

    def get_next(self):
        if self._i >= len(self._feeds):
            return None
        self._i += 1
        return self._feeds[self._i - 1]

    def rewind(self):
        self._i = 0


def prepare(args, work: Path) -> dict:
    """Write every model file and the evaluation images into `work`; return what was made."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as e:
        sys.exit(f"compare_runtimes: {e.name} is missing: pip install -e '.[convert,compare]'")
    import tensorflow as tf

    from edge.sim.recipes import CALIBRATION_SEEDS, PHANTOM_DATA_SEEDS
    from convert.data import phantom_batch
    from convert.quantize import load_keras_model, quantize_to_bundle, with_fixed_batch
    from convert.unet import build_unet, split_skip_connections
    from edge.model.bundle import DEMO_BUNDLE, load_bundle
    from edge.model.preprocess import PreprocessSpec

    work.mkdir(parents=True, exist_ok=True)
    if args.model:
        model = load_keras_model(args.model)
        weights = f"{args.model} (trained float weights)"
    else:
        import keras

        keras.utils.set_random_seed(args.seed)
        model = build_unet()
        weights = f"convert.unet.build_unet() paper-size U-Net, random weights (seed {args.seed}): speed only, no accuracy"
    # The graph the bundle is made from: skip connections split, batch fixed to 1 (exact in float).
    model = with_fixed_batch(split_skip_connections(model))
    _, h, w, c = model.input_shape
    spec = PreprocessSpec(height=h, width=w, channels=c)
    print(f"weights: {weights}; {model.count_params():,} parameters, input {h}x{w}x{c}", flush=True)

    calib = phantom_batch(range(CALIBRATION_SEEDS, CALIBRATION_SEEDS + args.calib_n), spec)[0]
    images, truth = phantom_batch(range(PHANTOM_DATA_SEEDS, PHANTOM_DATA_SEEDS + args.eval_n), spec)
    np.save(work / "eval_images.npy", images)
    np.save(work / "eval_truth.npy", truth)

    if args.model and args.bundle != "quantize":
        bundle_path = Path(args.bundle) if args.bundle else DEMO_BUNDLE
        bundle_note = f"{bundle_path} (as shipped)"
    else:
        t0 = time.perf_counter()
        bundle_path = work / "bundle"
        quantize_to_bundle(model, calib, spec, bundle_path, check_calibration_set=False)
        bundle_note = (f"quantized here by convert.quantize ({args.calib_n} phantom calibration images, "
                       f"{time.perf_counter() - t0:.0f} s)")
    bundle = load_bundle(bundle_path)
    if bundle.spec != spec:
        sys.exit(f"compare_runtimes: the bundle's preprocessing {bundle.spec} does not fit the model input {spec}")

    keras_path = work / "model.keras"
    model.save(keras_path)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)  # float32: no optimizations
    (work / "model_f32.tflite").write_bytes(conv.convert())

    t0 = time.perf_counter()
    signature = (tf.TensorSpec((1, h, w, c), tf.float32, name="image"),)
    try:
        tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET, output_path=str(work / "model_f32.onnx"))
        onnx_from = f"tf2onnx.convert.from_keras (opset {OPSET})"
    except Exception as e:  # tf2onnx's Keras path breaks with some Keras versions: the float TFLite is the fallback
        print(f"tf2onnx from_keras failed ({type(e).__name__}: {e}); converting the float TFLite instead", flush=True)
        tf2onnx.convert.from_tflite(str(work / "model_f32.tflite"), opset=OPSET, output_path=str(work / "model_f32.onnx"))
        onnx_from = f"tf2onnx.convert.from_tflite (opset {OPSET})"
    # Shapes are static: ONNX shape inference and graph optimisation suffice (no sympy needed).
    quant_pre_process(str(work / "model_f32.onnx"), str(work / "model_f32_pre.onnx"), skip_symbolic_shape=True)
    activation = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[args.onnx_activations]
    reduce_range = {"yes": True, "no": False, "auto": not machine()["vnni"]}[args.reduce_range]
    import onnxruntime as ort

    name = ort.InferenceSession(str(work / "model_f32_pre.onnx"), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(str(work / "model_f32_pre.onnx"), str(work / "model_int8.onnx"), _CalibrationReader(name, calib, spec),
                    quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                    activation_type=activation, weight_type=QuantType.QInt8)
    onnx_note = (f"{onnx_from}; quantize_static QDQ, per-channel QInt8 weights, {activation.name} activations, "
                 f"reduce_range={reduce_range}, MinMax over the same {args.calib_n} calibration images "
                 f"({time.perf_counter() - t0:.0f} s)")
    files = {"keras_f32": keras_path, "tflite_f32": work / "model_f32.tflite", "tflite_int8": bundle.model_path,
             "onnxrt_f32": work / "model_f32.onnx", "onnxrt_int8": work / "model_int8.onnx"}
    prep = {
        "weights": weights,
        "bundle": str(bundle_path),
        "bundle_note": bundle_note,
        "bundle_sha256": bundle.sha256,
        "onnx_note": onnx_note,
        "calibration_images": args.calib_n,
        "eval_images": args.eval_n,
        "files": {k: str(v) for k, v in files.items()},
        "model_bytes": {k: Path(v).stat().st_size for k, v in files.items()},
    }
    (work / "prep.json").write_text(json.dumps(prep, indent=2) + "\n")
    return prep


# --------------------------------------------------------------------------- one runtime in its own process


def _loader(runtime: str, prep: dict, threads: int):
    """A function uint8 model image (H, W, C) -> raw output (H, W, K), for `runtime` at `threads`."""
    path = prep["files"][runtime]
    if runtime == "tflite_int8":
        from edge.model.bundle import load_bundle
        from edge.model.segmenter import Segmenter

        return Segmenter(load_bundle(prep["bundle"]), threads).infer
    from edge.model.bundle import load_bundle
    from edge.model.preprocess import to_float

    spec = load_bundle(prep["bundle"]).spec
    if runtime == "keras_f32":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        model = keras.models.load_model(path, compile=False, safe_mode=True)
        return lambda img: np.asarray(model.predict_on_batch(to_float(img, spec)[None]))[0]
    if runtime == "tflite_f32":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        def run(img):
            interp.set_tensor(i, to_float(img, spec)[None])
            interp.invoke()
            return interp.get_tensor(o)[0]

        return run
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda img: sess.run(None, {name: to_float(img, spec)[None]})[0][0]


def worker(runtime: str, threads: int, work: Path, runs: int, warmup: int, tag: str) -> None:
    prep = json.loads((work / "prep.json").read_text())
    t0 = time.perf_counter()
    infer = _loader(runtime, prep, threads)
    load_s = time.perf_counter() - t0
    images = np.load(work / "eval_images.npy")
    labels = np.stack([np.argmax(infer(img), -1).astype(np.uint8) for img in images])  # also warms up
    for k in range(warmup):
        infer(images[k % len(images)])
    load0 = os.getloadavg()[0]
    ms, cpu = [], []
    for k in range(runs):
        img = images[k % len(images)]
        c, t = time.process_time(), time.perf_counter()
        infer(img)
        ms.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    np.save(work / f"labels_{tag}.npy", labels)
    out = {"runtime": runtime, "threads": threads, "tag": tag, "ms": ms, "cpu_ms": cpu, "load_s": round(load_s, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)]}
    (work / f"result_{tag}.json").write_text(json.dumps(out))


# --------------------------------------------------------------------------- report


def summarise(prep: dict, results: list[dict], work: Path, threads: list[int]) -> list[dict]:
    from edge.model.bundle import load_bundle
    from edge.measure.metrics import scores

    truth = np.load(work / "eval_truth.npy")
    k = len(load_bundle(prep["bundle"]).manifest["classes"])
    rows = []
    for t in threads:
        at_t = [r for r in results if r["threads"] == t]
        keras = [r for r in at_t if r["runtime"] == "keras_f32"]
        ref = np.load(work / f"labels_{keras[0]['tag']}.npy") if keras else None
        for runtime in RUNTIMES:
            rs = [r for r in at_t if r["runtime"] == runtime]
            if not rs:
                continue
            ms = [v for r in rs for v in r["ms"]]
            cpu = [v for r in rs for v in r["cpu_ms"]]
            lab = np.load(work / f"labels_{rs[0]['tag']}.npy")
            row = {
                "runtime": runtime,
                "threads": t,
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p90_ms": round(float(np.percentile(ms, 90)), 2),
                "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2),
                "samples": len(ms),
                "model_mb": round(prep["model_bytes"][runtime] / 2**20, 2),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                "load_average": [min(r["load_average"][0] for r in rs), max(r["load_average"][1] for r in rs)],
                "miou_vs_truth": round(scores(truth, lab, k)["mean_iou"], 4),
            }
            row["images_per_s"] = round(1000 / row["p50_ms"], 1)
            if ref is not None:
                row["agreement_vs_keras"] = round(float((lab == ref).mean()), 4)
                row["miou_vs_keras"] = round(scores(ref, lab, k)["mean_iou"], 4)
            rows.append(row)
        ours = next((r for r in rows if r["threads"] == t and r["runtime"] == "tflite_int8"), None)
        for row in rows:
            if row["threads"] == t and ours is not None:
                row["x_ours"] = round(row["p50_ms"] / ours["p50_ms"], 2)  # how many times ours is faster
                row["x_ours_cpu"] = round(row["cpu_p50_ms"] / ours["cpu_p50_ms"], 2)
    return rows


def table(report: dict) -> str:
    rows = report["rows"]
    lines = [
        "| runtime | threads | invoke p50 ms | invoke p90 ms | images/s | ours is N x faster | CPU ms per invoke (p50) "
        "| by CPU time, ours is N x faster | model MB | process peak RSS MB "
        "| pixel agreement vs Keras | mIoU vs Keras | mIoU vs truth | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {LABELS[r['runtime']]} | {r['threads']} | {r['p50_ms']} | {r['p90_ms']} | {r['images_per_s']} | "
            f"{r.get('x_ours', '')} | {r['cpu_p50_ms']} | {r.get('x_ours_cpu', '')} | {r['model_mb']} | {r['peak_rss_mb']} | "
            f"{r.get('agreement_vs_keras', '')} | "
            f"{r.get('miou_vs_keras', '')} | {r['miou_vs_truth']} | {r['load_average'][0]}-{r['load_average'][1]} |"
        )
    best = min((r for r in rows if r["runtime"] == "tflite_int8"), key=lambda r: r["p50_ms"], default=None)
    paper_ms = PAPER_S_PER_IMAGE * 1000
    x = f"{paper_ms / best['p50_ms']:.3g}" if best else ""
    lines.append(f"| source study (Google Colab, 43 s / 87 images) | - | {paper_ms:.0f} | - | {1000 / paper_ms:.1f} | {x} "
                 "| - | - | - | - | - | - | - | - |")
    return "\n".join(lines)


def describe(report: dict) -> str:
    m, p = report["machine"], report["prep"]
    have = (("AVX2", m["avx2"]), ("AVX-512", m["avx512f"]), ("VNNI", m["vnni"]))
    flags = ", ".join(f for f, on in have if on) or "none of AVX2/AVX-512/VNNI"
    no = [f for f, on in (("AVX-512", m["avx512f"]), ("VNNI", m["vnni"])) if not on]
    vs = report["versions"]
    return "\n".join([
        f"Machine: {m['cpu']}, {m['physical_cores']} physical cores ({m['logical_cpus']} logical), {flags}"
        + (f"; no {' or '.join(no)}" if no else "") + f"; {m['os']}; Python {m['python']}.",
        f"Load average at start {m['load_average']} (another job may share the CPU; see the load column).",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in vs.items()) + ".",
        f"Weights: {p['weights']}.",
        f"int8 bundle: {p['bundle_note']}, sha256 {p['bundle_sha256'][:12]} (a pixel agreement with Keras well below 0.999 "
        "suggests it was not made from these weights: use --bundle quantize).",
        f"ONNX: {p['onnx_note']}.",
        f"Timing: {report['runs']} invokes per process after {report['warmup']} warm-up calls, {report['rounds']} round(s) "
        "interleaved; wall-clock invoke time, and the process CPU time per invoke (all its threads: it leaves out time spent "
        "waiting for a core, not the slowdown of sharing one, and counts thread pools that spin); "
        f"agreement and mIoU over {p['eval_images']} held-out phantom images"
        + (" (mIoU vs truth is meaningless for random weights)." if "random weights" in p["weights"] else "."),
    ])


def _quiet_env() -> dict:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help=f"Keras float model (e.g. {DEFAULT_MODEL.relative_to(ROOT)}); "
                    "default: a fresh paper-size U-Net")
    ap.add_argument("--bundle", help="int8 bundle of those weights (default: the demo bundle), or 'quantize' to make it here")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=60, help="timed invokes per runtime, thread count and round")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved passes over all runtimes (samples pooled)")
    ap.add_argument("--calib-n", type=int, default=200, help="calibration images (the demo bundle used 200)")
    ap.add_argument("--eval-n", type=int, default=16, help="held-out phantom images for the agreement check")
    ap.add_argument("--onnx-activations", choices=("uint8", "int8"), default="uint8",
                    help="ONNX Runtime activation type (uint8 with int8 weights is its x86 kernel's native pair)")
    ap.add_argument("--reduce-range", choices=("auto", "yes", "no"), default="auto",
                    help="7-bit weights for ONNX Runtime, against overflow on CPUs without VNNI (auto: when no VNNI)")
    ap.add_argument("--only", help="comma-separated subset of " + ",".join(RUNTIMES))
    ap.add_argument("--work", help="folder for the converted models (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse the models already prepared in --work")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the report as JSON here")
    ap.add_argument("--markdown", help="write the tables as Markdown here")
    ap.add_argument("--worker", nargs=3, metavar=("RUNTIME", "THREADS", "TAG"), help=argparse.SUPPRESS)
    ap.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.prepare_only:
        prepare(args, Path(args.work))
        return 0
    if args.worker:
        worker(args.worker[0], int(args.worker[1]), Path(args.work), args.runs, args.warmup, args.worker[2])
        return 0
    threads = [int(t) for t in args.threads.split(",")]
    runtimes = [r for r in RUNTIMES if not args.only or r in args.only.split(",")]
    tmp = None
    if args.work:
        work = Path(args.work)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="compare_runtimes_")
        work = Path(tmp.name)
    report = {"machine": machine(), "versions": versions(), "runs": args.runs, "warmup": args.warmup, "rounds": args.rounds}
    if args.reuse and (work / "prep.json").exists():
        report["prep"] = json.loads((work / "prep.json").read_text())
        print(f"reusing the models in {work}", flush=True)
    else:
        # Preparing imports TensorFlow: do it in a child process so that this one stays small.
        cmd = [sys.executable, __file__, "--work", str(work), "--calib-n", str(args.calib_n), "--eval-n", str(args.eval_n),
               "--onnx-activations", args.onnx_activations, "--reduce-range", args.reduce_range, "--seed", str(args.seed),
               "--prepare-only"]
        if args.model:
            cmd[2:2] = ["--model", args.model]
        if args.bundle:
            cmd[2:2] = ["--bundle", args.bundle]
        if subprocess.run(cmd, env=_quiet_env()).returncode != 0:
            sys.exit("compare_runtimes: preparing the models failed (see above)")
        report["prep"] = json.loads((work / "prep.json").read_text())
    results = []
    for rnd in range(args.rounds):
        for t in threads:
            for runtime in runtimes:
                tag = f"{runtime}_t{t}_r{rnd}"
                cmd = [sys.executable, __file__, "--work", str(work), "--runs", str(args.runs), "--warmup", str(args.warmup),
                       "--worker", runtime, str(t), tag]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=_quiet_env())
                if proc.returncode != 0:
                    sys.exit(f"compare_runtimes: {runtime} at {t} thread(s) failed:\n{proc.stderr[-3000:]}")
                r = json.loads((work / f"result_{tag}.json").read_text())
                results.append(r)
                print(f"  {LABELS[runtime]:44s} {t} thread(s): p50 {np.percentile(r['ms'], 50):7.2f} ms, "
                      f"load {r['load_average'][0]}-{r['load_average'][1]}", flush=True)
    from edge.model.bundle import load_bundle

    now = load_bundle(report["prep"]["bundle"]).sha256
    if now != report["prep"]["bundle_sha256"]:  # --reuse after the bundle was rebuilt
        print(f"warning: the bundle changed since the models were prepared ({report['prep']['bundle_sha256'][:12]} -> "
              f"{now[:12]}); the float models may hold other weights: prepare again", flush=True)
        report["prep"]["bundle_sha256"] = now
    report["rows"] = summarise(report["prep"], results, work, threads)
    report["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    text = describe(report) + "\n\n" + table(report) + "\n"
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
