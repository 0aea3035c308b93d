import cv2
import numpy as np
import pytest

from edge.model.preprocess import PreprocessSpec, int8_lookup, model_spacing, resize_labels, to_float, to_model_image


def test_model_image_shape_gray_and_colour():
    spec = PreprocessSpec(height=64, width=48)
    gray = np.random.default_rng(0).integers(0, 256, (100, 80), dtype=np.uint8)
    bgr = np.dstack([gray] * 3)
    a, b = to_model_image(gray, spec), to_model_image(bgr, spec)
    assert a.shape == (64, 48, 1) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_int8_lookup_equals_quantizing_the_float_input():
    spec = PreprocessSpec()
    scale, zero = 1 / 255.0, -128
    pixels = np.arange(256, dtype=np.uint8)
    expected = np.clip(np.round(to_float(pixels, spec) / scale) + zero, -128, 127).astype(np.int8)
    assert np.array_equal(int8_lookup(spec, scale, zero)[pixels], expected)


def test_labels_resize_keeps_class_values():
    labels = np.zeros((100, 100), np.uint8)
    labels[40:50] = 1
    labels[50:] = 2
    out = resize_labels(labels, PreprocessSpec(height=64, width=64))
    assert set(np.unique(out)) == {0, 1, 2}


@pytest.mark.parametrize("native", [128, 200, 320, 400, 480])
def test_resized_label_edges_stay_where_the_image_has_them(native):
    """A class edge at native row b lies at b * 256 / native on the model grid; with each model pixel
    taking the class at its centre, the first pixel of the class is on average exactly there (the
    old corner sampling put it up to half a pixel lower, against an area-resized image)."""
    spec = PreprocessSpec(height=256, width=4)
    rows = np.arange(native)[:, None] + 0.5
    shifts = []
    for b in np.random.default_rng(native).uniform(0.2 * native, 0.8 * native, 300):
        labels = np.broadcast_to((rows >= b).astype(np.uint8), (native, 4)).copy()
        first = int(np.argmax(resize_labels(labels, spec)[:, 0]))
        shifts.append(first - b * 256 / native)
    # Rounding to whole pixels leaves a spread of +-0.5 px; its mean is 0 (tolerance: 4 sigma of it).
    assert abs(np.mean(shifts)) < 4 * 0.29 / np.sqrt(len(shifts)) + 0.02
    assert max(np.abs(shifts)) <= 0.5 + 0.5 * 256 / native


def test_model_spacing_handles_anisotropic_resize():
    assert model_spacing((0.1, 0.2), (512, 128), PreprocessSpec()) == pytest.approx((0.2, 0.1))
    assert model_spacing(None, (10, 10), PreprocessSpec()) is None


def test_spec_round_trip_and_unknown_key():
    spec = PreprocessSpec(height=128, width=128, channels=3)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown"):
        PreprocessSpec.from_dict({**spec.to_dict(), "gamma": 0.5})
    with pytest.raises(ValueError):
        PreprocessSpec(interpolation="cubic-ish")


@pytest.mark.parametrize("name,flag", [("area", cv2.INTER_AREA), ("linear", cv2.INTER_LINEAR),
                                       ("cubic", cv2.INTER_CUBIC)])
def test_each_stated_resize_is_the_one_used(name, flag):
    img = np.random.default_rng(3).integers(0, 256, (574, 574), dtype=np.uint8)
    out = to_model_image(img, PreprocessSpec(interpolation=name))
    assert np.array_equal(out[:, :, 0], cv2.resize(img, (256, 256), interpolation=flag))
    others = {"area", "linear", "cubic"} - {name}
    assert all(not np.array_equal(out, to_model_image(img, PreprocessSpec(interpolation=o))) for o in others)


def test_declared_normalisation_and_channel_order_are_applied_and_stated():
    spec = PreprocessSpec(height=8, width=8, channels=3, scale=1 / 255, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7),
                          channel_order="rgb")
    bgr = np.zeros((8, 8, 3), np.uint8)
    bgr[..., 0], bgr[..., 2] = 10, 200  # blue 10, red 200
    img = to_model_image(bgr, spec)
    assert img[0, 0].tolist() == [200, 0, 10]  # red first
    x = to_float(img, spec)
    assert np.allclose(x[0, 0], [(200 / 255 - 0.1) / 0.5, (0 - 0.2) / 0.6, (10 / 255 - 0.3) / 0.7], atol=1e-6)
    d = spec.to_dict()
    assert d["mean"] == [0.1, 0.2, 0.3] and d["channel_order"] == "rgb"
    assert PreprocessSpec.from_dict(d) == spec
    assert spec.describe() == "(p/255 - (0.1, 0.2, 0.3)) / (0.5, 0.6, 0.7), RGB, area resize to 8x8"


def test_a_manifest_without_the_new_fields_reads_as_before():
    old = {"height": 256, "width": 256, "channels": 1, "interpolation": "cubic", "scale": 1 / 255}
    spec = PreprocessSpec.from_dict(old)
    assert (spec.mean, spec.std, spec.channel_order) == (0.0, 1.0, "bgr")
    assert spec.to_dict() == old  # the defaults are not written: a default spec's manifest is unchanged
    pixels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_float(pixels, spec), pixels.astype(np.float32) * np.float32(1 / 255))


def test_per_channel_int8_lookup_equals_quantizing_the_float_input():
    from edge.model.preprocess import fill_int8

    spec = PreprocessSpec(height=4, width=4, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    scale, zero = 0.0175, 3
    img = np.random.default_rng(1).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    expected = np.clip(np.round(to_float(img, spec).astype(np.float64) / scale) + zero, -128, 127).astype(np.int8)
    lut = int8_lookup(spec, scale, zero)
    assert lut.shape == (256, 3) and np.array_equal(fill_int8(lut, img), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"mean": (0.1, 0.2)}, "needs 1 or 3 values"),
    ({"std": 0.0}, "must be finite and positive"),
    ({"channel_order": "rbg"}, "channel_order must be one of"),
    ({"scale": -1.0}, "scale must be a positive number"),
])
def test_bad_declarations_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PreprocessSpec(channels=3, **kwargs)


def test_one_int8_lookup_gives_numpys_codes_for_every_image_layout():
    from edge.model.preprocess import fill_int8

    rng = np.random.default_rng(2)
    lut = int8_lookup(PreprocessSpec(height=8, width=8, channels=1), 0.0173, -7)
    assert lut.shape == (256,) and lut.dtype == np.int8
    grey = rng.integers(0, 256, (64, 48), dtype=np.uint8)
    colour = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    for img in (grey, grey[..., None], colour, grey[:, ::2], colour[::2, ::3], np.zeros((0, 5, 1), np.uint8)):
        got = fill_int8(lut, img)
        assert got.dtype == np.int8 and got.shape == img.shape and np.array_equal(got, lut[img])
    wide = lut.astype(np.int64)  # a table of another dtype is indexed as numpy indexes it
    assert fill_int8(wide, colour).dtype == np.int64 and np.array_equal(fill_int8(wide, colour), lut[colour])
