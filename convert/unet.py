"""The source study's 2D U-Net, built export-ready for full-integer int8 conversion."""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from convert.errors import ConvertError


def build_unet(
    input_size: int = 256,
    channels: int = 1,
    classes: int = 3,
    base_filters: int = 16,
    depth: int = 4,
    dropout: float = 0.0,
    batch_size: int | None = 1,
    split_skip: bool = True,
    output: str = "logits",
) -> keras.Model:
    """U-Net with `depth` poolings, `base_filters` doubling per level, `classes` output channels.

    Defaults are the source study's (16-32-64-128-256 filters, 3 classes, 256x256x1 input).
    `batch_size=1` fixes the batch for export (a dynamic batch leaves shape ops that split the
    XNNPACK graph). With `split_skip`, each decoder block computes conv_a(up) + conv_b(skip)
    instead of conv(concat(up, skip)): identical in float, but int8 then keeps a scale per branch
    instead of forcing the small skip branch onto the concatenation's shared scale.
    `output`: "logits" (default, for sub-pixel boundaries) or "softmax".
    """
    if output not in ("logits", "softmax"):
        raise ConvertError(f"output must be 'logits' or 'softmax', not {output!r}")
    if input_size % (2**depth):
        raise ConvertError(f"input_size {input_size} must be divisible by 2**depth = {2**depth}")
    inp = keras.Input((input_size, input_size, channels), batch_size=batch_size, name="image")
    x = inp
    skips = []
    filters = base_filters
    for level in range(depth):
        x = _conv_block(x, filters, dropout, f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
        filters *= 2
    x = _conv_block(x, filters, dropout, "bottom")
    for level in reversed(range(depth)):
        filters //= 2
        up = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
        skip = skips[level]
        if split_skip:
            a = layers.Conv2D(filters, 3, padding="same", name=f"dec{level}_a_up")(up)
            b = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"dec{level}_a_skip")(skip)
            x = layers.ReLU(name=f"dec{level}_a_relu")(layers.Add(name=f"dec{level}_a_add")([a, b]))
        else:
            x = layers.Concatenate(name=f"dec{level}_concat")([up, skip])
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"dec{level}_a")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dec{level}_drop")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"dec{level}_b")(x)
    out = layers.Conv2D(classes, 1, name="logits")(x)
    if output == "softmax":
        out = layers.Softmax(name="softmax")(out)
    return keras.Model(inp, out, name=f"unet_b{base_filters}_d{depth}_c{classes}")


def _conv_block(x, filters: int, dropout: float, name: str):
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_a")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    return layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_b")(x)


def split_skip_connections(model: keras.Model) -> keras.Model:
    """The same model with each conv(concat(a, b, ...)) rewritten as conv_a(a) + conv_b(b) + ...

    Exact in float (the kernel is split along its input channels); in int8 each branch keeps its
    own scale. Works on any functional Keras model, not only this builder's: every plain Conv2D
    whose input is a channel concatenation is split (its activation is applied after the sum);
    a concatenation that also feeds anything else stays for that consumer. The result shares
    the unchanged layers (and their weights) with `model`; a model without concatenations is
    returned unchanged.
    """
    return _rewrite(model, split=True, upsample=False)


def export_ready(model: keras.Model, blockwise_transpose: bool = False) -> keras.Model:
    """The same function built from ops that int8 keeps accurate and XNNPACK takes whole.

    Splits the skip connections (see split_skip_connections) and replaces each nearest-neighbour
    UpSampling2D with a square factor n (which TensorFlow exports as TILE, an op XNNPACK does not
    take, splitting the graph) by n*n copies of its input along the channels and a DEPTH_TO_SPACE:
    the same pixels, exactly. With `blockwise_transpose`, also each Conv2DTranspose whose square
    kernel equals its stride (the U-Net's 2x2, stride 2) by a 1x1 Conv2D into k*k times the
    channels and a DEPTH_TO_SPACE: the same function in float (XNNPACK's int8 TRANSPOSE_CONV of
    few channels is many times slower on some CPUs), but other int8 rounding, so not by default
    until the gate says it costs nothing. Other layers are shared with `model`; a model needing
    none of the rewrites is returned unchanged.
    """
    return export_plan(model, blockwise_transpose)[0]


def export_plan(model: keras.Model, blockwise_transpose: bool = False) -> tuple[keras.Model, list[str]]:
    """export_ready's model, and one line per concatenation the split could not reach, naming the
    layer that keeps it and what that costs."""
    _last_axis_batchnorm(model)
    return _rewrite(model, split=True, upsample=True, notes=True, blockwise_transpose=blockwise_transpose)


