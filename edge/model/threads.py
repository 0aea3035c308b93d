"""How many LiteRT threads `tlf-edge run` uses when the config leaves it to the machine
(`[model] num_threads = 0`, no `--threads`).

Which count gives the most frames end to end depends on the CPU more than on its cores. The
interpreter shares the cores with the pipeline's capture and output threads: where invoke is
quick, a second interpreter thread takes the core those threads need; where invoke is slow,
that core sits idle beside a single interpreter thread (docs/performance.md has both cases on
2-core machines). `tlf-edge bench` measures it end to end and records its answer in bench.json
("best_threads"). A run takes that answer from `<data_dir>/bench/bench.json` (where `tlf-edge bench`
writes it when run in the data folder) when the file was measured on this CPU (its name,
architecture, physical cores and int8 instruction sets, and the LiteRT version) with this model and compared more than
one thread count; otherwise the physical cores but one (`default_threads`). The run's log and
summary say which, and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edge.host import device_identity, installed_version, physical_cores

BENCH_FILE = Path("bench") / "bench.json"  # under [storage] data_dir: `tlf-edge bench`'s default --out


def default_threads() -> int:
    """LiteRT threads when none are set and nothing was measured: the physical cores but one, at
    least one (the pipeline's capture and output threads need a core beside the interpreter's)."""
    return max(1, physical_cores() - 1)


@dataclass(frozen=True)
class ThreadChoice:
    """A thread count and why it was chosen (one line for the log and the run summary)."""

    threads: int
    why: str


def choose_threads(num_threads: int, bench_json: Path | None, model_sha256: str) -> ThreadChoice:
    """The run's LiteRT threads: `num_threads` when set (above 0), else the count bench_json
    measured best for this model on this machine, else the physical cores but one."""
    if num_threads > 0:
        return ThreadChoice(num_threads, "set by [model] num_threads or --threads")
    fallback = default_threads()
    if bench_json is None:
        return ThreadChoice(fallback, "the physical cores but one")
    measured, why_not = _measured(bench_json, model_sha256)
    if measured is None:
        return ThreadChoice(fallback, f"the physical cores but one ({why_not})")
    return measured


def _measured(path: Path, model_sha256: str) -> tuple[ThreadChoice | None, str]:
    """The choice `tlf-edge bench` recorded in `path`, or None and why it does not apply here."""
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        return None, f"no tlf-edge bench measurement in {path}"
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"{path} cannot be read: {e}"
    if not isinstance(report, dict):
        return None, f"{path} is not a tlf-edge bench report"
    device = report.get("device")
    best = report.get("best_threads")
    runs = report.get("runs")
    if not isinstance(device, dict) or not isinstance(best, dict) or not isinstance(runs, list):
        return None, f"{path} is not a tlf-edge bench report"
    here = {**device_identity(), "ai_edge_litert": installed_version("ai-edge-litert")}
    differs = [key for key, value in here.items() if device.get(key) != value]
    if differs:
        return None, f"{path} was measured on another machine ({', '.join(differs)} differ)"
    if report.get("model_sha256") != model_sha256:
        return None, f"{path} was measured with another model"
    rates = {r.get("threads"): r.get("pipeline_fps") for r in runs if isinstance(r, dict)}
    threads = best.get("threads")
    if len(rates) < 2:
        return None, f"{path} measured one thread count only"
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1 or threads not in rates:
        return None, f"{path} names no measured thread count"
    others = ", ".join(f"{rates[t]} at {t}" for t in sorted(rates, key=str) if t != threads)
    when = f" on {report['measured_at']}" if isinstance(report.get("measured_at"), str) else ""
    return ThreadChoice(
        threads, f"measured best by tlf-edge bench{when}: {rates[threads]} fps end to end, against {others}"
    ), ""
