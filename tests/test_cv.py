"""`tlf-convert cv`: folds that keep look-alike images together, a trained, quantized and
validated model per fold, mean ± sd over the folds, a plot per fold, resumable per fold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convert.errors import ConvertError  # noqa: E402

from conftest import APO_CONFIG, REALDATA, SHARED_ABSENT, small_field_set
from convert.folds import correlations, group_folds, look_alike_groups, thumbnail

SHARED_APO = REALDATA / "dltrack_apo"


def test_group_folds_deal_whole_groups_and_balance_the_folds():
    groups = np.array([0, 0, 0, 1, 2, 2, 3, 4, 5, 5, 6, 7])
    folds = group_folds(groups, 3, seed=0)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1  # a group never straddles two folds
    sizes = np.bincount(folds, minlength=3)
    assert sizes.sum() == 12 and sizes.max() - sizes.min() <= 1
    assert np.array_equal(folds, group_folds(groups, 3, seed=0))
    with pytest.raises(ConvertError, match="9 folds need 2 to 8 look-alike groups"):
        group_folds(groups, 9, seed=0)


@pytest.mark.skipif(not (SHARED_APO / "images").is_dir(), reason=SHARED_ABSENT)
def test_on_the_real_set_no_look_alike_pair_straddles_two_folds():
    """The 119 DL_Track crops in 5 folds: no image of a fold correlates at 0.8 or more with an
    image of another fold (the grouping prepare.py uses), and the folds differ by at most 3 images."""
    from conftest import apo_crops

    _, images, _ = apo_crops(SHARED_APO)
    thumbs = np.stack([thumbnail(im) for im in images])
    groups = look_alike_groups(thumbs, 0.8)
    folds = group_folds(groups, 5, seed=0)
    corr = correlations(thumbs)
    cross = corr[folds[:, None] != folds[None, :]]
    assert cross.max() < 0.8
    assert groups.max() + 1 < len(images)  # there are look-alikes to keep together
    assert np.bincount(folds).sum() == len(images) and np.ptp(np.bincount(folds)) <= 3


@pytest.fixture(scope="module")
def band_set(tmp_path_factory):
    """36 small-field phantom scans as a two-class set (background / band): always at hand."""
    from edge.data.dataset import DatasetConfig, write_dataset

    images, labels, _ = small_field_set(36, seed=8)
    root = tmp_path_factory.mktemp("bandset") / "set"
    write_dataset(root, list(images[..., 0]), [(lab == 1).astype(np.uint8) for lab in labels],
                  DatasetConfig(classes=("background", "band")))
    return root


CV = ["--folds", "3", "--size", "64", "--base-filters", "4", "--depth", "2", "--batch", "4", "--epochs", "10",
      "--patience", "10", "--learning-rate", "5e-3", "--class-weights", "1,8", "--model-px"]


def test_cv_trains_quantizes_and_validates_each_fold_and_resumes(band_set, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from convert.cli import main

    out = tmp_path / "cv"
    docs = tmp_path / "docs" / "cv.md"
    assert main(["cv", "--data", str(band_set), "--out", str(out), *CV, "--only", "0,2"]) == 0
    assert (out / "fold_0" / "result.json").is_file() and not (out / "fold_1").exists()
    # run again: folds 0 and 2 are kept as they are, fold 1 is trained
    history = (out / "fold_0" / "model" / "history.csv").read_text()
    assert main(["cv", "--data", str(band_set), "--out", str(out), *CV, "--docs", str(docs), "--title", "Phantom bands",
                 "--targets", "band_dice>=0.99,fold_minutes<=60"]) == 0
    log = capsys.readouterr().out
    assert "fold 0: done before, kept" in log and "fold 2: done before, kept" in log and "fold 1: training on" in log
    assert (out / "fold_0" / "model" / "history.csv").read_text() == history
    plan = json.loads((out / "folds.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds_done"] == [0, 1, 2] and sum(plan["fold_sizes"]) == 36
    for side in ("float", "int8"):
        values = [r["figures"][side]["band_dice"] for r in summary["per_fold"]]
        assert summary[side]["band_dice"]["mean"] == pytest.approx(np.mean(values), abs=1e-4)
        assert summary[side]["band_dice"]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-4)
        assert all(0 <= r["figures"][side]["mean_iou"] <= 1 for r in summary["per_fold"])
    for r in summary["per_fold"]:
        held = set(r["held_out"])
        bundle = json.loads((out / f"fold_{r['fold']}" / "bundle" / "manifest.json").read_text())
        assert not held & set(bundle["training"]["train_images"]) and not held & set(bundle["training"]["validation_images"])
        assert bundle["domain"]["margin_limits"] is not None  # the guard's statistics, from this fold's images
        assert (out / f"fold_{r['fold']}" / "fold.png").stat().st_size > 0
        assert r["seconds"]["train"] > 0 and r["cpu"]
    page = docs.read_text()
    assert "tlf-convert cv --data" in page and "mean ± sd over 3 folds" in page and "fold_2.png" in page
    assert "| float band Dice" not in page and "missed by" in page  # 0.99 is out of reach of this tiny model
    assert (docs.parent / "cv" / "fold_1.png").is_file()
    # another recipe in the same folder is refused in one line; --revalidate trains nothing
    assert main(["cv", "--data", str(band_set), "--out", str(out), *CV[:-1], "--epochs", "11"]) == 2
    assert "another recipe" in capsys.readouterr().err
    assert main(["cv", "--data", str(band_set), "--out", str(out), *CV, "--revalidate"]) == 0
    assert (out / "fold_0" / "model" / "history.csv").read_text() == history
    # --requantize on a copy: the same trained models exported another way, scored again, nothing trained
    import shutil

    other = tmp_path / "cv_d2s"
    shutil.copytree(out, other)
    args = ["cv", "--data", str(band_set), "--out", str(other), *CV, "--requantize", "--transpose-as-depth-to-space"]
    assert main(args) == 0
    for k in range(3):
        was, now = (json.loads((d / f"fold_{k}" / "result.json").read_text()) for d in (out, other))
        ops = json.loads((other / f"fold_{k}" / "bundle" / "manifest.json").read_text())["ops"]
        # by default the int8 graph's transposed convolutions are rewritten after converting; with the flag, in Keras before
        assert was["export"]["transpose_as_depth_to_space"] is False and was["export"]["transpose_conv_blockwise"] > 0
        assert now["export"] == {"transpose_as_depth_to_space": True, "transpose_conv_blockwise": 0}
        assert "TRANSPOSE_CONV" not in ops and "DEPTH_TO_SPACE" in ops and now["bundle_sha256"] != was["bundle_sha256"]
        assert now["seconds"]["train"] == was["seconds"]["train"] and now["figures"]["float"] == was["figures"]["float"]
    assert (other / "fold_0" / "model" / "history.csv").read_text() == history
    assert "Export: --transpose-as-depth-to-space\n" in (other / "summary.md").read_text()
    assert "Export:" not in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(["cv", "--data", str(band_set), "--out", str(other), *CV, "--revalidate",
                 "--transpose-as-depth-to-space"]) == 2
    assert "give --requantize" in capsys.readouterr().err
    # a --requantize stopped while it scores leaves the fold as its result.json says; the next one
    # clears what the stopped one left and swaps its own bundle in
    import convert.validate
    from edge.model.bundle import load_bundle

    fold0 = other / "fold_0"
    was = json.loads((fold0 / "result.json").read_text())
    real_compare = convert.validate.compare

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    convert.validate.compare = stopped
    try:
        assert main(["cv", "--data", str(band_set), "--out", str(other), *CV, "--requantize", "--only", "0"]) == 130
    finally:
        convert.validate.compare = real_compare
    assert (fold0 / "bundle.requantized" / "model.tflite").is_file()  # quantized, not yet swapped in
    assert load_bundle(fold0 / "bundle").sha256 == was["bundle_sha256"]
    assert json.loads((fold0 / "result.json").read_text()) == was
    assert main(["cv", "--data", str(band_set), "--out", str(other), *CV, "--requantize", "--only", "0"]) == 0
    now = json.loads((fold0 / "result.json").read_text())
    assert now["export"]["transpose_as_depth_to_space"] is False and load_bundle(fold0 / "bundle").sha256 == now["bundle_sha256"]
    assert sorted(p.name for p in fold0.iterdir() if "." in p.name) == ["fold.png", "result.json"]  # nothing left aside


def test_a_resumed_fold_is_left_out_of_the_training_time(tmp_path):
    """A fold resumed after an interruption timed only its last part: the table says so and the
    time figures (and the fold_minutes target) count only the folds trained in one go."""
    from convert.cv import summarise

    (tmp_path / "folds.json").write_text(json.dumps({"folds": 2, "images": 10, "groups": 6, "fold_sizes": [5, 5]}))
    for k, (minutes, resumed) in enumerate([(18.0, False), (1.5, True)]):
        side = {"band_dice": 0.7, "mean_iou": 0.75, "thickness_mae": 2.0, "thickness_bias": 0.1, "bands_measured": 3}
        result = {"fold": k, "held_out": ["a", "b"], "figures": {"float": side, "int8": side, "bands_true": 4},
                  "selection": {"epoch": 5, "epochs_run": 6}, "unit": "px", "resumed": resumed,
                  "seconds": {"train": minutes * 60, "quantize_and_domain": 1.0, "validate": 1.0}}
        (tmp_path / f"fold_{k}").mkdir()
        (tmp_path / f"fold_{k}" / "result.json").write_text(json.dumps(result))
    s = summarise(tmp_path)
    assert s["max_train_minutes"] == 18.0 and s["train_minutes"]["n"] == 1
    table = (tmp_path / "summary.md").read_text()
    assert "1.5 (resumed: its last part only)" in table
    assert "over the 1 folds trained in one go, not the 1 resumed" in table


def test_a_swap_stopped_between_its_renames_is_put_back(tmp_path):
    """_swap_in sets the fold's folder aside, moves the new one in, removes the old; a fold whose
    folder a stopped swap left only set aside gets it back before the next --requantize."""
    from convert.cv import _restore_aside, _swap_in

    fold = tmp_path / "fold_0"
    for name, text in (("bundle", "old"), ("bundle.requantized", "new")):
        (fold / name).mkdir(parents=True)
        (fold / name / "model.tflite").write_text(text)
    assert _swap_in(fold / "bundle.requantized", fold / "bundle") == fold / "bundle"
    assert (fold / "bundle" / "model.tflite").read_text() == "new" and sorted(p.name for p in fold.iterdir()) == ["bundle"]
    (fold / "bundle").rename(fold / "bundle.replaced")  # stopped after the first rename
    _restore_aside(fold / "bundle")
    assert (fold / "bundle" / "model.tflite").read_text() == "new" and not (fold / "bundle.replaced").exists()
    (fold / "bundle.replaced").mkdir()  # a set-aside copy beside a folder in place is not restored
    _restore_aside(fold / "bundle")
    assert (fold / "bundle" / "model.tflite").read_text() == "new"
