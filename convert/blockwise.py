"""The int8 graph's non-overlapping transposed convolutions as 1x1 convolutions and depth-to-space.

A TRANSPOSE_CONV whose square kernel equals its stride (the U-Net's 2x2, stride-2 up-convolution)
writes each input pixel's own k x k block of outputs: output (k*i + a, k*j + b, c) is the sum over
the input channels of input (i, j) times the weight (c, a, b), plus the bias of c. A CONV_2D of
1x1 into k*k times the channels, whose output channel (a*k + b)*C + c holds the weights (c, a, b)
with the scale and bias of c, followed by a DEPTH_TO_SPACE of block k (which puts channel
(a*k + b)*C + c of pixel (i, j) at (k*i + a, k*j + b, c)), adds the same integer products and
requantizes each sum with the same scale and zero point: the same int8 output. XNNPACK runs the
pair several times faster than its int8 transposed convolution on some CPUs (on a 2-core Xeon
with AMX the last up-convolution of the paper-size U-Net, 128x128x32 to 16 channels, takes 7.5 ms
for 0.034 GMAC; `python benchmarks/layer_rates.py` measures it on any machine).

The rewrite works on the converted model's flatbuffer (LiteRT's own schema, no TensorFlow), and
`faster_int8_graph` keeps it only when the two models give identical outputs on the inputs it is
given, here on this machine; otherwise the model stays as converted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHECK_SEED = 20261204  # of the random int8 inputs the two graphs are compared on
RANDOM_INPUTS = 4


@dataclass(frozen=True)
class Rewrite:
    """What faster_int8_graph did: the model bytes to use, the transposed convolutions rewritten
    (0: the model as it came) and the inputs the two graphs were compared on."""

    model_bytes: bytes
    rewritten: int
    checked_inputs: int
    note: str


def blockwise_transpose_convs(model_bytes: bytes) -> tuple[bytes, int]:
    """The model with each int8 TRANSPOSE_CONV whose square kernel equals its stride (and whose
    output is the input's size times the stride) as a CONV_2D 1x1 and a DEPTH_TO_SPACE; and how
    many it rewrote. Any other op, and a transposed convolution with per-tensor weights over
    several channels, stays as it is. No TRANSPOSE_CONV to rewrite: the same bytes, 0."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromPackedBuf(model_bytes, 0)
    codes = model.operatorCodes or []
    code_of = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in codes]
    if fb.BuiltinOperator.TRANSPOSE_CONV not in code_of:
        return model_bytes, 0

    def opcode(builtin: int, version: int) -> int:
        for i, c in enumerate(codes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                c.version = max(c.version, version)
                return i
        c = fb.OperatorCodeT()
        c.builtinCode, c.deprecatedBuiltinCode, c.version = builtin, min(builtin, 127), version
        codes.append(c)
        return len(codes) - 1

    buffer_refs = np.bincount(
        [t.buffer for graph in model.subgraphs for t in graph.tensors if t.buffer > 0], minlength=len(model.buffers)
    )  # the exporter gives equal constants one buffer: such a buffer is copied, not edited
    rewritten = 0
    for graph in model.subgraphs:
        uses = np.bincount(
            [t for op in graph.operators for t in (op.inputs if op.inputs is not None else []) if t >= 0],
            minlength=len(graph.tensors),
        )
        operators = []
        for op in graph.operators:
            pair = None
            if code_of[op.opcodeIndex] == fb.BuiltinOperator.TRANSPOSE_CONV:
                pair = _as_conv_and_blocks(model, graph, op, uses, buffer_refs, fb)
            if pair is None:
                operators.append(op)
                continue
            conv, blocks = pair
            conv.opcodeIndex = opcode(fb.BuiltinOperator.CONV_2D, 3)  # version 3: per-channel int8
            blocks.opcodeIndex = opcode(fb.BuiltinOperator.DEPTH_TO_SPACE, 2)  # version 2: int8
            operators += [conv, blocks]
            rewritten += 1
        graph.operators = operators
    if not rewritten:
        return model_bytes, 0
    model.operatorCodes = codes
    builder = flatbuffers.Builder(len(model_bytes) + 65536)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output()), rewritten


