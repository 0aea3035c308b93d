"""Which of the model's layers keep invoke from the machine's int8 limit? Each convolution shape of
a bundle's model, alone, through the same LiteRT interpreter and XNNPACK delegate.

    pip install -e ".[convert]"
    python benchmarks/layer_rates.py                      # the demo bundle, 1 and 2 threads
    python benchmarks/layer_rates.py --bundle build/mybundle --threads 2 --json rates.json
    python benchmarks/layer_rates.py --exported          # also: a U-Net with and without the rewrites

`tlf-edge bench` puts the model's GMAC/s beside one large int8 convolution's (edge.ops.peak). When
the ratio is low, this says where: every CONV_2D and TRANSPOSE_CONV shape of the model (input,
kernel, filters, stride; "same" padding, as the U-Net's layers are) is built as a one-layer Keras
model, converted to full-integer int8 like the U-Net (convert.peak.int8_tflite) and timed alone
(edge.ops.peak.peak_int8: median of --runs invokes after warm-up calls, wall and CPU time). The
table gives each shape's rate, how many such layers the model has and their share of the summed
time; the last rows put that sum beside the whole model's invoke, the difference being what the
layers alone do not show (pooling, additions, the output layer's requantization, the delegate's
passes between layers). The peak convolution's row is the limit. Weights are seeded noise: speed
only. Not a test: run it by hand on a quiet machine.

--exported adds three whole models: convert.unet.build_unet() (the paper-size U-Net, seeded
weights) as the converter makes it (its transposed convolutions kept), as `tlf-convert quantize`
writes it by default (each 2x2, stride 2 transposed convolution a 1x1 convolution and a
depth-to-space in the int8 graph, convert.blockwise: the same outputs) and as `quantize
--transpose-as-depth-to-space` exports it (the same pair made in Keras before converting), timed
in turns, --rounds times each. A DEPTH_TO_SPACE is not timed alone: it is in the whole model's row.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.host import device_identity  # noqa: E402
from edge.model.macs import _interpreter, count_macs  # noqa: E402
from edge.ops.peak import PEAK_MODEL  # noqa: E402

DEMO_MODEL = ROOT / "edge" / "models" / "demo" / "model.tflite"


def conv_shapes(model_path: Path) -> Counter:
    """The model's convolutions as (op, input shape, kernel, filters, stride) -> how many."""
    interp = _interpreter(model_path)
    shapes = {int(t["index"]): tuple(int(v) for v in t["shape"]) for t in interp.get_tensor_details()}
    found: Counter = Counter()
    for op in interp._get_ops_details():
        name = op["op_name"]
        if name not in ("CONV_2D", "TRANSPOSE_CONV"):
            continue
        ins = [shapes.get(int(i), ()) for i in op["inputs"]]
        out = shapes[int(op["outputs"][0])]
        if name == "CONV_2D":
            x, (filters, kh, kw, _) = ins[0], ins[1]
            stride = x[1] // out[1]
        else:  # inputs: output shape, filter, input
            x, (filters, kh, kw, _) = ins[2], ins[1]
            stride = out[1] // x[1]
        found[(name, x, (kh, kw), filters, max(1, stride))] += 1
    return found


