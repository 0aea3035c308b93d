"""Issue #8, point 5: no network listener, no pickle, Keras files loaded in safe mode.

The source checks read every Python file of the repository (not .venv, build/ or caches). The
runtime check starts `tlf-edge run` on a long phantom clip, waits for its READY=1 (the pipeline
is measuring: every socket it will open is open), and looks up each socket the process holds in
/proc/net: no TCP, UDP or raw socket at all, no listening Unix socket.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".venv", "venv", "build", "dist", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "runs",
             "site-packages", "node_modules"}
THIS = Path(__file__).resolve()

# Code that can run whatever a file or a string holds.
FORBIDDEN = {
    "pickle (or a pickle-based loader)": re.compile(r"\b(c?pickle|dill|joblib|shelve|marshal)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "safe_mode=False": re.compile(r"safe_mode\s*=\s*False"),
    "eval()": re.compile(r"(?<![\w.])eval\s*\("),
    "exec()": re.compile(r"(?<![\w.])exec\s*\("),
    "yaml.load() (use yaml.safe_load)": re.compile(r"\byaml\.(unsafe_)?load\s*\("),
    "torch.load()": re.compile(r"\btorch\.load\s*\("),
}
# Modules that serve: the runtime and the bridge must never import them.
SERVER = re.compile(r"\b(socketserver|http\.server|xmlrpc\.server|asyncio\.start_(unix_)?server|\.listen\s*\(|"
                    r"\.bind\s*\(|flask|fastapi|aiohttp|websockets?)\b")


def python_files():
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            path = Path(root, name)
            if name.endswith(".py") and path.resolve() != THIS:
                yield path


def test_the_walk_sees_the_packages():
    rel = {p.relative_to(REPO).as_posix() for p in python_files()}
    assert {"edge/cli.py", "convert/quantize.py", "firmware_bridge/link.py"} <= rel


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_code_that_runs_what_a_file_holds(what):
    hits = []
    for path in python_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if FORBIDDEN[what].search(line.split("#", 1)[0]):
                hits.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not hits, f"{what}:\n" + "\n".join(hits)


def test_no_pickled_files_in_the_repository():
    found = [str(p.relative_to(REPO)) for p in REPO.rglob("*")
             if p.suffix in (".pkl", ".pickle", ".joblib", ".npy", ".npz")
             and not (set(p.relative_to(REPO).parts) & SKIP_DIRS)]
    assert not found


def call_text(text: str, start: int) -> str:
    """The text of the call whose '(' is at `start`, up to its matching ')'."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    return text[start:]


def test_every_keras_load_is_in_safe_mode():
    calls = []
    for path in python_files():
        text = path.read_text(errors="replace")
        for m in re.finditer(r"\b(load_model|load_weights|model_from_json|deserialize_keras_object)\s*\(", text):
            args = call_text(text, m.end() - 1)
            if m.group(1) == "load_model":
                calls.append(path)
                # safe mode, or off only by the user's explicit --trust-code (see the test below)
                assert re.search(r"safe_mode\s*=\s*(True|not trust_code)\b", args), \
                    f"{path.relative_to(REPO)}: {m.group(0)}{args[1:]}"
    assert calls, "no keras load_model call found: has the converter moved?"


def test_only_the_users_flag_turns_safe_mode_off():
    """trust_code defaults to False wherever it is a parameter, and product code sets it only from
    the --trust-code flag."""
    for path in python_files():
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("tests/"):
            continue
        text = path.read_text(errors="replace")
        for m in re.finditer(r"trust_code\s*(:[^=,)]*)?=\s*([^,)\n]+)", text):
            value = m.group(2).strip()
            assert value in ("False", "trust_code", "args.trust_code", "not trust_code"), f"{rel}: {m.group(0)}"


def test_runtime_and_bridge_open_no_server():
    hits = []
    for path in python_files():
        rel = path.relative_to(REPO).as_posix()
        if not rel.startswith(("edge/", "firmware_bridge/")):
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SERVER.search(line.split("#", 1)[0]):
                hits.append(f"{rel}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)


def socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def proc_net(kind: str) -> dict[str, str]:
    """inode -> the /proc/net/<kind> line of each socket of that kind."""
    path = Path("/proc/net") / kind
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()[1:]
    col = 9 if kind not in ("unix",) else 6
    return {line.split()[col]: line for line in lines if len(line.split()) > col}


NETWORK_KINDS = ("tcp", "tcp6", "udp", "udp6", "udplite", "udplite6", "raw", "raw6")


def network_sockets(pid: int) -> tuple[list[str], list[str]]:
    """(the TCP/UDP/raw sockets, the listening Unix sockets) that process `pid` holds."""
    held = socket_inodes(pid)
    inet = [f"{kind}: {line}" for kind in NETWORK_KINDS for i, line in proc_net(kind).items() if i in held]
    unix = proc_net("unix")
    listening = [unix[i] for i in held if i in unix and int(unix[i].split()[3], 16) & 0x10000]  # __SO_ACCEPTCON
    return inet, listening


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_the_socket_lookup_finds_a_listener(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        unix.bind(str(tmp_path / "s"))
        unix.listen()
        inet, listening = network_sockets(os.getpid())
    assert len(inet) >= 1 and len(listening) >= 1


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_a_running_tlf_edge_has_no_network_socket_and_no_listener(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(240)
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    code = "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "run", "--quiet", "--source", "phantom://clip?seed=4&frames=100000&size=256x256",
         "--out", str(tmp_path / "runs")],  # the emulated display (a pseudo-terminal) included
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        while not notify.recv(4096).startswith(b"READY=1"):
            pass
        inet, listening = network_sockets(proc.pid)
        assert not inet, inet
        assert not listening, listening
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        notify.close()
    assert proc.returncode == 0, err  # SIGTERM is an orderly stop: summary written, exit 0
    assert "tlf-edge run summary" in out
