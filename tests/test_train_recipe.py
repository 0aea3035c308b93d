"""Losses and selection of `tlf-convert train`: cross-entropy stays the default, Dice +
cross-entropy and focal loss are options, the best epoch and early stopping follow the
validation figure the user picks (band Dice by default for two classes, mean IoU otherwise), and
augmentation is on by default for --data and off for the phantom stream."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from convert.errors import ConvertError  # noqa: E402

keras = pytest.importorskip("keras")

from conftest import APO_CONFIG, APO_FEW  # noqa: E402
from convert.train import (  # noqa: E402
    TrainOptions, default_selection, dice_plus_crossentropy, focal_loss, weighted_crossentropy,
)


def test_the_studys_recipe_is_the_default():
    o = TrainOptions()
    assert o.loss == "ce" and o.augment is None and o.batch_size == 16 and o.learning_rate == 1e-3
    assert TrainOptions(classes=2).selection == "band_dice" == default_selection(2)
    assert TrainOptions(classes=3).selection == "mean_iou"
    assert TrainOptions(classes=3, select="val_loss").selection == "val_loss"
    assert TrainOptions(class_weights=(1, 6, 1)).prior_shift and not TrainOptions(class_weights=(1, 6, 1),
                                                                                    loss="focal").prior_shift
    with pytest.raises(ConvertError, match="loss 'l2' is not one of ce, dice_ce, focal"):
        TrainOptions(loss="l2")
    with pytest.raises(ConvertError, match="selection 'dice'"):
        TrainOptions(select="dice")


def test_focal_loss_with_gamma_0_is_the_weighted_cross_entropy_and_down_weighs_easy_pixels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2, 4, 4, 3)).astype(np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 3, (2, 4, 4)), 3)
    w = (1.0, 4.0, 1.0)
    ce = np.asarray(weighted_crossentropy(w)(y, logits))
    assert np.asarray(focal_loss(w, gamma=0.0, classes=3)(y, logits)) == pytest.approx(ce, rel=1e-5)
    p_true = (np.exp(logits) / np.exp(logits).sum(-1, keepdims=True) * y).sum(-1)
    assert np.asarray(focal_loss(w, gamma=2.0, classes=3)(y, logits)) == pytest.approx(ce * (1 - p_true) ** 2, rel=1e-4)


def test_dice_plus_cross_entropy_adds_one_minus_the_soft_dice_of_the_batch():
    y = np.zeros((1, 4, 4, 2), np.float32)
    y[..., 0] = 1
    y[0, 1, :, :] = [0, 1]  # a one-row band
    logits = np.where(y > 0, 20.0, -20.0).astype(np.float32)  # a sure, right answer: Dice 1
    ce = weighted_crossentropy(np.ones(2))
    loss = dice_plus_crossentropy(ce, 2, dice_weight=1.0, smooth=0.0)
    assert float(np.asarray(loss(y, logits)).mean()) == pytest.approx(0.0, abs=1e-6)
    wrong = -logits  # every pixel the other class: Dice 0 for both classes
    total = np.asarray(loss(y, wrong))
    assert float(total.mean()) == pytest.approx(float(np.asarray(ce(y, wrong)).mean()) + 1.0, rel=1e-4)


def _history(path):
    with open(path) as f:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.mark.parametrize("loss", ["dice_ce", "focal"])
def test_train_on_real_images_follows_band_dice_and_augments_by_default(loss, tmp_path):
    """Five real DL_Track screenshots at 64 px: the epoch kept is the one with the best validation
    band Dice, training stops after `patience` epochs without a better one, the recipe is in
    train.json, and the saved model's band Dice on the validation images is that epoch's."""
    from convert.cli import main
    from convert.cv import read_set
    from convert.quantize import load_keras_model
    from edge.measure.metrics import scores
    from edge.model.preprocess import PreprocessSpec, to_float

    out = tmp_path / "m"
    assert main(["train", "--data", str(APO_FEW), "--dataset-config", str(APO_CONFIG), "--out", str(out), "--size", "64",
                 "--base-filters", "4", "--depth", "2", "--batch", "2", "--learning-rate", "3e-3", "--epochs", "8",
                 "--patience", "3", "--loss", loss, "--seed", "1"]) == 0
    info = json.loads((out / "train.json").read_text())
    rows = _history(out / "history.csv")
    assert info["options"]["loss"] == loss and info["options"]["augment"]["rotate"] == 10.0
    assert info["options"]["select"] is None and info["selection"]["figure"] == "val_band_dice"
    dice = [r["val_band_dice"] for r in rows]
    best = int(np.argmax(dice))
    assert info["selection"]["epoch"] == best + 1 and info["selection"]["value"] == pytest.approx(max(dice))
    assert len(rows) == 8 or len(rows) - 1 - best == 3  # ran out of epochs, or stopped `patience` after the best
    # the validation images are the ones train kept apart (a fifth, by look-alike group): the saved
    # model gives them the band Dice of the kept epoch
    from convert.inputs import validation_split

    _, x, y, _, _, _, _ = read_set(APO_FEW, PreprocessSpec(64, 64), APO_CONFIG)
    val = validation_split(x, 1)
    model = load_keras_model(out / "model.keras")
    pred = np.argmax(np.asarray(model(to_float(x[val], PreprocessSpec(64, 64)), training=False)), -1)
    assert scores(y[val], pred, 2)["dice"][1] == pytest.approx(max(dice), abs=1e-4)


def test_augmentation_switches_and_the_phantom_stream(tmp_path):
    from convert.cli import main

    common = ["train", "--data", str(APO_FEW), "--dataset-config", str(APO_CONFIG), "--size", "32",
              "--base-filters", "2", "--depth", "1", "--epochs", "1", "--batch", "4"]
    assert main(common + ["--out", str(tmp_path / "a"), "--augment-off", "flip,blur"]) == 0
    aug = json.loads((tmp_path / "a" / "train.json").read_text())["options"]["augment"]
    assert aug["flip"] is False and aug["blur"] == 0.0 and aug["rotate"] == 10.0
    assert main(common + ["--out", str(tmp_path / "b"), "--no-augment", "--select", "val_loss"]) == 0
    info = json.loads((tmp_path / "b" / "train.json").read_text())
    assert info["options"]["augment"] is None and info["selection"]["figure"] == "val_loss"
    assert main(common + ["--out", str(tmp_path / "c"), "--augment-off", "mirror"]) == 2  # one line, named
    assert main(["train", "--out", str(tmp_path / "d"), "--epochs", "1", "--augment-off", "flip"]) == 2
