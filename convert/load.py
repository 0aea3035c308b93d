"""Users' Keras models, loaded however they were saved, as one Keras 3 model with one image in and
one score map out.

- A Keras 3 `.keras` file, in safe mode; a Sequential one becomes the functional model of its layers.
- A `.keras` file written by Keras 2 (2.13-2.15, or tf_keras; its metadata names the version):
  its configuration mapped as for `.h5` below, with Keras 3's names of the model classes, else
  read through tf_keras.
- A legacy HDF5 `.h5` file written by Keras 2 (TensorFlow <= 2.15, or the tf_keras package):
  read by Keras 3 with its configuration mapped (the Keras 2 keys that Keras 3 refuses but that
  do nothing taken out, `LEGACY_INERT`; one-element axis lists made numbers), else through
  tf_keras (the `legacy` extra) when it is installed (e.g. for TensorFlow ops written straight
  into a Keras 2 model, `inputs / 255`).
- A TensorFlow SavedModel folder (Keras 2's default `model.save("folder")`, or any exported
  one), and a model read through tf_keras: wrapped whole, so its graph converts as it is.
- Weights only: the built-in U-Net (convert.unet.build_unet) with the given options, and the
  weights loaded into it.

Safe mode throughout: a Lambda layer (Python code stored in the file) loads only with
`trust_code`, a custom layer only with the Python file that defines it (`custom_objects`).
Every failure is a QuantizeError of one line that says what was found and what to do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import keras

from convert.errors import ConvertError
from convert.quantize import QuantizeError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
ANY = object()  # a key mapped away whatever its value
# Keras 2 configuration keys that Keras 3 refuses, with the value at which they change nothing.
LEGACY_INERT: dict[str, dict[str, object]] = {
    "Conv1DTranspose": {"groups": 1},
    "Conv2DTranspose": {"groups": 1},
    "Conv3DTranspose": {"groups": 1},
    "DepthwiseConv2D": {"groups": 1},
    "SeparableConv2D": {"groups": 1, "kernel_initializer": ANY, "kernel_regularizer": ANY, "kernel_constraint": ANY},
    "SpatialDropout1D": {"trainable": ANY},
    "SpatialDropout2D": {"trainable": ANY},
    "SpatialDropout3D": {"trainable": ANY},
}
# Keras 2 layers that hold TensorFlow ops called on Keras tensors (`inputs / 255`, `tf.nn.relu(x)`):
# Keras 3 has no such layers; tf_keras reads them (by the op's name, no stored code).
TF_OP_LAYERS = {"TFOpLambda", "SlicingOpLambda", "TensorFlowOpLayer"}
MODEL_CLASSES = {"Functional", "Model", "Sequential"}
KERAS2_MODULES = ("tf_keras.", "keras.engine.", "keras.src.engine.")  # where Keras 2 defines its model classes
LEGACY_EXTRA = "pip install 'tlf-edge[legacy]'"


def read_model(path: str | Path, trust_code: bool = False, custom_objects: str | Path | None = None) -> keras.Model:
    """The model saved at `path` (a .keras or .h5 file, or a SavedModel folder), with a plain
    single input and output. trust_code: allow Lambda layers (runs the code stored in the file).
    custom_objects: a Python file defining the model's custom layers (it is run)."""
    path = Path(path)
    if not path.exists():
        raise QuantizeError(f"no model at {str(path)!r}")
    objects = custom_objects_from(Path(custom_objects)) if custom_objects else {}
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise QuantizeError(
                f"folder {str(path)!r} is not a TensorFlow SavedModel (no saved_model.pb); "
                "give a .keras or .h5 file or a SavedModel folder"
            )
        return single_io(saved_model(path))
    kind = file_kind(path)
    config = stored_config(path, kind)
    if config is None:
        raise QuantizeError(
            f"{str(path)!r} holds weights only (no model configuration): give it as --weights "
            f"{path.name} with the built-in U-Net's options (--size, --base-filters, --depth, ...)"
        )
    check_code(config, path, trust_code, objects)
    with _as_suffix(path, ".h5" if kind == "h5" else ".keras") as readable:
        if kind == "h5":
            return single_io(legacy_h5(readable, path, config, trust_code, objects))
        version = saved_by(path)
        if version.startswith("2.") or str(config.get("module", "")).startswith(KERAS2_MODULES):
            return single_io(legacy_keras_file(readable, path, config, version, trust_code, objects))
        try:
            model = keras.models.load_model(readable, compile=False, safe_mode=not trust_code, custom_objects=objects)
        except Exception as e:  # keras raises many types for a file it cannot read
            raise QuantizeError(
                f"cannot load Keras model {str(path)!r} (a .keras file saved by Keras {version}): "
                f"{_first_line(e)}; if it loads where it was made, save it there again (.keras or "
                ".h5) or export a SavedModel folder, and convert that"
            ) from e
    return single_io(model)


