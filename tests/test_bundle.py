import json
import shutil
from pathlib import Path

import pytest

from edge.bundle import DEMO_BUNDLE, SCHEMA, load_bundle
from edge.errors import BundleError


def edit_manifest(bundle: Path, change) -> None:
    """Apply `change(manifest_dict)` to a bundle's manifest on disk."""
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))


@pytest.fixture
def bundle_copy(tmp_path):
    dst = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, dst)
    return dst


def test_demo_bundle_verifies_and_states_its_contract():
    b = load_bundle(DEMO_BUNDLE)
    m = b.manifest
    assert m["schema"] == SCHEMA
    assert m["input"]["dtype"] == "int8" and m["input"]["shape"] == [1, 256, 256, 1]
    assert m["output"]["dtype"] == "int8" and m["output"]["shape"] == [1, 256, 256, 3]
    assert m["classes"] == ["above", "tlf", "below"] and m["tlf_class"] == 1
    assert {"tensorflow", "keras", "tlf-edge"} <= set(m["created_by"])
    assert len(b.sha256) == 64


def test_tampered_model_is_refused(bundle_copy):
    model = bundle_copy / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its manifest"):
        load_bundle(bundle_copy)


def test_missing_manifest_is_refused(tmp_path):
    with pytest.raises(BundleError, match="not a model bundle"):
        load_bundle(tmp_path)


def test_unknown_schema_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(schema="tlf-edge.bundle/99"))
    with pytest.raises(BundleError, match="unsupported bundle schema"):
        load_bundle(bundle_copy)


def test_malformed_manifest_is_refused(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable manifest"):
        load_bundle(bundle_copy)


def test_manifest_missing_a_field_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.pop("preprocess"))
    with pytest.raises(BundleError, match="lacks"):
        load_bundle(bundle_copy)


def test_model_path_escaping_the_bundle_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(model_file="../model.tflite"))
    with pytest.raises(BundleError, match="plain file name"):
        load_bundle(bundle_copy)


def test_wrong_model_file_is_refused_by_the_segmenter(bundle_copy):
    from edge.bundle import file_sha256
    from edge.segmenter import Segmenter, SegmenterOptions

    (bundle_copy / "model.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    edit_manifest(bundle_copy, lambda m: m.update(sha256=file_sha256(bundle_copy / "model.tflite")))
    with pytest.raises(BundleError, match="LiteRT cannot load"):
        Segmenter.create(SegmenterOptions(bundle=bundle_copy, num_threads=1))


def test_a_failed_validation_gate_is_reported_when_the_model_is_loaded(bundle_copy, capsys):
    from edge.segmenter import Segmenter, SegmenterOptions

    failed = {"gate": {"passed": False, "failures": ["int8 mean IoU is 0.0900 below float"]}}
    edit_manifest(bundle_copy, lambda m: m.update(validation=failed))
    assert load_bundle(bundle_copy).gate_failures == ["int8 mean IoU is 0.0900 below float"]
    Segmenter.create(SegmenterOptions(bundle=bundle_copy, num_threads=1))
    assert "failed its int8 validation: int8 mean IoU is 0.0900 below float" in capsys.readouterr().err
    edit_manifest(bundle_copy, lambda m: m.update(validation={"gate": {"passed": True, "failures": []}}))
    assert load_bundle(bundle_copy).gate_failures == []