def _as_conv_and_blocks(model, graph, op, uses: np.ndarray, buffer_refs: np.ndarray, fb):
    """(CONV_2D, DEPTH_TO_SPACE) operators doing `op`'s work, its weight and bias tensors changed
    in place to the convolution's (copies of them where another op or tensor shares them, _own);
    None (nothing changed) when `op` is not one this rewrites."""
    options = op.builtinOptions
    inputs = [int(t) for t in op.inputs]
    if options is None or len(inputs) not in (3, 4) or len(op.outputs) != 1:
        return None
    w_i, x_i = inputs[1], inputs[2]
    b_i = inputs[3] if len(inputs) == 4 else -1
    w, x, y = graph.tensors[w_i], graph.tensors[x_i], graph.tensors[int(op.outputs[0])]
    int8 = fb.TensorType.INT8
    if w.type != int8 or x.type != int8 or y.type != int8 or w.sparsity is not None or len(w.shape) != 4:
        return None
    out_ch, kh, kw, in_ch = (int(v) for v in w.shape)
    k = kh
    if not (kh == kw == options.strideH == options.strideW) or k < 2 or len(x.shape) != 4:
        return None
    n, h, wd, c = (int(v) for v in x.shape)
    if c != in_ch or [int(v) for v in y.shape] != [n, h * k, wd * k, out_ch]:
        return None
    w_data = model.buffers[w.buffer].data
    if w_data is None or len(w_data) != out_ch * k * k * in_ch:
        return None
    b = graph.tensors[b_i] if b_i >= 0 else None
    if b is not None and (b.type != fb.TensorType.INT32 or model.buffers[b.buffer].data is None):
        return None
    if any(t.quantization is None or t.quantization.scale is None or len(t.quantization.scale) != 1 for t in (x, y)):
        return None
    if not _tileable(w.quantization, out_ch) or (b is not None and not _tileable(b.quantization, out_ch)):
        return None
    bias = None if b is None else np.frombuffer(bytes(bytearray(model.buffers[b.buffer].data)), np.int32)
    if bias is not None and bias.size != out_ch:
        return None

    blocks = k * k
    kernel = np.frombuffer(bytes(bytearray(w_data)), np.int8).reshape(out_ch, k, k, in_ch)
    # output channel (a*k + b)*out_ch + c of the 1x1 convolution is the kernel's (c, a, b)
    w_i, w = _own(model, graph, w_i, uses, buffer_refs, fb)
    model.buffers[w.buffer].data = np.ascontiguousarray(kernel.transpose(1, 2, 0, 3)).view(np.uint8).ravel()
    w.shape = np.array([blocks * out_ch, 1, 1, in_ch], np.int32)
    _tile(w.quantization, out_ch, blocks)
    if b is not None and bias is not None:
        b_i, b = _own(model, graph, b_i, uses, buffer_refs, fb)
        model.buffers[b.buffer].data = np.tile(bias, blocks).view(np.uint8)
        b.shape = np.array([blocks * out_ch], np.int32)
        _tile(b.quantization, out_ch, blocks)
    else:  # LiteRT's int8 CONV_2D takes a bias: zeros, on the scale of input times weight
        b_i = _zero_bias(model, graph, x, w, blocks * out_ch, fb)

    middle = fb.TensorT()
    middle.name = (y.name or b"") + b"/blocks"
    middle.type = y.type
    middle.shape = np.array([n, h, wd, blocks * out_ch], np.int32)
    middle.quantization = fb.QuantizationParametersT()
    middle.quantization.scale = np.array(y.quantization.scale, np.float32)
    middle.quantization.zeroPoint = np.array(y.quantization.zeroPoint, np.int64)
    model.buffers.append(fb.BufferT())
    middle.buffer = len(model.buffers) - 1
    graph.tensors.append(middle)
    middle_i = len(graph.tensors) - 1

    conv = fb.OperatorT()
    conv.inputs = np.array([x_i, w_i, b_i], np.int32)
    conv.outputs = np.array([middle_i], np.int32)
    conv.builtinOptionsType = fb.BuiltinOptions.Conv2DOptions
    conv.builtinOptions = fb.Conv2DOptionsT()
    conv.builtinOptions.padding = fb.Padding.VALID
    conv.builtinOptions.strideH = conv.builtinOptions.strideW = 1
    conv.builtinOptions.dilationHFactor = conv.builtinOptions.dilationWFactor = 1
    conv.builtinOptions.fusedActivationFunction = options.fusedActivationFunction
    to_space = fb.OperatorT()
    to_space.inputs = np.array([middle_i], np.int32)
    to_space.outputs = np.array(op.outputs, np.int32)
    to_space.builtinOptionsType = fb.BuiltinOptions.DepthToSpaceOptions
    to_space.builtinOptions = fb.DepthToSpaceOptionsT()
    to_space.builtinOptions.blockSize = k
    return conv, to_space


