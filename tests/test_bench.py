import json

import numpy as np
import pytest

from edge.sim import phantom
from edge.ops.bench import STAGES, accuracy_pass, run_bench
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.cli import main
from edge.data.dataset import labelled_frames, phantom_dataset_config, write_dataset
from edge.measure.metrics import scores
from edge.model.preprocess import model_spacing, resize_labels, to_model_image
from edge.model.segmenter import Segmenter
from edge.measure.thickness import measure_thickness


def test_bench_report_format_on_a_short_run(tmp_path):
    report = run_bench(frames=4, threads=(1, 2), out=tmp_path, source="phantom://clip?seed=3&frames=8&size=256x256")
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert {"cpu", "physical_cores", "int8_features", "os", "python", "ai_edge_litert"} <= set(saved["device"])
    assert saved["model_bytes"] > 0 and saved["peak_rss_mb"] > 0
    assert [r["threads"] for r in saved["runs"]] == [1, 2]
    for r in saved["runs"]:
        assert r["frames"] == 4
        assert set(r["stage_ms"]) == set(STAGES)
        assert all(r["stage_ms"][s]["p50"] <= r["stage_ms"][s]["p99"] for s in STAGES)
        assert r["invoke_fps"] > 0 and r["pipeline_fps"] > 0 and r["start_to_first_measurement_s"] > 0
        assert r["pipeline_fps"] >= r["pipeline_fps_from_start"] > 0  # the start left out, or counted
        assert r["capture_to_display_ms"]["p50"] > 0
        assert r["accuracy"]["frames"] == 4 and 0 <= r["accuracy"]["mean_iou"] <= 1
    md = (tmp_path / "bench.md").read_text()
    assert "| threads |" in md and md.count("\n| 1 |") == 1 and md.count("\n| 2 |") == 1
    fastest = max(saved["runs"], key=lambda r: r["pipeline_fps"])
    best = saved["best_threads"]
    assert best["threads"] == fastest["threads"] and best["pipeline_fps"] == fastest["pipeline_fps"]
    assert best["of_invoke"] == round(fastest["pipeline_fps"] / fastest["invoke_fps"], 3)
    assert f"Most frames end to end: {best['threads']} interpreter thread(s)" in md
    assert "`tlf-edge run` takes this count by itself" in md and saved["measured_at"]
    assert (tmp_path / "latency_hist.png").stat().st_size > 1000
    # one count measured: the page does not promise that `tlf-edge run` takes it (edge.model.threads does not)
    from edge.model.threads import choose_threads
    from edge.ops.bench import markdown

    one = dict(saved, runs=[fastest])
    (tmp_path / "one.json").write_text(json.dumps(one))
    assert "measured one thread count only" in choose_threads(0, tmp_path / "one.json", saved["model_sha256"]).why
    page = markdown(one)
    assert "takes this count by itself" not in page and "One thread count measured" in page


# On-device accuracy on labelled data (bench --data)


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(load_bundle(DEMO_BUNDLE), 1)


def scans(n, shape):
    return [phantom.scan(500 + i, shape=shape, machine="default") for i in range(n)]


def test_masks_equal_to_the_device_prediction_score_one(tmp_path, segmenter):
    """Masks that are the model's own argmax: every segmentation score is exactly 1."""
    ss = scans(3, (256, 256))  # the model grid: no resizing between mask and prediction
    preds = [np.argmax(segmenter.infer(to_model_image(s.image, segmenter.spec)), -1).astype(np.uint8) for s in ss]
    write_dataset(tmp_path, [s.image for s in ss], preds, phantom_dataset_config("index", 1, spacing_mm=(0.15, 0.15)))
    r = accuracy_pass(segmenter, labelled_frames(tmp_path), str(tmp_path))
    assert r["images"] == 3 and r["pixel_accuracy"] == 1.0 and r["mean_iou"] == 1.0 and r["mean_dice"] == 1.0
    assert r["iou"] == [1.0, 1.0, 1.0] and r["per_image_mean_iou"] == 1.0
    # Same band on both sides: the device's sub-pixel edges move each boundary by under a pixel.
    th = r["thickness"]
    assert th["unit"] == "mm" and th["vs_mask"]["n"] >= 1 and th["vs_mask"]["max_abs"] < 2 * 0.15
    assert "vs_exact" not in th


