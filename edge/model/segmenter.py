"""The LiteRT int8 segmenter: a thin adapter around the interpreter.

Tensor contract (checked when the segmenter is created against the bundle manifest):
  input  int8 [1, H, W, C]  filled straight from uint8 pixels through a lookup table
         (code = round(((pixel * spec.scale - mean) / std) / input_scale) + input_zero_point, one
         column per channel when mean or std differ between channels), no float round trip;
  output int8 [1, H, W, K]  per-class logits, or softmax probabilities (manifest output.kind
         "softmax", scale 1/256), with a positive scale; the label map is their argmax, which
         equals the argmax of the dequantized values. K = 1 is a binary head for two classes:
         the second class's logit ("logits") or probability ("sigmoid", scale 1/256), and a
         pixel is of the second class where that probability exceeds 0.5.
The segmentation carries scores for sub-pixel edges and the confidence margin in logit units,
one per class whatever the head: the raw int8 logits (real value = code * logit_scale, up to an
offset that differences cancel; a binary logit head gets the zero point as the first class's
score), or for a softmax or sigmoid model float32 log-probabilities (logit_scale 1), whose
differences are the logit differences. So the device treats logits, softmax and sigmoid
bundles alike.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import logs
from edge.errors import BundleError, EdgeError, require_option
from edge.frame import Frame, Segmentation
from edge.host import usable_cpus
from edge.measure.scores import best_class
from edge.model.bundle import DEMO_BUNDLE, Bundle, load_bundle
from edge.model.preprocess import fill_int8, int8_lookup, model_spacing, to_float, to_model_image
from edge.model.threads import choose_threads, default_threads

log = logs.get(__name__)

MAX_THREADS = 64  # more LiteRT threads than any cart has cores; thousands exhaust the process (LiteRT crashes)


def check_threads(num_threads, warn: bool = True) -> int:
    """The LiteRT thread count to use for `num_threads`: a whole number from 1 to MAX_THREADS, or
    EdgeError. More than the CPUs this process may use only slows the interpreter down, so such a
    count (a config written for a bigger cart) is lowered to them, with one warning line."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or not 1 <= num_threads <= MAX_THREADS:
        raise EdgeError(
            f"LiteRT threads (model.num_threads, --threads) must be a whole number from 1 to "
            f"{MAX_THREADS}; got {num_threads!r} (default: {default_threads()}, the physical cores but one)"
        )
    cpus = usable_cpus()
    if num_threads > cpus:
        if warn:
            log.warning(
                "%d LiteRT threads asked for, but this machine gives tlf-edge %d CPU(s): using %d",
                num_threads,
                cpus,
                cpus,
            )
        return cpus
    return num_threads


