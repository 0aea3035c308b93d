"""Property-based fuzzing (hypothesis) of the three parsers a hostile user feeds: the config
loader, the bundle manifest loader and the source URL parser (issue 20).

The property is the same for each: whatever the input, the parser returns its object or raises
its own one-line error (ConfigError, BundleError, SourceError), never anything else; and what
it returns can be used (the runtime's components build from the config, the bundle's
properties read, a phantom source opens and delivers a frame).
"""

from __future__ import annotations

import json
import math
import shutil
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.model.bundle import DEMO_BUNDLE, MANIFEST_FILE, load_bundle, write_manifest
from edge.runtime.config import RUN_REQUIRED, SECTIONS, Config, check_data_dir, data_paths, load_config
from edge.errors import BundleError, ConfigError, SourceError
from edge.runtime.factory import open_source

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def one_line(e: Exception) -> None:
    assert "\n" not in str(e), str(e)


# -- the config loader ----------------------------------------------------------------------------

KEYS = {name: [f for f in cls.__dataclass_fields__] for name, cls in SECTIONS.items()}
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.text(max_size=12), st.sampled_from(["", " ", "none", "emulate", "phantom://clip", "../x", "/proc"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=5), st.dictionaries(st.text(max_size=4), scalars, max_size=2))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for these characters
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


@st.composite
def config_documents(draw) -> str:
    lines = []
    version = draw(st.sampled_from(["1", "1", "1", "2", "0", '"1"', "true", None]))
    if version is not None:
        lines.append(f"version = {version}")
    sections = draw(st.lists(st.one_of(st.sampled_from(sorted(SECTIONS)), st.text(string.ascii_lowercase, min_size=1, max_size=6)),
                             max_size=5, unique=True))
    for name in sections:
        lines.append(f"[{name}]")
        known = KEYS.get(name, [])
        keys = draw(st.lists(st.one_of(st.sampled_from(known or ["x"]), st.text(string.ascii_lowercase + "_", min_size=1,
                                                                                   max_size=8)), max_size=5, unique=True))
        for key in keys:
            lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


def usable(cfg: Config, tmp_path) -> None:
    """Build what `tlf-edge run` builds from a config, short of the model and the devices."""
    from edge.screen.prepare import Prepare
    from edge.measure.temporal import TemporalFilter

    Prepare(cfg.roi, cfg.calibration)
    TemporalFilter(cfg.temporal)
    try:
        check_data_dir(cfg)
        data_paths(cfg)
    except ConfigError as e:
        one_line(e)
    int(cfg.recording.min_free_mb * 2**20)  # as the run computes the reserve


@FUZZ
@given(text=config_documents(), bom=st.booleans())
def test_the_config_loader_returns_a_config_or_one_config_error(tmp_path, text, bom):
    path = tmp_path / "fuzz.toml"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogatepass"))
    try:
        cfg = load_config(path, required=RUN_REQUIRED)
    except ConfigError as e:
        one_line(e)
        return
    assert isinstance(cfg, Config)
    usable(cfg, tmp_path)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_the_config_loader_survives_any_bytes(tmp_path, raw):
    path = tmp_path / "bytes.toml"
    path.write_bytes(raw)
    try:
        load_config(path)
    except ConfigError as e:
        one_line(e)


@FUZZ
@given(overrides=st.lists(st.text(max_size=30), max_size=3))
def test_command_line_overrides_return_a_config_or_one_config_error(overrides):
    try:
        cfg = load_config(None, overrides)
    except ConfigError as e:
        one_line(e)
        return
    assert isinstance(cfg, Config)


# -- the manifest loader --------------------------------------------------------------------------

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    dst = tmp_path_factory.mktemp("fuzz_bundle") / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    return dst


def paths_of(obj, prefix=()):
    """Every (path, value) inside a JSON document, containers included."""
    yield prefix, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths_of(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths_of(v, prefix + (i,))


BASE = json.loads((DEMO_BUNDLE / MANIFEST_FILE).read_text())
PATHS = [p for p, _ in paths_of(BASE) if p and p[0] not in ("manifest_sha256", "training", "validation")]


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(json_values, st.just("<delete>"))), min_size=1, max_size=3),
       sealed=st.booleans())
def test_the_manifest_loader_returns_a_usable_bundle_or_one_bundle_error(bundle_dir, edits, sealed):
    manifest = json.loads(json.dumps(BASE))
    for path, value in edits:
        node = manifest
        try:
            for k in path[:-1]:
                node = node[k]
            if value == "<delete>":
                del node[path[-1]]
            else:
                node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed or replaced the place
    manifest = json.loads(json.dumps(manifest))  # as a file holds it (keys are strings)
    if sealed:  # as a converter would write it: the content checks must hold on their own
        write_manifest(bundle_dir, manifest)
    else:
        (bundle_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    try:
        b = load_bundle(bundle_dir)
    except BundleError as e:
        one_line(e)
        return
    assert sealed or manifest == BASE  # an unsealed edit never loads
    b.spec, b.thickness_response, b.tlf_class, b.classes, b.output_kind, b.gate_failures, b.model_id  # noqa: B018


@FUZZ
@given(raw=st.binary(max_size=300))
def test_the_manifest_loader_survives_any_bytes(bundle_dir, raw):
    (bundle_dir / MANIFEST_FILE).write_bytes(raw)
    with pytest.raises(BundleError) as e:
        load_bundle(bundle_dir)
    one_line(e.value)


# -- the source URL parser ------------------------------------------------------------------------

OPTIONS = ["seed", "frames", "fps", "size", "live", "preset", "depth", "change_at", "width", "lateral", "pace", "crop",
           "region", "height", "fourcc", "retry_max", "give_up", "speed", ""]
option_values = st.one_of(
    st.sampled_from(["0", "1", "-1", "2", "16", "64x64", "0x0", "abc", "nan", "inf", "1e9", "40,50", "default", "x",
                     "99999999999999999999", "", "yes", "maybe", "MJPG", "32x32"]),
    st.text(max_size=8),
)


@st.composite
def source_urls(draw) -> str:
    scheme = draw(st.sampled_from(["phantom://", "file://", "dicom://", "v4l2://", "gst://", "", "http://", "phantom:"]))
    where = draw(st.sampled_from(["clip", "screen", "", "/data/clip.mp4", "/data/x.dcm", "/dev/video0", "/nonexistent/",
                                  "0", "7", "²", "[::1", "host/x.avi", "/data/*.png", "videotestsrc ! appsink"]))
    where = draw(st.one_of(st.just(where), st.text(max_size=10)))
    opts = draw(st.lists(st.tuples(st.sampled_from(OPTIONS), option_values), max_size=4))
    query = "&".join(f"{k}={v}" for k, v in opts)
    return scheme + where + (("?" + query) if opts or draw(st.booleans()) else "")


@FUZZ
@given(url=st.one_of(source_urls(), st.text(max_size=40)))
def test_the_source_url_parser_returns_a_source_or_one_source_error(url):
    try:
        source = open_source(url)
    except SourceError as e:
        one_line(e)
        return
    assert hasattr(source, "read")
    if source.simulated:  # a phantom source opens and, when small, delivers a frame
        try:
            source.open()
        except SourceError as e:
            one_line(e)
            return
        w, h = source.size
        if w * h <= 96 * 96 and type(source).__name__ == "PhantomSource":
            frame = source.read()
            assert frame is not None and frame.image.shape[:2] == (h, w)
        source.close()