def _zero_bias(model, graph, x, w, channels: int, fb) -> int:
    """A new int32 bias tensor of `channels` zeros quantized as a convolution of input `x` with
    (already tiled) weights `w` expects; its index."""
    bias = fb.TensorT()
    bias.name = (w.name or b"") + b"/bias"
    bias.type = fb.TensorType.INT32
    bias.shape = np.array([channels], np.int32)
    scales = np.asarray(w.quantization.scale, np.float64) * float(np.asarray(x.quantization.scale)[0])
    bias.quantization = fb.QuantizationParametersT()
    bias.quantization.scale = scales.astype(np.float32)  # one per weight scale: per channel, or one
    bias.quantization.zeroPoint = np.zeros(len(scales), np.int64)
    buffer = fb.BufferT()
    buffer.data = np.zeros(channels, np.int32).view(np.uint8)
    model.buffers.append(buffer)
    bias.buffer = len(model.buffers) - 1
    graph.tensors.append(bias)
    return len(graph.tensors) - 1


def _own(model, graph, index: int, uses: np.ndarray, buffer_refs: np.ndarray, fb):
    """(index, tensor) of a constant tensor this op alone reads, with a buffer of its own: the
    tensor itself when it is so, else a copy of it in a new buffer (the exporter gives equal
    constants one tensor, or one buffer), which the caller may then change."""
    tensor = graph.tensors[index]
    if uses[index] == 1 and buffer_refs[tensor.buffer] == 1:
        return index, tensor
    copy = fb.TensorT()
    copy.name = (tensor.name or b"") + b"/own"
    copy.type = tensor.type
    copy.shape = np.array(tensor.shape, np.int32)
    q = tensor.quantization
    copy.quantization = fb.QuantizationParametersT()
    copy.quantization.scale = np.array(q.scale, np.float32)
    copy.quantization.zeroPoint = np.array(q.zeroPoint, np.int64)
    copy.quantization.quantizedDimension = q.quantizedDimension
    buffer = fb.BufferT()
    buffer.data = np.array(model.buffers[tensor.buffer].data, np.uint8)
    model.buffers.append(buffer)
    copy.buffer = len(model.buffers) - 1
    graph.tensors.append(copy)
    return len(graph.tensors) - 1, copy


def _tileable(q, channels: int) -> bool:
    """A quantization the rewrite can carry over: one scale per output channel along dimension 0
    (one channel: one scale)."""
    if q is None or q.scale is None:
        return False
    return len(q.scale) == channels and (channels == 1 or q.quantizedDimension == 0)


def _tile(q, channels: int, blocks: int) -> None:
    if len(q.scale) == channels and channels > 1:
        q.scale = np.tile(np.asarray(q.scale, np.float32), blocks)
        q.zeroPoint = np.tile(np.asarray(q.zeroPoint, np.int64), blocks)


def check_inputs(model_bytes: bytes, model_images=None, spec=None, random: int = 4) -> list[np.ndarray]:
    """Int8 inputs to compare two graphs on: uint8 `model_images` (N, H, W, C) made the model's
    input as the device makes it (through `spec` and the model's input quantization), `random`
    seeded uniform ones over all 256 codes, and the two constant extremes."""
    from edge.model.preprocess import fill_int8, int8_lookup
    from edge.model.segmenter import interpreter_class

    cls, _ = interpreter_class()
    interp = cls(model_content=model_bytes, num_threads=1)
    d = interp.get_input_details()[0]
    shape, dtype = tuple(int(v) for v in d["shape"]), np.dtype(d["dtype"])
    info = np.iinfo(dtype)
    out = []
    if model_images is not None and len(model_images) and spec is not None and dtype == np.int8:
        scale, zero_point = d["quantization"]
        lookup = int8_lookup(spec, scale, zero_point)
        out += [fill_int8(lookup, np.asarray(im)).reshape(shape) for im in model_images]
    rng = np.random.default_rng(CHECK_SEED)
    out += [rng.integers(info.min, info.max + 1, size=shape, dtype=dtype) for _ in range(random)]
    out += [np.full(shape, info.min, dtype), np.full(shape, info.max, dtype)]
    return out


