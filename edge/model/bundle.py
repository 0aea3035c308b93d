"""Model bundles: `model.tflite` plus `manifest.json`, verified before anything is loaded.

The manifest states the tensor contract (input and output shape, dtype, scale, zero point),
what the output holds (`output.kind`: "logits", "softmax" probabilities or "sigmoid"
probabilities; "logits" when absent), the class names and which one is the TLF, the preprocessing spec and the tools that
made it. The device refuses a bundle whose schema it does not know, whose output description
does not fit its output tensor, or whose model file does not match its sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from edge.errors import BundleError
from edge.model.preprocess import PreprocessSpec

SCHEMA = "tlf-edge.bundle/1"
MODEL_FILE = "model.tflite"
MANIFEST_FILE = "manifest.json"
MANIFEST_HASH = "manifest_sha256"
REQUIRED = ("schema", "model_file", "sha256", "input", "output", "classes", "tlf_class", "preprocess", "created_by")
TENSOR_KEYS = ("shape", "dtype", "scale", "zero_point")
# Per-class scores before or after a softmax, or a sigmoid. An output of one channel is a binary
# head for two classes: the logit ("logits") or the probability ("sigmoid") of the second class,
# which a pixel takes where that probability exceeds 0.5.
OUTPUT_KINDS = ("logits", "softmax", "sigmoid")

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "demo"


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict
    spec: PreprocessSpec

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model_file"]

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def model_id(self) -> int:
        """A 32-bit id of the model (first 8 hex digits of its sha256), for displays and logs."""
        return int(self.sha256[:8], 16)

    @property
    def thickness_response(self):
        """The bundle's edge.measure.thickness.ThicknessResponse, or None (checked on load). The
        manifest keeps it under its first name, "thickness_calibration", which every sealed
        bundle records (renaming the key would break their manifest hash)."""
        from edge.measure.thickness import ThicknessResponse

        d = self.manifest.get("thickness_calibration")
        return None if d is None else ThicknessResponse.from_dict(d)

    @property
    def domain(self):
        """The bundle's edge.measure.domain.DomainModel (what its training images looked like), or None
        for a bundle made without one (checked on load)."""
        from edge.measure.domain import DomainModel

        d = self.manifest.get("domain")
        return None if d is None else DomainModel.from_dict(d)

    @property
    def tlf_class(self) -> int:
        return int(self.manifest["tlf_class"])

    @property
    def classes(self) -> list[str]:
        return list(self.manifest["classes"])

    @property
    def output_kind(self) -> str:
        """ "logits", "softmax" or "sigmoid" (probabilities); bundles from before the field hold logits."""
        return self.manifest["output"].get("kind", "logits")

    @property
    def gate_failures(self) -> list[str]:
        """Why the int8 model failed its float-versus-int8 validation, as recorded when it was made."""
        gate = (self.manifest.get("validation") or {}).get("gate") or {}
        return [] if gate.get("passed", True) else list(gate.get("failures", ["failed"]))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def manifest_digest(manifest: dict) -> str:
    """The sha256 of a manifest's content: its canonical JSON without the `manifest_sha256` entry."""
    body = {k: v for k, v in manifest.items() if k != MANIFEST_HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(manifest: dict) -> dict:
    """`manifest` with its `manifest_sha256` set to the digest of its content."""
    return {**{k: v for k, v in manifest.items() if k != MANIFEST_HASH}, MANIFEST_HASH: manifest_digest(manifest)}


def _check_seal(manifest: dict, manifest_path: Path) -> None:
    recorded = manifest.get(MANIFEST_HASH)
    if recorded is None:
        raise BundleError(
            f"manifest {str(manifest_path)!r} is not sealed (no {MANIFEST_HASH}): refusing an "
            f"unverifiable bundle; a bundle made before manifests were sealed: check it, then "
            f"tlf-edge seal {str(manifest_path.parent)!r}"
        )
    actual = manifest_digest(manifest)
    if recorded != actual:
        raise BundleError(
            f"manifest {str(manifest_path)!r} does not match its {MANIFEST_HASH} (content {actual[:12]}..., "
            f"sealed {str(recorded)[:12]}...): refusing an edited manifest"
        )


def load_bundle(path: str | Path, sealed: bool = True) -> Bundle:
    """Read and verify a bundle folder; raise BundleError with one clear line otherwise.
    sealed=False: also take a manifest without a seal (only `seal_bundle` does, to seal it)."""
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"not a model bundle: {str(path)!r} has no {MANIFEST_FILE}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: JSONDecodeError too
        raise BundleError(f"unreadable manifest {str(manifest_path)!r}: {e}") from e
    if not isinstance(manifest, dict):
        raise BundleError(f"manifest {str(manifest_path)!r} is not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise BundleError(
            f"unsupported bundle schema {manifest.get('schema')!r} in {str(path)!r} (expected {SCHEMA!r})"
        )
    if sealed or MANIFEST_HASH in manifest:
        _check_seal(manifest, manifest_path)
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"manifest {str(manifest_path)!r} lacks {missing}")
    _check_fields(manifest, f"manifest {str(manifest_path)!r}")
    _check_output(manifest, manifest_path)
    model_path = path / manifest["model_file"]
    if Path(manifest["model_file"]).name != manifest["model_file"]:
        raise BundleError(f"model_file {manifest['model_file']!r} must be a plain file name inside the bundle")
    if not model_path.is_file():
        raise BundleError(f"bundle {str(path)!r} lacks its model file {manifest['model_file']!r}")
    actual = file_sha256(model_path)
    if actual != manifest["sha256"]:
        raise BundleError(
            f"model file {str(model_path)!r} does not match its manifest (sha256 {actual[:12]}..., "
            f"expected {str(manifest['sha256'])[:12]}...): refusing a modified or wrong model"
        )
    try:
        spec = PreprocessSpec.from_dict(manifest["preprocess"])
    except (TypeError, ValueError) as e:
        raise BundleError(f"bad preprocessing spec in {str(manifest_path)!r}: {e}") from e
    bundle = Bundle(path=path, manifest=manifest, spec=spec)
    try:
        _ = bundle.thickness_response, bundle.domain  # both parsed now: a bad entry is refused at load
    except (TypeError, ValueError) as e:
        raise BundleError(f"manifest {str(manifest_path)!r}: {e}") from e
    return bundle


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_fields(m: dict, where: str) -> None:
    """The types of the entries the device reads, so that nothing later fails on a wrong one."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise BundleError(f"{where}: {what}")

    need(
        isinstance(m["model_file"], str) and bool(m["model_file"]), f"model_file {m['model_file']!r} is not a file name"
    )
    need(
        isinstance(m["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", m["sha256"]) is not None,
        f"sha256 {m['sha256']!r} is not a sha256 digest",
    )
    for side in ("input", "output"):
        t = m[side]
        need(isinstance(t, dict), f"{side} is not an object: {t!r}")
        absent = [k for k in TENSOR_KEYS if k not in t]
        need(not absent, f"{side} lacks {absent}")
        shape = t["shape"]
        need(
            isinstance(shape, list)
            and bool(shape)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape),
            f"{side} shape {shape!r} is not a tensor shape",
        )
        need(isinstance(t["dtype"], str), f"{side} dtype {t['dtype']!r} is not a type name")
        need(_number(t["scale"]), f"{side} scale {t['scale']!r} is not a number")
        need(
            isinstance(t["zero_point"], int) and not isinstance(t["zero_point"], bool),
            f"{side} zero_point {t['zero_point']!r} is not a whole number",
        )
    need(
        isinstance(m["classes"], list) and all(isinstance(c, str) for c in m["classes"]),
        f"classes {m['classes']!r} is not a list of names",
    )
    need(isinstance(m["created_by"], dict), f"created_by {m['created_by']!r} is not an object")
    validation = m.get("validation")
    need(validation is None or isinstance(validation, dict), f"validation {validation!r} is not an object")
    gate = (validation or {}).get("gate")
    need(
        gate is None
        or (
            isinstance(gate, dict)
            and isinstance(gate.get("passed", True), bool)
            and isinstance(gate.get("failures", []), list)
        ),
        f"validation gate {gate!r} is malformed",
    )


def _check_output(manifest: dict, manifest_path: Path) -> None:
    """The output kind, class names and TLF class must agree with the output tensor."""
    where = f"manifest {str(manifest_path)!r}"
    kind = manifest["output"].get("kind", "logits")
    if not isinstance(kind, str) or kind not in OUTPUT_KINDS:
        raise BundleError(f"{where}: unknown output kind {kind!r} (expected one of {list(OUTPUT_KINDS)})")
    shape, classes, tlf = manifest["output"]["shape"], manifest["classes"], manifest["tlf_class"]
    channels = shape[-1] if isinstance(shape, list) and shape else None
    want = 2 if channels == 1 else channels  # one channel: a binary head for two classes
    if not isinstance(classes, list) or channels is None or len(classes) != want:
        raise BundleError(
            f"{where}: {len(classes) if isinstance(classes, list) else classes!r} class names "
            f"for an output of shape {shape!r}"
        )
    if kind == "sigmoid" and channels != 1:
        raise BundleError(f"{where}: a sigmoid output has one channel (two classes at p = 0.5), not {channels}")
    if isinstance(tlf, bool) or not isinstance(tlf, int) or not 0 <= tlf < len(classes):
        raise BundleError(f"{where}: tlf_class {tlf!r} is not a class index 0-{len(classes) - 1}")


def write_bundle(path: str | Path, model_bytes: bytes, manifest: dict) -> Bundle:
    """Write `model.tflite` and its manifest (adding schema, model_file and sha256), then verify."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_FILE).write_bytes(model_bytes)
    full = {"schema": SCHEMA, "model_file": MODEL_FILE, "sha256": hashlib.sha256(model_bytes).hexdigest(), **manifest}
    write_manifest(path, full)
    return load_bundle(path)


