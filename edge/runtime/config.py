"""The runtime's configuration: one TOML file, one section per component, checked on load.

    version = 1          # first line: the file format (an unknown version is refused)
    [display]
    baud = 921600        # every key is optional; a missing one keeps its default

Each section becomes a frozen dataclass of options (`Config.display` is a `DisplayOptions`,
`Config.measurement` is the `ThicknessOptions` the measurement takes as is). An unknown
section, an unknown key or a value of the wrong type is a ConfigError naming the file and the
key, e.g. `tlf-edge.toml: [display] baud: expected int, got 'fast'`. Command-line overrides are
dotted keys applied on top of the file: `display.baud=921600`. deploy/tlf-edge.example.toml
lists every key with its default.

A run from a config file (a cart) must name its devices: `[source] url` and `[display] url`
are required there (RUN_REQUIRED; a flag or a --set override names them too), so that a file
with those sections deleted cannot quietly measure the built-in phantom. Without a file the
defaults are the demo: the phantom scanner and the emulated display.

Empty and zero values stand for "not set" where TOML has no null: `roi.rect = []` detects the
B-mode region, `calibration.spacing_mm = []` takes the spacing from the source or the screen,
`model.bundle = ""` is the bundled demo model, `model.num_threads = 0` uses the count `tlf-edge bench` measured best in the data folder, else the physical cores but one.
The config holds options only, never runtime state.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import stat
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from edge.errors import ConfigError
from edge.errors import require_option as _require
from edge.measure.temporal import TemporalOptions
from edge.measure.thickness import ThicknessOptions
from edge.model.segmenter import SegmenterOptions
from edge.screen.options import RoiOptions, SpacingOptions
from firmware_bridge.ports import BAUD_RANGE

VERSION = 1
# Keys a config file must set for `tlf-edge run` and `doctor`, with an example of each.
RUN_REQUIRED = {
    "source.url": 'the frame source, e.g. url = "v4l2:///dev/tlf-capture" (the built-in phantom: "phantom://clip")',
    "display.url": 'the display, e.g. url = "/dev/tlf-display" ("none" for no display, "emulate" for the emulator)',
}


@dataclass(frozen=True)
class SourceOptions:
    url: str = "phantom://clip?seed=7&frames=150&size=400x400&live=1"  # see edge.runtime.factory.open_source
    max_pixels: int = 4096 * 4096  # frames larger than this (width x height) are refused or skipped

    def __post_init__(self):
        _require("source", "url", self.url, bool(self.url.strip()), "must not be empty")
        _require(
            "source",
            "max_pixels",
            self.max_pixels,
            64 * 64 <= self.max_pixels <= 2**31,
            "must be between 4096 (64x64) and 2147483648",
        )


@dataclass(frozen=True)
class DisplayOptions:
    url: str = "emulate"  # serial port URL, "emulate" (a pseudo-terminal emulator) or "none"
    baud: int = 115200
    enabled: bool = True

    def __post_init__(self):
        _require("display", "url", self.url, bool(self.url.strip()), "must not be empty (use 'none')")
        lo, hi = BAUD_RANGE
        _require("display", "baud", self.baud, lo <= self.baud <= hi, f"must be a serial speed from {lo} to {hi}")


@dataclass(frozen=True)
class StorageOptions:
    data_dir: str = ""  # every file the runtime writes goes under this folder; empty: the working directory

    def __post_init__(self):
        _require(
            "storage",
            "data_dir",
            self.data_dir,
            self.data_dir == "" or bool(self.data_dir.strip()),
            "must be empty (the working directory) or a folder",
        )


@dataclass(frozen=True)
class RecordingOptions:
    enabled: bool = False
    path: str = "recordings"  # folder for recordings (under [storage] data_dir when relative)
    include_full_screen: bool = False  # the whole screen, patient fields included, not only the B-mode
    min_free_mb: float = 100.0  # recording stops when the disk has less than this free
    overlay: bool = (
        True  # draw the TLF band and the reading into the frames; false: tlf-edge analyze can re-measure them
    )

    def __post_init__(self):
        _require("recording", "path", self.path, bool(self.path.strip()), "must not be empty")
        _require("recording", "min_free_mb", self.min_free_mb, self.min_free_mb >= 0, "must be 0 or more")


@dataclass(frozen=True)
class LogOptions:
    jsonl: bool = True  # one JSON object per frame
    csv: bool = False  # one CSV row per frame
    directory: str = "runs"  # each run makes a folder under this one (under [storage] data_dir when relative)

    def __post_init__(self):
        _require("log", "directory", self.directory, bool(self.directory.strip()), "must not be empty")


@dataclass(frozen=True)
class ConsoleOptions:
    enabled: bool = True  # a live status line on the terminal
    hz: float = 4.0  # redraws per second at most

    def __post_init__(self):
        _require("console", "hz", self.hz, self.hz > 0, "must be more than 0")


def _check_measurement(o: ThicknessOptions) -> None:
    a, b = o.window
    _require(
        "measurement", "window", list(o.window), 0 <= a < b <= 1, "expected [start, end] with 0 <= start < end <= 1"
    )
    _require("measurement", "min_coverage", o.min_coverage, 0 <= o.min_coverage <= 1, "must be between 0 and 1")
    _require(
        "measurement", "max_order_errors", o.max_order_errors, 0 <= o.max_order_errors <= 1, "must be between 0 and 1"
    )
    _require("measurement", "min_margin", o.min_margin, o.min_margin >= 0, "must be 0 or more")
    _require("measurement", "slope_window", o.slope_window, o.slope_window >= 1, "must be at least 1")


@dataclass(frozen=True)
class Config:
    source: SourceOptions = field(default_factory=SourceOptions)
    roi: RoiOptions = field(default_factory=RoiOptions)
    calibration: SpacingOptions = field(default_factory=SpacingOptions)
    model: SegmenterOptions = field(default_factory=SegmenterOptions)
    measurement: ThicknessOptions = field(default_factory=ThicknessOptions)
    temporal: TemporalOptions = field(default_factory=TemporalOptions)
    display: DisplayOptions = field(default_factory=DisplayOptions)
    storage: StorageOptions = field(default_factory=StorageOptions)
    recording: RecordingOptions = field(default_factory=RecordingOptions)
    log: LogOptions = field(default_factory=LogOptions)
    console: ConsoleOptions = field(default_factory=ConsoleOptions)


SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(Config)[f.name] for f in fields(Config)}
_EXTRA_CHECKS = {"measurement": _check_measurement}


class _WrongType(Exception):
    pass


def _type_name(hint) -> str:
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {args[0].__name__}s"
        return f"array of {len(args)} {args[0].__name__}s"
    return hint.__name__


def _scalar(value, hint):
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:  # finite: TOML's nan and inf are no setting
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        try:
            ok = ok and math.isfinite(float(value))
        except OverflowError:  # an integer beyond any float
            ok = False
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    else:  # a field type this loader does not know: a programming error, not a user's
        raise TypeError(f"unsupported option type {hint!r}")
    if not ok:
        raise _WrongType
    return value


def _coerce(value, hint):
    """`value` as read from TOML, as the option type `hint` wants it; _WrongType if it cannot be."""
    if typing.get_origin(hint) is not tuple:
        return _scalar(value, hint)
    if not isinstance(value, (list, tuple)):
        raise _WrongType
    args = typing.get_args(hint)
    if not (len(args) == 2 and args[1] is Ellipsis) and len(value) != len(args):
        raise _WrongType
    return tuple(_scalar(v, args[0]) for v in value)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(known))}"


def _options(section: str, values: dict, base=None):
    """Build the options dataclass of `section` from raw TOML `values` (on top of `base`)."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    checked = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"[{section}] {key}: unknown key ({_suggest(key, hints)})")
        try:
            checked[key] = _coerce(value, hints[key])
        except _WrongType:
            raise ConfigError(f"[{section}] {key}: expected {_type_name(hints[key])}, got {value!r}") from None
    options = replace(base, **checked) if base is not None else cls(**checked)
    if section in _EXTRA_CHECKS:
        _EXTRA_CHECKS[section](options)
    return options