def differing_outputs(a: bytes, b: bytes, inputs: list[np.ndarray], threads: int = 1) -> tuple[int, int]:
    """(outputs that differ, outputs compared): models `a` and `b` run on each input here with
    LiteRT and its default delegate; an output differs when any of its values does."""
    from edge.model.segmenter import interpreter_class

    cls, _ = interpreter_class()
    runners = []
    for model in (a, b):
        interp = cls(model_content=model, num_threads=threads)
        interp.allocate_tensors()
        runners.append(interp)
    differ = compared = 0
    for x in inputs:
        results = []
        for interp in runners:
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            results.append([interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()])
        compared += 1
        differ += int(any(not np.array_equal(p, q) for p, q in zip(*results)))
    return differ, compared


def delegate_partitions(model_bytes: bytes) -> int:
    """How many partitions LiteRT's default delegate (XNNPACK) takes the graph in."""
    from edge.model.segmenter import interpreter_class

    cls, _ = interpreter_class()
    return [op["op_name"] for op in cls(model_content=model_bytes, num_threads=1)._get_ops_details()].count("DELEGATE")


def where_compared() -> str:
    """The runtime and CPU a comparison ran on, for its note."""
    from importlib.metadata import PackageNotFoundError, version

    from edge.host import cpu_name
    from edge.model.segmenter import interpreter_class

    _, runtime = interpreter_class()
    try:
        runtime = f"{runtime} {version(runtime)}"
    except PackageNotFoundError:
        pass
    return f"{runtime} with its default delegate on {cpu_name()}"


def faster_int8_graph(model_bytes: bytes, model_images=None, spec=None) -> Rewrite:
    """The model with its non-overlapping transposed convolutions rewritten
    (blockwise_transpose_convs), when the rewritten graph runs in as many XNNPACK partitions and
    its outputs equal the original's, run here, on every input of check_inputs (uint8
    `model_images` through `spec`, seeded random inputs, the two constant ones); otherwise the
    model as it came, and a note saying why."""
    rewritten_bytes, count = blockwise_transpose_convs(model_bytes)
    if not count:
        return Rewrite(model_bytes, 0, 0, "")
    kept = f"{count} TRANSPOSE_CONV op(s) kept as converted"
    try:
        before, after = delegate_partitions(model_bytes), delegate_partitions(rewritten_bytes)
        if after != before:
            return Rewrite(
                model_bytes,
                0,
                0,
                f"{kept}: as CONV_2D and DEPTH_TO_SPACE the graph runs in {after} XNNPACK partition(s), not {before}",
            )
        inputs = check_inputs(model_bytes, model_images, spec, RANDOM_INPUTS)
        differ, compared = differing_outputs(model_bytes, rewritten_bytes, inputs)
    except (RuntimeError, ValueError) as e:  # LiteRT refused the rewritten graph
        why = " ".join(str(e).split())
        return Rewrite(model_bytes, 0, 0, f"{kept}: LiteRT cannot run them as CONV_2D and DEPTH_TO_SPACE ({why})")
    which = (
        f"{compared - RANDOM_INPUTS - 2} images, {RANDOM_INPUTS} seeded random inputs and the 2 constant ones; "
        f"{where_compared()}"
    )
    if differ:
        return Rewrite(
            model_bytes,
            0,
            compared,
            f"{kept}: as CONV_2D and DEPTH_TO_SPACE the int8 outputs differed on {differ} of {compared} inputs "
            f"({which})",
        )
    return Rewrite(
        rewritten_bytes,
        count,
        compared,
        f"{count} TRANSPOSE_CONV op(s) of kernel = stride written as CONV_2D 1x1 and DEPTH_TO_SPACE: "
        f"the same int8 outputs on all {compared} inputs compared ({which})",
    )
