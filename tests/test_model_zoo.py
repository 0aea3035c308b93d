"""Users' Keras U-Nets as they write and save them (issue #23): each structure, saved as a Keras 3
.keras file and (with tf_keras, which the dev extra installs) as the Keras 2 .h5 that TensorFlow
<= 2.15 wrote (or the Keras 2 .keras it recommended from 2.13), goes through `tlf-convert quantize` with the preprocessing it was trained with
declared, passes the float-versus-int8 gate on labelled phantom scans, and runs on the device's
LiteRT runtime through edge.model.segmenter.

One tiny U-Net (base 8, depth 2, 64 px; two heads: a 3-class softmax and a one-channel TLF
sigmoid), trained once by tests/zoo_weights.py and kept in tests/data/zoo_unet; every structure of
the zoo is built from its weights by
a reparametrisation: a transposed convolution with the 1x1 up-convolution repeated over its 2x2
kernel (exact), the skip concatenation as two added convolutions (exact), batch normalisation
with random statistics folded into the convolution before it (exact), the normalisation a
model was trained with folded into its first convolution (exact but at the zero-padded border),
three input channels sharing the grey kernel. So each is a model that draws the band, which is
what makes the gate's thickness comparison real.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402

from conftest import TINY_SPACING, small_field_set  # noqa: E402
from convert.cli import main  # noqa: E402
from edge.model.bundle import load_bundle  # noqa: E402
from edge.frame import Frame  # noqa: E402
from edge.model.preprocess import to_float, to_model_image  # noqa: E402
from edge.model.segmenter import Segmenter, scores_in_logit_units  # noqa: E402

FILTERS = (8, 16, 32)  # enc0, enc1, bottom


@dataclass(frozen=True)
class Structure:
    id: str
    head: str = "softmax"  # softmax (in the last convolution), softmax-layer, logits; one channel: sigmoid, logit1

    @property
    def binary(self) -> bool:
        return self.head in ("sigmoid", "logit1")
    up: str = "transpose"  # transpose: Conv2DTranspose; upsample: UpSampling2D + 1x1 Conv2D
    skip: str = "concat"  # concat: concatenate + Conv2D; add: Conv2D on each, added
    bn: bool = False  # BatchNormalization after each encoder convolution
    bn_after_concat: bool = False  # concatenate -> BatchNormalization -> Conv2D
    dropout: float = 0.0  # Dropout after each encoder convolution
    channels: int = 1
    size: int = 64
    batch: int | None = None  # None: a dynamic batch
    lists: bool = False  # Model(inputs=[inputs], outputs=[outputs])
    free: bool = False  # keras.Input((None, None, C)): fully convolutional, converted at --size
    inside: str | None = None  # preprocessing inside the model: "rescaling", "lambda", "tf-op" (x / 255)
    mean: tuple[float, ...] | None = None  # the model was fed (p / 255 - mean) / std
    std: tuple[float, ...] | None = None
    order: str = "bgr"
    prefix: str = ""  # layer names of its own ("" : Keras' automatic names)
    formats: tuple[str, ...] = ("keras", "h5")
    flags: tuple[str, ...] = field(default=())

    def declared(self) -> list[str]:
        """The quantize flags that declare how this model was fed."""
        out = ["--input-scale", "1" if self.inside else "1/255"] + (["--size", str(self.size)] if self.free else [])
        if self.mean:
            out += ["--mean", ",".join(map(str, self.mean)), "--std", ",".join(map(str, self.std))]
        if self.channels == 3:
            out += ["--channel-order", self.order]
        return out + list(self.flags)


ZOO = [
    # The common multi-class tutorial (the report): list structure, dynamic batch, Dropout,
    # Conv2DTranspose + concatenate, softmax head, inputs scaled by 1/255 outside the model.
    Structure("tutorial", lists=True, dropout=0.1, formats=("keras", "h5", "keras2-keras")),
    # Batch norm, UpSampling2D, added skips, a one-channel sigmoid head, a fixed batch, three
    # channels fed in RGB order with per-channel mean/std, names of its own.
    Structure("bn-upsample-add-sigmoid-rgb", head="sigmoid", up="upsample", skip="add", bn=True, channels=3,
              batch=1, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7), order="rgb", prefix="my_",
              formats=("keras", "h5", "keras2-keras")),
    # Logits at 128 px, batch norm between the concatenation and its convolution, the 1/255
    # inside the model (a Rescaling layer), a final Softmax layer's absence: logits.
    Structure("logits-128-bn-after-concat-rescaling", head="logits", size=128, bn_after_concat=True,
              inside="rescaling", lists=True),
    # A Softmax layer, UpSampling2D with concatenated skips, three grey-fed channels.
    Structure("softmax-layer-upsample-3ch", head="softmax-layer", up="upsample", channels=3, dropout=0.2),
    # The tutorials' Lambda(lambda x: x / 255): converts only with --trust-code.
    Structure("lambda-scaling", inside="lambda", lists=True, flags=("--trust-code",)),
    # Keras 2's `inputs / 255` written straight into the model (a TFOpLambda layer Keras 3 lacks):
    # read through tf_keras, converted as one TensorFlow graph.
    Structure("keras2-tf-op", inside="tf-op", lists=True, formats=("h5", "keras2-keras")),
    # One channel of logits (a sigmoid applied by the loss only): two classes at logit 0.
    Structure("binary-logit", head="logit1", formats=("keras",)),
    # A fully convolutional U-Net (keras.Input((None, None, 1)), segmentation_models' default) at
    # 128 px: converted at --size 128, the grid fixed as the batch is, with the 64 px model's
    # weights (a 32 mm field, as its calibration and labelled scans are).
    Structure("fully-convolutional-128", size=128, free=True, lists=True, dropout=0.1, formats=("keras",)),
    # Keras 2's default `model.save("folder")` (a SavedModel), and a Keras 3 export.
    Structure("savedmodel", dropout=0.1, formats=("savedmodel-keras2", "savedmodel-keras3")),
]


def build(k, s: Structure):
    """The structure `s` built with `k` (the keras or the tf_keras module); returns (model, roles),
    roles naming each weighted layer by its part of the U-Net."""
    L = k.layers
    roles = {}

    def name(role):
        return f"{s.prefix}{role}" if s.prefix else None

    def conv(x, role, filters, size=3, activation="relu"):
        if s.bn and role.startswith(("enc", "bottom")):
            layer = L.Conv2D(filters, size, padding="same", name=name(role))
            roles[role] = layer
            bn = L.BatchNormalization(name=name(role + "_bn"))
            roles[role + "_bn"] = bn
            x = L.Activation("relu", name=name(role + "_relu"))(bn(layer(x)))
        else:
            layer = L.Conv2D(filters, size, padding="same", activation=activation, name=name(role))
            roles[role] = layer
            x = layer(x)
        if s.dropout and role.startswith(("enc", "bottom")):
            x = L.Dropout(s.dropout, name=name(role + "_drop"))(x)
        return x

    inputs = L.Input((None, None, s.channels) if s.free else (s.size, s.size, s.channels), batch_size=s.batch,
                     name=name("image"))
    x = inputs
    if s.inside == "rescaling":
        x = L.Rescaling(1 / 255, name=name("rescale"))(x)
    elif s.inside == "lambda":
        x = L.Lambda(lambda t: t / 255, name=name("scale"))(x)
    elif s.inside == "tf-op":
        x = x / 255
    skips = []
    for level, f in enumerate(FILTERS[:2]):
        x = conv(conv(x, f"enc{level}_a", f), f"enc{level}_b", f)
        skips.append(x)
        x = L.MaxPooling2D(name=name(f"pool{level}"))(x)
    x = conv(conv(x, "bottom_a", FILTERS[2]), "bottom_b", FILTERS[2])
    for level in (1, 0):
        f = FILTERS[level]
        if s.up == "transpose":
            roles[f"up{level}"] = L.Conv2DTranspose(f, 2, strides=2, padding="same", name=name(f"up{level}"))
            up = roles[f"up{level}"](x)
        else:
            up = L.UpSampling2D(name=name(f"upsample{level}"))(x)
            roles[f"up{level}"] = L.Conv2D(f, 1, name=name(f"up{level}"))
            up = roles[f"up{level}"](up)
        if s.skip == "add":
            roles[f"dec{level}_a_up"] = L.Conv2D(f, 3, padding="same", name=name(f"dec{level}_a_up"))
            roles[f"dec{level}_a_skip"] = L.Conv2D(f, 3, padding="same", use_bias=False, name=name(f"dec{level}_a_skip"))
            x = L.Activation("relu", name=name(f"dec{level}_a_relu"))(
                L.Add(name=name(f"dec{level}_add"))([roles[f"dec{level}_a_up"](up), roles[f"dec{level}_a_skip"](skips[level])]))
        else:
            x = L.concatenate([up, skips[level]], name=name(f"dec{level}_concat"))
            if s.bn_after_concat:
                roles[f"dec{level}_cat_bn"] = L.BatchNormalization(name=name(f"dec{level}_cat_bn"))
                x = roles[f"dec{level}_cat_bn"](x)
            x = conv(x, f"dec{level}_a", f)
        x = conv(x, f"dec{level}_b", f)
    if s.binary:
        roles["binary"] = L.Conv2D(1, 1, activation="sigmoid" if s.head == "sigmoid" else None, name=name("binary"))
        out = roles["binary"](x)
    else:
        roles["logits"] = L.Conv2D(3, 1, activation="softmax" if s.head == "softmax" else None, name=name("head"))
        out = roles["logits"](x)
        if s.head == "softmax-layer":
            out = L.Softmax(name=name("probs"))(out)
    model = k.Model(inputs=[inputs], outputs=[out]) if s.lists else k.Model(inputs, out)
    return model, roles


def transplant(roles: dict, trained: dict, s: Structure) -> None:
    """Set the structure's weights from the trained U-Net's (see the module docstring)."""
    rng = np.random.default_rng(23)
    for role, layer in roles.items():
        if role.endswith("_bn") or role.endswith("_cat_bn") or role.startswith(("dec0_a_", "dec1_a_")):
            continue
        if role.startswith("up"):
            w, b = trained[role]  # a 1x1 convolution (1, 1, in, out)
            if s.up == "transpose":
                w = np.broadcast_to(w[0, 0].T, (2, 2, *w[0, 0].T.shape)).copy()  # (2, 2, out, in)
            layer.set_weights([w, b])
            continue
        w, b = [a.copy() for a in trained[role]]
        if role == "enc0_a":
            if s.mean is not None:  # the model takes (p/255 - mean) / std: fold it into the first convolution
                mean = np.resize(np.asarray(s.mean, np.float32), s.channels)
                std = np.resize(np.asarray(s.std, np.float32), s.channels)
                w = np.repeat(w, s.channels, axis=2) / s.channels
                b = b + np.einsum("hwco,c->o", w, mean)
                w = w * std[None, None, :, None]
            elif s.channels == 3:
                w = np.repeat(w, 3, axis=2) / 3
        if role + "_bn" in roles:  # conv -> BN -> relu equal to the trained conv -> relu
            bn = roles[role + "_bn"]
            n = w.shape[-1]
            gamma, beta = rng.uniform(0.5, 2.0, n), rng.normal(0, 0.1, n)
            mean_, var = rng.normal(0, 0.1, n), rng.uniform(0.5, 2.0, n)
            scale = np.sqrt(var + bn.epsilon) / gamma
            w, b = w * scale, (b - beta) * scale + mean_
            bn.set_weights([gamma, beta, mean_, var])
        layer.set_weights([w.astype(np.float32), b.astype(np.float32)])
    for level in (0, 1):
        w, b = trained[f"dec{level}_a"]
        f = FILTERS[level]
        if s.skip == "add":
            roles[f"dec{level}_a_up"].set_weights([w[:, :, :f], b])
            roles[f"dec{level}_a_skip"].set_weights([w[:, :, f:]])
            continue
        if s.bn_after_concat:  # BN(x) = a*x + c on the concatenation, undone in the convolution (but at the border)
            bn = roles[f"dec{level}_cat_bn"]
            n = w.shape[2]
            gamma, beta = rng.uniform(0.5, 2.0, n), rng.normal(0, 0.1, n)
            mean_, var = rng.normal(0, 0.1, n), rng.uniform(0.5, 2.0, n)
            bn.set_weights([gamma, beta, mean_, var])
            a = gamma / np.sqrt(var + bn.epsilon)
            c = beta - a * mean_
            w = w / a[None, None, :, None]
            b = b - np.einsum("hwco,c->o", w, c)
        roles[f"dec{level}_a"].set_weights([w.astype(np.float32), b.astype(np.float32)])


@pytest.fixture(scope="session")
def trained():
    """The trained U-Net's weights by role (two heads: 3-class softmax, TLF sigmoid), kept in the
    repository so that every machine converts the same model (tests/zoo_weights.py says why and
    wrote them)."""
    from zoo_weights import load

    return load()


def _spec(size, channels=1):
    from edge.model.preprocess import PreprocessSpec

    return PreprocessSpec(size, size, channels)


def scans(s: Structure, n: int, seed: int):
    """Phantom scans like those the model was trained on: 0.25 mm pixels (a 16 mm field at 64 px,
    32 mm at 128 px), the same layers."""
    return small_field_set(n, seed, size=s.size)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Per model size and head: a calibration image folder and a labelled folder (binary masks for a sigmoid head)."""
    from convert.data import write_labelled_folder

    done = {}

    def get(s: Structure):
        key = (s.size, s.binary)
        if key not in done:
            root = tmp_path_factory.mktemp(f"zoo_data_{s.size}_{int(key[1])}")
            calib = scans(s, 24, seed=5)[0]
            write_labelled_folder(root / "calib", calib[..., 0], np.zeros(calib.shape[:3], np.uint8))
            images, labels, _ = scans(s, 16, seed=2)
            if key[1]:
                labels = (labels == 1).astype(np.uint8)
            write_labelled_folder(root / "data", images[..., 0], labels)
            done[key] = (root / "calib" / "images", root / "data")
        return done[key]

    return get


