"""The test vectors, and the C device decoder against them and against the Python decoder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.device import DEFAULT_MAX_PAYLOAD, decode_stream
from firmware_bridge.framing import DELIMITER, frame
from firmware_bridge.masks import boundaries_from_labels, encode_mask, labels_for_display
from firmware_bridge.messages import Encoding, Heartbeat, Hello, Mask, Measurement, Status
from firmware_bridge.synthetic import band_labels
from firmware_bridge.vectors import VECTOR_DIR, build_vectors, display_size

C_DIR = Path(__file__).resolve().parents[1] / "firmware_bridge" / "c"
VECTORS = sorted(p.stem for p in VECTOR_DIR.glob("*.bin"))


@pytest.fixture(scope="module")
def c_decoder(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH to build the C decoder")
    exe = tmp_path_factory.mktemp("c_decoder") / "tlf_decode"
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", f"-DTLF_MAX_PAYLOAD={DEFAULT_MAX_PAYLOAD}",
           str(C_DIR / "tlf_display.c"), str(C_DIR / "tlf_decode_main.c"), "-o", str(exe), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"compiling the C decoder failed:\n{done.stderr}"
    return exe


def test_c_decoder_builds_for_small_devices(c_decoder, tmp_path):
    """Without label-map storage and with a small buffer (about 2 KB of RAM), still warning-free."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    cmd = [cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wstrict-prototypes", "-Os",
           "-DTLF_LABEL_MAPS=0", "-DTLF_MAX_PAYLOAD=400", "-c", str(C_DIR / "tlf_display.c"), "-o", str(tmp_path / "t.o")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def run_c(exe: Path, data: bytes, width: int, height: int) -> str:
    done = subprocess.run([str(exe), str(width), str(height)], input=data, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def test_vectors_exist_and_match_their_generator():
    built = build_vectors()
    assert sorted(built) == VECTORS and len(VECTORS) >= 5
    for name, (data, expected) in built.items():
        assert (VECTOR_DIR / f"{name}.bin").read_bytes() == data, f"{name}.bin is stale: python -m firmware_bridge.vectors"
        assert (VECTOR_DIR / f"{name}.expected").read_text() == expected, f"{name}.expected is stale"


@pytest.mark.parametrize("name", VECTORS)
def test_python_decoder_passes_vector(name):
    expected = (VECTOR_DIR / f"{name}.expected").read_text()
    w, h, max_payload = display_size(expected)
    assert decode_stream((VECTOR_DIR / f"{name}.bin").read_bytes(), w, h, max_payload) == expected


@pytest.mark.parametrize("name", VECTORS)
def test_c_decoder_passes_vector(c_decoder, name):
    expected = (VECTOR_DIR / f"{name}.expected").read_text()
    w, h, max_payload = display_size(expected)
    assert max_payload == DEFAULT_MAX_PAYLOAD
    assert run_c(c_decoder, (VECTOR_DIR / f"{name}.bin").read_bytes(), w, h) == expected


def test_vectors_cover_every_message_encoding_and_drop():
    text = "".join((VECTOR_DIR / f"{n}.expected").read_text() for n in VECTORS)
    for needle in ("HELLO ", "MEASUREMENT ", "STATUS ", "HEARTBEAT ", "IGNORED ", "enc=NONE", "enc=BOUNDS16",
                   "enc=BOUNDS_DELTA", "enc=RLE", "enc=LABELS2", "DROP truncated", "DROP overlong", "DROP crc",
                   "DROP version", "DROP type", "DROP malformed", "reject=4"):
        assert needle in text, needle


def test_c_side_crc_and_frames_match_python(c_decoder):
    from firmware_bridge.messages import DeviceInfo, Reject

    out = subprocess.run([str(c_decoder), "--selftest"], capture_output=True, text=True, timeout=30).stdout.split("\n")
    assert out[0] == "CRC 0xcbf43926"
    info = DeviceInfo(1, 320, 240, 0b11111, 60, DEFAULT_MAX_PAYLOAD, 0x01020304, 0x00010203)
    assert out[1] == "DEVICE_INFO " + (DELIMITER + frame(info.TYPE, 0, 1000, info.pack())).hex()
    rej = Reject(2, 1, 0x55, 7, 1)
    assert out[2] == "REJECT " + (DELIMITER + frame(rej.TYPE, 1, 2000, rej.pack())).hex()
    big = bytes((i % 256) if i % 7 else 0 for i in range(300))
    assert out[3] == "FRAME " + (DELIMITER + frame(0x12, 9, 3000, big)).hex()


def _valid_frames():
    labels = band_labels(48, 64, phase=0.3)
    top, bottom = boundaries_from_labels(labels, 1, 32, 24)
    small = labels_for_display(labels, 32, 24)
    msgs = [Hello(nonce=9), Measurement(2.5, 0.5, float("nan"), 3, True, 7, 8), Status(2, 0, "frozen"), Heartbeat(1, 2, 3)]
    for enc in Encoding:
        data = encode_mask(enc, top=top, bottom=bottom, labels=small, height=24)
        msgs.append(Mask(5, 32, 24, enc, data))
    return [frame(m.TYPE, i, 100 * i, m.pack()) for i, m in enumerate(msgs)]


VALID = _valid_frames()
pieces = st.one_of(st.binary(max_size=40), st.sampled_from(VALID),
                   st.sampled_from(VALID).flatmap(lambda f: st.integers(1, len(f) - 1).map(lambda k: f[:k])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=12), st.booleans())
def test_c_and_python_decode_any_stream_identically(c_decoder, parts, lead):
    """Noise, whole frames and cut frames in any order: both decoders print the same decoding."""
    data = (DELIMITER if lead else b"") + b"".join(parts)
    assert run_c(c_decoder, data, 32, 24) == decode_stream(data, 32, 24)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=5000))
def test_noise_never_crashes_the_c_decoder_and_a_valid_frame_follows(c_decoder, noise):
    data = noise + DELIMITER + VALID[1]
    out = run_c(c_decoder, data, 32, 24)
    assert out == decode_stream(data, 32, 24)
    assert out.splitlines()[-2].startswith("MEASUREMENT seq=1 ")
