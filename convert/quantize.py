"""Full-integer int8 conversion with a calibration set, packaged as a model bundle."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import edge
from convert.errors import ConvertError, QuantizeError  # noqa: F401  (QuantizeError: raised here, and imported from here by callers)
from convert.feeding import check_predictions
from convert.quiet import export_announcement_hidden, on_console
from convert.representative import check_representative_set
from edge import logs
from edge.model.bundle import OUTPUT_KINDS, Bundle, write_bundle
from edge.model.preprocess import PreprocessSpec, to_float
from edge.model.segmenter import interpreter_class

log = logs.get(__name__)

REWRITE_CHECK_IMAGES = 8  # calibration images the rewritten int8 graph must agree on (convert.blockwise)

DEFAULT_CLASSES = ["above", "tlf", "below"]
DEFAULT_CLASSES_2 = ["background", "tlf"]

# The model family the converter takes (issue #4): a square or rectangular NHWC image in, one
# score per class and pixel out at the same size. Sides of 128-512 px are the supported range;
# smaller ones (down to MIN_SIDE, used by fast tests) convert with a warning, larger ones are
# refused (a 512x512 frame already costs 4x a 256x256 one on the cart).
FAMILY_SIDES = (128, 512)
MIN_SIDE = 32
FAMILY_CHANNELS = (1, 3)
FAMILY_CLASSES = (2, 8)


def load_keras_model(
    path: str | Path, trust_code: bool = False, custom_objects: str | Path | None = None
) -> keras.Model:
    """Load a user's model however it was saved, in safe mode (see convert.load.read_model)."""
    from convert.load import read_model

    return read_model(path, trust_code=trust_code, custom_objects=custom_objects)


def with_fixed_batch(model: keras.Model, height: int | None = None, width: int | None = None) -> keras.Model:
    """The same model and weights with its batch fixed to 1 (no dynamic-shape ops after export),
    and a side the model leaves free (a fully convolutional `keras.Input((None, None, C))`) fixed
    to `height` / `width`."""
    from convert.load import single_io

    model = single_io(model)
    shape = [1, *model.input_shape[1:]]
    if len(shape) == 4:
        shape[1] = shape[1] if shape[1] is not None else height
        shape[2] = shape[2] if shape[2] is not None else width
    if tuple(model.input_shape) == tuple(shape):
        return model
    what = "batch" if tuple(model.input_shape[1:]) == tuple(shape[1:]) else "input"
    inp = keras.Input(batch_shape=tuple(shape), name=model.inputs[0].name.split(":")[0])
    try:  # the same layers called on the new input: nothing is deserialized again (a Lambda stays as loaded)
        clone = keras.models.clone_model(model, input_tensors=inp, clone_function=lambda layer: layer)
    except (ValueError, TypeError) as e:
        raise QuantizeError(
            f"cannot fix the {what} of model {model.name!r} to {tuple(shape)} ({_short(e)}); build it with "
            f"keras.Input({tuple(shape[1:])}, batch_size=1)"
        ) from e
    return clone