def file_kind(path: Path) -> str:
    """ "h5" (HDF5: Keras 2 or legacy Keras 3 files) or "keras" (a Keras 3 zip), by content."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head == HDF5_MAGIC:
        return "h5"
    if head[:4] == ZIP_MAGIC:
        return "keras"
    raise QuantizeError(
        f"cannot load Keras model {str(path)!r}: it is neither a Keras 3 file (.keras, a zip) nor an "
        "HDF5 file (.h5); a SavedModel is a folder"
    )


def saved_by(path: Path) -> str:
    """The Keras version a .keras file names in its metadata.json ("?" when it names none)."""
    try:
        with zipfile.ZipFile(path) as z:
            version = json.loads(z.read("metadata.json")).get("keras_version")
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return "?"
    return str(version) if version else "?"


def stored_config(path: Path, kind: str) -> dict | None:
    """The model configuration stored in the file, or None for a weights-only HDF5 file."""
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as z:
                return json.loads(z.read("config.json"))
        import h5py

        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
            if text is None:
                return None
            return json.loads(text.decode() if isinstance(text, bytes) else text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise QuantizeError(f"cannot load Keras model {str(path)!r}: {_first_line(e)}") from e


def layer_configs(config: dict):
    """Every layer entry ({"class_name", "config", ...}) of a model configuration, nested models included."""
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    for layer in layers:
        yield layer
        if layer.get("class_name") in MODEL_CLASSES:
            yield from layer_configs(layer)


def _known_keras_layer(entry: dict) -> bool:
    module = entry.get("module")
    if module is not None:  # Keras 3 configurations name the defining module
        return str(module).startswith("keras") and ">" not in str(entry.get("registered_name") or "")
    return entry.get("class_name") in MODEL_CLASSES or hasattr(keras.layers, str(entry.get("class_name")))


def check_code(config: dict, path: Path, trust_code: bool, objects: dict) -> None:
    """Refuse, in one line naming the layers and the flag, a model whose layers need code."""
    entries = list(layer_configs(config))
    lambdas = [e.get("config", {}).get("name", "?") for e in entries if e.get("class_name") == "Lambda"]
    if lambdas and not trust_code:
        raise QuantizeError(
            f"model {str(path)!r} has Lambda layer(s) {lambdas}: their Python code is stored in the "
            "file and loading runs it, which safe mode refuses; if you trust the file, pass --trust-code"
        )
    custom = [
        (e.get("config", {}).get("name", "?"), e.get("class_name"))
        for e in entries
        if e.get("class_name") not in TF_OP_LAYERS
        and e.get("class_name") != "Lambda"
        and not _known_keras_layer(e)
        and e.get("class_name") not in objects
        and e.get("registered_name") not in objects
    ]
    if custom:
        names = ", ".join(f"{name!r} ({cls})" for name, cls in custom)
        raise QuantizeError(
            f"model {str(path)!r} has custom layer(s) {names} that Keras does not define: give the "
            "Python file that defines them with --custom-objects FILE.py (it is run)"
        )


def custom_objects_from(path: Path) -> dict:
    """The Keras layers, functions and registered objects a Python file defines, by name (running it)."""
    if not path.is_file() or path.suffix != ".py":
        raise QuantizeError(f"--custom-objects {str(path)!r} is not a Python file")
    spec = importlib.util.spec_from_file_location(f"tlf_custom_{path.stem}", path)
    assert spec is not None and spec.loader is not None  # a .py file always gets the source loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's code: any error
        raise QuantizeError(f"--custom-objects {str(path)!r} fails to run: {type(e).__name__}: {_first_line(e)}") from e
    objects = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        objects[name] = obj
        registered = keras.saving.get_registered_name(obj)
        if registered != name:
            objects[registered] = obj
    if not objects:
        raise QuantizeError(f"--custom-objects {str(path)!r} defines no class or function")
    return objects


class _as_suffix:
    """The file itself when its name ends in `suffix` (what Keras reads by), else a copy whose name does."""

    def __init__(self, path: Path, suffix: str):
        self.path, self.suffix = path, suffix
        self.tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Path:
        name = self.path.name.lower()
        if name.endswith(self.suffix) or (self.suffix == ".h5" and name.endswith(".hdf5")):
            return self.path
        self.tmp = tempfile.TemporaryDirectory(prefix="tlf-load-")
        copy = Path(self.tmp.name) / f"model{self.suffix}"
        shutil.copy(self.path, copy)
        return copy

    def __exit__(self, *exc):
        if self.tmp is not None:
            self.tmp.cleanup()


# Normalisation layers whose Keras 2 configuration gives the axis as a one-element list: Keras 3
# then broadcasts the parameters as (1, 1, 1, C) constants, which XNNPACK does not take in int8.
AXIS_LAYERS = {"BatchNormalization", "LayerNormalization"}


def mapped_legacy_config(config: dict) -> tuple[dict, list[str]]:
    """A copy of a Keras 2 configuration with the inert keys Keras 3 refuses taken out and one-element
    axis lists made numbers, and what was changed."""
    config = json.loads(json.dumps(config))
    changed = []
    for entry in layer_configs(config):
        inert = LEGACY_INERT.get(entry.get("class_name"), {})
        cfg = entry.get("config", {})
        for key, value in inert.items():
            if key in cfg and (value is ANY or cfg[key] == value):
                del cfg[key]
                changed.append(f"{entry['class_name']}.{key}")
        axis = cfg.get("axis")
        if entry.get("class_name") in AXIS_LAYERS and isinstance(axis, list) and len(axis) == 1:
            cfg["axis"] = axis[0]
            changed.append(f"{entry['class_name']}.axis")
    return config, sorted(set(changed))


def legacy_h5(readable: Path, path: Path, config: dict, trust_code: bool, objects: dict):
    """An HDF5 model file (as Keras 2 wrote them): read by Keras 3 with the legacy configuration
    mapped (mapped_legacy_config), else through tf_keras."""
    import h5py

    mapped, changed = mapped_legacy_config(config)
    tf_ops = sorted(
        {e.get("config", {}).get("name", "?") for e in layer_configs(config) if e.get("class_name") in TF_OP_LAYERS}
    )
    error = None
    if not tf_ops:
        with tempfile.TemporaryDirectory(prefix="tlf-legacy-") as tmp:
            copy = readable
            if changed:
                copy = Path(tmp) / "model.h5"
                shutil.copy(readable, copy)
                with h5py.File(copy, "r+") as f:
                    f.attrs["model_config"] = json.dumps(mapped)
            try:
                return keras.models.load_model(copy, compile=False, safe_mode=not trust_code, custom_objects=objects)
            except Exception as e:  # noqa: BLE001 - tried next through tf_keras
                error = e
    try:
        import tf_keras
    except ImportError:
        raise _needs_keras2_reader(f"the Keras 2 model {str(path)!r}", tf_ops, error) from error
    try:
        model = tf_keras.models.load_model(readable, compile=False, custom_objects=objects, safe_mode=not trust_code)
    except Exception as e:  # noqa: BLE001
        raise QuantizeError(f"cannot load Keras 2 model {str(path)!r} with tf_keras either: {_first_line(e)}") from e
    return through_saved_model(model, path)


# Keras 3's own names of the model classes a Keras 2 configuration names with its own modules
# ("tf_keras.src.engine.functional", "keras.src.engine.functional", "keras" ...).
KERAS3_MODELS = {
    "Functional": ("keras.src.models.functional", "Functional"),
    "Model": ("keras.src.models.functional", "Functional"),
    "Sequential": ("keras.src.models.sequential", "Sequential"),
}


def legacy_keras_file(readable: Path, path: Path, config: dict, version: str, trust_code: bool, objects: dict):
    """A .keras file written by Keras 2 (2.13-2.15, or tf_keras): its configuration mapped as for
    an .h5 file (mapped_legacy_config) with Keras 3's names of the model classes, the weights read
    by Keras 3 as they are stored; else read through tf_keras."""
    tf_ops = sorted(
        {e.get("config", {}).get("name", "?") for e in layer_configs(config) if e.get("class_name") in TF_OP_LAYERS}
    )
    error = None
    if not tf_ops:
        mapped, _ = mapped_legacy_config(config)
        for entry in [mapped, *layer_configs(mapped)]:
            if entry.get("class_name") in KERAS3_MODELS:
                entry["module"], entry["class_name"] = KERAS3_MODELS[entry["class_name"]]
        with tempfile.TemporaryDirectory(prefix="tlf-legacy-") as tmp:
            copy = Path(tmp) / "model.keras"
            with zipfile.ZipFile(readable) as src, zipfile.ZipFile(copy, "w") as dst:
                for name in src.namelist():
                    dst.writestr(name, json.dumps(mapped) if name == "config.json" else src.read(name))
            try:
                return keras.models.load_model(copy, compile=False, safe_mode=not trust_code, custom_objects=objects)
            except Exception as e:  # noqa: BLE001 - tried next through tf_keras
                error = e
    found = f"{str(path)!r}, a .keras file written by Keras {version} (Keras 2)"
    try:
        import tf_keras
    except ImportError:
        raise _needs_keras2_reader(found, tf_ops, error) from error
    try:
        model = tf_keras.models.load_model(readable, compile=False, custom_objects=objects, safe_mode=not trust_code)
    except Exception as e:  # noqa: BLE001
        raise QuantizeError(
            f"cannot load {found} with Keras 3 ({_first_line(error) if error else 'TensorFlow-op layers'}) "
            f"nor with tf_keras ({_first_line(e)}); save it again from the Keras it was made with "
            "as .h5 or as a SavedModel folder"
        ) from e
    return through_saved_model(model, path)


def through_saved_model(tf_keras_model, path: Path) -> keras.Model:
    """A tf_keras model as a Keras 3 model: exported to a SavedModel and wrapped whole."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tlf-tfkeras-") as tmp:
        tf.saved_model.save(tf_keras_model, tmp)
        model = saved_model(Path(tmp), name=tf_keras_model.name)
    print(
        f"tlf-convert: note: {str(path)!r} was read with tf_keras (Keras 2) and is converted as one TensorFlow graph",
        flush=True,
    )
    return model


