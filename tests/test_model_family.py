"""Any model of the family converts (issue #4, point 5): tiny U-Nets of every input size (128-512
px), channel count (1, 3), class count (2-8) and output kind (logits, softmax), built by
convert.unet or written by hand, go through the real int8 path into a bundle that the device's
Segmenter runs; models outside the family are refused with one clear line.

The models are untrained (random weights, base 4): training each size costs minutes on the
shared cores. Their head is rescaled so that several classes win and the logits spread about
+-4, which makes float-versus-int8 agreement a real test: with scales calibrated on blank frames
these models agreed with float on 0.2-0.75 of the pixels (0.25-0.87 where float is confident),
converted properly on 0.89-0.99 (0.995-1.0 where the float margin exceeds 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
import keras  # noqa: E402
from keras import layers  # noqa: E402

from convert.quantize import DYNAMIC_OPS, QuantizeError, check_family, graph_report, quantize_to_bundle  # noqa: E402
from convert.unet import build_unet, export_ready  # noqa: E402
from edge.sim import phantom  # noqa: E402
from edge.frame import Frame  # noqa: E402
from edge.model.preprocess import PreprocessSpec, to_float, to_model_image  # noqa: E402
from edge.model.segmenter import Segmenter  # noqa: E402


@dataclass(frozen=True)
class Case:
    id: str
    size: int
    channels: int
    classes: int
    output: str  # "logits" or "softmax"
    depth: int = 2
    split_skip: bool = True  # False: the builder's concatenating form, which quantize must split
    own: bool = False  # a hand-written Keras model, not convert.unet's
    names: tuple[str, ...] | None = None
    tlf_class: int | None = None


# Every size, channel count, class count and output kind at least once, not the cross product.
CASES = [
    Case("128-grey-2cls-logits-tlf0", 128, 1, 2, "logits", names=("tlf", "background"), tlf_class=0),
    Case("192-bgr-3cls-softmax-depth3", 192, 3, 3, "softmax", depth=3),
    Case("256-grey-5cls-logits-concat", 256, 1, 5, "logits", split_skip=False),
    Case("512-bgr-8cls-logits-depth3", 512, 3, 8, "logits", depth=3),
    Case("160-grey-3cls-softmax-own-model", 160, 1, 3, "softmax", own=True),
]


def own_unet(size: int, channels: int, classes: int) -> keras.Model:
    """A U-Net written the way users write them: concatenated skips, batch norm, upsampling,
    a final Softmax layer, a dynamic batch and layer names of its own."""
    inp = keras.Input((size, size, channels), name="scan")
    e = layers.Conv2D(4, 3, padding="same", activation="relu", name="e1")(inp)
    e = layers.Conv2D(4, 3, padding="same", name="e2")(e)
    e = layers.Activation("relu", name="e2_act")(layers.BatchNormalization(name="e2_bn")(e))
    b = layers.Conv2D(8, 3, padding="same", activation="relu", name="b1")(layers.MaxPooling2D(name="down")(e))
    u = layers.UpSampling2D(name="up")(b)
    d = layers.Conv2D(4, 3, padding="same", activation="relu", name="d1")(layers.Concatenate(name="cat")([u, e]))
    head = layers.Conv2D(classes, 1, name="head")(d)
    model = keras.Model(inp, layers.Softmax(name="probs")(head), name="users_unet")
    bn = model.get_layer("e2_bn")
    rng = np.random.default_rng(5)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma * rng.uniform(0.5, 2, 4), beta + rng.normal(0, 0.1, 4),
                    mean + rng.normal(0, 0.1, 4), var * rng.uniform(0.5, 2, 4)])
    return model


def head_name(model: keras.Model) -> str:
    """The last layer with weights: the one that makes the logits."""
    return [layer for layer in model.layers if layer.get_weights()][-1].name


def make_decisive(model: keras.Model, images: np.ndarray) -> None:
    """Shift and scale the random head so each class wins on some pixels and the logits spread about +-4."""
    head = model.get_layer(head_name(model))
    z = np.asarray(keras.Model(model.input, head.output)(images)).reshape(-1, head.filters).astype(np.float64)
    shift = np.median(z - z.mean(axis=1, keepdims=True), axis=0)
    scale = 4.0 / (z - shift).std()
    kernel, bias = head.get_weights()
    head.set_weights([(kernel * scale).astype(np.float32), ((bias - shift) * scale).astype(np.float32)])


def frames(case: Case, seeds) -> list[np.ndarray]:
    """Phantom B-mode frames at another size than the model's (grey, or tinted BGR for 3 channels)."""
    out = []
    for seed in seeds:
        image = phantom.scan(seed, shape=(case.size * 3 // 4, case.size * 7 // 8)).image
        if case.channels == 3:
            image = np.dstack([image * 0.85, image, image * 0.95]).astype(np.uint8)
        out.append(image)
    return out


def convert_case(case: Case, out_dir) -> tuple:
    """(case, float model, bundle, frames) with the bundle made by the real quantize path."""
    keras.utils.set_random_seed(case.size)
    spec = PreprocessSpec(height=case.size, width=case.size, channels=case.channels)
    if case.own:
        model = own_unet(case.size, case.channels, case.classes)
    else:
        model = build_unet(input_size=case.size, channels=case.channels, classes=case.classes, base_filters=4,
                           depth=case.depth, split_skip=case.split_skip, output=case.output,
                           batch_size=None if not case.split_skip else 1)
    images = frames(case, range(100 * case.size, 100 * case.size + 10))
    model_images = np.stack([to_model_image(f, spec) for f in images])
    make_decisive(model, to_float(model_images[:4], spec))
    bundle = quantize_to_bundle(model, model_images[:8], spec, out_dir,
                                classes=list(case.names) if case.names else None, tlf_class=case.tlf_class)
    return case, model, bundle, images[8:]


@pytest.fixture(scope="module")
def convert(tmp_path_factory):
    """Each case converted once for the whole module."""
    done = {}

    def get(case: Case):
        if case.id not in done:
            done[case.id] = convert_case(case, tmp_path_factory.mktemp(case.id))
        return done[case.id]

    return get


def cases(keep=lambda case: True):
    return pytest.mark.parametrize("case", [c for c in CASES if keep(c)], ids=lambda c: c.id)


@cases()
def test_manifest_states_the_contract(case, convert):
    _, _, bundle, _ = convert(case)
    m = bundle.manifest
    assert m["input"]["shape"] == [1, case.size, case.size, case.channels] and m["input"]["dtype"] == "int8"
    assert m["output"]["shape"] == [1, case.size, case.size, case.classes] and m["output"]["dtype"] == "int8"
    assert m["output"]["kind"] == bundle.output_kind == case.output
    if case.output == "softmax":  # int8 probabilities: TFLite fixes the scale at 1/256
        assert m["output"]["scale"] == pytest.approx(1 / 256) and m["output"]["zero_point"] == -128
    assert len(bundle.classes) == case.classes
    if case.names:
        assert bundle.classes == list(case.names)
    assert bundle.classes[bundle.tlf_class] == "tlf" or (case.classes > 3 and bundle.tlf_class == 1)
    assert m["preprocess"] == PreprocessSpec(case.size, case.size, case.channels).to_dict()


@cases()
def test_graph_is_one_xnnpack_partition_without_dynamic_ops(case, convert):
    _, model, bundle, _ = convert(case)
    graph = graph_report(bundle.model_path.read_bytes())
    assert graph["delegate_partitions"] == 1 == bundle.manifest["delegate_partitions"]
    assert not set(graph["ops"]) & DYNAMIC_OPS
    assert set(graph["undelegated_ops"]) == ({"SOFTMAX"} if case.output == "softmax" else set())
    assert "TILE" not in graph["ops"]
    # concatenated skips were split, also in the hand-written model (whose upsampling copies channels)
    assert not any(isinstance(layer, layers.Concatenate) for layer in export_ready(model).layers)
    assert "CONCATENATION" not in graph["ops"] or case.own


@cases()
def test_int8_labels_agree_with_the_float_model(case, convert):
    _, model, bundle, images = convert(case)
    seg = Segmenter(bundle, 2)
    assert seg.runtime in ("ai-edge-litert", "tflite-runtime")  # the device's runtime, not TensorFlow
    head = keras.Model(model.input, model.get_layer(head_name(model)).output)
    for image in images:
        out = seg.segment(Frame(image, 0.0, 0))
        logits = np.asarray(head(to_float(to_model_image(image, bundle.spec), bundle.spec)[None]))[0]
        labels = np.argmax(logits, -1)
        share = np.bincount(labels.ravel(), minlength=case.classes) / labels.size
        assert (share >= 0.05).sum() >= 2, f"float model is trivial: class shares {share.round(3)}"
        top2 = np.sort(logits, -1)[..., -2:]
        confident = top2[..., 1] - top2[..., 0] > 1.0  # a quarter of the logit spread
        assert (out.labels == labels).mean() > 0.85
        assert (out.labels == labels)[confident].mean() > 0.99


@cases(lambda c: c.output == "softmax")
def test_softmax_bundles_give_log_probabilities_with_the_logit_differences(case, convert):
    _, model, bundle, images = convert(case)
    seg = Segmenter(bundle, 2)
    head = keras.Model(model.input, model.get_layer(head_name(model)).output)
    image = images[0]
    out = seg.segment(Frame(image, 0.0, 0))
    assert out.logits.dtype == np.float32 and out.logit_scale == 1.0
    assert np.array_equal(out.labels, np.argmax(seg.infer(to_model_image(image, bundle.spec)), -1))
    logits = np.asarray(head(to_float(to_model_image(image, bundle.spec), bundle.spec)[None]))[0]
    probs = np.asarray(model(to_float(to_model_image(image, bundle.spec), bundle.spec)[None]))[0]
    both = (probs[..., 0] > 0.1) & (probs[..., 1] > 0.1)  # where both are well above the int8 step
    assert both.sum() > 100
    got = (out.logits[..., 0] - out.logits[..., 1])[both]
    want = (logits[..., 0] - logits[..., 1])[both]
    slope = np.polyfit(want, got, 1)[0]  # raw probability differences would give 0.5 or less
    assert 0.85 < slope < 1.15 and np.corrcoef(got, want)[0, 1] > 0.9


@cases(lambda c: c.channels == 3)
def test_three_channel_models_take_bgr_and_grey_frames(case, convert):
    _, _, bundle, images = convert(case)
    seg = Segmenter(bundle, 2)
    bgr = images[0]
    assert bgr.ndim == 3 and bgr.shape[2] == 3
    for image in (bgr, bgr[..., 1]):
        out = seg.segment(Frame(image, 0.0, 0, spacing_mm=(0.1, 0.1)))
        assert out.labels.shape == (case.size, case.size) and out.labels.max() < case.classes


@cases(lambda c: c.classes == 2)
def test_two_class_bundle_records_which_class_is_the_tlf(case, convert):
    _, _, bundle, _ = convert(case)
    assert bundle.tlf_class == 0 and bundle.classes == ["tlf", "background"]


# --- outside the family: one clear line, nothing written -------------------------------------------


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = layers.Conv2D(3, 1)

    def call(self, x):
        return self.conv(x)


def one_conv(size=128, channels=1, classes=3, activation=None, after=None) -> keras.Model:
    """The smallest per-pixel classifier: one 1x1 convolution (and optionally one more layer)."""
    inp = keras.Input((size, size, channels))
    out = layers.Conv2D(classes, 1, activation=activation)(inp)
    return keras.Model(inp, after(out) if after else out)


def outside(case: str):
    spec = PreprocessSpec(128, 128, 1)
    if case == "subclassed":
        model = Subclassed()
        model(np.zeros((1, 128, 128, 1), np.float32))
        return model, spec, {}
    return {
        "9 classes": lambda: (one_conv(classes=9), spec, {}),
        "640 px": lambda: (one_conv(size=640), PreprocessSpec(640, 640), {}),
        "2 channels": lambda: (one_conv(channels=2), spec, {}),
        "any size": lambda: (one_conv(size=None), spec, {}),
        "sigmoid": lambda: (one_conv(activation="sigmoid"), spec, {}),
        "smaller output": lambda: (one_conv(after=layers.MaxPooling2D()), spec, {}),
        "spec mismatch": lambda: (one_conv(size=192), spec, {}),
        "tlf class": lambda: (one_conv(classes=2), spec, {"tlf_class": 2}),
        "class names": lambda: (one_conv(), spec, {"classes": ["background", "tlf"]}),
        "output kind": lambda: (one_conv(), spec, {"output_kind": "argmax"}),
    }[case]()


@pytest.mark.parametrize(
    "case, match",
    [
        ("9 classes", "outputs 9 classes; the family has 2-8"),
        ("640 px", "takes 640x640 px; the family takes 128-512 px"),
        ("2 channels", "takes 2 channels; the family takes 1 or 3"),
        ("sigmoid", "ends in a 'sigmoid' activation over 3 channels"),
        ("smaller output", r"outputs \(None, 64, 64, 3\)"),
        ("subclassed", "has no symbolic input"),
        ("spec mismatch", "preprocessing makes 128x128x1 images but model .* takes 192x192x1"),
        ("tlf class", "tlf_class must be a class index 0-1, not 2"),
        ("class names", "2 class names given for a model with 3 outputs"),
        ("output kind", "output_kind must be one of"),
    ],
)
def test_models_outside_the_family_are_refused_clearly(case, match, tmp_path):
    model, spec, kw = outside(case)
    calib = np.zeros((8, spec.height, spec.width, spec.channels), np.uint8)
    with pytest.raises(QuantizeError, match=match) as e:
        quantize_to_bundle(model, calib, spec, tmp_path / "b", **kw)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "b").exists()


def test_a_model_of_any_size_converts_at_the_grid_its_spec_gives(tmp_path):
    """keras.Input((None, None, 1)): quantize fixes the grid to the preprocessing's, as it fixes the
    batch to 1; without a spec the family check asks for the grid."""
    model = one_conv(size=None)
    with pytest.raises(QuantizeError, match=r"takes images of any size \(NonexNone\): give the grid .* --size 256"):
        check_family(model)
    calib = np.stack([phantom.scan(s, shape=(128, 96)).image[..., None] for s in range(8)])
    bundle = quantize_to_bundle(model, calib, PreprocessSpec(128, 96, 1), tmp_path / "b", check_prediction=False)
    assert bundle.manifest["input"]["shape"] == [1, 128, 96, 1] and bundle.manifest["output"]["shape"] == [1, 128, 96, 3]


def test_calibration_images_must_match_the_model_input(tmp_path):
    model = one_conv(channels=3)
    spec = PreprocessSpec(128, 128, 3)
    grey = np.stack([phantom.scan(s, shape=(128, 128)).image[..., None] for s in range(8)])
    with pytest.raises(QuantizeError, match=r"calibration images are uint8 \(128, 128, 1\), not uint8 \(128, 128, 3\)"):
        quantize_to_bundle(model, grey, spec, tmp_path / "b", check_calibration_set=False)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m["output"].update(kind="argmax"), "unknown output kind 'argmax'"),
        (lambda m: m.update(classes=["above", "tlf"]), "2 class names for an output of shape"),
        (lambda m: m.update(tlf_class=3), "tlf_class 3 is not a class index 0-2"),
        (lambda m: m["output"].update(kind="sigmoid"), "a sigmoid output has one channel"),
    ],
)
def test_bundles_with_inconsistent_output_descriptions_are_refused(change, match, tmp_path):
    import shutil

    from edge.model.bundle import DEMO_BUNDLE, load_bundle
    from edge.errors import BundleError
    from test_bundle import edit_manifest

    shutil.copytree(DEMO_BUNDLE, tmp_path / "b")
    edit_manifest(tmp_path / "b", change)
    with pytest.raises(BundleError, match=match):
        load_bundle(tmp_path / "b")


def test_the_demo_bundle_is_a_logits_bundle():
    from edge.model.bundle import DEMO_BUNDLE, load_bundle

    b = load_bundle(DEMO_BUNDLE)
    assert b.output_kind == "logits" and b.classes[b.tlf_class] == "tlf"
