"""The source study's 2D U-Net, built export-ready for full-integer int8 conversion."""

from __future__ import annotations

import keras
from keras import layers


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
        raise ValueError(f"output must be 'logits' or 'softmax', not {output!r}")
    if input_size % (2**depth):
        raise ValueError(f"input_size {input_size} must be divisible by 2**depth = {2**depth}")
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


def export_ready(model: keras.Model) -> keras.Model:
    """The same function built from ops that int8 keeps accurate and XNNPACK takes whole.

    Splits the skip connections (see split_skip_connections) and replaces each nearest-neighbour
    UpSampling2D with a square factor n (which TensorFlow exports as TILE, an op XNNPACK does not
    take, splitting the graph) by n*n copies of its input along the channels and a DEPTH_TO_SPACE:
    the same pixels, exactly. Other layers are shared with `model`; a model needing neither
    rewrite is returned unchanged.
    """
    return _rewrite(model, split=True, upsample=True)


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
        n = self.factor
        return (shape[0], None if shape[1] is None else shape[1] * n, None if shape[2] is None else shape[2] * n, shape[3])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def _nearest_square_upsampling(layer) -> bool:
    return (isinstance(layer, layers.UpSampling2D) and layer.interpolation == "nearest"
            and layer.data_format == "channels_last" and layer.size[0] == layer.size[1])


def _rewrite(model: keras.Model, split: bool, upsample: bool) -> keras.Model:
    concat = split and any(isinstance(layer, layers.Concatenate) for layer in model.layers)
    tile = upsample and any(_nearest_square_upsampling(layer) for layer in model.layers)
    if not (concat or tile):
        return model
    parts: dict[int, list] = {}  # id(concatenation output) -> its inputs

    def call(layer, *args, **kwargs):
        if concat and isinstance(layer, layers.Concatenate) and layer.axis in (-1, 3) and not kwargs:
            out = layer(*args)
            parts[id(out)] = list(args[0])
            return out
        if concat and _splittable(layer) and len(args) == 1 and not kwargs and id(args[0]) in parts:
            return _split_conv(layer, parts[id(args[0])])
        if tile and _nearest_square_upsampling(layer) and len(args) == 1 and not kwargs:
            return RepeatUpsample(layer.size[0], name=layer.name)(args[0])
        return layer(*args, **kwargs)

    try:
        return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    except ValueError as e:
        raise ValueError(f"cannot rewrite model {model.name!r} for export: {e}") from e


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
        part.set_weights([kernel[:, :, start:start + n]] + (bias if i == 0 else []))
        start += n
    x = layers.Add(name=f"{conv.name}_add")(outs)
    act = getattr(conv.activation, "__name__", "linear")
    if act == "linear":
        return x
    if act == "relu":
        return layers.ReLU(name=f"{conv.name}_relu")(x)
    return layers.Activation(conv.activation, name=f"{conv.name}_{act}")(x)