def save(s: Structure, fmt: str, trained: dict, out: Path) -> Path:
    """The structure with the trained weights, saved as users save it."""
    if fmt in ("h5", "savedmodel-keras2", "keras2-keras"):
        k = pytest.importorskip("tf_keras")
    else:
        k = keras
    model, roles = build(k, s)
    transplant(roles, trained, s)
    if fmt in ("keras", "keras2-keras"):
        path = out / "model.keras"
        model.save(path)  # Keras 3's format, or Keras 2's .keras (TensorFlow 2.13-2.15, tf_keras)
    elif fmt == "h5":
        path = out / "model.h5"
        model.save(path)  # what Keras 2 (TensorFlow <= 2.15) wrote
    elif fmt == "savedmodel-keras2":
        path = out / "saved_model"
        model.save(path)  # Keras 2's default format
    else:
        path = out / "exported"
        model.export(path, verbose=False)
    return path


CASES = [(s, fmt) for s in ZOO for fmt in s.formats]


@pytest.fixture(scope="module")
def converted(tmp_path_factory, trained, folders):
    done = {}

    def get(s: Structure, fmt: str, capsys):
        key = (s.id, fmt)
        if key not in done:
            root = tmp_path_factory.mktemp(f"zoo_{s.id}_{fmt}")
            path = save(s, fmt, trained, root)
            calib, data = folders(s)
            capsys.readouterr()
            args = ["quantize", str(path), "--calib", str(calib), "--data", str(data), "--out", str(root / "bundle"),
                    "--spacing-mm", "%g,%g" % TINY_SPACING, *s.declared()]
            rc = main(args)
            out = capsys.readouterr()
            done[key] = (rc, out.out, out.err, root / "bundle", path, args)
        return done[key]

    return get


