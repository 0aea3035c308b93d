"""The one /proc/cpuinfo parser and what is read from it, on an x86 and an ARM file."""

from edge import host

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
physical id\t: 0
core id\t\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni

processor\t: 1
physical id\t: 0
core id\t\t: 0
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni

processor\t: 2
physical id\t: 0
core id\t\t: 1
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse2 avx2 avx512_vnni
"""

ARM = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd asimddp crc32

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd asimddp crc32

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def test_x86_name_flags_and_cores(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(X86)
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(host, "usable_cpus", lambda: 3)
    assert len(host.cpuinfo()) == 3
    assert host.cpu_name() == "AMD EPYC 9B14"
    assert host.cpu_flags() == {"fpu", "sse2", "avx2", "avx512_vnni"}
    assert host.physical_cores() == 2  # two threads of core 0, one of core 1


def test_arm_board_model_and_features(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo").write_text(ARM)
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "cpuinfo")
    monkeypatch.setattr(host, "usable_cpus", lambda: 2)
    assert host.cpu_name() == "BCM2835"  # the first name key in the file, as `tlf-edge bench` reported it
    assert "asimddp" in host.cpu_flags()
    assert host.physical_cores() == 2  # no core ids: every usable CPU


def test_without_cpuinfo_the_platform_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(host, "CPUINFO", tmp_path / "missing")
    assert host.cpuinfo() == [] and host.cpu_flags() == set()
    assert host.cpu_name()
    assert host.physical_cores() == max(1, host.usable_cpus())