def layer_model(op: str, x: tuple, kernel: tuple, filters: int, stride: int):
    """The one-layer Keras model of a shape (seeded weights)."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(x[1:], batch_size=x[0])
    if op == "CONV_2D":
        y = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu")(inp)
    else:
        y = keras.layers.Conv2DTranspose(filters, kernel, strides=stride, padding="same")(inp)
    return keras.Model(inp, y)


def measure_one(tflite: Path, threads: int, runs: int) -> dict:
    """peak_int8 of one model in a fresh process (each layer's XNNPACK packing and caches its own)."""
    code = (
        "import json, sys; from pathlib import Path; from edge.ops.peak import peak_int8; "
        "print(json.dumps(peak_int8(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[1]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tflite), str(threads), str(runs)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, help="bundle folder (default: the demo bundle)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--exported", action="store_true", help="also time a U-Net with and without the rewrites")
    ap.add_argument("--rounds", type=int, default=2, help="turns of the three whole models (--exported)")
    ap.add_argument("--json")
    ap.add_argument("--markdown")
    args = ap.parse_args(argv)
    model = (args.bundle / "model.tflite") if args.bundle else DEMO_MODEL
    threads = [int(t) for t in args.threads.split(",")]
    shapes = conv_shapes(model)

    from convert.peak import int8_tflite

    report: dict = {"device": device_identity(), "python": platform.python_version(), "model": str(model), "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for k, (key, count) in enumerate(shapes.items()):
            path = Path(tmp) / f"layer{k}.tflite"
            path.write_bytes(int8_tflite(layer_model(*key)))
            files.append((key, count, path))
        for n in threads:
            whole = measure_one(model, n, args.runs)
            peak = measure_one(PEAK_MODEL, n, args.runs)
            rows = []
            for (op, x, kernel, filters, stride), count, path in files:
                r = measure_one(path, n, args.runs)
                rows.append(
                    {
                        "op": op,
                        "input": "x".join(map(str, x[1:])),
                        "kernel": "x".join(map(str, kernel)),
                        "filters": filters,
                        "stride": stride,
                        "count": count,
                        "macs": count_macs(path).total,
                        "gmac": r["gmac"],
                        "ms_p50": r["invoke_ms_p50"],
                        "gmac_per_s": r["gmac_per_s"],
                        "total_ms": round(count * r["invoke_ms_p50"], 3),
                    }
                )
            summed = sum(r["total_ms"] for r in rows)
            for r in rows:
                r["share"] = round(r["total_ms"] / summed, 3) if summed else 0.0
                r["of_peak"] = round(r["gmac_per_s"] / peak["gmac_per_s"], 3)
            report["rows"].append(
                {
                    "threads": n,
                    "layers": rows,
                    "layers_ms": round(summed, 3),
                    "model": {**whole, "macs": count_macs(model).total},
                    "peak": peak,
                }
            )
            print(f"{n} thread(s): layers alone {summed:.2f} ms, the model {whole['invoke_ms_p50']:.2f} ms", flush=True)
    if args.exported:
        report["exported"] = exported(threads, args.runs, args.rounds)
    text = markdown(report)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


def exported(threads: list[int], runs: int, rounds: int) -> list[dict]:
    """The paper-size U-Net's invoke as the converter makes it (its transposed convolutions
    kept), as `tlf-convert quantize` writes it by default (those rewritten in the int8 graph,
    convert.blockwise, the same outputs) and as `quantize --transpose-as-depth-to-space` does
    (rewritten in Keras before converting): one row per thread count and way, the medians of
    each round's median."""
    from convert.blockwise import blockwise_transpose_convs
    from convert.peak import int8_tflite
    from convert.quantize import with_fixed_batch
    from convert.unet import build_unet, export_ready

    model = build_unet()
    converted = int8_tflite(with_fixed_batch(export_ready(model)))
    ways = {
        "as converted (TRANSPOSE_CONV)": converted,
        "rewritten in the int8 graph (the default)": blockwise_transpose_convs(converted)[0],
        "--transpose-as-depth-to-space": int8_tflite(with_fixed_batch(export_ready(model, blockwise_transpose=True))),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for k, (way, model_bytes) in enumerate(ways.items()):
            paths[way] = Path(tmp) / f"unet{k}.tflite"
            paths[way].write_bytes(model_bytes)
        for n in threads:
            ms: dict[str, list[float]] = {way: [] for way in ways}
            for _ in range(max(1, rounds)):
                for way in ways:
                    ms[way].append(measure_one(paths[way], n, runs)["invoke_ms_p50"])
            for way in ways:
                rows.append({"threads": n, "way": way, "invoke_ms_p50": statistics.median(ms[way]), "rounds": ms[way]})
    return rows


def markdown(report: dict) -> str:
    d = report["device"]
    lines = [
        f"Machine: {d['cpu']}, {d['physical_cores']} physical cores, int8 features: "
        f"{', '.join(d['int8_features']) or 'none'}. Model: {report['model']}.",
        "",
    ]
    for block in report["rows"]:
        peak, whole = block["peak"], block["model"]
        lines += [
            f"At {block['threads']} thread(s):",
            "",
            "| layer | input | kernel | filters | stride | layers | GMAC each | ms each (p50) | GMAC/s | of peak | ms, all such layers | share of the layers' time |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in block["layers"]:
            lines.append(
                f"| {r['op']} | {r['input']} | {r['kernel']} | {r['filters']} | {r['stride']} | {r['count']} | "
                f"{r['gmac']} | {r['ms_p50']} | {r['gmac_per_s']} | {r['of_peak']} | {r['total_ms']} | {r['share']} |"
            )
        lines += [
            f"| the layers, summed | | | | | {sum(r['count'] for r in block['layers'])} | "
            f"{round(sum(r['gmac'] * r['count'] for r in block['layers']), 4)} | | | | {block['layers_ms']} | 1.0 |",
            f"| the whole model | | | | | | {whole['gmac']} | {whole['invoke_ms_p50']} | {whole['gmac_per_s']} | "
            f"{round(whole['gmac_per_s'] / peak['gmac_per_s'], 3)} | | |",
            f"| the peak convolution (edge.ops.peak) | | | | | | {peak['gmac']} | {peak['invoke_ms_p50']} | "
            f"{peak['gmac_per_s']} | 1.0 | | |",
            "",
        ]
    if report.get("exported"):
        lines += [
            "The paper-size U-Net (convert.unet.build_unet, seeded weights), int8:",
            "",
            "| threads | graph | invoke ms (median of the rounds' p50) | each round's p50 |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['threads']} | {r['way']} | {r['invoke_ms_p50']} | {', '.join(map(str, r['rounds']))} |"
            for r in report["exported"]
        ]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
