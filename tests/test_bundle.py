import json
import shutil
from pathlib import Path

import pytest

from edge.model.bundle import DEMO_BUNDLE, SCHEMA, load_bundle, write_manifest
from edge.errors import BundleError


def edit_manifest(bundle: Path, change, seal: bool = True) -> None:
    """Apply `change(manifest_dict)` to a bundle's manifest on disk, sealed again as the
    converter would (seal=False: an edit by hand)."""
    path = bundle / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    if seal:
        write_manifest(bundle, m)
    else:
        path.write_text(json.dumps(m, indent=2))


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


@pytest.mark.parametrize("change", [
    lambda m: m["preprocess"].update(scale=m["preprocess"]["scale"] * 1.1),
    lambda m: m["thickness_calibration"].update(b=m["thickness_calibration"]["b"] * 1.5),
    lambda m: m.update(tlf_class=0),
    lambda m: m.update(note="a comment added by hand"),
], ids=["preprocess-scale", "response-coefficient", "tlf-class", "added-entry"])
def test_an_edited_manifest_is_refused(bundle_copy, change):
    edit_manifest(bundle_copy, change, seal=False)
    with pytest.raises(BundleError, match="does not match its manifest_sha256") as e:
        load_bundle(bundle_copy)
    assert "\n" not in str(e.value) and "refusing an edited manifest" in str(e.value)


def test_an_unsealed_manifest_is_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.pop("manifest_sha256"), seal=False)
    with pytest.raises(BundleError, match="not sealed"):
        load_bundle(bundle_copy)


def test_a_bundle_made_before_seals_is_shown_by_info_and_sealed_by_seal(bundle_copy, capsys):
    """Bundles written before manifests were sealed are not lost: info shows the manifest (and
    still refuses it), seal seals it once everything else verifies, and then it loads."""
    from edge.cli import main

    edit_manifest(bundle_copy, lambda m: m.pop("manifest_sha256"), seal=False)
    assert main(["info", str(bundle_copy)]) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["classes"] == ["above", "tlf", "below"]
    assert "not sealed" in err and "tlf-edge seal" in err and err.count("\n") == 1
    assert main(["seal", str(bundle_copy)]) == 0
    assert "manifest sealed" in capsys.readouterr().out
    assert load_bundle(bundle_copy).manifest["manifest_sha256"]
    assert main(["seal", str(bundle_copy)]) == 0
    assert "already sealed" in capsys.readouterr().out


def test_seal_refuses_an_edited_sealed_manifest_and_a_changed_model(bundle_copy, capsys):
    from edge.cli import main

    edit_manifest(bundle_copy, lambda m: m.update(tlf_class=0), seal=False)  # edited after sealing
    assert main(["seal", str(bundle_copy)]) == 2
    assert "refusing an edited manifest" in capsys.readouterr().err
    edit_manifest(bundle_copy, lambda m: (m.pop("manifest_sha256"), m.update(tlf_class=1)), seal=False)
    model = bundle_copy / "model.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    assert main(["seal", str(bundle_copy)]) == 2
    assert "does not match its manifest" in capsys.readouterr().err
    assert "manifest_sha256" not in json.loads((bundle_copy / "manifest.json").read_text())


def test_the_seal_covers_content_not_formatting(bundle_copy):
    path = bundle_copy / "manifest.json"
    m = json.loads(path.read_text())
    path.write_text(json.dumps(dict(reversed(list(m.items())))))  # other key order, no indentation
    assert load_bundle(bundle_copy).manifest == m


def test_the_converters_writers_seal_the_manifest(bundle_copy):
    from edge.model.bundle import manifest_digest, update_manifest

    b = update_manifest(load_bundle(bundle_copy), validation={"gate": {"passed": True, "failures": []}})
    assert b.manifest["manifest_sha256"] == manifest_digest(b.manifest)
    assert load_bundle(bundle_copy).manifest["validation"] == {"gate": {"passed": True, "failures": []}}


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
    from edge.model.bundle import file_sha256
    from edge.model.segmenter import Segmenter, SegmenterOptions

    (bundle_copy / "model.tflite").write_bytes(b"this is not a flatbuffer" * 10)
    edit_manifest(bundle_copy, lambda m: m.update(sha256=file_sha256(bundle_copy / "model.tflite")))
    with pytest.raises(BundleError, match="LiteRT cannot load"):
        Segmenter.create(SegmenterOptions(bundle=bundle_copy, num_threads=1))


def test_a_failed_validation_gate_is_reported_when_the_model_is_loaded(bundle_copy, capsys):
    from edge.model.segmenter import Segmenter, SegmenterOptions

    failed = {"gate": {"passed": False, "failures": ["int8 mean IoU is 0.0900 below float"]}}
    edit_manifest(bundle_copy, lambda m: m.update(validation=failed))
    assert load_bundle(bundle_copy).gate_failures == ["int8 mean IoU is 0.0900 below float"]
    Segmenter.create(SegmenterOptions(bundle=bundle_copy, num_threads=1))
    assert "failed its int8 validation: int8 mean IoU is 0.0900 below float" in capsys.readouterr().err
    edit_manifest(bundle_copy, lambda m: m.update(validation={"gate": {"passed": True, "failures": []}}))
    assert load_bundle(bundle_copy).gate_failures == []
