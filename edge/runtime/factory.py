"""Components the runtime builds from what the user names: the source from its URL, and from the
validated config the segmenter, the display and every output of a run.

Each config section is its component's own options ([model] is edge.model.segmenter's
SegmenterOptions, [display] the DisplayOptions below the config, and so on); nothing is copied
anywhere else on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import logs, sources
from edge.sources.base import DEFAULT_MAX_PIXELS, Source, split_url

log = logs.get(__name__)

if TYPE_CHECKING:
    from edge.model.segmenter import Segmenter
    from edge.runtime.config import Config, DisplayOptions
    from edge.sinks.base import Sink
    from edge.sinks.display import DisplaySink
    from edge.sinks.scoring import ScoringSink


def open_source(url: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Source:
    """Build the source named by `url` (not yet opened): a scanner source (edge.sources.open_source
    lists them) or the built-in phantom scanner, whose simulator is loaded only when it is asked for:

    phantom://clip?seed=7&frames=90&fps=30&size=400x400&preset=default  the built-in phantom
    phantom://screen?seed=7&frames=90&size=1280x720&depth=40,50&change_at=45  its whole screen

    SourceError (one line) for anything malformed.
    """
    parts = split_url(url)
    if parts.scheme.lower() == "phantom":
        from edge.sim.source import open_phantom

        return open_phantom(parts, max_pixels)
    return sources.open_source(url, max_pixels)


@dataclass
class Display:
    """The display output of a run: the sink (None for "none") and, for "emulate", the emulator
    on a pseudo-terminal it talks to (stop it when the run ends)."""

    sink: DisplaySink | None = None
    emulator: Any = None  # firmware_bridge.emulator.DisplayEmulator, started

    def stop(self) -> None:
        if self.emulator is not None:
            self.emulator.stop()


def open_display(options: DisplayOptions, segmenter: Segmenter, simulated: bool) -> Display:
    """The [display] output: "none", "emulate" (the emulator started on a pseudo-terminal) or a
    serial port, claimed here so that a port another program holds is refused before the run."""
    from edge.sinks.display import DisplaySink

    bundle = segmenter.bundle
    if not options.enabled or options.url == "none":
        return Display()
    if options.url == "emulate":
        from firmware_bridge.emulator import DisplayEmulator

        emulator = DisplayEmulator().start()
        assert emulator.port is not None  # start() opened its pty
        return Display(DisplaySink(emulator.port, bundle.model_id, options.baud, bundle.tlf_class, simulated), emulator)
    sink = DisplaySink(options.url, bundle.model_id, options.baud, bundle.tlf_class, simulated)
    sink.claim()
    return Display(sink)


@dataclass
class Outputs:
    """Every output of a run, in the order they are written; `scoring` is among them when the
    source knows the truth of its frames (the phantom scanner)."""

    sinks: list[Sink] = field(default_factory=list)
    scoring: ScoringSink | None = None


def build_outputs(
    cfg: Config,
    segmenter: Segmenter,
    source: Source,
    run_dir: Path,
    recording_root: Path,
    display: Display,
    console: bool,
) -> Outputs:
    """The outputs [log], [display], [recording] and [console] ask for, writing under `run_dir` and
    `recording_root`; systemd's notifications last, so they follow every other output."""
    from edge.sinks import systemd
    from edge.sinks.jsonl import JsonLinesLog

    bundle, simulated = segmenter.bundle, source.simulated
    out = Outputs()
    if cfg.log.jsonl:
        out.sinks.append(JsonLinesLog(run_dir / "frames.jsonl", bundle.sha256, simulated))
    if display.sink is not None:
        out.sinks.append(display.sink)
    if cfg.log.csv:
        from edge.sinks.csvlog import CsvLog

        out.sinks.append(CsvLog(run_dir / "frames.csv", bundle.sha256, simulated))
    if cfg.recording.enabled:
        from edge.sinks.recording import RecordingSink

        if cfg.recording.include_full_screen:
            log.warning("recordings hold the B-mode region only; include_full_screen is ignored")
        out.sinks.append(
            RecordingSink.in_folder(
                recording_root,
                fps=lambda: source.fps,
                tlf_class=bundle.tlf_class,
                min_free_bytes=int(cfg.recording.min_free_mb * 2**20),
                overlay=cfg.recording.overlay,
            )
        )
    if simulated:
        from edge.sinks.scoring import ScoringSink

        out.scoring = ScoringSink(source.truth, cfg.measurement, segmenter.spec, segmenter.classes)
        out.sinks.append(out.scoring)
    if console:
        from edge.sinks.console import ConsoleStatus

        out.sinks.append(ConsoleStatus(hz=cfg.console.hz, simulated=simulated))
    # Under systemd, READY=1 on the first measurement and WATCHDOG=1 while they flow
    # (edge/sinks/systemd.py); outside systemd it does nothing.
    out.sinks.append(systemd.NotifySink())
    return out