def parse_config(data: dict) -> Config:
    """A Config from an already parsed TOML document (a dict); ConfigError names what is wrong."""
    if "version" not in data:
        raise ConfigError(f"version: missing (put version = {VERSION} at the top of the file)")
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version != VERSION:
        raise ConfigError(f"version: unsupported config version {version!r} (this tlf-edge reads version {VERSION})")
    sections = {}
    for name, values in data.items():
        if name == "version":
            continue
        if name not in SECTIONS:
            if not isinstance(values, dict):
                raise ConfigError(f"{name}: unknown top-level key (only version and sections)")
            raise ConfigError(f"[{name}]: unknown section ({_suggest(name, SECTIONS)})")
        if not isinstance(values, dict):
            raise ConfigError(f"[{name}]: expected a section ([{name}] on a line of its own), got {values!r}")
        sections[name] = _options(name, values)
    return Config(**sections)


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def _explicit(data: dict, overrides: Iterable[str]) -> set[str]:
    """The dotted keys a parsed file and the overrides set."""
    keys = {f"{name}.{key}" for name, values in data.items() if isinstance(values, dict) for key in values}
    return keys | {str(item).partition("=")[0].strip() for item in overrides}


def _check_required(config: Config, explicit: set[str], required: Iterable[str], origin: str) -> None:
    for dotted in required:
        section, _, key = dotted.partition(".")
        if dotted in explicit or (section == "display" and not config.display.enabled):
            continue
        raise ConfigError(
            f"{origin}: [{section}] {key}: not set; a config file must name {RUN_REQUIRED.get(dotted, dotted)}"
        )


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kB; anything this large is not one


