"""The deploy/ files: the systemd unit passes `systemd-analyze verify`, the udev rules parse and
name the devices the config example uses, the shell scripts pass shellcheck.

`systemd-analyze verify` insists that ExecStart's program exists and is executable, and on a test
machine /opt/tlf-edge/venv/bin/tlf-edge does not: the unit is verified as a copy whose ExecStart
runs this test environment's tlf-edge instead (the venv's console script, or
`python -m edge.cli` when the package is not installed), everything else unchanged.

The tools come from Debian packages (systemd, shellcheck); .ci/run installs them. A test skips
when its tool is missing only outside CI: with $CI set a missing tool is a failure.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "tlf-edge.service"
RULES = DEPLOY / "99-tlf-edge.rules"
EXAMPLE = DEPLOY / "tlf-edge.example.toml"
CART = DEPLOY / "tlf-edge.cart.toml"
SCRIPTS = [DEPLOY / "install.sh", DEPLOY / "arm64" / "build-and-run.sh"]
MAX_EXPOSURE = 2.0  # `systemd-analyze security`: 0 is locked down, 10 is wide open


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (.ci/run installs it with apt-get)")
        pytest.skip(f"{name} is not installed (apt-get install {'systemd' if name.startswith('systemd') else name})")
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    """'Section.Key' -> every value it is given, in order (a unit may repeat a key)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def this_tlf_edge() -> str:
    """The command line that runs this environment's tlf-edge."""
    script = Path(sys.executable).parent / "tlf-edge"
    if script.exists():
        return str(script)
    return f"{sys.executable} -m edge.cli"


def unit_for_verify(tmp_path: Path) -> Path:
    text = UNIT.read_text()
    exec_start = unit_settings(text)["Service.ExecStart"][0]
    program = shlex.split(exec_start)[0]
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(f"ExecStart={program} ", f"ExecStart={this_tlf_edge()} ", 1))
    assert copy.read_text() != text
    return copy


def test_systemd_analyze_verify_passes(tmp_path):
    analyze = tool("systemd-analyze")
    copy = unit_for_verify(tmp_path)
    r = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    # verify exits 0 on an unknown key or a bad value and only warns: any line about our unit fails.
    ours = [line for line in (r.stdout + r.stderr).splitlines() if str(copy) in line or "tlf-edge.service" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr


def test_unit_hardening_exposure_stays_low(tmp_path):
    analyze = tool("systemd-analyze")
    copy = unit_for_verify(tmp_path)
    r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager", str(copy)], capture_output=True, text=True,
                       timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
    if m is None:
        pytest.skip(f"this systemd-analyze has no offline security report: {(r.stdout + r.stderr).strip()[:200]}")
    assert float(m.group(1)) <= MAX_EXPOSURE, r.stdout


def test_unit_runs_the_service_the_way_the_installer_sets_it_up():
    s = unit_settings(UNIT.read_text())
    one = {k: v[-1] for k, v in s.items()}
    assert one["Service.Type"] == "notify" and one["Service.NotifyAccess"] == "main"
    assert int(one["Service.WatchdogSec"]) > 0 and one["Service.Restart"] == "on-failure"
    assert int(one["Service.RestartSec"]) > 0 and int(one["Unit.StartLimitBurst"]) > 0
    assert one["Service.ExecStart"].split()[:4] == ["/opt/tlf-edge/venv/bin/tlf-edge", "run", "--config",
                                                    "/etc/tlf-edge/tlf-edge.toml"]
    assert one["Service.User"] == "tlf-edge" and set(one["Service.SupplementaryGroups"].split()) == {"video", "dialout"}
    assert one["Service.DevicePolicy"] == "closed"
    allowed = {v.split()[0] for v in s["Service.DeviceAllow"]}
    assert {"char-video4linux", "char-ttyUSB", "char-ttyACM"} <= allowed
    assert one["Service.ProtectSystem"] == "strict" and one["Service.ProtectHome"] == "yes"
    assert one["Service.PrivateTmp"] == "yes" and one["Service.NoNewPrivileges"] == "yes"
    assert one["Service.StateDirectory"] == "tlf-edge" and "Service.ReadWritePaths" not in s
    assert one["Service.RestrictAddressFamilies"] == "AF_UNIX" and one["Service.IPAddressDeny"] == "any"
    installer = (DEPLOY / "install.sh").read_text()
    for path in ("/opt/tlf-edge", "/etc/tlf-edge", "/var/lib/tlf-edge", "tlf-edge.service", "99-tlf-edge.rules"):
        assert path in installer, path


# udev: `udevadm verify` (systemd 253 and later) when there is one, else this structural check.
MATCH_OPS, ASSIGN_OPS = ("==", "!="), ("=", "+=", "-=", ":=")
RULE_KEY = re.compile(r'\s*([A-Z_]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*$')
MATCH_KEYS = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
              "DRIVERS", "ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT"}
