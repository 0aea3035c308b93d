"""edge/sinks/systemd.py against a real AF_UNIX datagram socket standing in for systemd's notify socket,
and `tlf-edge run` sending READY=1, WATCHDOG=1 and STOPPING=1 to it."""

import math
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from edge.sinks import systemd
from edge.frame import Frame, Measurement
from edge.runtime.pipeline import Pipeline
from edge.model.segmenter import Segmenter, SegmenterOptions
from edge.sources.base import Source

REPO = Path(__file__).resolve().parents[1]


class Listener:
    """systemd's side: a datagram socket bound at `address`, read by a thread as messages come."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self.cond = threading.Condition()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            with self.cond:
                self.messages.append(data.decode())
                self.cond.notify_all()

    def take(self, n: int = 1, timeout: float = 5.0) -> list[str]:
        """Wait until at least `n` messages arrived (at most `timeout` s); return and forget them all."""
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= n, timeout)
            out, self.messages = self.messages, []
        return out

    def close(self):
        self.done.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener(tmp_path):
    """A listener on a filesystem path: (listener, env for the notifier)."""
    path = str(tmp_path / "notify")
    lst = Listener(path)
    yield lst, {"NOTIFY_SOCKET": path}
    lst.close()


def measurement(seq=0, thickness=2.5, flags=0):
    return Measurement(seq=seq, t_capture=0.0, thickness=thickness, spread=0.1, unit="mm", flags=flags,
                       columns=10, latency_s=0.01, extra={"filtered": thickness})


def test_each_message_is_one_datagram_on_a_path_socket(listener):
    s, env = listener
    assert systemd.ready("loading done", env)
    assert systemd.watchdog(env=env)
    assert systemd.status("frame 3\nTLF 2.50 mm", env)
    assert systemd.stopping(env)
    assert s.take(4) == ["READY=1\nSTATUS=loading done", "WATCHDOG=1", "STATUS=frame 3 TLF 2.50 mm", "STOPPING=1"]


def test_abstract_namespace_socket_written_with_at():
    name = f"tlf-edge-test-{os.getpid()}-{uuid.uuid4().hex}"
    s = Listener("\0" + name)
    try:
        assert systemd.ready(env={"NOTIFY_SOCKET": "@" + name})
        assert s.take(1) == ["READY=1"]
    finally:
        s.close()


@pytest.mark.parametrize("value", [None, "", "relative/path", "vsock:2:1234"])
def test_without_a_usable_socket_nothing_is_sent_and_nothing_raises(value):
    env = {} if value is None else {"NOTIFY_SOCKET": value}
    assert systemd.notify_address(env) is None
    assert systemd.ready(env=env) is False and systemd.watchdog(env=env) is False


def test_a_socket_nobody_listens_on_is_false_not_an_error(tmp_path):
    env = {"NOTIFY_SOCKET": str(tmp_path / "gone")}
    assert systemd.ready(env=env) is False and systemd.stopping(env) is False


def test_a_receiver_that_does_not_read_never_blocks_the_sender(tmp_path):
    path = str(tmp_path / "busy")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)  # nobody reads: the queue fills up (net.unix.max_dgram_qlen, often 10)
        sent = [systemd.watchdog(env={"NOTIFY_SOCKET": path}) for _ in range(2000)]
    assert sent[0] and not all(sent)  # the later ones are dropped, not waited for


@pytest.mark.parametrize("env, expected", [
    ({"WATCHDOG_USEC": "15000000"}, 15.0),
    ({"WATCHDOG_USEC": "15000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
    ({"WATCHDOG_USEC": "15000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_from_the_environment(env, expected):
    assert systemd.watchdog_interval(env) == expected


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_sink_sends_ready_once_then_pings_at_a_third_of_the_interval(listener):
    s, env = listener
    clock = FakeClock()
    sink = systemd.NotifySink({**env, "WATCHDOG_USEC": "3000000"}, clock=clock)
    assert sink.period == pytest.approx(1.0)
    sink.write(measurement(0), None)
    assert s.take(1) == ["READY=1\nSTATUS=measuring: frame 0, TLF 2.50 mm [ok]"]
    clock.t += 0.5
    sink.write(measurement(1), None)  # too soon after READY=1: nothing
    clock.t += 0.6
    sink.write(measurement(2, thickness=math.nan, flags=1), None)
    msgs = s.take(1)
    assert len(msgs) == 1 and msgs[0].startswith("WATCHDOG=1\nSTATUS=measuring: frame 2, TLF -- [")
    assert sink.is_ready and sink.pings == 1


def test_a_capture_outage_keeps_the_watchdog_fed_by_its_no_signal_reports(listener):
    from edge.sinks.base import NO_SIGNAL, RUNNING

    s, env = listener
    clock = FakeClock()
    sink = systemd.NotifySink({**env, "WATCHDOG_USEC": "3000000"}, clock=clock)
    sink.status(NO_SIGNAL, "capture lost")  # before READY=1: nothing (start-up has its own timeout)
    sink.write(measurement(0), None)
    assert s.take(1)[0].startswith("READY=1")
    clock.t += 1.1
    sink.status(NO_SIGNAL, "capture lost, retry in 0.4 s")
    assert s.take(1) == ["WATCHDOG=1\nSTATUS=no signal: capture lost, retry in 0.4 s"]
    clock.t += 1.1
    sink.status(RUNNING, "capture back")  # only NO_SIGNAL reports prove the retrying loop lives
    assert s.take(1, timeout=0.3) == [] and sink.pings == 1


def test_status_text_prefers_the_filtered_thickness():
    assert systemd.describe(measurement(5, 2.5)) == "measuring: frame 5, TLF 2.50 mm [ok]"
    unfiltered = Measurement(seq=6, t_capture=0.0, thickness=2.4, spread=0.1, unit="mm", flags=0, columns=10,
                             latency_s=0.01, extra={"filtered": math.nan})
    assert systemd.describe(unfiltered) == "measuring: frame 6, TLF 2.40 mm (unfiltered) [ok]"
    assert systemd.describe(measurement(7, math.nan)).startswith("measuring: frame 7, TLF -- [")


def test_sink_outside_systemd_does_nothing():
    sink = systemd.NotifySink({})
    assert not sink.enabled
    sink.write(measurement(), None)
    assert not sink.is_ready


class StallingSource(Source):
    """A few phantom frames, then read() blocks until released: a capture card that hangs."""

    def __init__(self, n):
        from edge.sim import phantom

        self.scans = list(phantom.clip(3, frames=n, shape=(128, 128)))
        self.i = 0
        self.stalled = threading.Event()
        self.release = threading.Event()

    def read(self):
        if self.i == len(self.scans):
            self.stalled.set()
            self.release.wait(300)  # released by the test; the timeout only guards a hang
            return None
        s = self.scans[self.i]
        self.i += 1
        return Frame(s.image, float(self.i), self.i - 1, spacing_mm=s.spacing_mm)


def test_pings_stop_while_the_pipeline_stalls(listener):
    s, env = listener
    sink = systemd.NotifySink({**env, "WATCHDOG_USEC": "1"})  # period ~0: a ping per measurement
    source = StallingSource(4)
    pipeline = Pipeline(source, Segmenter.create(SegmenterOptions(num_threads=1)), [sink])
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("stats", pipeline.run()))
    worker.start()
    try:
        assert source.stalled.wait(60)
        before = s.take(4, timeout=30)  # the last measurements may still be on their way to the sink
        assert len(before) == 4, before
        assert before[0].startswith("READY=1") and all(m.startswith("WATCHDOG=1") for m in before[1:])
        assert s.take(1, timeout=0.5) == []  # stalled: no frame, no measurement, no ping
    finally:
        source.release.set()
        worker.join(120)
    assert result["stats"].frames == 4


def test_tlf_edge_run_sends_ready_watchdog_and_stopping(listener, tmp_path):
    s, env = listener
    # A watchdog of 0.3 s makes the output thread ping every 0.1 s of a short phantom run.
    full_env = {**os.environ, **env, "WATCHDOG_USEC": "300000",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    full_env.pop("WATCHDOG_PID", None)
    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run(
        [sys.executable, "-c", code, "run", "--frames", "30", "--quiet", "--display", "none",
         "--source", "phantom://clip?seed=3&frames=30&size=256x256", "--out", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=180, cwd=tmp_path, env=full_env)
    assert r.returncode == 0, r.stderr
    msgs = s.take(3)
    kinds = [m.splitlines()[0] for m in msgs]
    assert kinds[0] == "READY=1", msgs
    assert "WATCHDOG=1" in kinds
    assert kinds[-1] == "STOPPING=1"
    assert kinds.index("WATCHDOG=1") > 0  # no ping before the service said it is ready
