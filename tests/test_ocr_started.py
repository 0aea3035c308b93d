"""Tesseract started ahead of a screen's scale reading (edge.screen.ocr.started_ahead, which the
Calibrator uses for the first reading and a new layout's, not for its retries): its words are
pytesseract's on the same pictures, the reading takes it, and no process is left behind, whether
it was used, not needed, or died."""

from __future__ import annotations

import numpy as np
from test_spacing import dicom_screen

from edge.screen import ocr
from edge.screen.roi import detect_roi
from edge.screen.spacing import Calibrator, from_screen
from edge.sim import phantom_screen as ps


def screens():
    """Real screens (a Philips linear and sector, an Aloka) and a phantom one, with their regions."""
    out = []
    for name in ("OBXXXX1A.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "gdcm-US-ALOKA-16.dcm"):
        img, region, _ = dicom_screen(name)
        out.append((img, detect_roi(img) or region))  # the file's own region where none is found
    for seed, size, depth in ((1, (1280, 720), 40.0), (2, (1920, 1080), 50.0)):
        shot = ps.screen(seed, size, depth_mm=depth, machine="default")
        out.append((shot.image, detect_roi(shot.image)))
    return out


def sheets_read(monkeypatch) -> list[np.ndarray]:
    """Every picture the scale readings of `screens()` give Tesseract (through pytesseract)."""
    import pytesseract

    seen: list[np.ndarray] = []
    real = pytesseract.image_to_data

    def recording(image, *args, **kwargs):
        assert kwargs.get("config") == ocr.SPARSE  # the command line started_ahead runs
        seen.append(np.array(image))
        return real(image, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(ocr, "_data_from_started", lambda sheet: None)
        m.setattr(pytesseract, "image_to_data", recording)
        for img, roi in screens():
            from_screen(img, roi)
    return seen


def test_the_started_process_reads_what_pytesseract_reads(needs_ocr, monkeypatch):
    import pytesseract

    sheets = sheets_read(monkeypatch)
    assert len(sheets) >= 4  # a run for most screens
    for sheet in sheets:
        want = pytesseract.image_to_data(sheet, config=ocr.SPARSE, output_type=pytesseract.Output.DICT)
        with ocr.started_ahead():
            got = ocr._data_from_started(sheet)
        assert got == want
        assert any(str(t).strip() for t in got["text"])  # words were read, not two empty answers


def test_a_scale_reading_takes_the_started_process(needs_ocr, monkeypatch):
    import pytesseract

    runs = {"pytesseract": 0, "started": 0}
    real_run, real_started = pytesseract.image_to_data, ocr._data_from_started

    def counted_run(*args, **kwargs):
        runs["pytesseract"] += 1
        return real_run(*args, **kwargs)

    def counted_started(sheet):
        data = real_started(sheet)
        runs["started"] += data is not None
        return data

    monkeypatch.setattr(pytesseract, "image_to_data", counted_run)
    monkeypatch.setattr(ocr, "_data_from_started", counted_started)
    img, roi, truth = dicom_screen("OBXXXX1A.dcm")
    calibrator = Calibrator()
    cal, change = calibrator.update(img, roi, seq=0)
    assert change is not None and change.reason == "first frame"
    assert cal.source == "screen" and abs(cal.spacing_mm[0] / truth - 1) < 0.02 and "readout 110 mm" in cal.note
    assert runs["started"] == 1  # the first run; a second one (labels cut again) goes to pytesseract
    assert getattr(ocr._started, "proc", None) is None
    calibrator.update(img, roi, roi_changed=True, seq=1)  # a new layout is read the same way
    assert runs["started"] == 2


def test_a_process_not_used_is_stopped(needs_ocr, monkeypatch):
    started = []
    real = ocr.subprocess.Popen

    def recording(*args, **kwargs):
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(ocr.subprocess, "Popen", recording)
    with ocr.started_ahead():
        assert ocr._started.proc is started[0] and started[0].returncode is None
    assert started[0].returncode is not None and ocr._started.proc is None
    blank = np.zeros((480, 640, 3), np.uint8)  # no marks: nothing to read
    calibrator = Calibrator(retry_every=2)
    roi = detect_roi(ps.screen(1, (640, 480)).image)
    for seq in range(7):
        cal, _ = calibrator.update(blank, roi, seq=seq)
        assert cal.spacing_mm is None
    # the first reading started one, stopped unused; the three retries started none
    assert len(started) == 2 and started[1].returncode is not None


def test_a_started_process_that_died_leaves_the_reading_to_pytesseract(needs_ocr):
    crop = label_crop()
    want = ocr.read_words([crop], [12.0], in_line=True)
    with ocr.started_ahead():
        proc = ocr._started.proc
        proc.kill()
        proc.wait()
        got = ocr.read_words([crop], [12.0], in_line=True)
    assert got == want and [w.text for w in got] == ["40"]


def label_crop():
    import cv2

    crop = np.zeros((20, 60, 3), np.uint8)
    cv2.putText(crop, "40", (8, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return crop


def test_the_block_ending_by_an_exception_stops_the_process(needs_ocr):
    try:
        with ocr.started_ahead():
            proc = ocr._started.proc
            raise KeyError("the reading failed")
    except KeyError:
        pass
    assert proc.returncode is not None and ocr._started.proc is None


def test_only_this_thread_and_the_plain_config_take_the_process(needs_ocr, monkeypatch):
    import threading

    import pytesseract

    runs = []
    real = pytesseract.image_to_data
    monkeypatch.setattr(pytesseract, "image_to_data", lambda *a, **k: runs.append(k["config"]) or real(*a, **k))
    with ocr.started_ahead():
        proc = ocr._started.proc
        other: list = []
        t = threading.Thread(target=lambda: other.extend(ocr.read_words([label_crop()], [12.0], in_line=True)))
        t.start()
        t.join()
        assert [w.text for w in other] == ["40"] and runs == [ocr.SPARSE]  # the other thread ran pytesseract
        digits = ocr.read_words([label_crop()], [12.0], whitelist="0123456789", in_line=True)
        assert [w.text for w in digits] == ["40"] and len(runs) == 2 and "whitelist" in runs[1]
        assert ocr._started.proc is proc and proc.returncode is None  # still waiting for its picture
        mine = ocr.read_words([label_crop()], [12.0], in_line=True)
        assert [w.text for w in mine] == ["40"] and len(runs) == 2 and proc.returncode == 0
    assert ocr._started.proc is None


def test_a_failure_reading_the_started_process_reads_nothing(needs_ocr, monkeypatch):
    import pytesseract.pytesseract as pt

    def broken(*args):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "not text")

    monkeypatch.setattr(pt, "file_to_dict", broken)
    with ocr.started_ahead():
        proc = ocr._started.proc
        assert ocr.read_words([label_crop()], [12.0], in_line=True) == []  # as pytesseract failing would
    assert proc.returncode is not None