ASSIGN_KEYS = {"NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG", "RUN",
               "LABEL", "GOTO", "IMPORT", "OPTIONS"}


def rule_lines(text: str, commented: bool) -> list[str]:
    """The rules in `text`: the active ones, or (commented=True) the commented-out examples."""
    out = []
    for line in text.splitlines():
        if commented and re.match(r"#[A-Z]", line):
            out.append(line[1:])
        elif not commented and line.strip() and not line.lstrip().startswith("#"):
            out.append(line)
    return out


def parse_rule(line: str) -> list[tuple[str, str, str]]:
    """[(key, operator, value)] of one rule line; AssertionError naming what is malformed."""
    parts = re.findall(r'(?:[^,"]|"[^"]*")+', line)
    assert parts, line
    out = []
    for part in parts:
        m = RULE_KEY.fullmatch(part)
        assert m, f"not KEY<op>\"value\": {part!r} in {line!r}"
        key, _, op, value = m.groups()
        allowed = (MATCH_KEYS if op in MATCH_OPS else set()) | (ASSIGN_KEYS if op in ASSIGN_OPS else set())
        assert key in allowed, f"{key}{op} is not a udev rule key/operator pair, in {line!r}"
        out.append((key + (m.group(2) or ""), op, value))
    return out


def test_udev_rules_parse_and_name_the_two_devices():
    text = RULES.read_text()
    active, examples = rule_lines(text, False), rule_lines(text, True)
    assert len(active) == 2 and len(examples) >= 6
    links = {}
    for line in active + examples:
        rule = parse_rule(line)
        keys = {k for k, op, _ in rule if op in MATCH_OPS}
        assign = {k: v for k, op, v in rule if op in ASSIGN_OPS}
        assert "SUBSYSTEM" in keys and assign["MODE"] == "0660", line
        assert {"GROUP", "SYMLINK"} <= set(assign), line
        subsystem = next(v for k, op, v in rule if k == "SUBSYSTEM")
        links.setdefault(subsystem, set()).add((assign["SYMLINK"], assign["GROUP"]))
    assert links == {"video4linux": {("tlf-capture", "video")}, "tty": {("tlf-display", "dialout")}}
    # The placeholders match no device: an unedited file names nothing.
    for line in active:
        assert 'ATTRS{idVendor}=="vvvv"' in line and 'ATTRS{idProduct}=="pppp"' in line


def test_the_config_example_uses_the_udev_names():
    example = EXAMPLE.read_text()
    assert "v4l2:///dev/tlf-capture" in example and "/dev/tlf-display" in example


def test_the_installed_config_names_the_udev_devices_and_no_simulation():
    """install.sh installs tlf-edge.cart.toml as the service's config: it loads as a run's config
    (source and display named), names the devices the udev rules make, and is no phantom."""
    from edge.runtime.config import RUN_REQUIRED, load_config
    from edge.sources import open_source

    installer = (DEPLOY / "install.sh").read_text()
    assert '"$HERE/tlf-edge.cart.toml" "$CONFIG_DIR/tlf-edge.toml"' in installer
    cfg = load_config(CART, required=RUN_REQUIRED)
    assert cfg.source.url.startswith("v4l2:///dev/tlf-capture") and cfg.display.url == "/dev/tlf-display"
    assert not open_source(cfg.source.url).simulated
    assert cfg.storage.data_dir == "/var/lib/tlf-edge" and cfg.display.enabled


def test_udevadm_verify_when_available():
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm is not installed (the structural check above covers the rules)")
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip("this udevadm has no verify command (systemd < 253)")
    r = subprocess.run([udevadm, "verify", str(RULES)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse_and_are_strict(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert os.access(script, os.X_OK), f"{script} is not executable"
    r = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_are_shellcheck_clean(script):
    shellcheck = tool("shellcheck")
    r = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ci_installs_the_tools_before_make_test():
    run = (REPO / ".ci" / "run").read_text()
    assert "systemd" in run and "shellcheck" in run and "apt-get" in run
    assert run.rstrip().splitlines()[-1].strip() == "make test"