def test_folder_scores_match_a_direct_computation(tmp_path, segmenter):
    """Native-size images with 1-based masks and spacing in dataset.json: pooled scores and
    thickness errors equal the ones computed here image by image with the same device calls."""
    ss = scans(3, (300, 220))
    spacing = (0.14, 0.19)
    write_dataset(tmp_path, [s.image for s in ss], [s.labels for s in ss], phantom_dataset_config("index", 1, spacing_mm=spacing))
    r = accuracy_pass(segmenter, labelled_frames(tmp_path), "set")
    spec, truths, preds, errs = segmenter.spec, [], [], []
    for s in ss:
        image = to_model_image(s.image, spec)
        logits = segmenter.infer(image)
        pred = np.argmax(logits, -1).astype(np.uint8)
        truth = resize_labels(s.labels, spec)
        sp = model_spacing(spacing, s.image.shape, spec)
        dev = measure_thickness(pred, logits, sp, logit_scale=segmenter.logit_scale, response=segmenter.response,
                               image=image).value
        ref = measure_thickness(truth, None, sp).value
        truths.append(truth), preds.append(pred)
        if not (np.isnan(dev) or np.isnan(ref)):
            errs.append(abs(dev - ref))
    want = scores(np.stack(truths), np.stack(preds), 3)
    assert r["mean_iou"] == round(want["mean_iou"], 4) and r["mean_dice"] == round(want["mean_dice"], 4)
    assert r["pixel_accuracy"] == round(want["pixel_accuracy"], 4)
    assert r["mean_iou"] > 0.8  # the demo model on its own phantom
    assert r["thickness"]["vs_mask"]["n"] == len(errs) >= 1
    assert r["thickness_mae"] == pytest.approx(np.mean(errs), abs=1e-4)


def test_all_above_masks_give_the_counted_scores(tmp_path, segmenter):
    """Masks of class 0 only: pixel accuracy is the share of pixels predicted 0, its IoU the same,
    the other classes score 0; no mask has a band, so no thickness is compared."""
    ss = scans(2, (256, 256))
    write_dataset(tmp_path, [s.image for s in ss], [np.zeros((256, 256), np.uint8)] * 2, phantom_dataset_config())
    r = accuracy_pass(segmenter, labelled_frames(tmp_path), "zeros")
    preds = [np.argmax(segmenter.infer(to_model_image(s.image, segmenter.spec)), -1) for s in ss]
    share = float(np.mean([(p == 0).mean() for p in preds]))
    assert r["pixel_accuracy"] == pytest.approx(share, abs=1e-4)
    assert r["iou"] == [pytest.approx(share, abs=1e-4), 0.0, 0.0]
    assert r["mean_iou"] == pytest.approx(share / 3, abs=1e-4)
    assert r["thickness"]["unit"] == "px"  # no spacing anywhere
    assert r["thickness"]["truth_unmeasurable"] == 2 and r["thickness"]["vs_mask"]["n"] == 0


def test_spacing_flag_overrides_the_data_set(tmp_path, segmenter, monkeypatch):
    monkeypatch.setattr(segmenter, "response", None)  # the bundle's response applies in mm only: compare as drawn
    ss = scans(2, (256, 256))
    write_dataset(tmp_path, [s.image for s in ss], [s.labels for s in ss], phantom_dataset_config())
    px = accuracy_pass(segmenter, labelled_frames(tmp_path), "px")
    mm = accuracy_pass(segmenter, labelled_frames(tmp_path, (0.1, 0.1)), "mm")
    assert px["thickness"]["unit"] == "px" and mm["thickness"]["unit"] == "mm"
    assert mm["thickness_mae"] == pytest.approx(0.1 * px["thickness_mae"], abs=2e-4)
    assert mm["mean_iou"] == px["mean_iou"]