_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][0-9.eE+-]*(?:,\s*-?[0-9][0-9.eE+-]*)*)\s*\]")


def write_manifest(path: str | Path, manifest: dict) -> None:
    """Write `manifest` (sealed) as the manifest of the bundle folder `path`: indented JSON, each
    list of numbers on one line (a shape; a row of domain statistics). The seal is over the
    content, not the layout."""
    text = json.dumps(seal(manifest), indent=2)
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
    (Path(path) / MANIFEST_FILE).write_text(text + "\n")


def seal_bundle(path: str | Path) -> tuple[Bundle, bool]:
    """Seal the manifest of a bundle made before manifests were sealed: (bundle, True when it was
    sealed now, False when it already was). Every other check of load_bundle must pass first (the
    model file against its sha256 included); a sealed manifest that was edited stays refused.

    The seal is the sha256 of the manifest's own content: it catches an edit or a damaged file, not
    someone who recomputes it on purpose (it is not a signature)."""
    bundle = load_bundle(path, sealed=False)
    if MANIFEST_HASH in bundle.manifest:
        return bundle, False
    write_manifest(bundle.path, bundle.manifest)
    return load_bundle(bundle.path), True


def update_manifest(bundle: Bundle, **entries) -> Bundle:
    """Add or replace top-level manifest entries (e.g. validation results) of a verified bundle."""
    write_manifest(bundle.path, dict(bundle.manifest, **entries))
    return load_bundle(bundle.path)
