import json

from edge.bench import STAGES, run_bench


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
        assert r["capture_to_display_ms"]["p50"] > 0
        assert r["accuracy"]["frames"] == 4 and 0 <= r["accuracy"]["mean_iou"] <= 1
    md = (tmp_path / "bench.md").read_text()
    assert "| threads |" in md and md.count("\n| 1 |") == 1 and md.count("\n| 2 |") == 1
    assert (tmp_path / "latency_hist.png").stat().st_size > 1000
