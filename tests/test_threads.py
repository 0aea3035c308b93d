"""The run's LiteRT thread count when the config leaves it to the machine: what `tlf-edge bench`
measured best here, from a real bench report of the demo model, else the physical cores but one."""

import json
import shutil

import pytest

import edge.model.threads as threads_module
from edge.cli import main
from edge.model.bundle import DEMO_BUNDLE, load_bundle
from edge.model.threads import BENCH_FILE, choose_threads, default_threads
from edge.ops.bench import run_bench


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    run_bench(frames=3, threads=(1, 2), out=out, source="phantom://clip?seed=3&frames=6&size=256x256")
    return out / "bench.json"


@pytest.fixture(scope="module")
def sha():
    return load_bundle(DEMO_BUNDLE).sha256


def edited(bench_json, tmp_path, change):
    report = json.loads(bench_json.read_text())
    change(report)
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report))
    return path


def test_the_count_bench_measured_best_is_taken(bench_json, sha):
    report = json.loads(bench_json.read_text())
    best = report["best_threads"]["threads"]
    rates = {r["threads"]: r["pipeline_fps"] for r in report["runs"]}
    choice = choose_threads(0, bench_json, sha)
    assert choice.threads == best
    assert choice.why.startswith(f"measured best by tlf-edge bench on {report['measured_at']}: {rates[best]} fps")
    other = 3 - best
    assert f"against {rates[other]} at {other}" in choice.why


def test_a_count_set_wins_over_the_measurement(bench_json, sha):
    assert choose_threads(3, bench_json, sha).threads == 3
    assert choose_threads(3, bench_json, sha).why == "set by [model] num_threads or --threads"


@pytest.mark.parametrize(
    "change, why",
    [
        (lambda r: r["device"].update(cpu="another CPU"), "measured on another machine (cpu differ)"),
        (lambda r: r["device"].update(int8_features=["avx512_vnni"]), "(int8_features differ)"),
        (lambda r: r["device"].update(physical_cores=64), "(physical_cores differ)"),
        (lambda r: r["device"].update(ai_edge_litert="0.0.1"), "(ai_edge_litert differ)"),
        (lambda r: r.update(model_sha256="0" * 64), "measured with another model"),
        (lambda r: r.update(runs=r["runs"][:1]), "measured one thread count only"),
        (lambda r: r["best_threads"].update(threads=7), "names no measured thread count"),
        (lambda r: r["best_threads"].update(threads=True), "names no measured thread count"),
        (lambda r: r.pop("device"), "is not a tlf-edge bench report"),
    ],
)
def test_a_measurement_of_another_machine_or_model_is_not_used(bench_json, sha, tmp_path, change, why):
    choice = choose_threads(0, edited(bench_json, tmp_path, change), sha)
    assert choice.threads == default_threads()
    assert choice.why.startswith("the physical cores but one (") and why in choice.why


def test_a_missing_or_damaged_report_falls_back_to_the_core_rule(tmp_path, sha):
    missing = choose_threads(0, tmp_path / "bench.json", sha)
    assert missing.threads == default_threads() and "no tlf-edge bench measurement in" in missing.why
    (tmp_path / "bench.json").write_text('{"device": ')
    damaged = choose_threads(0, tmp_path / "bench.json", sha)
    assert damaged.threads == default_threads() and "cannot be read" in damaged.why
    (tmp_path / "bench.json").write_text("[1, 2]")
    assert "is not a tlf-edge bench report" in choose_threads(0, tmp_path / "bench.json", sha).why


def test_the_core_rule_leaves_a_core_to_the_pipeline(monkeypatch):
    for cores, threads in ((1, 1), (2, 1), (4, 3), (8, 7)):
        monkeypatch.setattr(threads_module, "physical_cores", lambda n=cores: n)
        assert default_threads() == threads


def run_summary(data, *extra):
    assert main(["run", "--source", "phantom://clip?frames=3", "--display", "none", "--quiet", *extra]) == 0
    run_dir = next((data / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    shutil.rmtree(data / "runs")
    return summary


def test_tlf_edge_run_takes_the_bench_of_its_data_folder(bench_json, tmp_path, monkeypatch, capsys):
    """`tlf-edge bench` run in the data folder (its default --out, bench/) is what a later
    `tlf-edge run` there takes; its summary says so."""
    monkeypatch.chdir(tmp_path)
    fallback = run_summary(tmp_path)
    assert fallback["threads"] == default_threads()
    assert fallback["threads_chosen_by"].startswith("the physical cores but one (no tlf-edge bench measurement")
    (tmp_path / BENCH_FILE).parent.mkdir()
    shutil.copy(bench_json, tmp_path / BENCH_FILE)
    best = json.loads(bench_json.read_text())["best_threads"]["threads"]
    capsys.readouterr()
    measured = run_summary(tmp_path)
    assert measured["threads"] == best and measured["threads_chosen_by"].startswith("measured best by tlf-edge bench")
    assert f"threads    {best} LiteRT thread(s): measured best by tlf-edge bench" in capsys.readouterr().out
    assert run_summary(tmp_path, "--threads", "1")["threads_chosen_by"] == "set by [model] num_threads or --threads"