def interpreter_class():
    """The LiteRT Interpreter class: ai-edge-litert, else tflite_runtime, else an already loaded tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        pass
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        return tf.lite.Interpreter, "tensorflow"
    raise EdgeError("no LiteRT interpreter installed: pip install ai-edge-litert")


def open_interpreter(model_path: str | Path, num_threads: int):
    """(interpreter with its tensors allocated, runtime name) for the .tflite file at `model_path`
    with `num_threads` threads (LiteRT's XNNPACK delegate applied, as the interpreter does by
    default), or BundleError."""
    cls, runtime = interpreter_class()
    try:
        with _native_info_held_back():
            interp = cls(model_path=str(model_path), num_threads=num_threads)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BundleError(f"LiteRT cannot load {str(model_path)!r}: {e}") from e
    return interp, runtime


@dataclass(frozen=True)
class SegmenterOptions:
    """The segmenter's options: the config's [model] section. Empty and zero are "not set"."""

    bundle: str = ""  # model bundle folder; empty: the bundled demo model
    num_threads: int = 0  # LiteRT threads; 0: as measured by `tlf-edge bench`, else the physical cores but one

    def __post_init__(self):
        require_option(
            "model",
            "num_threads",
            self.num_threads,
            self.num_threads >= 0,
            "must be 0 (the physical cores but one) or more",
        )

    @property
    def bundle_path(self) -> Path:
        """The bundle folder: the one named, or the bundled demo model."""
        return Path(self.bundle) if str(self.bundle) else DEMO_BUNDLE

    @property
    def threads(self) -> int:
        """The LiteRT thread count: the one set, or default_threads()."""
        return self.num_threads or default_threads()


class Segmenter:
    """Runs one bundle's int8 model on B-mode frames; see the module docstring for the contract."""

    def __init__(self, bundle: Bundle, num_threads: int, threads_chosen_by: str = "given"):
        self.bundle = bundle
        self.threads_chosen_by = threads_chosen_by  # why this thread count (edge.model.threads.ThreadChoice)
        self.spec = bundle.spec
        self.num_threads = check_threads(num_threads)
        num_threads = self.num_threads
        self.response = bundle.thickness_response  # None: thickness as the model draws it
        self._interp, self.runtime = open_interpreter(bundle.model_path, num_threads)
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise BundleError(f"model must have one input and one output, has {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        self._check_contract()
        in_scale, in_zero = self._in["quantization"]
        if self._in["dtype"] == np.int8:
            self._lut: np.ndarray | None = int8_lookup(self.spec, in_scale, in_zero)
        else:
            self._lut = None
        self.output_kind = bundle.output_kind
        self.binary = int(self._out["shape"][-1]) == 1  # one channel: two classes
        out_scale, out_zero = self._out["quantization"]
        quantized = self._out["dtype"] in (np.int8, np.uint8) and bool(out_scale)
        self.output_scale = float(out_scale) if quantized else 1.0
        self._out_zero = int(out_zero) if quantized else 0
        self._log_lut = None
        if self.output_kind in ("softmax", "sigmoid"):
            if quantized:
                lookup = _log_probability_lookup if self.output_kind == "softmax" else _log_sigmoid_lookup
                self._log_lut = lookup(np.dtype(self._out["dtype"]), self.output_scale, self._out_zero)
            self.logit_scale = 1.0
        else:
            self.logit_scale = self.output_scale

    @classmethod
    def create(cls, options: SegmenterOptions = SegmenterOptions(), bench: Path | None = None) -> Segmenter:
        """The segmenter of the [model] options. bench: a `tlf-edge bench` report whose thread count
        measured best on this machine is used when the options set none (edge.model.threads)."""
        check_threads(options.threads)  # a bad count is refused before the model loads
        bundle = load_bundle(options.bundle_path)
        if bundle.gate_failures:
            log.warning("model %s failed its int8 validation: %s", bundle.sha256[:12], "; ".join(bundle.gate_failures))
        choice = choose_threads(options.num_threads, bench, bundle.sha256)
        return cls(bundle, choice.threads, choice.why)

    def _check_contract(self) -> None:
        m = self.bundle.manifest
        got_in = [int(v) for v in self._in["shape"]]
        got_out = [int(v) for v in self._out["shape"]]
        if got_in != list(m["input"]["shape"]) or got_out != list(m["output"]["shape"]):
            raise BundleError(
                f"model tensors {got_in} -> {got_out} do not match the manifest "
                f"{m['input']['shape']} -> {m['output']['shape']}"
            )
        want = [1, self.spec.height, self.spec.width, self.spec.channels]
        if got_in != want:
            raise BundleError(f"model input {got_in} does not match its preprocessing {want}")
        if np.dtype(self._in["dtype"]).name != m["input"]["dtype"]:
            raise BundleError(
                f"model input dtype {np.dtype(self._in['dtype']).name} != manifest {m['input']['dtype']!r}"
            )
        scale, _ = self._out["quantization"]
        if self._out["dtype"] in (np.int8, np.uint8) and not scale > 0:
            raise BundleError(f"quantized output needs a positive scale, has {scale!r}")

    @property
    def interpreter(self):
        """The LiteRT interpreter `infer` invokes, for tools that time or inspect it (tlf-edge bench)."""
        return self._interp

    @property
    def classes(self) -> int:
        return 2 if self.binary else int(self._out["shape"][-1])

    def infer(self, model_image: np.ndarray) -> np.ndarray:
        """uint8 (H, W, C) model image -> raw output (H, W, K) in the model's output dtype."""
        return self.run(self.input_tensor(model_image))

    def input_tensor(self, model_image: np.ndarray) -> np.ndarray:
        """The model's input (H, W, C) for a uint8 model image: through the int8 lookup table, or
        normalised to float. A new array each call: it may be made on another thread than `run`."""
        if self._lut is not None:
            return fill_int8(self._lut, model_image)
        return to_float(model_image, self.spec).astype(self._in["dtype"])

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Invoke the model on an `input_tensor`: its raw output (H, W, K), a copy."""
        self._interp.set_tensor(self._in["index"], tensor[None])
        self._interp.invoke()
        return self._interp.get_tensor(self._out["index"])[0]

    def logits(self, raw: np.ndarray) -> np.ndarray:
        """Scores in logit units (times `logit_scale`) for a raw output of `infer`.

        Logits models: `raw` itself (a binary head: the zero point, then `raw`). Softmax and
        sigmoid models: float32 log-probabilities of each class (a probability below half a
        quantization step counts as half a step), whose differences equal the model's logit
        differences, so sub-pixel edges and margins mean the same for every kind.
        """
        if self._log_lut is not None:
            return self._log_lut[(raw[..., 0] if self.binary else raw).view(np.uint8)]
        if self.output_kind == "logits":
            if not self.binary:
                return raw
            return np.stack([np.full(raw.shape[:-1], self._out_zero, raw.dtype), raw[..., 0]], axis=-1)
        return scores_in_logit_units(raw, self.output_kind)

    def labels(self, raw: np.ndarray) -> np.ndarray:
        """The label map (H, W) uint8 of a raw output of `infer`: the class with the highest score
        (a binary head: the second class where its probability exceeds 0.5)."""
        return best_class(self.logits(raw) if self.binary else raw)

    def segment(self, frame: Frame) -> Segmentation:
        """Preprocess the frame's B-mode image, run the model and take the argmax."""
        image = to_model_image(frame.image, self.spec)
        return self.segmentation(frame, self.infer(image), image=image)

    def segmentation(
        self, frame: Frame, raw: np.ndarray, t_done: float | None = None, image: np.ndarray | None = None
    ) -> Segmentation:
        """The segmentation of `frame` from `raw`, the output of `infer` on its model image: labels,
        scores in logit units (see `logits`) and the spacing of a model pixel. The pipeline (on
        another thread than the invoke) and bench (timing inference apart) use this to get exactly
        what `segment` gives. t_done: when the invoke finished (default: now, after the argmax).
        image: the model image `raw` came from (default: made again from the frame)."""
        labels = self.labels(raw)
        spacing = model_spacing(frame.spacing_mm, frame.image.shape, self.spec)
        t_done = time.monotonic() if t_done is None else t_done
        image = to_model_image(frame.image, self.spec) if image is None else image
        h, w = frame.image.shape[:2]
        pixel_size = (h / self.spec.height, w / self.spec.width)
        return Segmentation(
            frame, labels, self.logits(raw), spacing, t_done, self.logit_scale, self.response, image, pixel_size
        )


@contextlib.contextmanager
def _native_info_held_back():
    """LiteRT's C++ side prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." straight
    to file descriptor 2 whenever an interpreter is made: noise on a cart's console and in the
    journal. Its output while the interpreter is made goes to a pipe; every line but its INFO
    lines is written to stderr afterwards (a warning or an error still shows)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        yield
        return
    os.set_blocking(write_end, False)  # more than a pipe holds is dropped, never waited on
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.set_blocking(read_end, False)
        chunks = []
        try:
            while chunk := os.read(read_end, 65536):
                chunks.append(chunk)
        except BlockingIOError:
            pass
        os.close(read_end)
        kept = [
            line
            for line in b"".join(chunks).decode(errors="replace").splitlines(keepends=True)
            if not line.startswith("INFO: ")
        ]
        if kept:
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


def _log_probability_lookup(dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """A 256-entry table from a quantized probability's byte to its log (floored at half a step)."""
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float64)
    p = np.maximum((codes - zero_point) * scale, scale / 2)
    return np.log(p).astype(np.float32)


def _log_sigmoid_lookup(dtype: np.dtype, scale: float, zero_point: int) -> np.ndarray:
    """A (256, 2) table from a quantized sigmoid probability's byte to the log-probabilities of
    the two classes, (log(1 - p), log p), each floored at half a step."""
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.float64)
    p = (codes - zero_point) * scale
    return np.log(np.maximum(np.stack([1.0 - p, p], axis=-1), scale / 2)).astype(np.float32)


def scores_in_logit_units(output: np.ndarray, kind: str) -> np.ndarray:
    """Float scores (H, W, classes) in logit units of a float model output (H, W, K) of `kind`:
    logits as they are (a binary head: 0, then the logit), softmax probabilities as their logs,
    a sigmoid probability p as (log(1 - p), log p). The argmax of the result is the label map."""
    out = np.asarray(output, np.float32)
    tiny = np.float32(1e-6)
    if kind == "softmax":
        return np.log(np.maximum(out, tiny))
    if kind == "sigmoid":
        p = np.clip(out[..., 0], tiny, 1 - tiny)
        return np.log(np.stack([1 - p, p], axis=-1))
    if out.shape[-1] == 1:
        return np.concatenate([np.zeros_like(out), out], axis=-1)
    return out
