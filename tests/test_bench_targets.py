"""benchmarks/bench_targets.py's own parts on small made-up inputs: the soak's latency windows from
a frames log, the looped video, the venv's size, and the rows with their verdicts. The benchmark
itself is run by hand (its docstring says how)."""

import json
from pathlib import Path

import pytest
from benchmark_module import REPO, load

bt = load("bench_targets")


def write_log(path: Path, latencies: list[float], fps: float = 60.0, bands: int = 2) -> None:
    with open(path, "w") as f:
        for seq, ms in enumerate(latencies):
            for band in range(bands):  # one line per band, the frame's latency on each
                f.write(json.dumps({"seq": seq, "t_capture": 100 + seq / fps, "band": band, "latency_ms": ms}) + "\n")


def test_latency_windows_leave_the_first_frame_out_and_compare_the_last_with_the_first(tmp_path):
    lat = [2000.0] + [10.0] * 1199 + [20.0] * 600  # 30 s at 60 fps: the last 10 s twice as slow
    write_log(tmp_path / "frames.jsonl", lat)
    r = bt.latency_over_time(tmp_path / "frames.jsonl", 10.0)
    assert r["frames"] == 1800 and r["first_frame_ms"] == 2000.0
    assert r["window_p99_ms"] == [10.0, 10.0, 20.0] and r["last_vs_first_p99"] == 2.0
    assert abs(r["fps"] - 60) < 0.1 and abs(r["behind_schedule_s"]) < 0.01
    assert r["latency_ms"]["p50"] == 10.0 and r["parts_ms_p50"] == {}


def test_a_pipeline_slower_than_the_source_is_seen_behind_its_schedule(tmp_path):
    write_log(tmp_path / "frames.jsonl", [10.0] * 300, fps=30.0, bands=1)  # read at 30 of the 60 fps
    r = bt.latency_over_time(tmp_path / "frames.jsonl", 60.0)
    assert abs(r["fps"] - 30) < 0.1 and abs(r["behind_schedule_s"] - 299 / 60) < 0.01
    assert len(r["window_p99_ms"]) == 1 and r["last_vs_first_p99"] is None


def test_venv_size_names_the_largest_packages(tmp_path):
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for name, kb in (("big", 300), ("small", 20), ("mid", 100)):
        (site / name).mkdir(parents=True)
        (site / name / "blob").write_bytes(b"x" * kb * 1024)
    size = bt.venv_size(tmp_path / "venv")
    assert list(size["largest_mb"]) == ["big", "mid", "small"]
    assert size["venv_mb"] >= size["site_packages_mb"] >= 0.4
    row = bt.venv_row(size)
    assert row["verdict"] == "measured" and row["measured"] == size["venv_mb"]
    assert bt.venv_row(None)["verdict"] == "not measured"


def bench_json(pipeline_fps: float, invoke_fps: float, threads: int = 2) -> dict:
    stage = {"thread": "capture", "cpu_ms_p50": 1.5, "cpu_ms_mean": 1.6, "wall_ms_p50": 1.7, "frames": 10}
    budget = {
        "frames": 10,
        "stages": {"decode": stage, "invoke": {**stage, "thread": "inference", "cpu_ms_p50": 9.0}},
        "outside_model_cpu_ms": {"p50": 1.5, "mean": 1.6},
        "thread_cpu_ms_mean": {"capture": 1.6, "inference": 9.1},
    }
    run = {"threads": threads, "pipeline_fps": pipeline_fps, "invoke_fps": invoke_fps, "budget": budget}
    run["pipeline_vs_invoke"] = round(pipeline_fps / invoke_fps, 3)
    return {"device": {"physical_cores": 2}, "runs": [run], "peak_rss_mb": 160.0}


def test_rows_give_each_target_its_verdict():
    runs = [{"summary": {"fps": 88.0}, "launch_to_first_s": 0.7, "peak_rss_mb": 120.0}]
    rows = bt.speed_rows("1280x720 MJPEG", bench_json(90.0, 100.0), 80.0, "2 threads", 2, runs)
    assert [r["verdict"] for r in rows] == ["met (+12 %)", "met (+6 %)", "met (+25 %)"]
    assert "decode 1.5" in rows[0]["detail"] and "[88.0] fps" in rows[0]["detail"]
    (full_hd,) = bt.speed_rows("1920x1080 MJPEG", bench_json(30.0, 100.0), 60.0, "2 threads", 2)
    assert full_hd["verdict"] == "missed (-50 %)" and full_hd["goal"] == ">= 60 fps"
    assert bt.memory_row(runs, 30, None, bench_json(1, 1))["verdict"] == "met (+20 %)"
    assert [r["verdict"] for r in bt.soak_rows(None, 10.0)] == ["not measured"] * 3


def test_the_default_thread_count_is_judged_against_the_best_one():
    one, two = bench_json(50.0, 70.0, threads=1), bench_json(45.0, 120.0, threads=2)
    both = {**two, "runs": [*one["runs"], *two["runs"]]}
    at_two = bt.thread_row("1280x720 MJPEG", both, 2)
    assert at_two["measured"] == 0.9 and at_two["verdict"].startswith("missed")
    assert "1: 50.0, 2: 45.0; the most at 1" in at_two["detail"]
    assert bt.thread_row("1280x720 MJPEG", both, 1)["verdict"] == "met (+3 %)"
    (row,) = bt.speed_rows("1920x1080 MJPEG", both, 60.0, "1 thread", 1)
    assert row["measured"] == 50.0  # the default count's run


