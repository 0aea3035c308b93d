"""`tlf-edge analyze` on real material: the real DICOM files, phantom screen videos written by
OpenCV, image folders and the cart's own recordings made by `tlf-edge run`; resuming, failures,
privacy, and one worker against two (the same measurements, compared exactly)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from analyze_inputs import cart_log, cart_recording, copy_dicoms, damaged_dicom, frames_of, screen_videos, summaries_of
from conftest import DICOM_DIR
from edge.cli import main
from edge.measure.quality import REJECTING
from test_tf_free_commands import WITHOUT_CONVERT_EXTRA

pytest.importorskip("pyarrow")
pytest.importorskip("matplotlib")


def analyze(*args, capsys=None) -> tuple[int, str]:
    rc = main(["analyze", *map(str, args), "--quiet"])
    err = capsys.readouterr().err if capsys is not None else ""
    return rc, err


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return screen_videos(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, videos):
    """The frames of the first screen video as PNG files (a folder of screenshots)."""
    folder = tmp_path_factory.mktemp("shots") / "exam"
    folder.mkdir()
    cap = cv2.VideoCapture(str(videos[0]["path"]))
    i = 0
    while (got := cap.read())[0] and i < 4:
        cv2.imwrite(str(folder / f"shot{i + 1}.png"), got[1])
        i += 1
    return folder


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, videos, image_folder):
    """One worker, in this process: the reference of the identity tests."""
    out = tmp_path_factory.mktemp("one") / "out"
    assert main(["analyze", str(videos[0]["path"].parent), str(image_folder), "--out", str(out), "--workers", "1",
                 "--quiet"]) == 0
    return out


def test_real_dicoms_each_a_clip_the_damaged_ones_failed_in_one_line(tmp_path, capsys):
    pydicom = pytest.importorskip("pydicom")
    data = tmp_path / "archive"
    copy_dicoms(data / "exams")
    cut = damaged_dicom(data / "broken")
    (data / "broken" / "noise.avi").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip\n")
    out = tmp_path / "out"
    rc, err = analyze(data, notes, "--out", out, "--workers", "1", capsys=capsys)
    assert rc == 1
    assert err.strip().splitlines()[-1].startswith("tlf-edge: error: 3 of 10 clips failed")
    rows = list(csv.DictReader((out / "clips.csv").open()))
    assert len(rows) == 10 and sum(r["status"] == "done" for r in rows) == 7  # every real file decodes
    failed = {r["kind"]: r["error"] for r in rows if r["status"] == "failed"}
    assert "holds no image" in failed["dicom"] and "cannot open video" in failed["video"]
    assert failed["unknown"] == "not a DICOM, video or image file"
    assert all("\n" not in e for e in failed.values())
    for r in rows:  # ids are content hashes: sha256sum's first 16 digits
        if r["kind"] == "dicom" and r["status"] == "done":
            assert r["clip_id"] == r["content_sha256"][:16]
    done = {s["content_sha256"][:16]: s for s in summaries_of(out).values() if s["status"] == "done"}
    import hashlib

    two = done[hashlib.sha256((DICOM_DIR / "OBXXXX1A_2frame.dcm").read_bytes()).hexdigest()[:16]]
    assert two["frames"] == 2 and two["spacing_source"] == "source" and two["spacing_detail"].startswith("DICOM region")
    assert two["spacing_mm"] == pytest.approx([0.2622878766196998] * 2)  # PhysicalDelta 0.0262 cm
    for s in done.values():
        assert s["accepted"] + s["rejected"] == s["frames"] == sum(1 for _ in (out / "clips" / s["clip_id"] / "frames.jsonl").open())
        assert s["rejected"] <= sum(s["rejected_by_flag"].values()) and bool(s["rejected"]) == bool(s["rejected_by_flag"])
    # Privacy: no file name, folder or patient field of the DICOM files anywhere in the output.
    secrets = {p.stem for p in DICOM_DIR.glob("*.dcm")} | {"archive", "exams", "broken", "noise", "cut", "notes", str(tmp_path)}
    for p in DICOM_DIR.glob("*.dcm"):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        for tag in ("PatientName", "PatientID", "InstitutionName", "StudyDate", "ReferringPhysicianName"):
            value = str(ds.get(tag, "") or "").strip()
            if len(value) >= 4:
                secrets.add(value)
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".jsonl", ".csv", ".html"):
            text = f.read_text()
            assert not [s for s in secrets if s in text], f
    assert cut.name not in err and str(tmp_path) not in err  # the failure lines too


def test_screen_videos_and_an_image_folder_through_the_carts_chain(local_run, videos, image_folder):
    summaries = summaries_of(local_run)
    frames = frames_of(local_run)
    assert len(summaries) == 3 and all(s["status"] == "done" for s in summaries.values())
    kinds = sorted(s["kind"] for s in summaries.values())
    assert kinds == ["images", "video", "video"]
    for v in videos:
        import hashlib

        cid = hashlib.sha256(v["path"].read_bytes()).hexdigest()[:16]
        s, rows = summaries[cid], frames[cid]
        x, y, w, h = v["truth"][0]["roi"]
        assert s["roi"] == [x, y, w, h] and s["spacing_source"] == "screen" and s["unit"] == "mm"
        assert s["spacing_mm"] == pytest.approx(v["truth"][0]["spacing_mm"], rel=0.02)  # read off the screen
        assert s["frames"] == len(rows) == len(v["truth"]) and s["fps"] == 30.0 and s["fps_stated"]
        assert [r["t"] for r in rows] == pytest.approx([i / 30 for i in range(len(rows))], abs=1e-6)
        good = [r["thickness"] for r in rows if r["thickness"] is not None and not r["flags"] & REJECTING]
        assert s["thickness_median"] == pytest.approx(float(np.median(good)), abs=1e-6)
        thumb = cv2.imread(str(local_run / "clips" / cid / "roi.png"))
        assert max(thumb.shape[:2]) <= 240 and thumb.shape[1] / thumb.shape[0] == pytest.approx(w / h, abs=0.02)
        plot = cv2.imread(str(local_run / "clips" / cid / "thickness.png"))
        assert plot is not None and plot.shape[1] > 400
    index = (local_run / "index.html").read_text()
    for cid in summaries:
        assert f"clips/{cid}/thickness.png" in index and f"clips/{cid}/roi.png" in index
    import pyarrow.parquet as pq

    table = pq.read_table(local_run / "clips.parquet").to_pylist()
    rows = list(csv.DictReader((local_run / "clips.csv").open()))
    assert [t["clip_id"] for t in table] == [r["clip_id"] for r in rows] and len(rows) == 3
    assert [t["thickness_median"] for t in table] == [float(r["thickness_median"]) for r in rows]
    lines = (local_run / "clips" / next(iter(frames)) / "frames.csv").read_text().splitlines()
    assert lines[0].startswith("seq,t,thickness") and len(lines) == len(next(iter(frames.values()))) + 1


def test_each_frame_is_measured_as_tlf_edge_run_measures_it(tmp_path, local_run, videos):
    """The same video through `tlf-edge run` (one LiteRT thread): the same thickness frame by frame."""
    import hashlib

    v = videos[1]
    assert main(["run", "--source", str(v["path"]), "--display", "none", "--threads", "1", "--out", str(tmp_path),
                 "--quiet"]) == 0
    (run,) = tmp_path.iterdir()
    live = [json.loads(line) for line in (run / "frames.jsonl").read_text().splitlines()]
    ours = frames_of(local_run)[hashlib.sha256(v["path"].read_bytes()).hexdigest()[:16]]
    assert [(r["thickness"], r["spread"], r["columns"], r["flags"] & REJECTING) for r in live] == \
        [(round(r["thickness"], 4), round(r["spread"], 4), r["columns"], r["flags"] & REJECTING) for r in ours]


def test_two_workers_give_exactly_what_one_gives(tmp_path, local_run, videos, image_folder):
    out = tmp_path / "two"
    assert main(["analyze", str(videos[0]["path"].parent), str(image_folder), "--out", str(out), "--workers", "2",
                 "--quiet"]) == 0
    assert frames_of(out) == frames_of(local_run)
    assert summaries_of(out) == summaries_of(local_run)
    assert json.loads((out / "analysis.json").read_text())["workers"] == 2


def test_a_folder_of_cart_recordings(tmp_path, capsys):
    data = cart_recording(tmp_path / "cart", seed=3, frames=6, overlay=False)
    overlay = cart_recording(tmp_path / "cart2", seed=4, frames=3, overlay=True)
    legacy = tmp_path / "old"  # a recording from before sidecars: its name tells
    legacy.mkdir()
    (video,) = (overlay / "recordings").glob("*.avi")
    (legacy / video.name).write_bytes(video.read_bytes())
    out = tmp_path / "out"
    rc, err = analyze(data, overlay / "recordings", legacy, "--out", out, "--workers", "1", capsys=capsys)
    assert rc == 1, err
    assert "not searched (a tlf-edge run folder" in err  # runs/<time>/ holds display.png: not a clip
    rows = list(csv.DictReader((out / "clips.csv").open()))
    assert sorted((r["kind"], r["status"]) for r in rows) == [("recording", "done"), ("recording", "failed")] * 1 + \
        [("recording", "failed")]
    reasons = sorted(r["error"] for r in rows if r["status"] == "failed")
    assert "overlay" in reasons[0] and "overlay" in reasons[1]
    (done,) = [x for x in summaries_of(out).values() if x["status"] == "done"]
    log = cart_log(data)
    layout = log[0]["layout"]
    assert done["spacing_source"] == "source" and done["spacing_detail"] == "recorded by the cart: screen"
    assert done["spacing_mm"] == pytest.approx(layout["spacing_mm"], abs=1e-6) and done["roi"] == [0, 0, *layout["roi"][2:]]
    rows = frames_of(out)[done["clip_id"]]
    assert [r["t"] for r in rows] == pytest.approx([r["t_capture"] - log[0]["t_capture"] for r in log], abs=2e-6)
    live = np.median([r["thickness"] for r in log])
    assert done["thickness_median"] == pytest.approx(live, abs=0.05)  # the recording's MJPEG is lossy, not the scale


def test_a_second_run_skips_what_is_done_and_a_new_config_redoes_it(tmp_path, local_run, videos, capsys):
    out = tmp_path / "out"
    rc, _ = analyze(videos[0]["path"], "--out", out, "--workers", "1", capsys=capsys)
    assert rc == 0
    frames = out / "clips" / next(iter(frames_of(out))) / "frames.jsonl"
    stamp = frames.stat().st_mtime_ns
    (out / "clips" / ".deadbeef.1234.tmp").mkdir()  # what a killed run leaves
    rc, err = analyze(videos[0]["path"], videos[1]["path"], "--out", out, "--workers", "1", capsys=capsys)
    assert rc == 0 and "1 of 2 clips already analysed with this bundle and config: skipped" in err
    assert frames.stat().st_mtime_ns == stamp and not (out / "clips" / ".deadbeef.1234.tmp").exists()
    assert frames_of(out) == {k: v for k, v in frames_of(local_run).items() if k in frames_of(out)}
    rc, err = analyze(videos[0]["path"], "--out", out, "--workers", "1", "--set", "measurement.min_coverage=0.5",
                      capsys=capsys)
    assert rc == 0 and "skipped" not in err and frames.stat().st_mtime_ns != stamp


def test_an_interrupted_run_continues_where_it_stopped(tmp_path, local_run, videos, image_folder):
    out = tmp_path / "out"
    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    args = ["analyze", str(videos[0]["path"].parent), str(image_folder), "--out", str(out), "--workers", "1", "--quiet"]
    p = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((out / "clips").glob("*/summary.json")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting on the file system for the first clip, not on a thread
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    print("interrupted run: exit", p.returncode, err.strip().splitlines()[-1:])
    if p.returncode == 130:
        assert "interrupted:" in err and "the same command continues" in err
        first = len(list((out / "clips").glob("*/summary.json")))
        assert 1 <= first < 3
    else:  # the machine was fast enough to finish first: the resume below skips everything
        assert p.returncode == 0, err
    assert main(args) == 0
    assert frames_of(out) == frames_of(local_run)
    assert len(list(csv.DictReader((out / "clips.csv").open()))) == 3


def test_keep_names_names_the_clips(tmp_path, videos, capsys):
    out = tmp_path / "out"
    rc, _ = analyze(videos[0]["path"], "--out", out, "--workers", "1", "--keep-names", capsys=capsys)
    (s,) = summaries_of(out).values()
    assert rc == 0 and s["clip_id"].startswith("screen11-") and s["name"] == "screen11.avi"


@pytest.mark.parametrize("args, message", [
    (["nowhere.avi"], "no such file or folder 'nowhere.avi'"),
    (["{videos}", "--address", "ray://head:10001"], "--address names a Ray cluster; give --engine ray too"),
    (["{videos}", "--workers", "0"], "--workers must be from 1 to 1024"),
    (["{empty}"], "no DICOM, video, image or recording in"),
])
def test_misuse_is_one_line(tmp_path, videos, capsys, args, message):
    (tmp_path / "empty").mkdir()
    args = [a.format(videos=videos[0]["path"], empty=tmp_path / "empty") for a in args]
    rc = main(["analyze", *args, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("tlf-edge: error: ") and message in err[0]


# The refusing import system of the TensorFlow-free tests, refusing the modules named first on its command line.
BLOCKING = WITHOUT_CONVERT_EXTRA.replace('BLOCKED = {"tensorflow", "keras", "tf_keras", "matplotlib"}',
                                        'BLOCKED = set(sys.argv.pop(1).split(","))').replace(
    "from convert.cli import main", "from edge.cli import main")
assert "sys.argv.pop(1)" in BLOCKING and "from edge.cli import main" in BLOCKING


def test_analyze_runs_without_tensorflow_and_names_a_missing_extra_in_one_line(tmp_path, videos):
    """As on a cart or a laptop with the [analyze] extra and no [convert]: no TensorFlow needed,
    and nothing written outside the output folder (matplotlib's font cache included, which it
    keeps in the home folder unless told otherwise); without pyarrow (the [analyze] extra not
    installed) one line says which extra to install."""
    import os

    args = ["analyze", str(videos[0]["path"]), "--workers", "1", "--quiet", "--out"]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")}
    r = subprocess.run([sys.executable, "-c", BLOCKING, "tensorflow,keras,tf_keras", *args, str(tmp_path / "a")],
                       capture_output=True, text=True, timeout=300, env={**env, "HOME": str(home)})
    assert r.returncode == 0, r.stderr
    assert list(home.iterdir()) == [] and (tmp_path / "a" / ".matplotlib").is_dir()
    r = subprocess.run([sys.executable, "-c", BLOCKING, "pyarrow", *args, str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "tlf-edge: error: analyze needs the [analyze] extra (missing: pyarrow): pip install 'tlf-edge[analyze]'"]
    assert not (tmp_path / "b").exists()


def test_a_folder_of_screenshots_of_several_sizes_measures_every_picture(tmp_path, capsys):
    """Screenshots of two sizes, alternating, with the chrome changing between pictures of one
    size: each is looked at on its own (none is skipped while the layout changes, no region of
    a bigger picture is cut from a smaller one), and the console says how many frames were
    measured and accepted."""
    from edge.sim import phantom_screen as ps

    folder = tmp_path / "shots"
    folder.mkdir()
    shots = [ps.screen(seed, size, depth_mm=depth) for seed, (size, depth) in
             enumerate([((800, 600), 40.0), ((640, 480), 40.0), ((800, 600), 50.0), ((640, 480), 30.0)] * 2)]
    for i, shot in enumerate(shots):
        cv2.imwrite(str(folder / f"shot{i + 1}.png"), shot.image)
    rc = main(["analyze", str(folder), "--out", str(tmp_path / "out"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    (s,) = summaries_of(tmp_path / "out").values()
    assert s["frames"] == len(shots) and s["frames_layout_changing"] == 0 and s["frames_without_roi"] == 0
    (row,) = csv.DictReader((tmp_path / "out" / "clips.csv").open())
    assert row["frames_layout_changing"] == "0"
    assert f"{s['accepted']} of {len(shots)} measured frames accepted" in out


def test_a_dicom_whose_regions_are_not_used_says_why_in_the_table(tmp_path):
    """pydicom's SonoSite cine states regions beyond its 320x240 frames (a resampled file): its
    spacing is not used, and the table says so beside what the screen reading found."""
    pydicom = pytest.importorskip("pydicom")
    cine = pydicom.data.get_testdata_file("examples_ybr_color.dcm")
    assert main(["analyze", cine, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (row,) = csv.DictReader((tmp_path / "out" / "clips.csv").open())
    assert row["unit"] == "px" and row["spacing_source"] == "none"
    assert "the DICOM file's regions: tissue region bounds exceed the 320x240 frame (resampled file)" in row["spacing_detail"]


def test_a_dicoms_own_spacing_wins_over_the_configs_and_the_table_says_so(tmp_path):
    """A mixed analysis with [calibration] depth_mm set for its screen videos: the real Philips
    file keeps the spacing its region states (0.262 mm per pixel), and its row says the config's
    was not used."""
    pytest.importorskip("pydicom")
    dicom = DICOM_DIR / "OBXXXX1A.dcm"
    assert main(["analyze", str(dicom), "--out", str(tmp_path / "out"), "--quiet", "--set", "calibration.depth_mm=60"]) == 0
    (row,) = csv.DictReader((tmp_path / "out" / "clips.csv").open())
    assert float(row["spacing_row_mm"]) == pytest.approx(0.26228788, rel=1e-6) and row["spacing_source"] == "source"
    assert row["spacing_detail"] == "DICOM region 0; the config's [calibration] depth_mm is for screens and not used"
