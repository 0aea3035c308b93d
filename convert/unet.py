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
    """The same U-Net with each conv(concat(up, skip)) rewritten as conv_a(up) + conv_b(skip).

    Exact in float (the kernel is split along its input channels); in int8 each branch keeps its
    own scale. Works on models of this builder's family (layers named as `build_unet` names
    them); a model without concatenations is returned unchanged.
    """
    concats = [layer for layer in model.layers if isinstance(layer, layers.Concatenate)]
    if not concats:
        return model
    names = {layer.name for layer in model.layers}
    depth = sum(1 for n in names if n.startswith("pool"))
    if not depth or any(f"dec{level}_concat" not in names for level in range(depth)):
        raise ValueError("cannot split the skip connections of a model not built by build_unet")
    dropouts = [layer.rate for layer in model.layers if isinstance(layer, layers.Dropout)]
    _, size, _, channels = model.input_shape
    split = build_unet(
        input_size=size,
        channels=channels,
        classes=model.output_shape[-1],
        base_filters=model.get_layer("enc0_a").filters,
        depth=depth,
        dropout=dropouts[0] if dropouts else 0.0,
        batch_size=model.input_shape[0],
        split_skip=True,
        output="softmax" if "softmax" in names else "logits",
    )
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name.startswith("dec") and layer.name.endswith("_a"):
            kernel, bias = weights
            n_up = split.get_layer(layer.name + "_up").get_weights()[0].shape[2]
            split.get_layer(layer.name + "_up").set_weights([kernel[:, :, :n_up], bias])
            split.get_layer(layer.name + "_skip").set_weights([kernel[:, :, n_up:]])
        else:
            split.get_layer(layer.name).set_weights(weights)
    return split
