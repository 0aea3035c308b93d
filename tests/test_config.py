import dataclasses
import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.runtime.config import RUN_REQUIRED, SECTIONS, Config, DisplayOptions, apply_overrides, load_config, tomllib
from edge.errors import ConfigError
from edge.measure.temporal import TemporalOptions
from edge.measure.thickness import ThicknessOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "tlf-edge.example.toml"


def write(tmp_path, text, name="tlf-edge.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def error(tmp_path, text, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


# The example file ------------------------------------------------------------------------------


def test_the_example_loads_to_exactly_the_defaults():
    assert load_config(EXAMPLE) == Config()


def test_the_example_sets_every_key_of_every_section():
    data = tomllib.loads(EXAMPLE.read_text())
    assert list(data) == ["version", *SECTIONS]
    for name, cls in SECTIONS.items():
        assert set(data[name]) == {f.name for f in dataclasses.fields(cls)}, name


def test_the_example_comments_every_key():
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+ = ", line):
            assert lines[i - 1].startswith("#"), line


# Loading ---------------------------------------------------------------------------------------


def test_no_file_gives_the_defaults():
    assert load_config() == Config()


def test_a_partial_file_keeps_the_other_defaults(tmp_path):
    c = load_config(write(tmp_path, 'version = 1\n[display]\nbaud = 921600\nurl = "/dev/ttyUSB0"\n'))
    assert c.display == DisplayOptions(url="/dev/ttyUSB0", baud=921600, enabled=True)
    assert dataclasses.replace(c, display=DisplayOptions()) == Config()


def test_sections_are_the_components_own_frozen_options(tmp_path):
    c = load_config(write(tmp_path, "version = 1\n[measurement]\nwindow = [0.3, 0.7]\n[temporal]\nk = 4\n"))
    assert isinstance(c.measurement, ThicknessOptions) and c.measurement.window == (0.3, 0.7)
    assert isinstance(c.temporal, TemporalOptions) and c.temporal.k == 4.0 and isinstance(c.temporal.k, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.display.baud = 1


def test_arrays_become_tuples(tmp_path):
    c = load_config(write(tmp_path, "version = 1\n[roi]\nrect = [10, 20, 300, 200]\n[calibration]\nspacing_mm = [0.1, 0.12]\n"))
    assert c.roi.rect == (10, 20, 300, 200) and c.calibration.spacing_mm == (0.1, 0.12)


# Misuse: one test per case ---------------------------------------------------------------------


def test_unknown_key_is_named(tmp_path):
    msg = error(tmp_path, "version = 1\n[display]\nbaudrate = 9600\n")
    assert msg == f"{tmp_path / 'tlf-edge.toml'}: [display] baudrate: unknown key (did you mean 'baud'?)"


def test_unknown_key_without_a_near_miss_lists_the_known_ones(tmp_path):
    msg = error(tmp_path, "version = 1\n[model]\ncolour = 3\n")
    assert msg.endswith("[model] colour: unknown key (known: bundle, num_threads)")


def test_wrong_type_is_named_with_the_value(tmp_path):
    msg = error(tmp_path, 'version = 1\n[display]\nbaud = "fast"\n')
    assert msg == f"{tmp_path / 'tlf-edge.toml'}: [display] baud: expected int, got 'fast'"


def test_a_bool_is_not_an_int(tmp_path):
    assert error(tmp_path, "version = 1\n[display]\nbaud = true\n").endswith("[display] baud: expected int, got True")


def test_an_int_is_not_a_bool(tmp_path):
    assert error(tmp_path, "version = 1\n[display]\nenabled = 1\n").endswith("[display] enabled: expected bool, got 1")


def test_a_float_is_not_an_int(tmp_path):
    assert error(tmp_path, "version = 1\n[model]\nnum_threads = 2.5\n").endswith("[model] num_threads: expected int, got 2.5")


def test_wrong_array_length_is_a_wrong_type(tmp_path):
    msg = error(tmp_path, "version = 1\n[measurement]\nwindow = [0.25]\n")
    assert msg.endswith("[measurement] window: expected array of 2 floats, got [0.25]")


def test_wrong_array_item_is_a_wrong_type(tmp_path):
    msg = error(tmp_path, 'version = 1\n[roi]\nrect = [1, 2, "w", 4]\n')
    assert msg.endswith("[roi] rect: expected array of ints, got [1, 2, 'w', 4]")


def test_out_of_range_value_is_named(tmp_path):
    msg = error(tmp_path, "version = 1\n[measurement]\nwindow = [0.8, 0.2]\n")
    assert msg.endswith("[measurement] window: expected [start, end] with 0 <= start < end <= 1, got [0.8, 0.2]")


def test_bad_temporal_option_is_named(tmp_path):
    msg = error(tmp_path, "version = 1\n[temporal]\nmin_samples = 40\n")
    assert msg.endswith("[temporal] min_samples: must be between 1 and window_frames (15), got 40")


def test_unknown_section_is_named(tmp_path):
    msg = error(tmp_path, "version = 1\n[displays]\nbaud = 9600\n")
    assert msg.endswith("[displays]: unknown section (did you mean 'display'?)")


def test_unknown_top_level_key_is_named(tmp_path):
    assert error(tmp_path, "version = 1\nverbose = true\n").endswith("verbose: unknown top-level key (only version and sections)")


def test_a_section_given_as_a_value_is_refused(tmp_path):
    assert "[display]: expected a section" in error(tmp_path, 'version = 1\ndisplay = "none"\n')


def test_a_table_inside_a_section_is_an_unknown_key(tmp_path):
    assert error(tmp_path, "version = 1\n[display.extra]\nx = 1\n").endswith("[display] extra: unknown key (known: baud, enabled, url)")


@pytest.mark.parametrize("version", ["2", "0", '"1"', "1.0", "true"])
def test_bad_version_is_refused(tmp_path, version):
    msg = error(tmp_path, f"version = {version}\n")
    assert "version: unsupported config version" in msg and "reads version 1" in msg


def test_missing_version_is_refused(tmp_path):
    assert "version: missing (put version = 1 at the top" in error(tmp_path, "[display]\nbaud = 9600\n")


def test_version_inside_a_section_is_not_the_version(tmp_path):
    assert "version: missing" in error(tmp_path, "[display]\nversion = 1\n")


def test_malformed_toml_is_one_line_naming_file_and_line(tmp_path):
    msg = error(tmp_path, "version = 1\n[display]\nbaud 9600\n")
    assert msg.startswith(f"{tmp_path / 'tlf-edge.toml'}:3:") and "malformed TOML" in msg
    assert "(at line" not in msg


def test_duplicate_key_is_malformed(tmp_path):
    msg = error(tmp_path, "version = 1\n[display]\nbaud = 1\nbaud = 2\n")
    assert msg.startswith(f"{tmp_path / 'tlf-edge.toml'}:4:") and "malformed TOML" in msg


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read the config file"):
        load_config(tmp_path / "nope.toml")


def test_non_utf8_file_is_named(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('version = 1\n[source]\nurl = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.toml: "):
        load_config(path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "notepad.toml"
    path.write_bytes(b"\xef\xbb\xbfversion = 1\n[display]\nbaud = 921600\n")
    assert load_config(path).display.baud == 921600


def test_a_fifo_is_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.toml")
    with pytest.raises(ConfigError, match=r"pipe\.toml: cannot read the config file: not a regular file"):
        load_config(tmp_path / "pipe.toml")  # returns at once: nobody writes to the pipe


def test_a_folder_is_not_a_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path)


# A run's config must name its devices ---------------------------------------------------------


def test_a_run_config_must_name_source_and_display(tmp_path):
    path = write(tmp_path, "version = 1\n[display]\nurl = 'none'\n")
    with pytest.raises(ConfigError, match=r"tlf-edge\.toml: \[source\] url: not set; a config file must name the frame source"):
        load_config(path, required=RUN_REQUIRED)
    assert load_config(path, ["source.url=/dev/video0"], required=RUN_REQUIRED).source.url == "/dev/video0"
    assert load_config(path).source == Config().source  # not required: the default stays


def test_a_disabled_display_needs_no_url(tmp_path):
    path = write(tmp_path, "version = 1\n[source]\nurl = '0'\n[display]\nenabled = false\n")
    assert not load_config(path, required=RUN_REQUIRED).display.enabled


def test_without_a_file_nothing_is_required():
    assert load_config(None, required=RUN_REQUIRED) == Config()  # the demo


# Command-line overrides ------------------------------------------------------------------------


def test_overrides_apply_on_top_of_the_file(tmp_path):
    path = write(tmp_path, 'version = 1\n[display]\nbaud = 9600\nurl = "/dev/ttyACM0"\n')
    c = load_config(path, ["display.baud=921600", "measurement.window=[0.3, 0.7]", "console.enabled=false"])
    assert c.display == DisplayOptions(url="/dev/ttyACM0", baud=921600)
    assert c.measurement.window == (0.3, 0.7) and c.console.enabled is False


def test_overrides_without_a_file():
    assert load_config(None, ["temporal.window_s=0.5"]).temporal.window_s == 0.5


def test_string_overrides_take_the_text_as_it_is():
    c = load_config(None, ["display.url=/dev/ttyUSB0", "source.url=phantom://clip?seed=3", "model.bundle=1234", 'log.directory="my runs"'])
    assert c.display.url == "/dev/ttyUSB0" and c.source.url == "phantom://clip?seed=3"
    assert c.model.bundle == "1234" and c.log.directory == "my runs"


def test_override_of_wrong_type_is_named():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["display.baud=fast"])
    assert str(info.value) == "command line: [display] baud: expected int, got 'fast'"


def test_override_of_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"^command line: \[display\] speed: unknown key"):
        apply_overrides(Config(), ["display.speed=3"])


def test_override_of_unknown_section_is_named():
    with pytest.raises(ConfigError, match=r"^command line: \[screen\]: unknown section"):
        apply_overrides(Config(), ["screen.size=3"])


@pytest.mark.parametrize("item", ["display", "display.baud", "baud=9600", ".baud=1", "display.=1"])
def test_malformed_override_is_named(item):
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        apply_overrides(Config(), [item])


def test_override_out_of_range_is_named():
    with pytest.raises(ConfigError, match=r"^command line: \[display\] baud: must be a serial speed from 300 to 12000000, got 0$"):
        apply_overrides(Config(), ["display.baud=0"])


@given(st.integers(300, 12_000_000))
def test_any_serial_speed_override_is_taken(baud):
    assert apply_overrides(Config(), [f"display.baud={baud}"]).display.baud == baud


@pytest.mark.parametrize("baud", [7, 299, 12_000_001, 10**17])
def test_a_baud_no_serial_port_can_run_at_is_refused(baud):
    with pytest.raises(ConfigError, match=r"\[display\] baud: must be a serial speed"):
        apply_overrides(Config(), [f"display.baud={baud}"])


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_key_is_refused_by_name(key):
    known = {f.name for f in dataclasses.fields(DisplayOptions)}
    if key in known:
        return
    with pytest.raises(ConfigError, match=rf"\[display\] {key}: unknown key"):
        apply_overrides(Config(), [f"display.{key}=1"])