def test_bench_cli_with_a_folder_and_with_the_phantom(tmp_path, capsys):
    ss = scans(2, (240, 280))
    write_dataset(tmp_path / "set", [s.image for s in ss], [s.labels for s in ss], phantom_dataset_config())
    common = ["bench", "--frames", "2", "--threads", "1", "--source", "phantom://clip?seed=3&frames=4&size=256x256"]
    assert main(common + ["--data", str(tmp_path / "set"), "--spacing-mm", "0.15,0.15", "--out", str(tmp_path / "a")]) == 0
    acc = json.loads((tmp_path / "a" / "bench.json").read_text())["accuracy"]
    assert acc["images"] == 2 and acc["thickness"]["unit"] == "mm" and 0 < acc["mean_iou"] <= 1
    assert "On-device accuracy on" in (tmp_path / "a" / "bench.md").read_text()
    assert main(common + ["--data", "phantom:2", "--out", str(tmp_path / "b")]) == 0
    acc = json.loads((tmp_path / "b" / "bench.json").read_text())["accuracy"]
    assert acc["images"] == 2 and acc["thickness"]["unit"] == "mm" and acc["thickness"]["mask_vs_exact"]["n"] == 2
    assert acc["mean_iou"] > 0.8
    capsys.readouterr()


@pytest.mark.parametrize("args, words", [
    (["--data", "phantom:2", "--spacing-mm", "0.1,0.1"], "own pixel spacing"),
    (["--data", "phantom:x"], "phantom:N"),
    (["--data", "{tmp}/none"], "neither a data-set folder"),
    (["--data", "{tmp}/set", "--spacing-mm", "a,b"], "ROW_MM,COL_MM"),
    (["--data", "{tmp}/set", "--spacing-mm", "0.1,-1"], "ROW_MM,COL_MM"),
    (["--spacing-mm", "0.1,0.1"], "give --data"),
    (["--data", "{tmp}/binary"], "2 classes"),
])
def test_bench_data_misuse_is_one_line_before_any_timing(tmp_path, capsys, args, words):
    ss = scans(1, (64, 64))
    write_dataset(tmp_path / "set", [ss[0].image], [ss[0].labels], phantom_dataset_config())
    write_dataset(tmp_path / "binary", [ss[0].image], [(ss[0].labels == 1).astype(np.uint8)], phantom_dataset_config("binary"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["bench", "--frames", "1", "--threads", "1", "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "frames_t1.jsonl").exists()  # refused before the timed runs


def test_legacy_folder_config_is_not_needed(tmp_path, segmenter):
    ss = scans(1, (256, 256))
    write_dataset(tmp_path, [ss[0].image], [ss[0].labels], phantom_dataset_config())
    (tmp_path / "dataset.json").unlink()  # masks read as class indices as they are
    assert accuracy_pass(segmenter, labelled_frames(tmp_path), "legacy")["images"] == 1


def test_bench_runs_a_tiny_bundle_with_its_own_input_size(tmp_path, tiny_bundle):
    """A converted tiny model (64 px input, not the demo's 256) through every bench pass."""
    report = run_bench(tiny_bundle.path, source="phantom://clip?seed=2&frames=6&size=128x128", frames=3,
                       threads=(1,), out=tmp_path, data="phantom:3")
    assert report["model_sha256"] == tiny_bundle.sha256
    assert report["model_bytes"] == tiny_bundle.model_path.stat().st_size
    (run,) = report["runs"]
    assert run["threads"] == 1 and run["frames"] == 3 and run["invoke_fps"] > 0
    assert run["accuracy"]["frames"] == 3 and 0 <= run["accuracy"]["mean_iou"] <= 1
    acc = report["accuracy"]
    assert acc["images"] == 3 and len(acc["iou"]) == len(tiny_bundle.manifest["classes"])
    assert report["best_threads"]["threads"] == 1
    md = (tmp_path / "bench.md").read_text()
    assert str(tiny_bundle.path) in md and tiny_bundle.sha256[:12] in md
