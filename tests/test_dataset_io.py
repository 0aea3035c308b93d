"""Labelled data sets: images/ + masks/ + dataset.json (or .toml); every mask format round-trips,
every bad data set gives its own named error, and phantom data sets are written in the format."""

import argparse
import json
import shutil

import cv2
import numpy as np
import pytest

from convert import data
from convert.data import (
    DatasetConfig,
    DatasetConfigError,
    MissingMaskError,
    SizeMismatchError,
    UnknownClassError,
    UnreadableFileError,
)
from edge.sim import phantom
from edge.model.preprocess import PreprocessSpec

from conftest import APO_FEW



def samples(n=3, shape=(48, 40), colour=None):
    """Phantom images (grey, BGR or BGRA) and their 3-class labels."""
    images, labels = [], []
    for i in range(n):
        s = phantom.scan(i, shape=shape, machine="default")
        img = s.image
        if colour == "rgb":
            img = cv2.merge([img, (img // 2), 255 - img])
        elif colour == "rgba":
            img = cv2.merge([img, img, img, np.full_like(img, 200)])
        images.append(img)
        labels.append(s.labels)
    return images, labels


CONFIGS = {
    "index0": data.phantom_dataset_config("index", 0),
    "index1": data.phantom_dataset_config("index", 1),
    "values": DatasetConfig(classes=("above", "tlf", "below"), values=((0, 0), (128, 1), (255, 2))),
    "palette": data.phantom_dataset_config("palette"),
    "binary": data.phantom_dataset_config("binary"),
}


@pytest.mark.parametrize("fmt", ["png", "tif", "jpg"])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_every_mask_format_round_trips(tmp_path, kind, fmt):
    config = CONFIGS[kind]
    images, labels = samples(colour={"png": None, "tif": "rgb", "jpg": "rgb"}[fmt])
    if kind == "binary":
        labels = [(lab == phantom.TLF).astype(np.uint8) for lab in labels]
    data.write_dataset(tmp_path, images, labels, config, image_format=fmt)
    got = data.read_dataset(tmp_path)
    assert got.config == config and got.stems == ["00000", "00001", "00002"]
    for lab, back, img, img_back in zip(labels, got.labels, images, got.images):
        assert np.array_equal(lab, back)
        assert img_back.shape == img.shape and img_back.dtype == np.uint8
        if fmt != "jpg":
            assert np.array_equal(img, img_back)


def test_palette_masks_as_rgb_png_and_rgba_images(tmp_path):
    images, labels = samples(colour="rgba")
    data.write_dataset(tmp_path, images, labels, CONFIGS["palette"], palette_png=False)
    got = data.read_dataset(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(labels, got.labels))
    assert got.images[0].shape == images[0].shape[:2] + (3,)  # alpha dropped
    # an indexed PNG holds a palette, not colours per pixel
    data.write_dataset(tmp_path / "p", images, labels, CONFIGS["palette"])
    assert (tmp_path / "p" / "masks" / "00000.png").read_bytes()[25] == 3  # PNG colour type: palette


def test_read_labelled_folder_uses_the_config_and_keeps_the_legacy_reading(tmp_path):
    spec = PreprocessSpec(height=32, width=32)
    images, labels = samples()
    data.write_dataset(tmp_path / "one", images, labels, CONFIGS["index1"])
    x, y = data.read_labelled_folder(tmp_path / "one", spec)
    assert x.shape == (3, 32, 32, 1) and set(np.unique(y)) == {0, 1, 2}
    assert np.array_equal(y[0], cv2.resize(labels[0], (32, 32), interpolation=cv2.INTER_NEAREST_EXACT))
    # no config file: class indices as they are (what write_labelled_folder writes)
    data.write_labelled_folder(tmp_path / "legacy", np.stack(images), np.stack(labels))
    x2, y2 = data.read_labelled_folder(tmp_path / "legacy", spec)
    assert np.array_equal(y, y2) and np.array_equal(x, x2)


def test_toml_config_with_explicit_colours_and_tolerance(tmp_path):
    images, labels = samples(n=2)
    data.write_dataset(tmp_path, images, labels, CONFIGS["palette"], palette_png=False)
    (tmp_path / "dataset.json").unlink()
    (tmp_path / "dataset.toml").write_text(
        'version = 1\nclasses = ["above", "tlf", "below"]\n'
        '[mask]\nkind = "palette"\ntolerance = 3\n'
        '[mask.colours]\n"#000000" = "above"\n"255,0,0" = "tlf"\n"#0000ff" = 2\n"#00ff00" = "below"\n'
    )
    m = cv2.imread(str(tmp_path / "masks" / "00000.png"))
    m[labels[0] == 1] = (2, 1, 253)  # red, slightly off (as after lossy saving)
    cv2.imwrite(str(tmp_path / "masks" / "00000.png"), m)
    got = data.read_dataset(tmp_path)
    assert np.array_equal(got.labels[0], labels[0]) and got.config.tolerance == 3


def test_toml_config_reads_without_tomllib_through_tomli(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: a .toml data-set config is read with the tomli backport (a
    dependency there) instead of failing with ModuleNotFoundError. Here tomllib is hidden and the
    standard library's own reader stands in for tomli (the same API)."""
    import sys
    import tomllib

    images, labels = samples(n=2)
    data.write_dataset(tmp_path, images, labels, CONFIGS["index0"])
    (tmp_path / "dataset.json").unlink()
    (tmp_path / "dataset.toml").write_text('version = 1\nclasses = ["above", "tlf", "below"]\n[mask]\nkind = "index"\n')
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ImportError
    monkeypatch.setitem(sys.modules, "tomli", tomllib)
    config = data.read_dataset_config(tmp_path / "dataset.toml")
    assert config.classes == ("above", "tlf", "below") and config.mask == "index"


def bad_set(tmp_path, config="index0"):
    images, labels = samples(n=2)
    data.write_dataset(tmp_path, images, labels, CONFIGS[config])
    return tmp_path


def one_line_naming(err, name):
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def test_missing_mask_is_named(tmp_path):
    root = bad_set(tmp_path)
    (root / "masks" / "00001.png").unlink()
    with pytest.raises(MissingMaskError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00001.png")


def test_size_mismatch_is_named(tmp_path):
    root = bad_set(tmp_path)
    cv2.imwrite(str(root / "masks" / "00001.png"), np.zeros((10, 12), np.uint8))
    with pytest.raises(SizeMismatchError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00001.png")
    assert "12x10" in str(err.value)


def test_unknown_class_value_is_named(tmp_path):
    root = bad_set(tmp_path, "index1")  # 1-based: 0 is not a class
    m = cv2.imread(str(root / "masks" / "00000.png"), cv2.IMREAD_UNCHANGED)
    m[:3, :3] = 0
    cv2.imwrite(str(root / "masks" / "00000.png"), m)
    with pytest.raises(UnknownClassError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00000.png")
    assert "[0]" in str(err.value)


def test_unknown_colour_and_colour_in_an_index_set_are_named(tmp_path):
    root = bad_set(tmp_path / "pal", "palette")
    m = cv2.imread(str(root / "masks" / "00001.png"))
    m[5, 5] = (0, 255, 0)
    cv2.imwrite(str(root / "masks" / "00001.png"), m)
    with pytest.raises(UnknownClassError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00001.png")
    assert "#00ff00" in str(err.value)
    root = bad_set(tmp_path / "idx")
    cv2.imwrite(str(root / "masks" / "00000.png"), np.dstack([np.zeros((48, 40), np.uint8)] * 2 + [np.ones((48, 40), np.uint8)]))
    with pytest.raises(UnknownClassError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00000.png")


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.update(colour_map={}), "colour_map"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d["mask"].update(base=2), "base"),
        (lambda d: d["mask"].update(kind="rle"), "rle"),
        (lambda d: d["mask"].update(values={"7": "fat"}), "fat"),
        (lambda d: d.update(classes=[]), "classes"),
    ],
)
def test_bad_config_is_named(tmp_path, change, words):
    root = bad_set(tmp_path)
    d = json.loads((root / "dataset.json").read_text())
    change(d)
    (root / "dataset.json").write_text(json.dumps(d))
    with pytest.raises(DatasetConfigError) as err:
        data.read_dataset(root)
    one_line_naming(err, words)
    assert "dataset.json" in str(err.value)


def test_unreadable_files_and_broken_config_are_named(tmp_path):
    root = bad_set(tmp_path)
    (root / "images" / "00001.png").write_bytes(b"not a picture")
    with pytest.raises(UnreadableFileError) as err:
        data.read_dataset(root)
    one_line_naming(err, "00001.png")
    (root / "dataset.json").write_text("{oops")
    with pytest.raises(DatasetConfigError) as err:
        data.read_dataset(root)
    one_line_naming(err, "dataset.json")


def phantom_args(out, **kw):
    base = dict(out=str(out), n=3, seed=40, mask="index", base=0, image_format="png", preset=None, size="64x48",
                field_mm="40x30", wide=False, artefacts=0.0)
    return argparse.Namespace(**{**base, **kw})


@pytest.mark.parametrize("mask, fmt", [("index", "png"), ("palette", "tif"), ("binary", "jpg")])
def test_phantom_command_writes_a_data_set_in_the_format(tmp_path, mask, fmt):
    from convert.commands import cmd_phantom

    assert cmd_phantom(phantom_args(tmp_path, mask=mask, image_format=fmt, wide=True, artefacts=0.3)) == 0
    got = data.read_dataset(tmp_path)
    assert got.stems == ["000040", "000041", "000042"]
    assert got.config.spacing_mm == pytest.approx((40 / 64, 30 / 48))
    for i, lab in enumerate(got.labels):
        truth = phantom.scan(40 + i, (64, 48), None, (40.0, 30.0), wide=True, artefacts=0.3).labels
        assert np.array_equal(lab, (truth == phantom.TLF) if mask == "binary" else truth)


def test_phantom_and_contact_sheet_through_the_command_line(tmp_path):
    from convert.cli import main

    assert main(["phantom", "--out", str(tmp_path / "d"), "--n", "2", "--mask", "index", "--base", "1",
                 "--preset", "l15_fine", "--size", "40x40"]) == 0
    cfg = json.loads((tmp_path / "d" / "dataset.json").read_text())
    assert cfg["mask"] == {"kind": "index", "base": 1} and cfg["classes"] == ["above", "tlf", "below"]
    assert main(["phantom", "--out", str(tmp_path / "e"), "--preset", "nope"]) == 2
    sheet = tmp_path / "sheet.png"
    assert main(["contact-sheet", "--out", str(sheet), "--presets", "default,rf_10mhz", "--per-row", "1",
                 "--tile", "64"]) == 0
    img = cv2.imread(str(sheet))
    assert img is not None and img.shape[1] == 112 + 2 * 64 and img.std() > 20


def test_real_binary_band_masks_read_with_a_binary_config(tmp_path):
    src = APO_FEW
    stems = sorted(p.stem for p in (src / "images").glob("*.tif"))[:3]
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
        for stem in stems:
            shutil.copy(src / sub / f"{stem}.tif", tmp_path / sub / f"{stem}.tif")
    (tmp_path / "dataset.json").write_text(json.dumps(
        {"version": 1, "classes": ["background", "aponeurosis"], "mask": {"kind": "binary", "threshold": 128}}))
    got = data.read_dataset(tmp_path)
    assert got.stems == stems
    for img, lab in zip(got.images, got.labels):
        assert img.ndim == 3 and img.shape[:2] == lab.shape
        assert set(np.unique(lab)) == {0, 1} and 0.01 < lab.mean() < 0.3
    x, y = data.read_labelled_folder(tmp_path, PreprocessSpec(height=128, width=128))
    assert x.shape == (3, 128, 128, 1) and y.max() == 1
    # the same masks read as 3-class index masks fail, naming the file and the value 255
    (tmp_path / "dataset.json").write_text(json.dumps({"version": 1, "classes": ["a", "b", "c"]}))
    with pytest.raises(UnknownClassError, match=r"255"):
        data.read_dataset(tmp_path)