def saved_model(path: Path, name: str | None = None) -> keras.Model:
    """A SavedModel folder as a Keras 3 model of one layer (keras.layers.TFSMLayer) with batch 1
    (a side the signature leaves free stays free: quantize fixes it to --size)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as e:  # noqa: BLE001 - TensorFlow raises many types for a bad folder
        raise QuantizeError(f"cannot load SavedModel {str(path)!r}: {_first_line(e)}") from e
    signatures = dict(loaded.signatures)
    if not signatures:
        raise QuantizeError(f"SavedModel {str(path)!r} has no signature to call (export it with a serving signature)")
    endpoint = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    sig = signatures[endpoint]
    inputs = [s for s in tf.nest.flatten(sig.structured_input_signature) if isinstance(s, tf.TensorSpec)]
    outputs = tf.nest.flatten(sig.structured_outputs)
    if len(inputs) != 1 or len(outputs) != 1:
        raise QuantizeError(
            f"SavedModel {str(path)!r} signature {endpoint!r} has {len(inputs)} inputs and "
            f"{len(outputs)} outputs; the family has one image in and one score map out"
        )
    shape = tuple(inputs[0].shape)
    if len(shape) != 4 or shape[3] is None:
        raise QuantizeError(
            f"SavedModel {str(path)!r} takes {shape}; the family takes an image "
            "(batch, height, width, channels) with a fixed number of channels"
        )
    layer = keras.layers.TFSMLayer(str(path), call_endpoint=endpoint, name="saved_model")
    inp = keras.Input(shape[1:], batch_size=1, name="image")
    out = tf.nest.flatten(layer(inp))[0]
    return keras.Model(inp, out, name=name or path.name)


def single_io(model) -> keras.Model:
    """A functional model with one input and one output as a plain (not list or dict) one, sharing
    its layers; a Sequential model as such a functional one."""
    if isinstance(model, keras.Sequential):
        return _functional_of_sequential(model)
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not isinstance(model, keras.Model) or not inputs or not outputs or len(inputs) != 1 or len(outputs) != 1:
        return model  # quantize's family check says what is wrong with it
    if model.input is inputs[0] and model.output is outputs[0]:
        return model
    return keras.Model(inputs[0], outputs[0], name=model.name)


def _functional_of_sequential(model: keras.Sequential) -> keras.Model:
    """A Sequential model as the functional model of its layers (Keras 3 gives a Sequential no
    `input` of its own), or a QuantizeError saying what to do when it never had an input shape."""
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs = outputs = None
    if not inputs or not outputs:
        raise QuantizeError(
            f"Sequential model {model.name!r} has no input shape (it was saved before it was built "
            "or trained, so it holds no trained weights): start it with keras.Input((256, 256, 1)) "
            "(your image size and channels), train it and save it again"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        return model  # quantize's family check says what is wrong with it
    return keras.Model(inputs[0], outputs[0], name=model.name)


def _needs_keras2_reader(found: str, tf_ops, error: Exception | None) -> QuantizeError:
    """The one line for a Keras 2 file Keras 3 could not read while tf_keras is not installed."""
    what = (
        f"its TensorFlow-op layers {tf_ops} (ops called on Keras 2 tensors, e.g. inputs / 255)"
        if tf_ops or error is None
        else _first_line(error)
    )
    return QuantizeError(
        f"Keras 3 cannot read {found}: {what}; install the Keras 2 reader ({LEGACY_EXTRA}) and run again"
    )


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Keras wraps the cause: "... Exception encountered: <the reason>" is the useful part.
    for line in lines:
        if line.startswith("Exception encountered:"):
            return line.removeprefix("Exception encountered:").strip()
    return lines[0][:300] if lines else type(e).__name__


def weights_into_unet(path: str | Path, **options) -> keras.Model:
    """The built-in U-Net (convert.unet.build_unet with `options`) with the weights saved at `path`
    (Keras 3 .weights.h5, a legacy Keras 2 .h5 of weights or of a whole model, or a .keras file)."""
    from convert.unet import build_unet

    path = Path(path)
    if not path.is_file():
        raise QuantizeError(f"no weights file at {str(path)!r}")
    try:
        model = build_unet(batch_size=None, **options)
    except (ConvertError, ValueError) as e:
        raise QuantizeError(f"cannot build the U-Net for --weights: {e}") from e
    described = " ".join(f"{k}={v}" for k, v in options.items())
    suffix = ".weights.h5" if path.name.endswith(".weights.h5") else ".keras" if file_kind(path) == "keras" else ".h5"
    with _as_suffix(path, suffix) as readable:
        try:
            model.load_weights(readable)
        except Exception as e:  # keras raises many types for weights that do not fit
            raise QuantizeError(
                f"the weights in {str(path)!r} do not fit the built-in U-Net ({described}): "
                f"{_first_line(e)}; give the options it was built with (--size, --channels, --classes, "
                "--base-filters, --depth, --output, --concat-skips)"
            ) from e
    return model


def model_identity(path: str | Path, builder: dict | None = None) -> dict:
    """What identifies a float model: the sha256 of its file, of a SavedModel folder's files (their
    relative paths and contents), or of a weights file together with the built-in U-Net's options
    (`builder`) it is loaded into. Recorded in a bundle's manifest; see same_model."""
    from edge.model.bundle import file_sha256

    path = Path(path)
    if not path.exists():
        raise QuantizeError(f"no {'weights file' if builder is not None else 'model'} at {str(path)!r}")
    if path.is_dir():
        lines = [
            f"{p.relative_to(path).as_posix()}\0{file_sha256(p)}\n" for p in sorted(path.rglob("*")) if p.is_file()
        ]
        digest = hashlib.sha256("".join(lines).encode()).hexdigest()
        return {"kind": "savedmodel", "name": path.name, "sha256": digest}
    if builder is not None:
        return {"kind": "weights", "name": path.name, "sha256": file_sha256(path), "builder": dict(builder)}
    return {"kind": "file", "name": path.name, "sha256": file_sha256(path)}


def same_model(a: dict, b: dict) -> bool:
    """Whether two model_identity records name the same model (whatever the files are called)."""
    keys = ("kind", "sha256", "builder")
    return all(a.get(k) == b.get(k) for k in keys)