@pytest.mark.parametrize("s, fmt", CASES, ids=[f"{s.id}-{fmt}" for s, fmt in CASES])
def test_each_structure_and_format_converts_and_passes_the_gate(s, fmt, converted, capsys):
    from convert.load import model_identity

    rc, out, err, bundle_path, path, args = converted(s, fmt, capsys)
    gate = [line for line in out.splitlines() if line.startswith("gate ")]
    assert gate and rc == 0 and gate[0].startswith("gate PASSED"), out + err
    figures = [line for line in out.splitlines() if line.startswith("float mean IoU")]
    print(f"{s.id} [{fmt}]: tlf-convert {' '.join(args)}\n  {figures[0]}\n  {gate[0]}")  # shown by pytest -rP
    bundle = load_bundle(bundle_path)
    m = bundle.manifest
    # the float model it came from is recorded (sealed), and the validation names it
    assert m["float_model"] == model_identity(path)
    assert m["float_model"]["kind"] == ("savedmodel" if fmt.startswith("savedmodel") else "file")
    assert m["validation"]["float_model"] == {**model_identity(path), "made_from": True}
    assert bundle.output_kind == {"softmax-layer": "softmax", "logit1": "logits"}.get(s.head, s.head)
    assert m["output"]["shape"] == [1, s.size, s.size, 1 if s.binary else 3]
    assert bundle.classes == (["background", "tlf"] if s.binary else ["above", "tlf", "below"])
    assert m["delegate_partitions"] == 1
    # the declared preprocessing is what the bundle states
    assert bundle.spec.scale == pytest.approx(1.0 if s.inside else 1 / 255)
    assert bundle.spec.channels == s.channels and bundle.spec.channel_order == s.order
    if s.mean:
        assert bundle.spec.mean == s.mean and bundle.spec.std == s.std
    v = m["validation"]
    # the band is measured, not missed
    assert v["gate"]["passed"] and v["thickness"]["int8_vs_float"]["n"] >= 8
    assert v["float"]["mean_iou"] - v["int8"]["mean_iou"] <= 0.01 and v["unit"] == "mm"
    assert v["float"]["dice"][1] > 0.5  # the model draws the TLF
    # skip concatenations visible to Keras are split, also through batch normalisation
    # (a nearest UpSampling2D becomes channel copies, a concatenation of one scale, and a DEPTH_TO_SPACE)
    notes = " ".join(m.get("conversion_notes", []))
    if s.skip == "concat" and not fmt.startswith("savedmodel") and s.inside != "tf-op":
        assert "stays whole" not in notes and ("CONCATENATION" not in m["ops"] or s.up == "upsample")
    elif s.skip == "concat":  # a graph converted whole: its concatenations stay, and quantize says so
        assert "CONCATENATION" in m["ops"] and "CONCATENATION op(s) of a graph converted whole stay" in notes


