"""Real int8 conversions of tiny U-Nets trained for a few seconds on phantom data."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from convert.quantize import QuantizeError, load_keras_model, quantize_to_bundle  # noqa: E402
from convert.unet import build_unet  # noqa: E402
from edge.model.preprocess import to_float  # noqa: E402


def test_paper_size_unet_has_the_study_shape():
    m = build_unet()
    assert m.input_shape == (1, 256, 256, 1) and m.output_shape == (1, 256, 256, 3)
    assert 1.7e6 < m.count_params() < 2.2e6  # about 1.9 M parameters
    filters = [layer.filters for layer in m.layers if layer.name.endswith("_a") and hasattr(layer, "filters")]
    assert filters[:5] == [16, 32, 64, 128, 256]


def test_split_skip_equals_concatenation_in_float():
    from convert.unet import split_skip_connections

    a = build_unet(input_size=32, base_filters=4, depth=2, split_skip=False, dropout=0.1)
    b = split_skip_connections(a)
    assert not any(layer.name.endswith("_concat") for layer in b.layers)
    x = np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32)
    assert np.allclose(a(x).numpy(), b(x).numpy(), atol=1e-5)
    assert split_skip_connections(b) is b


def test_layer_report_lists_snr_and_levels_worst_first(tiny_spec, tiny_val):
    from convert.quantize import layer_report

    model = build_unet(input_size=64, base_filters=4, depth=2, split_skip=False, batch_size=None)
    rows = layer_report(model, tiny_val[0], tiny_spec, samples=4)
    assert len(rows) >= 10
    snr = [r["snr_db"] for r in rows]
    assert snr == sorted(snr) and all(np.isfinite(snr))
    assert all(1 <= r["levels_used"] <= 256 for r in rows)


def test_quantize_splits_concatenations_of_a_concat_unet(tiny_spec, tiny_val, tmp_path):
    model = build_unet(input_size=64, base_filters=4, depth=2, split_skip=False, batch_size=None)
    # untrained: its random head may give one class everywhere, which the prediction check stops
    bundle = quantize_to_bundle(model, tiny_val[0], tiny_spec, tmp_path / "b", check_prediction=False)
    assert "CONCATENATION" not in bundle.manifest["ops"] and "ADD" in bundle.manifest["ops"]


def test_tiny_bundle_is_full_integer_with_fixed_batch(tiny_bundle, tiny_spec):
    m = tiny_bundle.manifest
    assert m["input"] == {**m["input"], "shape": [1, 64, 64, 1], "dtype": "int8"}
    assert m["output"]["shape"] == [1, 64, 64, 3] and m["output"]["dtype"] == "int8"
    assert m["input"]["scale"] == pytest.approx(1 / 255, rel=1e-3) and m["input"]["zero_point"] == -128
    dynamic = {"SHAPE", "STRIDED_SLICE", "PACK", "DEQUANTIZE", "QUANTIZE"} & set(m["ops"])
    assert not dynamic, f"dynamic-shape or float ops left in the graph: {dynamic}"
    assert m["preprocess"] == tiny_spec.to_dict()


def test_int8_agrees_with_float_on_unseen_phantoms(tiny_bundle, tiny_model_path, tiny_spec, tiny_val):
    from edge.model.segmenter import Segmenter

    model = load_keras_model(tiny_model_path)
    seg = Segmenter(tiny_bundle, 2)
    images, labels, _ = tiny_val
    agree = []
    for img in images:
        f = np.argmax(model(to_float(img, tiny_spec)[None]).numpy()[0], -1)
        q = np.argmax(seg.infer(img), -1)
        agree.append((f == q).mean())
    assert np.mean(agree) > 0.97
    # and the tiny model has learnt the band
    from edge.measure.metrics import scores

    q_all = np.stack([np.argmax(seg.infer(i), -1) for i in images])
    assert scores(labels, q_all, 3)["dice"][1] > 0.5


@pytest.mark.parametrize(
    "case, match",
    [
        ("too_few", "at least 8"),
        ("constant", "constant"),
        ("noise", "looks like noise"),
        ("unlike", "unlike the validation data"),
    ],
)
def test_degenerate_calibration_sets_are_refused(case, match, tiny_model_path, tiny_spec, tiny_val, tmp_path):
    from conftest import small_field_set
    from convert.representative import RepresentativeSetError

    good = small_field_set(16, seed=7)[0]
    rng = np.random.default_rng(0)
    calib, reference = {
        "too_few": (good[:3], None),
        "constant": (np.full_like(good, 90), None),
        "noise": (rng.integers(0, 256, good.shape, dtype=np.uint8), None),
        "unlike": ((good // 4).astype(np.uint8), tiny_val[0]),
    }[case]
    model = load_keras_model(tiny_model_path)
    with pytest.raises(RepresentativeSetError, match=match):
        quantize_to_bundle(model, calib, tiny_spec, tmp_path / "b", reference=reference)
    assert not (tmp_path / "b").exists()


def test_calibration_set_like_the_validation_data_is_accepted(tiny_val):
    from conftest import small_field_set
    from convert.representative import check_representative_set

    stats = check_representative_set(small_field_set(16, seed=7)[0], reference=tiny_val[0])
    assert stats["images"] == 16 and stats["histogram_distance_to_validation"] < 0.2


def test_missing_or_bad_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(QuantizeError, match="no model"):
        load_keras_model(tmp_path / "absent.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip")
    with pytest.raises(QuantizeError, match="cannot load"):
        load_keras_model(bad)


def test_quantize_cli_writes_a_bundle(tiny_model_path, tmp_path, capsys):
    from convert.cli import main
    from edge.model.bundle import load_bundle

    out = tmp_path / "b"
    report = tmp_path / "layers.csv"
    assert main(["quantize", str(tiny_model_path), "--calib-n", "12", "--out", str(out),
                 "--layer-report", str(report)]) == 0
    assert load_bundle(out).manifest["calibration"]["images"] == 12
    lines = report.read_text().splitlines()
    assert lines[0] == "tensor,snr_db,levels_used" and len(lines) > 5
    # no --calib: calibrated on phantom scenes, and it says so
    assert "calibrating on 12 phantom scenes (no --calib given)" in capsys.readouterr().err


def test_a_second_quantize_removes_the_validation_of_the_model_it_replaces(tiny_model_path, tmp_path, capsys):
    import cv2

    from convert.cli import main
    from edge.model.bundle import load_bundle
    from edge.sim.render import scan

    out = tmp_path / "b"
    (out / "validation").mkdir(parents=True)
    (out / "validation" / "validation.md").write_text("gate PASSED\n")  # the report of a model made before
    (out / "notes.txt").write_text("the user's own")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):  # scans from files: a folder, not the phantom default
        cv2.imwrite(str(calib / f"{i}.png"), scan(i).image)
    capsys.readouterr()
    assert main(["quantize", str(tiny_model_path), "--calib", str(calib), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert not (out / "validation").exists() and (out / "notes.txt").read_text() == "the user's own"
    assert f"removed {out / 'validation'}: it held the validation of the model this bundle replaces" in err
    assert "run tlf-convert validate for the new one" in err and "phantom" not in err
    assert "validation" not in load_bundle(out).manifest


def test_quantize_states_the_resize_the_model_was_trained_with(tiny_model_path, tmp_path):
    import json
    import shutil

    from convert.cli import main
    from edge.model.bundle import load_bundle

    # tiny_model_path's train.json states area; a copy whose train.json states cubic.
    assert json.loads((tiny_model_path.parent / "train.json").read_text())["preprocess"]["interpolation"] == "area"
    trained = tmp_path / "cubic" / "model.keras"
    trained.parent.mkdir()
    shutil.copy(tiny_model_path, trained)
    info = json.loads((tiny_model_path.parent / "train.json").read_text())
    info["preprocess"]["interpolation"] = "cubic"
    (trained.parent / "train.json").write_text(json.dumps(info))
    common = ["--calib", "phantom", "--calib-n", "8"]
    assert main(["quantize", str(trained), *common, "--out", str(tmp_path / "a")]) == 0
    assert load_bundle(tmp_path / "a").spec.interpolation == "cubic"
    assert main(["quantize", str(trained), *common, "--out", str(tmp_path / "b"), "--interpolation", "linear"]) == 0
    assert load_bundle(tmp_path / "b").spec.interpolation == "linear"
    assert main(["quantize", str(tiny_model_path), *common, "--out", str(tmp_path / "c")]) == 0
    assert load_bundle(tmp_path / "c").spec.interpolation == "area"


def labelled_folder(tmp_path, tiny_val):
    from convert.data import write_labelled_folder

    images, labels, _ = tiny_val
    write_labelled_folder(tmp_path / "data", images[..., 0], labels)
    return str(tmp_path / "data")


def test_validate_passes_a_good_bundle_and_records_it(tiny_bundle, tiny_model_path, tiny_val, tmp_path, capsys):
    import json
    import shutil

    from conftest import TINY_SPACING
    from convert.cli import main

    bundle = tmp_path / "b"
    shutil.copytree(tiny_bundle.path, bundle)
    rc = main(["validate", str(bundle), "--float", str(tiny_model_path), "--data", labelled_folder(tmp_path, tiny_val),
               "--spacing-mm", "%g,%g" % TINY_SPACING, "--out", str(tmp_path / "rep")])
    assert rc == 0
    summary = json.loads((tmp_path / "rep" / "validation.json").read_text())
    assert summary["gate"]["passed"] and summary["images"] == 16 and summary["unit"] == "mm"
    for name in ("validation.md", "bland_altman.png", "worst_frames.jpg"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["validation"]["gate"]["passed"] is True
    # made by quantize_to_bundle without the float model's record (as bundles before it): validated with a warning
    assert "float_model" not in manifest and manifest["validation"]["float_model"]["made_from"] is None
    assert "does not record the float model it was made from" in capsys.readouterr().err


def test_validate_fails_a_broken_int8_model(tiny_model_path, tiny_spec, tiny_val, tmp_path):
    """An int8 model calibrated on black frames clips every real activation: the gate must catch it."""
    from convert.cli import main
    from convert.quantize import quantize_to_bundle

    model = load_keras_model(tiny_model_path)
    black = np.zeros((16, 64, 64, 1), np.uint8)
    black[:, 0, 0] = 1  # not quite constant, so it passes the size check only
    broken = quantize_to_bundle(model, black, tiny_spec, tmp_path / "broken", check_calibration_set=False)
    rc = main(["validate", str(broken.path), "--float", str(tiny_model_path), "--data", labelled_folder(tmp_path, tiny_val),
               "--out", str(tmp_path / "rep")])
    assert rc == 3
    assert "FAILED" in (tmp_path / "rep" / "validation.md").read_text()


def test_training_writes_history_and_resumes(tmp_path, tiny_spec):
    from conftest import small_field_set
    from convert.train import TrainOptions, read_history, train

    x, y, _ = small_field_set(16, seed=9)
    opts = TrainOptions(epochs=1, batch_size=8, base_filters=4, depth=2, seed=1)
    train(tmp_path, tiny_spec, opts, train_data=(x, y), val_data=(x[:4], y[:4]), verbose=0)
    assert len(read_history(tmp_path / "history.csv")) == 1
    train(tmp_path, tiny_spec, TrainOptions(**{**vars(opts), "epochs": 2}), train_data=(x, y), val_data=(x[:4], y[:4]),
          verbose=0, resume=True)
    rows = read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert (tmp_path / "history.png").stat().st_size > 0 and (tmp_path / "model.keras").is_file()


def test_training_on_coverage_targets_feeds_pixel_fractions(tmp_path, tiny_spec):
    import json

    from convert.train import PhantomStream, TrainOptions, read_history, train

    stream = PhantomStream(tiny_spec, steps=2, batch_size=4, classes=3, seed=11, coverage=True)
    x, y = stream[0]
    assert x.shape == (4, 64, 64, 1) and y.shape == (4, 64, 64, 3)
    assert np.allclose(y.sum(-1), 1.0, atol=1e-6)
    assert ((y > 0) & (y < 1)).any()  # edges inside pixels, not one-hot
    one_hot = PhantomStream(tiny_spec, steps=2, batch_size=4, classes=3, seed=11)[0][1]
    assert set(np.unique(one_hot)) <= {0.0, 1.0}
    opts = TrainOptions(epochs=1, batch_size=4, base_filters=4, depth=2, seed=11, class_weights=(1.0, 6.0, 1.0),
                        label_smoothing=0.1, coverage_targets=True)
    train(tmp_path, tiny_spec, opts, phantom_steps=2, verbose=0)
    rows = read_history(tmp_path / "history.csv")
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and np.isfinite(rows[0]["val_loss"])
    assert json.loads((tmp_path / "train.json").read_text())["options"]["coverage_targets"] is True


def test_band_height_term_counts_the_rows_the_band_wins(tmp_path, tiny_spec):
    import json

    import keras

    from convert.train import TrainOptions, class_weight_shift, read_history, train, with_band_height

    def zero(y_true, y_pred):
        return keras.ops.zeros(keras.ops.shape(y_pred)[:-1])

    # One image, 32 rows by 4 columns: the band covers rows 10 to 16.5 (6.5 rows, a half pixel at the bottom).
    true = np.zeros((1, 32, 4, 3), np.float32)
    true[0, :10, :, 0] = 1
    true[0, 10:16, :, 1] = 1
    true[0, 16, :, 1] = true[0, 16, :, 2] = 0.5
    true[0, 17:, :, 2] = 1
    shift = class_weight_shift((1.0, 6.0, 1.0), 0.1)

    def logits(band_rows):  # confident logits (margin 8) drawing the band over `band_rows`, with the weights' shift
        z = np.zeros((1, 32, 4, 3), np.float32)
        z[0, :10, :, 0] = 8
        z[0, band_rows, :, 1] = 8
        z[0, band_rows.stop:, :, 2] = 8
        return z + shift

    term = with_band_height(zero, 1.0, 3, (1.0, 6.0, 1.0), 0.1)
    right = float(np.mean(term(true, logits(slice(10, 16)))))  # 6 whole rows, against 6.5 true
    thin = float(np.mean(term(true, logits(slice(10, 13)))))  # 3 rows
    assert abs(right - 0.5) < 0.01 and abs(thin - 3.5) < 0.01
    half = with_band_height(zero, 0.5, 3, (1.0, 6.0, 1.0), 0.1)
    assert abs(float(np.mean(half(true, logits(slice(10, 13))))) - 1.75) < 0.01
    # Without the shift removed the weighted logits would count differently: the term uses the saved model's logits.
    unshifted = with_band_height(zero, 1.0, 3, None)
    assert abs(float(np.mean(unshifted(true, logits(slice(10, 16)) - shift))) - 0.5) < 0.01

    opts = TrainOptions(epochs=1, batch_size=4, base_filters=4, depth=2, seed=12, class_weights=(1.0, 6.0, 1.0),
                        label_smoothing=0.1, height_weight=0.1)
    train(tmp_path, tiny_spec, opts, phantom_steps=2, verbose=0)
    rows = read_history(tmp_path / "history.csv")
    assert len(rows) == 1 and np.isfinite(rows[0]["loss"]) and np.isfinite(rows[0]["val_loss"])
    assert json.loads((tmp_path / "train.json").read_text())["options"]["height_weight"] == 0.1


def test_training_with_edge_weights_feeds_per_pixel_sample_weights(tmp_path, tiny_spec):
    import json

    from convert.data import edge_weights
    from convert.train import PhantomStream, TrainOptions, read_history, train

    stream = PhantomStream(tiny_spec, steps=2, batch_size=4, classes=3, seed=11, edge_weight=3.0)
    x, y, w = stream[0]
    assert w.shape == (4, 64, 64) and np.array_equal(w, edge_weights(y.argmax(-1), 3.0))
    assert w.max() > 3.0 and w.min() == 1.0
    assert len(PhantomStream(tiny_spec, steps=2, batch_size=4, classes=3, seed=11, coverage=True, edge_weight=3.0)[0]) == 3
    opts = TrainOptions(epochs=1, batch_size=4, base_filters=4, depth=2, seed=11, class_weights=(1.0, 6.0, 1.0),
                        label_smoothing=0.1, edge_weight=3.0)
    train(tmp_path / "stream", tiny_spec, opts, phantom_steps=2, verbose=0)
    assert np.isfinite(read_history(tmp_path / "stream" / "history.csv")[0]["loss"])
    assert json.loads((tmp_path / "stream" / "train.json").read_text())["options"]["edge_weight"] == 3.0
    # Arrays train with the same weights; the loss they report is the weighted one.
    from convert.data import phantom_batch

    data = phantom_batch(range(40, 48), tiny_spec)
    plain = TrainOptions(epochs=1, batch_size=4, base_filters=4, depth=2, seed=11)
    train(tmp_path / "plain", tiny_spec, plain, train_data=data, val_data=data, verbose=0)
    weighted = TrainOptions(epochs=1, batch_size=4, base_filters=4, depth=2, seed=11, edge_weight=3.0)
    train(tmp_path / "weighted", tiny_spec, weighted, train_data=data, val_data=data, verbose=0)
    loss_plain = read_history(tmp_path / "plain" / "history.csv")[0]["loss"]
    loss_weighted = read_history(tmp_path / "weighted" / "history.csv")[0]["loss"]
    assert loss_weighted > 1.05 * loss_plain


def test_class_weight_prior_is_removed_from_the_logits():
    from convert.train import remove_class_weight_prior

    model = build_unet(input_size=32, base_filters=4, depth=2, batch_size=None)
    x = np.random.default_rng(1).random((1, 32, 32, 1)).astype(np.float32)
    before = model(x).numpy()
    remove_class_weight_prior(model, (1.0, 6.0, 1.0))
    after = model(x).numpy()
    assert np.allclose(after - before, [0.0, -np.log(6.0), 0.0], atol=1e-5)
    remove_class_weight_prior(model, (1.0, 6.0, 1.0), label_smoothing=0.1)
    assert (model(x).numpy() - after)[..., 1].mean() > -np.log(6.0)  # smoothing leaves a smaller shift


def test_weighted_training_saves_a_prior_corrected_model(tmp_path, tiny_spec):
    import json

    from conftest import small_field_set
    from convert.train import TrainOptions, train

    x, y, _ = small_field_set(16, seed=9)
    opts = TrainOptions(epochs=1, batch_size=8, base_filters=4, depth=2, seed=1, class_weights=(1.0, 4.0, 1.0))
    train(tmp_path, tiny_spec, opts, train_data=(x, y), val_data=(x[:4], y[:4]), verbose=0)
    assert json.loads((tmp_path / "train.json").read_text())["prior_corrected"] is True
    last = load_keras_model(tmp_path / "last.keras").get_layer("logits").get_weights()[1]
    best = load_keras_model(tmp_path / "model.keras").get_layer("logits").get_weights()[1]
    assert np.allclose(last - best, np.log([1.0, 4.0, 1.0]), atol=1e-5)  # one epoch: best is the last, corrected


def test_export_rewrites_a_hand_written_unet_exactly():
    """Skip splitting and upsampling replacement work on any functional model, not only build_unet's."""
    from keras import layers

    from convert.unet import export_ready

    inp = tf.keras.Input((32, 32, 1))
    e = layers.Conv2D(4, 3, padding="same")(inp)
    e = layers.Activation("relu")(layers.BatchNormalization()(e))
    u = layers.UpSampling2D()(layers.Conv2D(8, 3, padding="same", activation="relu")(layers.MaxPooling2D()(e)))
    cat = layers.Concatenate()([u, e, inp])
    d = layers.Add()([layers.Conv2D(4, 3, padding="same", activation="relu")(cat), layers.Conv2D(4, 1, activation="elu")(cat)])
    model = tf.keras.Model(inp, layers.Softmax()(layers.Conv2D(3, 1)(d)))
    bn = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)][0]
    bn.set_weights([w + 0.3 for w in bn.get_weights()])
    ready = export_ready(model)
    kinds = {type(layer).__name__ for layer in ready.layers}
    assert "Concatenate" not in kinds and "UpSampling2D" not in kinds
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    assert np.allclose(model(x).numpy(), ready(x).numpy(), atol=1e-6)