def _read_text_file(path, origin: str) -> bytes:
    """The bytes of a regular file of at most MAX_CONFIG_BYTES (a FIFO or a device would block
    or never end); ConfigError naming the file otherwise."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{origin}: cannot read the config file: not a regular file")
            if st.st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{origin}: cannot read the config file: {st.st_size} bytes is not a config file")
            return f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{origin}: cannot read the config file: {e.strerror or e}") from e
    except ValueError as e:  # a NUL byte in the path
        raise ConfigError(f"{origin!r}: cannot read the config file: {e}") from e


def load_config(path: str | Path | None = None, overrides: Iterable[str] = (), required: Iterable[str] = ()) -> Config:
    """The config in the TOML file `path` (None: the defaults), with `overrides` applied on top.

    required: dotted keys (RUN_REQUIRED) that the file or the overrides must set when a file is
    given. Every problem is a ConfigError with one line naming the file (and line) or the override.
    """
    config = Config()
    overrides = list(overrides)
    data: dict = {}
    if path is not None:
        origin = str(path)
        raw = _read_text_file(path, origin)
        if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some Windows editors write
            raw = raw[3:]
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{origin}: not a UTF-8 text file ({e.reason} at byte {e.start})") from e
        except tomllib.TOMLDecodeError as e:
            message = str(e)
            m = _POSITION.search(message)
            where = f"{origin}:{m.group(1)}:{m.group(2)}" if m else origin
            raise ConfigError(f"{where}: malformed TOML: {_POSITION.sub('', message)}") from e
        try:
            config = parse_config(data)
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from e
    config = apply_overrides(config, overrides)
    if path is not None:
        _check_required(config, _explicit(data, overrides), required, str(path))
    return config


def _override_value(text: str, hint):
    """The value of a command-line override: a TOML value (921600, true, [0.3, 0.7], "x"), or
    the text as it is when it is not one; a string option always takes the text itself."""
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
    if hint is str and not isinstance(value, str):
        return text
    return value


def apply_overrides(config: Config, overrides: Iterable[str], origin: str = "command line") -> Config:
    """`config` with each `section.key=value` of `overrides` set, checked like the file."""
    for item in overrides:
        name, eq, text = str(item).partition("=")
        section, dot, key = name.strip().partition(".")
        if not eq or not dot or not section or not key:
            raise ConfigError(f"{origin}: {item!r}: expected section.key=value, e.g. display.baud=921600")
        if section not in SECTIONS:
            raise ConfigError(f"{origin}: [{section}]: unknown section ({_suggest(section, SECTIONS)})")
        hints = typing.get_type_hints(SECTIONS[section])
        value = _override_value(text.strip(), hints.get(key))
        try:
            options = _options(section, {key: value}, getattr(config, section))
        except ConfigError as e:
            raise ConfigError(f"{origin}: {e}") from e
        config = replace(config, **{section: options})
    return config


def folder_problem(path: Path) -> str | None:
    """Why `path` is not an existing folder this process can write to ("is not a folder", ": no
    such folder", ...: to follow the folder's name), or None when it is one."""
    try:
        st = os.stat(path)
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except FileNotFoundError:
        return ": no such folder"
    except (OSError, ValueError) as e:  # ValueError: a NUL byte
        return f": {getattr(e, 'strerror', None) or e}"
    if not stat.S_ISDIR(st.st_mode):
        return " is not a folder"
    if read_only:
        return " is on a read-only file system"
    if not os.access(path, os.W_OK | os.X_OK):
        return " is not writable by this user"
    return None


def check_data_dir(config: Config) -> None:
    """[storage] data_dir, when set, must be an existing folder this process can write to.

    It is never created: a data folder that is missing is most often a drive that is not mounted,
    and writing to the empty mount point would fill the system disk. ConfigError naming the key."""
    text = config.storage.data_dir
    if not text:
        return
    problem = folder_problem(Path(text).expanduser())
    if problem == ": no such folder":
        problem += " (it is not created: is its drive mounted?)"
    if problem is not None:
        raise ConfigError(f"[storage] data_dir {text!r}{problem}")


def data_root(config: Config) -> Path:
    """[storage] data_dir, or the working directory when it is empty."""
    return Path(config.storage.data_dir).expanduser() if config.storage.data_dir else Path()


def data_paths(config: Config) -> tuple[Path, Path]:
    """The folders the runtime writes to: (log directory, recording folder).

    Relative paths are taken under [storage] data_dir (the working directory when it is empty).
    With data_dir set, a folder that lands outside it (an absolute path elsewhere, ../, or a
    symlink inside it that points elsewhere: real paths are compared) is a ConfigError naming
    the key: the runtime writes nothing outside its data directory.
    """
    root = data_root(config)
    paths = []
    for section, key, value in (
        ("log", "directory", config.log.directory),
        ("recording", "path", config.recording.path),
    ):
        path = root / Path(value).expanduser()
        if config.storage.data_dir:
            try:
                inside, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
            except (OSError, ValueError) as e:  # a symlink loop, a NUL byte
                raise ConfigError(f"[{section}] {key}: {value!r}: {e}") from e
            if inside != top and top not in inside.parents:
                through = f" (through a symlink, to {str(inside)!r})" if Path(os.path.abspath(path)) != inside else ""
                raise ConfigError(
                    f"[{section}] {key}: {value!r} is outside [storage] data_dir {config.storage.data_dir!r}{through}"
                )
        paths.append(path)
    return paths[0], paths[1]