# One case per head kind (softmax from both files, sigmoid, logits of one channel and of three).
DEVICE_CASES = [(s, fmt) for s, fmt in CASES if (s.id, fmt) in {
    ("tutorial", "keras"), ("tutorial", "h5"), ("bn-upsample-add-sigmoid-rgb", "h5"), ("binary-logit", "keras"),
    ("logits-128-bn-after-concat-rescaling", "keras"), ("fully-convolutional-128", "keras")}]


@pytest.mark.parametrize("s, fmt", DEVICE_CASES, ids=[f"{s.id}-{fmt}" for s, fmt in DEVICE_CASES])
def test_the_device_runs_each_bundle_like_the_float_model(s, fmt, converted, capsys, tmp_path):
    """edge.model.segmenter on ai-edge-litert: labels as the float model draws them on frames of
    another size, scores in logit units whatever the head."""
    rc, _, _, bundle_path, path, _ = converted(s, fmt, capsys)
    assert rc == 0
    bundle = load_bundle(bundle_path)
    seg = Segmenter(bundle, 2)
    assert seg.runtime == "ai-edge-litert" and seg.classes == (2 if s.binary else 3)
    from convert.load import read_model

    model = read_model(path, trust_code=True)
    images, _, _ = scans(s, 4, seed=31)
    agree = []
    for img in images:
        frame = img[..., 0] if s.channels == 1 else np.dstack([img[..., 0]] * 3)
        frame = np.kron(frame, np.ones((2, 2) + (() if frame.ndim == 2 else (1,)), np.uint8))[:, : frame.shape[1] * 7 // 4]
        out = seg.segment(Frame(frame, 0.0, 0))
        model_image = to_model_image(frame, bundle.spec)
        f = scores_in_logit_units(np.asarray(model(to_float(model_image, bundle.spec)[None]))[0], bundle.output_kind)
        agree.append((out.labels == np.argmax(f, -1)).mean())
        assert out.logits.shape == (s.size, s.size, seg.classes)
        assert np.array_equal(out.labels, np.argmax(out.logits, -1))
    assert np.mean(agree) > 0.97


@pytest.mark.parametrize("fmt", ["keras3", "keras2"])
def test_weights_only_load_into_the_built_in_unet(fmt, trained, folders, tmp_path, capsys):
    """--weights with the builder's options: a U-Net of the built-in builder's layout (the classic
    concatenating form), its weights saved alone by Keras 3 (.weights.h5) or by Keras 2 (.h5)."""
    if fmt == "keras3":
        from convert.unet import build_unet

        model = build_unet(input_size=64, base_filters=8, depth=2, split_skip=False, batch_size=None)
        for role in ("enc0_a", "enc0_b", "enc1_a", "enc1_b", "bottom_a", "bottom_b", "dec1_a", "dec1_b", "dec0_a",
                     "dec0_b", "logits"):
            model.get_layer(role).set_weights(trained[role])
        for level in (0, 1):
            w, b = trained[f"up{level}"]
            model.get_layer(f"up{level}").set_weights([np.broadcast_to(w[0, 0].T, (2, 2, *w[0, 0].T.shape)).copy(), b])
        weights = tmp_path / "unet.weights.h5"
        model.save_weights(weights)
    else:  # the same layers in the same order, written by Keras 2 as a notebook would
        k = pytest.importorskip("tf_keras")
        s = Structure("weights-keras2", head="logits")
        model, roles = build(k, s)
        transplant(roles, trained, s)
        weights = tmp_path / "unet_weights.h5"
        model.save_weights(weights)
    calib, data = folders(Structure("weights"))
    common = ["--calib", str(calib), "--data", str(data), "--spacing-mm", "%g,%g" % TINY_SPACING, "--input-scale", "1/255"]
    builder = ["--base-filters", "8", "--depth", "2"]
    wrong = main(["quantize", "--weights", str(weights), "--size", "64", *builder, "--out", str(tmp_path / "wrong"), *common])
    assert wrong == 2 and "do not fit the built-in U-Net" in capsys.readouterr().err  # split form by default
    rc = main(["quantize", "--weights", str(weights), "--size", "64", *builder, "--concat-skips", "--out",
               str(tmp_path / "b"), *common])
    out = capsys.readouterr().out
    assert rc == 0 and "gate PASSED" in out, out
    validate = ["validate", str(tmp_path / "b"), "--weights", str(weights), *builder, "--concat-skips", "--data",
                str(data), "--spacing-mm", "%g,%g" % TINY_SPACING, "--out", str(tmp_path / "rep")]
    assert main(validate) == 0
    assert "gate PASSED" in capsys.readouterr().out
    # the same weights in another builder's U-Net (a softmax head) are another float model
    assert main([*validate, "--output", "softmax"]) == 2
    assert "is not the float model bundle" in capsys.readouterr().err


def test_the_float_model_giving_one_class_stops_quantize(trained, folders, tmp_path, capsys):
    """Preprocessing declared wrong: the model divides by 255 itself (a Rescaling layer) and the
    user declares the tutorials' 1/255 as well. Fed almost nothing, the float model gives one
    class almost everywhere, and quantize says so, with the declaration that would do."""
    s = Structure("rescaling-inside", inside="rescaling")
    path = save(s, "keras", trained, tmp_path)
    calib, data = folders(s)
    rc = main(["quantize", str(path), "--calib", str(calib), "--out", str(tmp_path / "b"), "--input-scale", "1/255"])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tlf-convert: warning")]
    assert rc == 2 and len(err) == 1 and not (tmp_path / "b").exists()
    print(err[0])
    assert err[0].startswith("tlf-convert: error: the float model, fed the calibration images as declared (p/255")
    assert "preprocessing probably does not match its training" in err[0] and "with --input-scale 1 it gives" in err[0]
    assert main(["quantize", str(path), "--calib", str(calib), "--out", str(tmp_path / "b"), "--input-scale", "1"]) == 0
    # 255 for 1 (the other way round): the labels stand still when the input doubles or halves
    assert main(["quantize", str(path), "--calib", str(calib), "--out", str(tmp_path / "c"), "--input-scale", "255"]) == 2
    err = capsys.readouterr().err
    assert "as declared (p*255" in err and "with --input-scale 1 they follow the input" in err


@pytest.mark.parametrize("declared", ["1", "255"])
def test_a_wrong_input_scale_is_refused_naming_the_one_that_fits(declared, tiny_model_path, tiny_bundle, folders,
                                                                 tmp_path, capsys):
    """Must-have 3 beyond one class: the tiny U-Net trained on p/255 (conftest.tiny_model_path),
    declared as fed raw pixels (--input-scale 1) or with 255 typed for 1/255. It still draws
    several classes, but its labels stand still when its input doubles or halves (its learned
    thresholds play no part), while under 1/255 they follow it: quantize stops before converting,
    naming 1/255. --trust-preprocessing converts as declared, and the gate on labelled data shows
    what the declaration costs the float model."""
    calib, data = folders(Structure("scale"))
    args = ["quantize", str(tiny_model_path), "--calib", str(calib), "--input-scale", declared]
    rc = main([*args, "--out", str(tmp_path / "b")])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tlf-convert: warning")]
    assert rc == 2 and len(err) == 1 and not (tmp_path / "b").exists()
    print(err[0])  # shown by pytest -rP
    assert err[0].startswith(f"tlf-convert: error: the float model, fed the calibration images as declared (p*{declared},")
    assert "with --input-scale 1/255 they follow the input" in err[0] and "--trust-preprocessing" in err[0]
    assert "float_class_shares" in tiny_bundle.manifest["calibration"]  # declared right (its train.json): checked, taken
    if declared == "1":
        rc = main([*args, "--out", str(tmp_path / "b"), "--trust-preprocessing", "--data", str(data),
                   "--spacing-mm", "%g,%g" % TINY_SPACING])
        out = capsys.readouterr().out
        assert rc in (0, 3) and load_bundle(tmp_path / "b").spec.scale == 1.0
        wrong = load_bundle(tmp_path / "b").manifest["validation"]["float"]["mean_iou"]
        print(f"float mean IoU fed p*1: {wrong:.4f}; {[line for line in out.splitlines() if line.startswith('gate')][0]}")
        assert wrong < 0.9  # what the check spared: the float model itself, fed otherwise, segments worse


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_lambda_layers_need_trust_code(fmt, trained, folders, tmp_path, capsys):
    s = Structure("lambda-scaling", inside="lambda", lists=True)
    path = save(s, fmt, trained, tmp_path)
    calib, _ = folders(s)
    rc = main(["quantize", str(path), "--calib", str(calib), "--out", str(tmp_path / "b"), "--input-scale", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "has Lambda layer(s) ['lambda" in err and "--trust-code" in err
    assert len(err.strip().splitlines()) == 1


def test_custom_layers_need_the_file_that_defines_them(folders, tmp_path, capsys):
    code = tmp_path / "layers.py"
    code.write_text(
        "import keras\n\n"
        "@keras.saving.register_keras_serializable(package='study')\n"
        "class Scale(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return x / 255.0\n")
    from convert.load import custom_objects_from

    Scale = custom_objects_from(code)["Scale"]
    inp = keras.Input((64, 64, 1))
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(Scale(name="pixels")(inp)))
    model.save(tmp_path / "custom.keras")
    calib, _ = folders(Structure("custom"))
    args = ["quantize", str(tmp_path / "custom.keras"), "--calib", str(calib), "--input-scale", "1", "--allow-one-class"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "custom layer(s) 'pixels' (Scale)" in err and "--custom-objects FILE.py" in err
    assert main([*args, "--out", str(tmp_path / "b"), "--custom-objects", str(code)]) == 0
    assert load_bundle(tmp_path / "b").output_kind == "softmax"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b"not a model"), "neither a Keras 3 file"),
        (lambda p: p.mkdir(), "is not a TensorFlow SavedModel"),
        (lambda p: _weights_only(p), "holds weights only"),
    ],
    ids=["not-a-model", "folder", "weights-only"],
)
def test_files_that_are_not_models_say_what_they_are(make, match, tmp_path, capsys):
    path = tmp_path / "model.h5"
    make(path)
    assert main(["quantize", str(path), "--calib", "phantom", "--out", str(tmp_path / "b"), "--input-scale", "1/255"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tlf-convert: error: ") and match in err and len(err.strip().splitlines()) == 1


def _weights_only(path: Path) -> None:
    """Weights saved alone (Keras 3 names them .weights.h5; users rename them .h5)."""
    inp = keras.Input((64, 64, 1))
    keras.Model(inp, keras.layers.Conv2D(3, 1)(inp)).save_weights(path.with_name("w.weights.h5"))
    path.with_name("w.weights.h5").rename(path)


def test_undeclared_preprocessing_is_asked_for(trained, tmp_path, capsys):
    path = save(Structure("plain"), "keras", trained, tmp_path)
    assert main(["quantize", str(path), "--calib", "phantom", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "how was model.keras fed in training? declare it: --input-scale 1/255" in err


def test_graphs_xnnpack_cannot_take_whole_say_which_op_and_what_it_costs(folders, tmp_path, capsys):
    """A SavedModel with a nearest-neighbour upsampling (TILE inside a TensorFlow graph, which the
    converter cannot rewrite) is refused with the op, its count, the partitions and the time per
    frame; --allow-partitions converts it with that line as a warning, recorded in the manifest."""
    inp = keras.Input((64, 64, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.UpSampling2D(size=(2, 1))(keras.layers.MaxPooling2D((2, 1))(x))  # not square: stays a resize
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, activation="softmax")(x))
    model.export(tmp_path / "sm", verbose=False)
    calib, _ = folders(Structure("partitions"))
    args = ["quantize", str(tmp_path / "sm"), "--calib", str(calib), "--input-scale", "1/255", "--allow-one-class"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("tlf-convert: error: XNNPACK takes the converted graph in") and "ms per frame here" in err
    assert "--allow-partitions" in err
    assert main([*args, "--out", str(tmp_path / "b"), "--allow-partitions"]) == 0
    notes = json.loads((tmp_path / "b" / "manifest.json").read_text())["conversion_notes"]
    assert any("ms per frame" in n for n in notes)


def test_unsplit_concatenations_are_named_with_the_layer_that_keeps_them(trained, tmp_path, capsys):
    """A concatenation feeding a Conv2DTranspose (not split) stays; quantize names it and its consumer."""
    from convert.quantize import quantize_to_bundle

    inp = keras.Input((64, 64, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(a)
    cat = keras.layers.Concatenate(name="joined")([a, b])
    down = keras.layers.MaxPooling2D(name="shrink")(cat)
    up = keras.layers.Conv2DTranspose(4, 2, strides=2, name="widen")(down)
    model = keras.Model(inp, keras.layers.Conv2D(3, 1)(up))
    images = small_field_set(8, seed=5)[0]
    bundle = quantize_to_bundle(model, images, _spec(64), tmp_path / "b", check_prediction=False)
    err = capsys.readouterr().err
    assert "concatenation 'joined' stays whole: it feeds shrink (MaxPooling2D)" in err
    assert any("joined" in n for n in bundle.manifest["conversion_notes"])


def _quantize_one_line(args, capsys) -> tuple[int, list[str]]:
    """quantize's exit code and its stderr lines but warnings (a refusal is one line)."""
    rc = main(["quantize", *args])
    return rc, [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tlf-convert: warning")]


@pytest.mark.parametrize("fmt", ["keras", "keras2-keras", "h5"])
def test_a_sequential_model_converts(fmt, folders, tmp_path, capsys):
    """Must-have 1: a Sequential model with a declared input, as Keras 3 (.keras) and Keras 2
    (.keras and .h5, tf_keras) save it. Keras 3 gives a loaded Sequential no `input` of its own."""
    k = keras if fmt == "keras" else pytest.importorskip("tf_keras")
    L = k.layers
    model = k.Sequential([L.Input((64, 64, 1)), L.Conv2D(4, 3, padding="same", activation="relu"), L.Dropout(0.1),
                          L.Conv2D(3, 1, activation="softmax")])
    path = tmp_path / ("seq.h5" if fmt == "h5" else "seq.keras")
    model.save(path)
    calib, _ = folders(Structure("sequential"))
    rc, err = _quantize_one_line([str(path), "--calib", str(calib), "--input-scale", "1/255", "--allow-one-class",
                                  "--out", str(tmp_path / "b")], capsys)
    assert rc == 0, err
    assert load_bundle(tmp_path / "b").manifest["output"]["shape"] == [1, 64, 64, 3]


def test_a_sequential_model_without_an_input_shape_says_what_to_do(folders, tmp_path, capsys):
    L = keras.layers
    model = keras.Sequential([L.Conv2D(4, 3, padding="same", activation="relu"), L.Conv2D(3, 1, activation="softmax")])
    with pytest.warns(UserWarning):  # Keras: "saving a model that has not yet been built"
        model.save(tmp_path / "seq.keras")
    calib, _ = folders(Structure("sequential"))
    rc, err = _quantize_one_line([str(tmp_path / "seq.keras"), "--calib", str(calib), "--input-scale", "1/255",
                                  "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and len(err) == 1, err
    assert "has no input shape" in err[0] and "start it with keras.Input((256, 256, 1))" in err[0]


def test_a_keras2_dot_keras_file_says_to_install_the_keras2_reader_when_keras3_cannot_read_it(trained, folders, tmp_path,
                                                                                              capsys, monkeypatch):
    """A .keras file of Keras 2 (tf_keras) with a TensorFlow op written into the model (`inputs / 255`),
    which only tf_keras reads, on a machine without tf_keras: one line saying what it is and what to do."""
    path = save(Structure("keras2-tf-op", inside="tf-op", lists=True), "keras2-keras", trained, tmp_path)
    monkeypatch.setitem(sys.modules, "tf_keras", None)  # not installed
    calib, _ = folders(Structure("keras2-keras"))
    rc, err = _quantize_one_line([str(path), "--calib", str(calib), "--input-scale", "1", "--out", str(tmp_path / "b")],
                                 capsys)
    assert rc == 2 and len(err) == 1, err
    assert "a .keras file written by Keras 2." in err[0] and "TensorFlow-op layers" in err[0]
    assert "pip install 'tlf-edge[legacy]'" in err[0]


def test_a_keras3_file_that_does_not_load_says_what_was_found_and_what_to_do(folders, tmp_path, capsys):
    import zipfile

    inp = keras.Input((64, 64, 1))
    keras.Model(inp, keras.layers.Conv2D(3, 1)(inp)).save(tmp_path / "good.keras")
    with zipfile.ZipFile(tmp_path / "good.keras") as src, zipfile.ZipFile(tmp_path / "bad.keras", "w") as dst:
        for name in src.namelist():  # the weights cut short, as by a copy that stopped
            data = src.read(name)
            dst.writestr(name, data[: len(data) // 2] if name.endswith(".h5") else data)
    calib, _ = folders(Structure("broken"))
    rc, err = _quantize_one_line([str(tmp_path / "bad.keras"), "--calib", str(calib), "--input-scale", "1/255",
                                  "--out", str(tmp_path / "b")], capsys)
    assert rc == 2 and len(err) == 1, err
    assert f"(a .keras file saved by Keras {keras.__version__})" in err[0] and "save it there again" in err[0]


def test_a_model_of_any_size_asks_for_size_and_converts_at_h_by_w(folders, tmp_path, capsys):
    """A fully convolutional model (keras.Input((None, None, 1))): without --size one line asking for
    it; with --size HxW the grid is fixed as the batch is (the zoo's fully-convolutional-128 case
    goes through the gate)."""
    L = keras.layers
    inp = keras.Input((None, None, 1))
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inp)
    y = L.Conv2DTranspose(4, 2, strides=2, padding="same")(L.MaxPooling2D()(x))
    keras.Model([inp], [L.Conv2D(3, 1, activation="softmax")(L.concatenate([y, x]))]).save(tmp_path / "fcn.keras")
    calib, _ = folders(Structure("fcn"))
    args = [str(tmp_path / "fcn.keras"), "--calib", str(calib), "--input-scale", "1/255", "--allow-one-class"]
    rc, err = _quantize_one_line([*args, "--out", str(tmp_path / "a")], capsys)
    assert rc == 2 and len(err) == 1, err
    assert "takes images of any size (NonexNone px): give the grid it was trained at with --size" in err[0]
    rc, err = _quantize_one_line([*args, "--size", "64x96", "--out", str(tmp_path / "b")], capsys)
    assert rc == 0, err
    bundle = load_bundle(tmp_path / "b")
    assert bundle.manifest["input"]["shape"] == [1, 64, 96, 1] and bundle.manifest["output"]["shape"] == [1, 64, 96, 3]
    assert (bundle.spec.height, bundle.spec.width) == (64, 96) and bundle.manifest["delegate_partitions"] == 1


def _bundle_copy(converted, capsys, tmp_path) -> tuple[Path, Path]:
    """A copy of the zoo's tutorial bundle (validated on its labelled data) and its float model."""
    import shutil

    rc, _, _, bundle_path, path, _ = converted(ZOO[0], "keras", capsys)
    assert rc == 0
    shutil.copytree(bundle_path, tmp_path / "bundle")
    return tmp_path / "bundle", path


def test_validate_refuses_a_float_model_the_bundle_was_not_made_from(converted, folders, tmp_path, capsys):
    """The manifest records the float model's sha256 at quantize; validate --float with another model
    is one line and leaves the recorded validation alone; with --other-model it runs and the record
    names the model it was validated against."""
    bundle, path = _bundle_copy(converted, capsys, tmp_path)
    _, data = folders(ZOO[0])
    keras.utils.set_random_seed(7)
    other, _ = build(keras, ZOO[0])  # the same structure, untrained: another model
    other.save(tmp_path / "other.keras")
    before = json.loads((bundle / "manifest.json").read_text())
    common = ["--data", str(data), "--spacing-mm", "%g,%g" % TINY_SPACING, "--out", str(tmp_path / "rep")]
    assert main(["validate", str(bundle), "--float", str(tmp_path / "other.keras"), *common]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tlf-convert: error: 'other.keras' (sha256 ") and \
        f"is not the float model bundle {str(bundle)!r} was made from ('model.keras', sha256 " \
        f"{before['float_model']['sha256'][:12]}" in err[0] and "--other-model" in err[0]
    assert json.loads((bundle / "manifest.json").read_text()) == before and not (tmp_path / "rep").exists()
    assert main(["validate", str(bundle), "--float", str(tmp_path / "other.keras"), *common, "--other-model"]) in (0, 3)
    assert "validating against it (--other-model)" in capsys.readouterr().err
    record = load_bundle(bundle).manifest["validation"]["float_model"]
    assert record["name"] == "other.keras" and record["made_from"] is False
    assert main(["validate", str(bundle), "--float", str(path), *common]) == 0
    assert load_bundle(bundle).manifest["validation"]["float_model"] == {**before["float_model"], "made_from": True}


def test_a_data_sets_stated_spacing_makes_the_gate_measure_in_mm(converted, folders, tmp_path, capsys):
    """The spacing_mm of a data set's dataset.json (mm per image pixel) is read by quantize and
    validate --data as by tlf-edge bench: the gate's 0.05 thickness limit is then in mm. Here the
    labelled images are stored at twice the model's grid, 0.125 mm per pixel: 0.25 mm per model
    pixel, the figures --spacing-mm 0.25,0.25 gives. An explicit --native-px still wins."""
    import cv2

    bundle, path = _bundle_copy(converted, capsys, tmp_path)
    images, labels, _ = scans(ZOO[0], 16, seed=2)
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, (img, lab) in enumerate(zip(images[..., 0], labels)):
        cv2.imwrite(str(root / "images" / f"{i:03d}.png"), cv2.resize(img, (128, 128), interpolation=cv2.INTER_CUBIC))
        cv2.imwrite(str(root / "masks" / f"{i:03d}.png"), cv2.resize(lab, (128, 128), interpolation=cv2.INTER_NEAREST))
    half = [TINY_SPACING[0] / 2, TINY_SPACING[1] / 2]
    (root / "dataset.json").write_text(json.dumps({"version": 1, "classes": ["above", "tlf", "below"],
                                                   "mask": {"kind": "index"}, "spacing_mm": half}))

    def validate(*extra):
        rc = main(["validate", str(bundle), "--float", str(path), "--data", str(root), "--out", str(tmp_path / "r"), *extra])
        return rc, capsys.readouterr(), json.loads((tmp_path / "r" / "validation.json").read_text())

    rc, io, stated = validate()
    assert rc in (0, 3) and stated["unit"] == "mm"
    assert f"thickness in mm: the data set states spacing_mm {half[0]:g},{half[1]:g} per image pixel" in io.err
    assert " mm, int8-truth MAE" in io.out
    _, _, explicit = validate("--spacing-mm", "%g,%g" % TINY_SPACING)
    assert stated["thickness"] == explicit["thickness"] and stated["thickness"]["int8_vs_float"]["n"] >= 8
    _, _, native = validate("--native-px")
    assert native["unit"] == "px"


def test_a_keras2_file_without_the_keras2_reader_names_the_extra():
    """Both Keras 2 readers (.h5 and .keras) say the same line when tf_keras is missing."""
    from convert.load import _needs_keras2_reader

    ops = _needs_keras2_reader("the Keras 2 model 'm.h5'", ["tf.math.truediv"], None)
    assert str(ops).startswith("Keras 3 cannot read the Keras 2 model 'm.h5': its TensorFlow-op layers")
    assert "install the Keras 2 reader" in str(ops) and "\n" not in str(ops)
    other = _needs_keras2_reader("'m.keras'", [], ValueError("bad config\nmore"))
    assert str(other).startswith("Keras 3 cannot read 'm.keras': bad config;")