def test_the_readme_table_replaces_only_what_lies_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{bt.README_BEGIN}\nold table\n{bt.README_END}\nafter\n")
    device = {"cpu": "AMD EPYC", "physical_cores": 2, "int8_features": ["avx2", "avx512_vnni"]}
    rows = bt.speed_rows("1920x1080 MJPEG", bench_json(30.0, 100.0), 60.0, "2 threads", 2)
    bt.write_readme(readme, bt.readme_block(device, {"start": [0.5], "end": [0.7]}, rows, "bench_targets.py --x"))
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("after\n")
    assert "AMD EPYC" in text and "avx512_vnni" in text and "| 1920x1080 MJPEG: end-to-end fps" in text
    assert "missed (-50 %)" in text and "bench_targets.py --x" in text
    readme.write_text("no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        bt.write_readme(readme, "table")


def test_soak_rows_judge_a_live_soak_and_name_its_dropped_frames(tmp_path):
    write_log(tmp_path / "frames.jsonl", [30.0] * 900 + [40.0] * 900)
    latency = bt.latency_over_time(tmp_path / "frames.jsonl", 10.0)
    memory = {"warmup_s": 5.0, "after_warmup": 140.0, "end": 141.0, "growth": 1.0, "trend": 0.1}
    soaked = {"latency": latency, "memory": memory, "peak_rss_mb": 145.0, "summary": {"threads": 2, "dropped_frames": 7}}
    p99, growth, rss = bt.soak_rows(soaked, 0.5)
    assert p99["target"].startswith("60 fps live 1280x720 MJPEG") and p99["measured"] == 40.0
    assert p99["verdict"].startswith("missed") and "7 frames dropped as a capture card drops them" in p99["detail"]
    assert growth["measured"] == round(40.0 / 30.0, 3) and rss["verdict"].startswith("met")


def test_a_saved_report_writes_the_readme_table_without_measuring(tmp_path, capsys):
    rows = [{"target": "peak RSS", "goal": "<= 150 MB", "measured": 146.9, "unit": "MB", "verdict": "met (+2 %)", "detail": "d"}]
    device = {"cpu": "AMD EPYC", "physical_cores": 2, "int8_features": ["avx2"]}
    report = {"device": device, "load_average": {"start": [1.0], "end": [2.0]}, "targets": rows, "command": "python x --y"}
    (tmp_path / "targets.json").write_text(json.dumps(report))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bt.README_BEGIN}\nold table\n{bt.README_END}\nrest\n")
    assert bt.main(["--from-json", str(tmp_path / "targets.json"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "old table" not in text and "| peak RSS | <= 150 MB | 146.9 MB | met (+2 %) |" in text
    assert "by `python x --y`" in text and text.endswith(f"{bt.README_END}\nrest\n")
    assert "| peak RSS |" in capsys.readouterr().out


def test_children_keep_their_compiled_bytecode_in_the_work_folder(tmp_path, monkeypatch):
    """A cart's pip install compiles every module: a measured start must not compile tlf-edge's
    modules again because this shell sets PYTHONDONTWRITEBYTECODE."""
    import subprocess
    import sys

    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = bt.env(tmp_path)
    assert "PYTHONDONTWRITEBYTECODE" not in env and str(REPO) in env["PYTHONPATH"].split(":")
    code = "import edge.host, sys; print(edge.host.__file__, sys.dont_write_bytecode)"
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=tmp_path)
    source, dont_write = out.stdout.split()
    assert dont_write == "False" and Path(source) == REPO / "edge" / "host.py"
    cached = list((tmp_path / bt.PYCACHE).rglob("host.*.pyc"))
    assert [p.parent.name for p in cached] == ["edge"], cached


def test_live_latency_splits_each_frame_and_names_the_slowest(tmp_path):
    ll = load("live_latency")
    with open(tmp_path / "frames.jsonl", "w") as f:
        for seq in range(601):  # the first frame (it waits for the layout) is left out
            wait, infer, out = (900.0, 20.0, 5.0) if seq == 0 else (10.0, 20.0, 5.0 + 30.0 * (seq == 302))
            for band in range(2):
                f.write(json.dumps({"seq": seq, "band": band, "latency_ms": wait + infer + out, "wait_ms": wait,
                                    "infer_ms": infer}) + "\n")
    r = ll.parts(tmp_path / "frames.jsonl", slowest=2)
    assert r["frames"] == 600
    assert r["ms"]["wait"]["p50"] == 10.0 and r["ms"]["infer"]["p99"] == 20.0 and r["ms"]["output"]["p50"] == 5.0
    assert r["slowest"][0] == {"seq": 302, "latency": 65.0, "wait": 10.0, "infer": 20.0, "output": 35.0}
    assert r["slowest"][1]["latency"] == 35.0