def _last_axis_batchnorm(model: keras.Model) -> None:
    """Batch normalisations over the last axis named by its number (3, as Keras 2 files give it)
    say -1 instead: the same function, but Keras then broadcasts the parameters as vectors, which
    XNNPACK takes in int8, not as (1, 1, 1, C) constants, which it does not (a graph split in two)."""
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) and isinstance(layer.axis, int) and layer.axis > 0:
            try:
                rank = len(layer.input.shape)
            except (AttributeError, ValueError):  # a layer used on several inputs
                continue
            if layer.axis == rank - 1:
                layer.axis = -1


def _upsampled_shape(shape, factor: int, channels):
    """An NHWC shape with its height and width (None: unknown) times `factor`, and `channels`."""
    return (shape[0], *(None if d is None else d * factor for d in shape[1:3]), channels)


class RepeatUpsample(layers.Layer):
    """Nearest-neighbour upsampling by an integer factor as channel copies plus depth-to-space."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        import tensorflow as tf  # convert/ only: the device never sees this layer, only its ops

        n = self.factor
        return tf.nn.depth_to_space(keras.ops.concatenate([x] * (n * n), axis=-1), n)

    def compute_output_shape(self, shape):
        return _upsampled_shape(shape, self.factor, shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _nearest_square_upsampling(layer) -> bool:
    return (
        isinstance(layer, layers.UpSampling2D)
        and layer.interpolation == "nearest"
        and layer.data_format == "channels_last"
        and layer.size[0] == layer.size[1]
    )


class DepthToSpace(layers.Layer):
    """Depth-to-space by `factor`: each pixel's factor*factor groups of channels become a
    factor x factor block of pixels (TensorFlow's depth_to_space order)."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, x):
        import tensorflow as tf  # convert/ only: the device never sees this layer, only its op

        return tf.nn.depth_to_space(x, self.factor)

    def compute_output_shape(self, shape):
        return _upsampled_shape(shape, self.factor, None if shape[3] is None else shape[3] // self.factor**2)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _blockwise_transpose_conv(layer) -> bool:
    """A Conv2DTranspose whose square kernel equals its stride (2x2, stride 2, as U-Nets
    upsample): its output blocks do not overlap, so it is a 1x1 convolution and a depth-to-space."""
    if type(layer) is not layers.Conv2DTranspose or layer.data_format != "channels_last":
        return False
    k, s = tuple(layer.kernel_size), tuple(layer.strides)
    return (
        k[0] == k[1] == s[0] == s[1] > 1
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding in ("same", "valid")
        and getattr(layer, "output_padding", None) is None
    )


def _as_conv_and_depth_to_space(layer: layers.Conv2DTranspose, x):
    """layer(x) as a 1x1 Conv2D into k*k times the channels, a DepthToSpace(k), then the layer's
    activation: the same function. XNNPACK runs int8 TRANSPOSE_CONV of few channels at a few per
    cent of its convolution rate on some CPUs (docs/performance.md, benchmarks/layer_rates.py)."""
    k = int(layer.kernel_size[0])
    # kernel (k, k, filters, in): output (k i + a, k j + b, o) gets x(i, j, c) K[a, b, o, c]
    kernel, *bias = layer.get_weights()
    filters, channels = kernel.shape[2], kernel.shape[3]
    # depth_to_space takes channel (a k + b) filters + o of pixel (i, j) to output (k i + a, k j + b, o)
    weights = [kernel.transpose(3, 0, 1, 2).reshape(1, 1, channels, k * k * filters)]
    if bias:
        weights.append(np.tile(bias[0], k * k))
    conv = layers.Conv2D(k * k * filters, 1, use_bias=bool(bias), name=f"{layer.name}_1x1")
    y = DepthToSpace(k, name=f"{layer.name}_d2s")(conv(x))
    conv.set_weights(weights)
    act = getattr(layer.activation, "__name__", "linear")
    if act == "linear":
        return y
    if act == "relu":
        return layers.ReLU(name=f"{layer.name}_relu")(y)
    return layers.Activation(layer.activation, name=f"{layer.name}_{act}")(y)


# Layers that are the identity at inference: a split reaches through them.
_INFERENCE_IDENTITY = (
    layers.Dropout,
    layers.SpatialDropout1D,
    layers.SpatialDropout2D,
    layers.SpatialDropout3D,
    layers.GaussianDropout,
    layers.GaussianNoise,
    layers.AlphaDropout,
)
# Layers that act on each channel alone: a split applies one copy to each part.
_PER_CHANNEL = (layers.Activation, layers.ReLU, layers.LeakyReLU, layers.ELU)


def _rewrite(model: keras.Model, split: bool, upsample: bool, notes: bool = False, blockwise_transpose: bool = False):
    concat = split and any(isinstance(layer, layers.Concatenate) for layer in model.layers)
    tile = upsample and any(_nearest_square_upsampling(layer) for layer in model.layers)
    blocks = blockwise_transpose and any(_blockwise_transpose_conv(layer) for layer in model.layers)
    if not (concat or tile or blocks):
        return (model, []) if notes else model
    parts: dict[int, list] = {}  # id(a concatenation's output, or what it became per channel) -> its parts
    origin: dict[int, str] = {}  # the same ids -> the concatenation's name
    kept: dict[str, list[str]] = {}  # concatenation -> the layers that take it whole

    def call(layer, *args, **kwargs):
        arg = args[0] if len(args) == 1 and not kwargs else None
        split_in = arg is not None and not isinstance(arg, (list, tuple)) and id(arg) in parts
        # Dropout and batch normalisation nodes carry training= and mask= (None at inference).
        plain = (
            len(args) == 1
            and not isinstance(args[0], (list, tuple))
            and id(args[0]) in parts
            and all(v is None for v in kwargs.values())
            and set(kwargs) <= {"training", "mask"}
        )
        if concat and isinstance(layer, layers.Concatenate) and layer.axis in (-1, 3) and not kwargs:
            out = layer(*args)
            flat = []
            for t in args[0]:
                flat += parts.get(id(t), [t])  # a concatenation of concatenations is one
            parts[id(out)], origin[id(out)] = flat, layer.name
            return out
        if concat and split_in and _splittable(layer):
            return _split_conv(layer, parts[id(arg)])
        if concat and plain and isinstance(layer, _INFERENCE_IDENTITY):
            out = layer(*args, **kwargs)
            parts[id(out)], origin[id(out)] = parts[id(args[0])], origin[id(args[0])]
            return out
        if concat and plain and (isinstance(layer, _PER_CHANNEL) or _per_channel_batchnorm(layer)):
            out = layer(*args, **kwargs)
            parts[id(out)], origin[id(out)] = _per_part(layer, parts[id(args[0])]), origin[id(args[0])]
            return out
        if tile and _nearest_square_upsampling(layer) and arg is not None:
            return RepeatUpsample(layer.size[0], name=layer.name)(arg)
        if blocks and _blockwise_transpose_conv(layer) and arg is not None and not split_in and not kwargs:
            return _as_conv_and_depth_to_space(layer, arg)
        if concat:
            for t in (args[0] if isinstance(args[0], (list, tuple)) else args[:1]) if args else ():
                if id(t) in origin:
                    kept.setdefault(origin[id(t)], []).append(f"{layer.name} ({type(layer).__name__})")
        return layer(*args, **kwargs)

    try:
        ready = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    except ValueError as e:
        raise ConvertError(f"cannot rewrite model {model.name!r} for export: {e}") from e
    if not notes:
        return ready
    lines = [
        f"concatenation {name!r} stays whole: it feeds {', '.join(sorted(set(users)))}, which the skip split "
        "does not reach (it reaches Conv2D, through dropout, batch normalisation and activations); int8 puts "
        "its inputs on one scale (the gate's figures include what that costs)"
        for name, users in kept.items()
    ]
    return ready, lines


def _per_channel_batchnorm(layer) -> bool:
    return isinstance(layer, layers.BatchNormalization) and layer.axis in (-1, 3, [-1], [3])


def _per_part(layer, inputs: list) -> list:
    """One copy of a per-channel layer per part of a concatenation (a batch normalisation with its
    statistics and parameters sliced to the part's channels)."""
    out, start = [], 0
    for i, x in enumerate(inputs):
        n = int(x.shape[-1])
        copy = type(layer).from_config({**layer.get_config(), "name": f"{layer.name}_part{i}"})
        y = copy(x)
        if layer.get_weights():
            copy.set_weights([w[start : start + n] for w in layer.get_weights()])
        out.append(y)
        start += n
    return out


def _splittable(layer) -> bool:
    return type(layer) is layers.Conv2D and layer.groups == 1 and layer.data_format == "channels_last"


def _split_conv(conv: layers.Conv2D, inputs: list):
    """conv(concat(inputs)) as a sum of one conv per input (the first keeps the bias), then the activation."""
    kernel, *bias = conv.get_weights()
    config = {**conv.get_config(), "activation": None}
    names = ["up", "skip"] if len(inputs) == 2 else [f"in{i}" for i in range(len(inputs))]
    outs, start = [], 0
    for i, (x, suffix) in enumerate(zip(inputs, names)):
        n = int(x.shape[-1])
        part = layers.Conv2D.from_config({**config, "name": f"{conv.name}_{suffix}", "use_bias": bool(bias) and i == 0})
        outs.append(part(x))
        part.set_weights([kernel[:, :, start : start + n]] + (bias if i == 0 else []))
        start += n
    x = layers.Add(name=f"{conv.name}_add")(outs)
    act = getattr(conv.activation, "__name__", "linear")
    if act == "linear":
        return x
    if act == "relu":
        return layers.ReLU(name=f"{conv.name}_relu")(x)
    return layers.Activation(conv.activation, name=f"{conv.name}_{act}")(x)
