import cv2
import numpy as np
import pytest

from edge.sim import phantom, phantom_screen
from edge.frame import Frame, Measurement
from edge.measure.freeze import FreezeDetector
from edge.measure.quality import Quality
from edge.measure.temporal import TemporalFilter

SEED = 4


def capture_noise(image, rng, amplitude=2):
    """What a capture card adds to a still picture: +-1-2 grey levels per pixel."""
    noisy = image.astype(np.int16) + rng.integers(-amplitude, amplitude + 1, image.shape, dtype=np.int16)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def mjpeg_round_trip(path, frames, api=cv2.CAP_ANY):
    """Write frames as an MJPG .avi and read them back, as a capture recording holds them."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), api, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    if not writer.isOpened():
        pytest.skip(f"OpenCV cannot write MJPG with backend {api}")
    for f in frames:
        writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    assert len(out) == len(frames)
    return out


def jpeg_round_trip(frames, quality):
    """Each frame through a JPEG encoder at `quality` (what a cheap MJPEG capture card does)."""
    return [cv2.imdecode(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_UNCHANGED) for f in frames]


@pytest.fixture(scope="module")
def bmodes():
    """Ten frames of a slowly moving phantom scene (B-mode at acquisition size)."""
    return [s.image for s in phantom.clip(SEED, frames=10, shape=(256, 256))]


@pytest.fixture(scope="module")
def screen_with_freeze(bmodes):
    """Whole 1280x720 scanner screens: 4 live frames, frozen on the 4th for 6 frames (the clock
    keeps ticking, capture noise on every frame), then live again. Returns (screens, frozen, roi)."""
    rng = np.random.default_rng(0)
    lay = phantom_screen.layout((1280, 720), 40.0, 40.0, SEED)
    base = phantom_screen.chrome(lay, SEED)
    shown = bmodes[:4] + [bmodes[3]] * 6 + bmodes[4:8]
    screens = [capture_noise(phantom_screen.compose(base, lay, b, seconds=float(i)), rng) for i, b in enumerate(shown)]
    frozen = [False] * 4 + [True] * 6 + [False] * 4
    return screens, frozen, lay.roi


def crop(image, roi):
    x, y, w, h = roi
    return image[y : y + h, x : x + w]


def test_first_frame_is_never_frozen_and_a_copy_is(bmodes):
    d = FreezeDetector()
    assert d(bmodes[0]) is False
    assert d(bmodes[0].copy()) is True and d(bmodes[0]) is True
    assert d.run == 2 and d.changed == 0.0
    assert d(bmodes[1]) is False and d.run == 0


def test_a_frame_is_accepted_too(bmodes):
    d = FreezeDetector()
    frame = Frame(bmodes[0], 0.0, 0)
    assert [d(frame), d(frame)] == [False, True]


@pytest.mark.parametrize("api", [cv2.CAP_ANY, cv2.CAP_OPENCV_MJPEG], ids=["default-writer", "opencv-mjpeg"])
def test_frozen_runs_are_found_in_mjpeg_recorded_screens(tmp_path, screen_with_freeze, api):
    screens, frozen, roi = screen_with_freeze
    decoded = mjpeg_round_trip(tmp_path / "screen.avi", screens, api)
    whole, bmode = FreezeDetector(), FreezeDetector()
    assert [whole(f) for f in decoded] == frozen
    assert [bmode(crop(f, roi)) for f in decoded] == frozen


@pytest.mark.parametrize("quality", [75, 30])
def test_frozen_runs_survive_low_jpeg_quality(screen_with_freeze, quality):
    screens, frozen, roi = screen_with_freeze
    d = FreezeDetector()
    assert [d(crop(f, roi)) for f in jpeg_round_trip(screens, quality)] == frozen


def test_capture_noise_and_re_encoding_of_a_still_b_mode_count_as_frozen(tmp_path, bmodes):
    rng = np.random.default_rng(1)
    still = [capture_noise(bmodes[0], rng) for _ in range(8)]
    d = FreezeDetector()
    assert [d(f) for f in jpeg_round_trip(still, 30)] == [False] + [True] * 7


def test_a_slowly_moving_phantom_clip_is_never_frozen(tmp_path, bmodes):
    d = FreezeDetector()
    assert not any(d(b) for b in bmodes)
    d = FreezeDetector()
    assert not any(d(f) for f in mjpeg_round_trip(tmp_path / "live.avi", bmodes))
    d = FreezeDetector()
    assert not any(d(f) for f in jpeg_round_trip(bmodes, 30))


def test_a_caliper_moved_over_a_frozen_image_keeps_it_frozen(bmodes):
    still = cv2.cvtColor(bmodes[0], cv2.COLOR_GRAY2BGR)
    d = FreezeDetector()
    d(still)
    for i in range(6):  # the operator measures on the frozen image
        img = still.copy()
        cv2.drawMarker(img, (60 + 10 * i, 100 + 5 * i), (0, 255, 255), cv2.MARKER_CROSS, 12, 1)
        assert d(img) is True


def test_a_slow_change_adds_up_against_the_reference(bmodes):
    # Each step moves only a twentieth of the way to the next frame: too little to see once.
    d = FreezeDetector()
    a, b = bmodes[0].astype(np.float32), bmodes[5].astype(np.float32)
    steps = [np.clip(a + (b - a) * k / 20, 0, 255).astype(np.uint8) for k in range(21)]
    seen = [d(s) for s in steps]
    assert seen[1] is True and False in seen[2:]


def test_a_new_frame_size_restarts_the_detector(bmodes):
    d = FreezeDetector()
    d(bmodes[0])
    assert d(cv2.resize(bmodes[0], (128, 128))) is False
    assert d(cv2.resize(bmodes[0], (128, 128))) is True


def test_images_smaller_than_a_cell_work():
    d = FreezeDetector()
    tiny = np.full((5, 3), 7, np.uint8)
    assert [d(tiny), d(tiny)] == [False, True]


def test_thumbnail_holds_exact_cell_means():
    image = np.random.default_rng(3).integers(0, 256, (90, 131, 3), dtype=np.uint8)
    small = FreezeDetector(cell=8).thumbnail(image)
    means = image[:88, :128].reshape(11, 8, 16, 8, 3).mean(axis=(1, 3))
    assert small.shape == (11, 16, 3)
    assert np.abs(small - means).max() <= 1.5  # one rounding per halving


@pytest.mark.parametrize("kwargs", [{"cell": 1}, {"cell": 12}, {"max_changed": 1.0}, {"max_changed": -0.1}])
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError, match=list(kwargs)[0]):
        FreezeDetector(**kwargs)


def test_frozen_frames_are_not_new_evidence_for_the_temporal_filter(bmodes):
    d, f = FreezeDetector(), TemporalFilter()
    shown = bmodes[:5] + [bmodes[4]] * 40  # frozen for over a second
    used = []
    for i, image in enumerate(shown):
        flags = Quality.FROZEN if d(image) else Quality.OK
        e = f(Measurement(i, i / 30, 1.5 + 0.01 * (i % 3), 0.0, "mm", int(flags), 50, 0.0))
        used.append(e.n_used)
    assert used[4:] == [5] * 41
