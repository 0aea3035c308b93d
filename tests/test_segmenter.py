import subprocess
import sys

import numpy as np
import pytest

from edge.sim import phantom
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.errors import EdgeError
from edge.frame import Frame
from edge.host import physical_cores
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.model.threads import default_threads


def test_physical_cores_is_sane():
    import os

    assert 1 <= physical_cores() <= (os.cpu_count() or 1)


def test_default_threads_are_the_physical_cores_but_one():
    seg = Segmenter.create(SegmenterOptions())  # the config's [model] section: 0 threads is "not set"
    assert seg.num_threads == default_threads() == SegmenterOptions(num_threads=0).threads
    assert seg.threads_chosen_by == "the physical cores but one"  # no bench report given (tests/test_threads.py)
    assert SegmenterOptions(num_threads=2).threads == 2
    with pytest.raises(EdgeError, match=r"\[model\] num_threads"):
        SegmenterOptions(num_threads=-1)


def test_lookup_fill_equals_quantizing_a_float_input():
    seg = Segmenter.create(SegmenterOptions(num_threads=1))
    img = phantom.scan(3).image[..., None]
    scale, zero = seg.bundle.manifest["input"]["scale"], seg.bundle.manifest["input"]["zero_point"]
    q = np.clip(np.round(img.astype(np.float32) / 255.0 / scale) + zero, -128, 127).astype(np.int8)
    assert np.array_equal(seg._lut[img], q)


def test_segment_returns_labels_logits_and_model_spacing():
    seg = Segmenter.create(SegmenterOptions(num_threads=2))
    s = phantom.scan(21, shape=(400, 300), machine="default", field_mm=(40.0, 30.0))
    out = seg.segment(Frame(s.image, 0.0, 0, spacing_mm=s.spacing_mm))
    assert out.labels.shape == (256, 256) and out.logits.dtype == np.int8
    assert out.spacing_mm == pytest.approx((40 / 256, 30 / 256))
    assert np.array_equal(out.labels, np.argmax(out.logits, -1))


def test_running_a_frame_loads_no_tensorflow():
    code = (
        "import sys; from edge.sim import phantom; from edge.frame import Frame;"
        "from edge.model.segmenter import Segmenter, SegmenterOptions;"
        "s = phantom.scan(1); seg = Segmenter.create(SegmenterOptions(num_threads=1));"
        "seg.segment(Frame(s.image, 0.0, 0, spacing_mm=s.spacing_mm));"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')];"
        "print('loaded:', bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_demo_bundle_segments_phantom_frames_well():
    from edge.measure.metrics import scores
    from edge.model.preprocess import resize_labels

    seg = Segmenter.create(SegmenterOptions(num_threads=2))
    b = load_bundle(DEMO_BUNDLE)
    ious = []
    for seed in range(40_000_000, 40_000_006):
        s = phantom.scan(seed, shape=(320, 320), machine="default")
        out = seg.segment(Frame(s.image, 0.0, 0, spacing_mm=s.spacing_mm))
        ious.append(scores(resize_labels(s.labels, b.spec), out.labels, 3)["mean_iou"])
    assert np.mean(ious) > 0.85