# TensorFlow's console noise (native notices, converter logs, export dumps) as it looks on screen.
TF_NOISE = ("TensorSpec", "oneDNN", "I0000", "W0000", "fully_quantize", "absl::InitializeLog", "Saved artifact")


def test_quantize_output_is_quiet_unless_verbose(tiny_model_path, tmp_path):
    """A user sees the converter's own lines; --verbose brings TensorFlow's log back."""
    import subprocess
    import sys

    def quantize(*flags):
        out = tmp_path / f"b{len(flags)}"
        return subprocess.run([sys.executable, "-m", "convert.cli", *flags, "quantize", str(tiny_model_path),
                               "--calib", "phantom", "--calib-n", "8", "--out", str(out)],
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)

    quiet = quantize()
    assert quiet.returncode == 0, quiet.stderr
    shown = quiet.stdout + quiet.stderr
    assert [n for n in TF_NOISE if n in shown] == [], shown
    assert quiet.stdout.startswith("bundle written: ") and len(shown.strip().splitlines()) <= 2, shown
    verbose = quantize("--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "TensorSpec" in verbose.stdout and "bundle written: " in verbose.stdout


def test_calibration_images_refuse_a_count_below_one_and_leave_a_labelled_sets_masks_out(tiny_model_path, tmp_path,
                                                                                       capsys):
    import cv2

    from convert.cli import main
    from convert.errors import ConvertError
    from convert.inputs import calibration_images
    from edge.model.preprocess import PreprocessSpec

    spec = PreprocessSpec(64, 64, 1)
    for n in (0, -1):
        with pytest.raises(ConvertError, match="at least 1"):
            calibration_images("phantom", n, spec)
    labelled = tmp_path / "set"
    (labelled / "images").mkdir(parents=True)
    (labelled / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(labelled / "images" / f"{i}.png"), rng.integers(0, 256, (80, 80), dtype=np.uint8))
        cv2.imwrite(str(labelled / "masks" / f"{i}.png"), np.full((80, 80), i, np.uint8))
    images = calibration_images(str(labelled), 10, spec)
    assert len(images) == 3 and all(im.std() > 20 for im in images)  # the scans, not the flat masks
    capsys.readouterr()
    assert main(["quantize", str(tiny_model_path), "--calib-n", "0", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tlf-convert: error: ") and "at least 1, not 0" in err[0]


def test_a_model_that_never_draws_the_band_is_refused_unless_allowed(tiny_val, tmp_path, capsys):
    """A model whose labels of the calibration images hold two classes but not the band (here: above
    or below by the pixel's level) would measure nothing on the cart: one error line naming the
    class shares; --allow-one-class converts it, and the gate then says the thickness was not
    measured instead of printing None."""
    import keras

    from convert.cli import main
    from edge.model.bundle import load_bundle

    inp = keras.Input((64, 64, 1))
    head = keras.layers.Conv2D(3, 1, name="head")
    model = keras.Model(inp, head(inp))
    head.set_weights([np.array([1.0, 0.0, -1.0], np.float32).reshape(1, 1, 1, 3), np.array([-0.4, -9.0, 0.4], np.float32)])
    model.save(tmp_path / "noband.keras")
    args = ["quantize", str(tmp_path / "noband.keras"), "--input-scale", "1/255", "--calib-n", "16"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("tlf-convert: error: the float model, fed 16 calibration images as declared")
    assert "gives the band class 'tlf' (output 1) to 0.000% of their pixels" in err[-1]
    assert "tlf 0.0%" in err[-1] and "--allow-one-class" in err[-1] and not (tmp_path / "a" / "model.tflite").exists()
    rc = main([*args, "--allow-one-class", "--data", labelled_folder(tmp_path, tiny_val), "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc in (0, 3) and load_bundle(tmp_path / "b").manifest["calibration"]["float_class_shares"][1] == 0
    assert "int8-float thickness bias not measured (no image with a band measured by both)" in out and "None" not in out
