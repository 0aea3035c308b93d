"""tlf-edge bench's per-frame budget, the MAC count of a .tflite file and the int8 peak model.

No figure here depends on the machine's speed or load: the tests check structure, units and
consistency (a stage's thread CPU never exceeds its wall time, the ratio is the rates' ratio),
and the MAC count against a count made by hand."""

from __future__ import annotations

import fnmatch
import json
import math
import threading
import time
from pathlib import Path

import pytest

from edge.host import all_threads_cpu
from edge.model.macs import count_macs, op_macs
from edge.ops.budget import MODEL_STAGE, THREADS, StageMeter, instrumented
from edge.ops.peak import PEAK_FILTERS, PEAK_INPUT, PEAK_KERNEL, PEAK_MODEL
from edge.runtime.config import tomllib

REPO = Path(__file__).resolve().parents[1]
SINK_STAGES = ["display sink", "log sink"]


def op_table(path: Path) -> list[tuple]:
    """(operator, its tensors' shapes and dtypes) of every operator of a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    tensors = {t["index"]: (tuple(int(v) for v in t["shape"]), t["dtype"].__name__) for t in interp.get_tensor_details()}
    return [(op["op_name"], [tensors[i] for i in op["inputs"] if i >= 0], [tensors[i] for i in op["outputs"]])
            for op in interp._get_ops_details()]


# The MAC counter


def test_operator_macs_from_shapes():
    assert op_macs("CONV_2D", [(1, 8, 8, 3), (16, 3, 3, 3), (16,)], [(1, 8, 8, 16)]) == 8 * 8 * 16 * 3 * 3 * 3
    assert op_macs("DEPTHWISE_CONV_2D", [(1, 8, 8, 4), (1, 3, 3, 8), (8,)], [(1, 4, 4, 8)]) == 4 * 4 * 8 * 9
    assert op_macs("TRANSPOSE_CONV", [(4,), (6, 2, 2, 4), (1, 5, 5, 4)], [(1, 10, 10, 6)]) == 5 * 5 * 4 * 2 * 2 * 6
    assert op_macs("FULLY_CONNECTED", [(2, 7), (3, 7), (3,)], [(2, 3)]) == 2 * 3 * 7
    assert op_macs("MAX_POOL_2D", [(1, 8, 8, 4)], [(1, 4, 4, 4)]) == 0


def test_mac_count_of_a_tiny_model_equals_the_hand_count(tmp_path):
    tf = pytest.importorskip("tensorflow")
    keras = tf.keras
    x = keras.Input((12, 10, 3), batch_size=1)
    y = keras.layers.Conv2D(8, 3, padding="same")(x)  # 12*10*8 outputs of 3*3*3
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(y)  # 6*5*8 outputs of 3*3
    y = keras.layers.Conv2DTranspose(4, 2, strides=2)(y)  # 6*5*8 inputs spread over 2*2*4
    y = keras.layers.GlobalAveragePooling2D()(y)
    y = keras.layers.Dense(5)(y)  # 4 -> 5
    model = keras.Model(x, y)
    path = tmp_path / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    want = {"CONV_2D": 12 * 10 * 8 * 27, "DEPTHWISE_CONV_2D": 6 * 5 * 8 * 9, "TRANSPOSE_CONV": 6 * 5 * 8 * 16,
            "FULLY_CONNECTED": 4 * 5}
    got = count_macs(path)
    assert got.by_op == want and got.total == sum(want.values())
    assert got.ops == dict.fromkeys(want, 1)


# The peak model


def test_the_shipped_peak_model_is_what_the_command_makes(tmp_path):
    pytest.importorskip("tensorflow")
    from convert.cli import main

    made = tmp_path / "peak.tflite"
    assert main(["peak-model", "--out", str(made)]) == 0
    assert op_table(PEAK_MODEL) == op_table(made)
    (op,) = op_table(PEAK_MODEL)
    h, w = PEAK_KERNEL
    assert op == ("CONV_2D", [(PEAK_INPUT, "int8"), ((PEAK_FILTERS, h, w, PEAK_INPUT[-1]), "int8"),
                              ((PEAK_FILTERS,), "int32")], [((*PEAK_INPUT[:3], PEAK_FILTERS), "int8")])
    assert count_macs(PEAK_MODEL).total == math.prod(PEAK_INPUT[:3]) * PEAK_FILTERS * h * w * PEAK_INPUT[-1]
    assert PEAK_MODEL.stat().st_size < 300_000


def test_the_peak_model_is_package_data():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["edge"]
    inside = PEAK_MODEL.relative_to(REPO / "edge").as_posix()
    assert any(fnmatch.fnmatch(inside, pattern) for pattern in data)


# The stage meter


def test_nested_stages_keep_their_own_time_only():
    meter = StageMeter()
    t0 = time.perf_counter()
    with meter.stage("outer"):
        with meter.stage("inner"):
            time.sleep(0.02)  # wall time without CPU
    total = time.perf_counter() - t0
    meter.end_frame()
    (frame,) = meter.frames
    inner_cpu, inner_wall = frame["inner"]
    outer_cpu, outer_wall = frame["outer"]
    assert inner_wall >= 0.02 and inner_cpu < inner_wall / 2
    # The outer stage keeps only its own time: with the inner one counted in it too, the two would
    # add up to twice the inner's 20 ms, more than the whole block took, however loaded the machine.
    assert outer_wall >= 0 and outer_cpu >= 0 and outer_wall + inner_wall <= total + 1e-6
    b = meter.budget(["outer", "inner", "absent"])
    assert b["frames"] == 1 and b["stages"]["absent"]["frames"] == 0 and b["stages"]["absent"]["cpu_ms_p50"] == 0
    assert b["stages"]["inner"]["wall_ms_p50"] == round(inner_wall * 1000, 3)


def test_all_threads_cpu_counts_another_thread():
    spun, done = threading.Event(), threading.Event()
    own = []

    def spin():
        t0 = time.thread_time()
        while time.thread_time() - t0 < 0.03:  # 30 ms of this thread's CPU, however slow the machine
            pass
        own.append(time.thread_time() - t0)
        spun.set()
        done.wait(10)  # alive while it is counted

    before = all_threads_cpu()
    worker = threading.Thread(target=spin)
    worker.start()
    assert spun.wait(30)
    after = all_threads_cpu()
    done.set()
    worker.join()
    assert after - before >= own[0] >= 0.03


def test_a_discarded_frame_is_not_counted():
    meter = StageMeter()
    with meter.stage("decode"):
        pass
    meter.discard_frame()
    assert meter.frames == [] and meter.budget(["decode"]) == {"frames": 0, "stages": {}}


def test_instrumenting_leaves_the_chain_as_it_was(tiny_bundle):
    from edge.model.segmenter import Segmenter
    from edge.runtime.chain import ChainOptions, FrameChain
    from edge.screen.options import SpacingOptions, RoiOptions

    seg = Segmenter(tiny_bundle, 1)
    chain = FrameChain(seg, ChainOptions(roi=RoiOptions(), calibration=SpacingOptions()))
    before = (dict(vars(chain)), dict(vars(seg)), dict(vars(seg.interpreter)), dict(vars(chain.prepare.tracker)))
    with instrumented(chain, StageMeter()):
        assert "input_tensor" in vars(seg) and "invoke" in vars(seg.interpreter)
    assert (dict(vars(chain)), dict(vars(seg)), dict(vars(seg.interpreter)), dict(vars(chain.prepare.tracker))) == before


# The bench report on a tiny bundle


@pytest.fixture(scope="module")
def report(tiny_bundle, tmp_path_factory):
    from edge.ops.bench import run_bench

    out = tmp_path_factory.mktemp("bench")
    run_bench(tiny_bundle.path, source="phantom://screen?seed=4&frames=8&size=480x360", frames=6, threads=(1,),
              out=out)
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text(), tiny_bundle


def test_the_budget_names_every_stage_and_its_thread(report):
    saved, _, bundle = report
    (run,) = saved["runs"]
    b = run["budget"]
    assert 1 <= b["frames"] <= 6
    assert list(b["stages"]) == [*THREADS, *SINK_STAGES]
    for name, st in b["stages"].items():
        assert st["thread"] == THREADS.get(name, "output")
        assert set(st) == {"thread", "cpu_ms_p50", "cpu_ms_mean", "wall_ms_p50", "frames"}
        if name == "domain guard":  # only for a bundle with the statistics of its training images
            assert st["frames"] == (b["frames"] if bundle.domain is not None else 0)
        elif name not in ("roi", "spacing"):  # the screen's trackers may rest on a settled screen
            assert st["frames"] == b["frames"], name
        assert min(st["cpu_ms_p50"], st["cpu_ms_mean"], st["wall_ms_p50"]) >= 0
        if name != MODEL_STAGE:  # one thread's CPU within its own wall time (clock steps aside)
            assert st["cpu_ms_p50"] <= st["wall_ms_p50"] + 0.05, name
    assert b["stages"]["roi"]["frames"] >= 1  # a whole screen: the B-mode region is tracked
    for name in ("decode", "crop", "resize", "int8 lookup", MODEL_STAGE, "argmax", "measurement", *SINK_STAGES):
        assert b["stages"][name]["wall_ms_p50"] > 0, name


def test_the_cpu_outside_the_model_is_the_sum_of_the_other_stages(report):
    saved, _, _ = report
    b = saved["runs"][0]["budget"]
    others = [st["cpu_ms_mean"] for name, st in b["stages"].items() if name != MODEL_STAGE]
    assert b["outside_model_cpu_ms"]["mean"] == pytest.approx(sum(others), abs=0.01)
    assert b["outside_model_cpu_ms"]["p50"] > 0
    by_thread = b["thread_cpu_ms_mean"]
    assert set(by_thread) == {"capture", "inference", "output"}
    assert sum(by_thread.values()) == pytest.approx(sum(st["cpu_ms_mean"] for st in b["stages"].values()), abs=0.01)


def test_the_invoke_rate_is_beside_the_peak(report):
    saved, md, bundle = report
    run = saved["runs"][0]
    rate = run["int8_rate"]
    assert rate["threads"] == run["threads"] == 1
    assert rate["model_gmac"] == round(count_macs(bundle.model_path).total / 1e9, 4) > 0
    assert rate["invoke_ms_p50"] == run["budget"]["stages"][MODEL_STAGE]["wall_ms_p50"]
    assert rate["invoke_cpu_ms_p50"] == run["budget"]["stages"][MODEL_STAGE]["cpu_ms_p50"]
    for key in ("invoke_gmac_per_s", "peak_gmac_per_s", "peak_invoke_ms_p50", "of_peak", "invoke_gmac_per_cpu_s",
                "peak_gmac_per_cpu_s", "of_peak_by_cpu"):
        assert math.isfinite(rate[key]) and rate[key] > 0, key
    assert rate["of_peak"] == pytest.approx(rate["invoke_gmac_per_s"] / rate["peak_gmac_per_s"], rel=0.01)
    assert rate["of_peak_by_cpu"] == pytest.approx(rate["invoke_gmac_per_cpu_s"] / rate["peak_gmac_per_cpu_s"],
                                                   rel=0.01)
    assert "| stage | thread in `tlf-edge run` | CPU ms p50 | CPU ms mean | wall ms p50 |" in md
    assert "| invoke | inference |" in md and "| display sink | output |" in md
    assert "CPU outside the model:" in md
    assert f"peak int8 {rate['peak_gmac_per_s']} GMAC/s" in md and f"ratio {rate['of_peak']}, at 1 thread(s)" in md
    assert f"ratio {rate['of_peak_by_cpu']}." in md