def _short(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(e).__name__


def _tensor_shape(model: keras.Model, side: str) -> tuple:
    tensors = getattr(model, side + "s", None) if isinstance(model, keras.Model) else None
    if not tensors:
        raise QuantizeError(
            f"model {getattr(model, 'name', model)!r} has no symbolic {side}: only functional or Sequential "
            "Keras models with a declared input (keras.Input) can be converted with a fixed batch"
        )
    if len(tensors) != 1:
        raise QuantizeError(
            f"model {model.name!r} has {len(tensors)} {side}s; the family has one image in and one score map out"
        )
    return tuple(tensors[0].shape)


def check_family(model: keras.Model, spec: PreprocessSpec | None = None) -> dict:
    """Refuse a model outside the family with a QuantizeError naming the bad value; describe it otherwise.

    The family: input (batch, H, W, C) with a fixed size, C in FAMILY_CHANNELS, sides in
    FAMILY_SIDES; output (batch, H, W, K) with K in FAMILY_CLASSES, logits or softmax
    probabilities. The batch may be anything: it is fixed to 1 for export. With `spec`, the
    preprocessing must produce exactly the model's input.
    """
    shape_in, shape_out = _tensor_shape(model, "input"), _tensor_shape(model, "output")
    if len(shape_in) != 4:
        raise QuantizeError(
            f"model {model.name!r} takes {shape_in}; the family takes an image (batch, height, width, channels)"
        )
    _, h, w, c = shape_in
    if h is None or w is None:
        raise QuantizeError(
            f"model {model.name!r} takes images of any size ({h}x{w}): give the grid to convert it at, as it was "
            "trained (tlf-convert quantize --size 256, or --size HxW)"
        )
    if c not in FAMILY_CHANNELS:
        raise QuantizeError(
            f"model {model.name!r} takes {c} channels; the family takes {' or '.join(map(str, FAMILY_CHANNELS))}"
        )
    lo, hi = FAMILY_SIDES
    if not (MIN_SIDE <= h <= hi and MIN_SIDE <= w <= hi):
        raise QuantizeError(f"model {model.name!r} takes {h}x{w} px; the family takes {lo}-{hi} px per side")
    if h < lo or w < lo:
        log.warning("model %r takes %dx%d px, below the family's %d px", model.name, h, w, lo)
    if len(shape_out) != 4 or tuple(shape_out[1:3]) != (h, w):
        raise QuantizeError(
            f"model {model.name!r} outputs {shape_out}; the family outputs one score per class and pixel, "
            f"(batch, {h}, {w}, classes)"
        )
    k = shape_out[-1]
    if k is None or not (k == 1 or FAMILY_CLASSES[0] <= k <= FAMILY_CLASSES[1]):
        raise QuantizeError(
            f"model {model.name!r} outputs {k} classes; the family has {FAMILY_CLASSES[0]}-{FAMILY_CLASSES[1]} "
            "(or one channel: a sigmoid or logit head for two classes)"
        )
    if spec is not None and (spec.height, spec.width, spec.channels) != (h, w, c):
        raise QuantizeError(
            f"preprocessing makes {spec.height}x{spec.width}x{spec.channels} images but model {model.name!r} takes {h}x{w}x{c}"
        )
    return {
        "height": int(h),
        "width": int(w),
        "channels": int(c),
        "classes": 2 if k == 1 else int(k),
        "output_channels": int(k),
        "output_kind": output_kind_of(model),
    }


def int8_converter(
    model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, int8_io: bool = True, progress: bool = False
):
    """A TFLite converter set for full-integer int8 with per-channel weights and a fixed batch of 1."""
    calibration = np.asarray(calibration)
    if len(calibration) == 0:
        raise QuantizeError("calibration set is empty")
    want = (spec.height, spec.width, spec.channels)
    if calibration.dtype != np.uint8 or tuple(calibration.shape[1:]) != want:
        raise QuantizeError(
            f"calibration images are {calibration.dtype} {tuple(calibration.shape[1:])}, not uint8 {want}: "
            "make them with edge.model.preprocess.to_model_image and the model's spec"
        )
    converter = tf.lite.TFLiteConverter.from_keras_model(with_fixed_batch(model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        bar = keras.utils.Progbar(len(calibration), unit_name="calibration image") if progress else None
        for i, image in enumerate(calibration):
            yield [to_float(image, spec)[None]]
            if bar:
                with on_console():
                    bar.update(i + 1)

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter


def convert_int8(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, progress: bool = False) -> bytes:
    """int8 TFLite bytes (int8 input and output, per-channel weights) with a fixed batch of 1.

    calibration: uint8 (N, H, W, C) model images, preprocessed by the device's code.
    """
    converter = int8_converter(model, calibration, spec, progress=progress)
    with export_announcement_hidden():
        return converter.convert()


def _snr_db(f, q, scale, zero_point) -> float:
    f = np.asarray(f[0], np.float64)
    deq = (np.asarray(q[0]).astype(np.int32) - zero_point) * scale
    noise = ((f - deq) ** 2).sum()
    return float(10 * np.log10((f**2).sum() / noise)) if noise > 0 else float("inf")


def _levels_used(f, q, scale, zero_point) -> float:
    return float(np.unique(np.asarray(q[0])).size)


def layer_report(model: keras.Model, calibration: np.ndarray, spec: PreprocessSpec, samples: int = 8) -> list[dict]:
    """Per-layer int8 error: signal-to-quantization-noise ratio (dB) and int8 levels used, worst first.

    A layer whose output uses only a few of the 256 levels, or whose SNR is low, is where int8
    loses precision (typically a concatenation that forces a small branch onto a large scale).
    """
    converter = int8_converter(model, calibration, spec, int8_io=False)
    options = tf.lite.experimental.QuantizationDebugOptions(
        layer_direct_compare_metrics={"snr_db": _snr_db, "levels_used": _levels_used}
    )

    def dataset():
        for image in calibration[:samples]:
            yield [to_float(image, spec)[None]]

    with export_announcement_hidden():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=options
        )
        debugger.run()
    rows = [
        {"tensor": name, "snr_db": round(float(st["snr_db"]), 2), "levels_used": int(st["levels_used"])}
        for name, st in debugger.layer_statistics.items()
    ]
    return sorted(rows, key=lambda r: r["snr_db"])


def output_kind_of(model: keras.Model) -> str | None:
    """'softmax' when the model ends in a softmax over the classes, 'sigmoid' when in a sigmoid on
    one channel (two classes at p = 0.5), 'logits' when in no activation; None when its last layer
    is a whole TensorFlow graph (a SavedModel), whose converted graph then says.

    Any other final activation (relu, a sigmoid over several channels, ...) is refused: the
    device's argmax and sub-pixel edges need logits or probabilities.
    """
    last = model.layers[-1]
    if isinstance(last, keras.layers.TFSMLayer):
        return None
    channels = model.outputs[0].shape[-1]
    if isinstance(last, keras.layers.Softmax):
        axis = last.axis if isinstance(last.axis, int) else tuple(last.axis)
        if axis not in (-1, 3, (-1,), (3,)):
            raise QuantizeError(
                f"model {model.name!r} ends in a softmax over axis {axis!r}; it must be over the classes (-1)"
            )
        return "softmax"
    if isinstance(last, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU, keras.layers.PReLU)):
        raise QuantizeError(
            f"model {model.name!r} ends in a {type(last).__name__} layer; the family outputs logits or softmax"
        )
    name = getattr(getattr(last, "activation", None), "__name__", "linear")
    if name in ("linear", "softmax"):
        return "logits" if name == "linear" else "softmax"
    if name == "sigmoid" and channels == 1:
        return "sigmoid"
    raise QuantizeError(
        f"model {model.name!r} ends in a {name!r} activation over {channels} channels; the family "
        "outputs logits or softmax over the classes, or one sigmoid channel (two classes at p = 0.5)"
    )


# The converted graph's last op, and the output kind it makes.
OUTPUT_OPS = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid"}
REFUSED_OUTPUT_OPS = {"RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "ELU", "TANH", "HARD_SWISH", "PRELU"}


# Ops that XNNPACK runs in int8 (the subset a U-Net of this family uses).
XNNPACK_INT8_OPS = {
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "MAX_POOL_2D",
    "MUL",
    "PAD",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "SUB",
    "DEPTH_TO_SPACE",
    "TRANSPOSE_CONV",
    "LEAKY_RELU",
    "HARD_SWISH",
    "TANH",
    "LOGISTIC",
    "ELU",
}  # not RESIZE_NEAREST_NEIGHBOR nor TILE: measured outside the delegate (ai-edge-litert, int8)
# Ops that mean the graph kept dynamic shapes or float islands.
DYNAMIC_OPS = {"SHAPE", "STRIDED_SLICE", "PACK", "UNPACK", "GATHER", "FILL", "RANGE", "DEQUANTIZE", "QUANTIZE"}


def graph_report(model_bytes: bytes) -> dict:
    """Input/output tensor contract, op names and XNNPACK delegation of a TFLite model."""
    cls, _ = interpreter_class()
    interp = cls(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()

    def entry(d):
        scale, zero = d["quantization"]
        return {
            "shape": [int(v) for v in d["shape"]],
            "dtype": np.dtype(d["dtype"]).name,
            "scale": float(scale),
            "zero_point": int(zero),
        }

    details = interp._get_ops_details()
    names = [op["op_name"] for op in details]
    ops = [n for n in names if n != "DELEGATE"]
    return {
        "input": entry(interp.get_input_details()[0]),
        "output": entry(interp.get_output_details()[0]),
        "ops": sorted(set(ops)),
        "op_counts": {n: ops.count(n) for n in sorted(set(ops))},
        "output_op": _output_op(model_bytes),
        "delegate_partitions": names.count("DELEGATE"),
        "undelegated_ops": sorted(set(ops) - XNNPACK_INT8_OPS),
    }


def _output_op(model_bytes: bytes) -> str | None:
    """The op that makes the model's output (looking through reshapes and requantizations), read
    without the default delegate so that the graph's own ops are listed."""
    cls, _ = interpreter_class()
    resolver = sys.modules[cls.__module__].OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = cls(model_content=model_bytes, experimental_op_resolver_type=resolver)
    details = interp._get_ops_details()
    makers = {int(t): op for op in details for t in op["outputs"]}
    tensor = int(interp.get_output_details()[0]["index"])
    for _ in range(len(details)):
        op = makers.get(tensor)
        if op is None:
            return None
        if op["op_name"] not in ("RESHAPE", "QUANTIZE", "DEQUANTIZE"):
            return op["op_name"]
        tensor = int(op["inputs"][0])
    return None


# What keeps an op out of XNNPACK's int8 graph in models of this family, and the way round it.
OP_HINTS = {
    "SHAPE": "shapes computed at run time (a dynamic batch inside a SavedModel): export it with a fixed batch of 1",
    "STRIDED_SLICE": "shapes computed at run time (a dynamic batch inside a SavedModel): export it with a fixed batch of 1",
    "PACK": "shapes computed at run time (a dynamic batch inside a SavedModel): export it with a fixed batch of 1",
    "TILE": "a nearest-neighbour UpSampling2D inside a SavedModel: save the model as .keras or .h5 (it is then "
    "rewritten exactly) or upsample bilinearly",
    "RESIZE_NEAREST_NEIGHBOR": "a nearest-neighbour resize: save the model as .keras or .h5, or resize bilinearly",
    "SOFTMAX": "a softmax before the last op: end the model in it, or export logits",
    "DEQUANTIZE": "a float part of the graph: every op must have an int8 kernel",
    "QUANTIZE": "a float part of the graph: every op must have an int8 kernel",
}


def check_graph(
    report: dict,
    allow: set[str] | frozenset[str] = frozenset(),
    allow_partitions: bool = False,
    model_bytes: bytes | None = None,
) -> list[str]:
    """Refuse a graph with dynamic-shape ops or one that XNNPACK does not take whole, in one line
    naming the ops, how many there are, the partitions, what each op comes from and what this
    graph costs per frame (measured here with LiteRT). allow_partitions: warn instead (the lines
    are returned for the manifest)."""
    dynamic = sorted(set(report["ops"]) & DYNAMIC_OPS)
    outside = sorted(set(report["undelegated_ops"]) - set(allow))
    if not dynamic and not outside and report["delegate_partitions"] == 1:
        return []
    counts = report.get("op_counts", {})
    named = ", ".join(f"{op} x{counts.get(op, '?')}" for op in sorted(set(dynamic) | set(outside)))
    hints = sorted({OP_HINTS[op] for op in set(dynamic) | set(outside) if op in OP_HINTS})
    cost = ""
    if model_bytes is not None:
        cost = (
            f"; this graph takes {invoke_ms(model_bytes):.1f} ms per frame here (1 thread), the ops outside "
            "XNNPACK on LiteRT's reference kernels"
        )
    line = (
        f"XNNPACK takes the converted graph in {report['delegate_partitions']} partition(s); ops outside it or "
        f"keeping dynamic shapes: {named or 'none'}{cost}" + (f" ({'; '.join(hints)})" if hints else "")
    )
    if not allow_partitions:
        raise QuantizeError(line + "; --allow-partitions converts it all the same")
    log.warning("%s", line)
    return [line]


def invoke_ms(model_bytes: bytes, runs: int = 5) -> float:
    """Median LiteRT invoke time of a model on a zero input, in ms, at 1 thread."""
    import time

    cls, _ = interpreter_class()
    interp = cls(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    d = interp.get_input_details()[0]
    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    interp.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def tool_versions() -> dict:
    return {
        "tlf-edge": edge.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def quantize_to_bundle(
    model: keras.Model,
    calibration: np.ndarray,
    spec: PreprocessSpec,
    out_dir: str | Path,
    classes: list[str] | None = None,
    tlf_class: int | None = None,
    output_kind: str | None = None,
    extra: dict | None = None,
    reference: np.ndarray | None = None,
    check_calibration_set: bool = True,
    progress: bool = False,
    check_prediction: bool = True,
    allow_partitions: bool = False,
    check_preprocessing: bool = True,
    transpose_as_depth_to_space: bool = False,
    check_band: bool = False,
) -> Bundle:
    """Convert `model` to int8 with `calibration` and write a verified bundle to `out_dir`.

    `model` is any Keras model of the family (see check_family), built by convert.unet or not,
    with a plain or list input and output; a side it leaves free (`keras.Input((None, None, C))`)
    is fixed to the spec's, as the batch is fixed to 1. classes: one name per class (default:
    above/tlf/below for 3 classes, background/tlf for 2, class0... otherwise; a one-channel head has 2).
    tlf_class: the index of the TLF class (default: the class named "tlf", else 1). output_kind:
    "logits", "softmax" or "sigmoid"; it is read from the converted graph's last op (SOFTMAX,
    LOGISTIC, else logits) and recorded in the manifest for the device; given, it must agree.
    The calibration set is checked first (see convert.representative); `reference` is validation
    data it must resemble. Then the float model must give more than one class on it
    (`check_prediction=False` for images that truly show one class), and labels that follow its
    input's level unless none of the common scales gives such labels (`check_preprocessing=False`
    to convert as declared all the same); see convert.feeding.
    check_band: also refuse a float model that gives the band class (tlf_class) to almost no
    calibration pixel (`tlf-convert quantize`; a cross-validation fold is scored instead).
    `check_calibration_set=False` (which skips both checks) exists only to build deliberately bad
    models for testing the validation gate. allow_partitions: convert a graph XNNPACK does not take whole, with a warning.
    transpose_as_depth_to_space: export each 2x2, stride 2 Conv2DTranspose as a 1x1 convolution
    and a depth-to-space (convert.unet.export_ready) before converting; int8 then rounds its
    weights per new channel. Without it the converted graph's TRANSPOSE_CONV ops of kernel =
    stride become the same pair after converting, with the same int8 outputs
    (convert.blockwise.faster_int8_graph, checked on REWRITE_CHECK_IMAGES calibration images and
    seeded random inputs; the manifest's export.transpose_conv_blockwise counts them).
    """
    from convert.blockwise import faster_int8_graph
    from convert.load import single_io
    from convert.unet import DepthToSpace, export_plan

    model = single_io(model)
    inputs = getattr(model, "inputs", None) if isinstance(model, keras.Model) else None
    if inputs and len(inputs) == 1 and len(inputs[0].shape) == 4 and None in tuple(inputs[0].shape)[1:3]:
        model = with_fixed_batch(model, spec.height, spec.width)  # fully convolutional: at the spec's grid
    family = check_family(model, spec)
    if output_kind is not None and output_kind not in OUTPUT_KINDS:
        raise QuantizeError(f"output_kind must be one of {list(OUTPUT_KINDS)}, not {output_kind!r}")
    n_classes = family["classes"]
    default = {3: DEFAULT_CLASSES, 2: DEFAULT_CLASSES_2}.get(n_classes, [f"class{i}" for i in range(n_classes)])
    classes = list(classes or default)
    if len(classes) != n_classes:
        raise QuantizeError(f"{len(classes)} class names given for a model with {n_classes} outputs")
    if tlf_class is None:
        tlf_class = classes.index("tlf") if "tlf" in classes else 1
    if isinstance(tlf_class, bool) or not isinstance(tlf_class, (int, np.integer)) or not 0 <= tlf_class < n_classes:
        raise QuantizeError(f"tlf_class must be a class index 0-{n_classes - 1}, not {tlf_class!r}")
    try:
        float_model = model
        model, notes = export_plan(model, transpose_as_depth_to_space)
    except (ConvertError, ValueError) as e:
        raise QuantizeError(str(e)) from e
    keras_blockwise = _count_layers(model, DepthToSpace) - _count_layers(float_model, DepthToSpace)
    if transpose_as_depth_to_space and not keras_blockwise:
        notes.append(
            "--transpose-as-depth-to-space: the model has no Conv2DTranspose whose square kernel equals its "
            "stride, so nothing was rewritten in Keras"
        )
    calib_stats = (
        check_representative_set(calibration, reference) if check_calibration_set else {"images": int(len(calibration))}
    )

    def check_feeding(kind: str) -> None:
        if (check_prediction or check_preprocessing) and check_calibration_set:
            calib_stats["float_class_shares"] = check_predictions(
                float_model,
                calibration,
                spec,
                kind,
                classes,
                check_one_class=check_prediction,
                check_level=check_preprocessing,
                band_class=int(tlf_class) if check_band else None,
            )

    if family["output_kind"] is not None:  # known from the last layer: checked before converting
        check_feeding(family["output_kind"])
    model_bytes = convert_int8(model, calibration, spec, progress=progress)
    rewrite = faster_int8_graph(model_bytes, calibration[:REWRITE_CHECK_IMAGES], spec)
    model_bytes = rewrite.model_bytes
    if rewrite.note and not rewrite.rewritten:  # kept as converted: said; rewritten: recorded only (below)
        notes.append(rewrite.note)
    graph = graph_report(model_bytes)
    if "TRANSPOSE_CONV" in graph["ops"] and (rewrite.rewritten or not rewrite.note):  # others than kernel = stride
        notes.append(
            f"{graph['op_counts']['TRANSPOSE_CONV']} TRANSPOSE_CONV op(s) stay (a kernel other than its stride): "
            "LiteRT's int8 transposed convolution runs at a few per cent of its convolution rate on some CPUs "
            "(benchmarks/layer_rates.py); a 2x2, stride 2 up-convolution is written as a 1x1 convolution and a "
            "depth-to-space with the same outputs"
        )
    if graph["output_op"] in REFUSED_OUTPUT_OPS:
        raise QuantizeError(
            f"model {model.name!r} ends in a {graph['output_op']} op; the family outputs logits, "
            "softmax or one sigmoid channel"
        )
    kind = OUTPUT_OPS.get(graph["output_op"], "logits")
    if kind == "sigmoid" and family["output_channels"] != 1:
        raise QuantizeError(
            f"model {model.name!r} ends in a sigmoid over {family['output_channels']} channels; the "
            "family outputs logits or softmax over the classes, or one sigmoid channel"
        )
    for stated, how in ((output_kind, "output_kind"), (family["output_kind"], "its last layer")):
        if stated is not None and stated != kind:
            raise QuantizeError(
                f"model {model.name!r}: {how} says {stated!r} but its converted graph ends in "
                f"{graph['output_op']} ({kind!r})"
            )
    if graph["ops"].count("CONCATENATION") and not any("CONCATENATION" in n for n in notes):
        notes.append(
            f"{graph['op_counts']['CONCATENATION']} CONCATENATION op(s) of a graph converted whole stay: int8 puts "
            "each one's inputs on one scale (the gate's figures include what that costs); save the model as "
            ".keras or .h5 to have them split"
        )
    for note in notes:
        print(f"tlf-convert: note: {note}", file=sys.stderr)
    if rewrite.rewritten:
        notes.append(rewrite.note)
    partitions = check_graph(
        graph,
        allow={"SOFTMAX"} if kind == "softmax" else set(),
        allow_partitions=allow_partitions,
        model_bytes=model_bytes,
    )
    inp, out = graph["input"], graph["output"]
    want = [1, family["height"], family["width"], family["output_channels"]]
    if out["shape"] != want:
        raise QuantizeError(f"converted model outputs {out['shape']}, not {want}")
    if family["output_kind"] is None:  # a whole TensorFlow graph: its converted graph said what it outputs
        check_feeding(kind)
    manifest = {
        "input": inp,
        "output": {**out, "layout": "NHWC", "kind": kind},
        "classes": classes,
        "tlf_class": int(tlf_class),
        "preprocess": spec.to_dict(),
        "ops": graph["ops"],
        "delegate_partitions": graph["delegate_partitions"],
        **({"conversion_notes": notes + partitions} if notes or partitions else {}),
        "export": {
            "transpose_as_depth_to_space": keras_blockwise > 0,  # asked for and applied
            "transpose_conv_blockwise": rewrite.rewritten,
        },
        "calibration": calib_stats,
        "created_by": tool_versions(),
        **(extra or {}),
    }
    return write_bundle(out_dir, model_bytes, manifest)


def _count_layers(model, kind) -> int:
    """How many layers of type `kind` a Keras model holds (0 for a graph without layers)."""
    return sum(isinstance(layer, kind) for layer in getattr(model, "layers", ()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: tlf-convert quantize")
