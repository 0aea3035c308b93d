import io
import shutil

from edge.ops import doctor
from edge.model.bundle import DEMO_BUNDLE


def test_doctor_passes_on_the_embedded_default_apart_from_the_machine(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    doctor.main(None, out)
    lines = out.getvalue().splitlines()
    names = [line.split()[1] for line in lines[:-1]]
    assert names == ["config", "capture", "scale", "display", "model", "disk", "cpu"]
    status = {line.split()[1]: line.split()[0] for line in lines[:-1]}
    assert all(status[n] == "PASS" for n in ("config", "capture", "scale", "display", "model")), lines
    assert set(status.values()) <= {"PASS", "FAIL"}


def test_doctor_fails_a_tampered_bundle_a_bad_port_and_a_bad_config(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    (bundle / "model.tflite").write_bytes(b"\0" * 100)
    assert not doctor.check_bundle(str(bundle)).ok
    bad_port = doctor.check_display(str(tmp_path / "ttyNONE"), 115200)
    assert not bad_port.ok and "cannot open" in bad_port.detail
    assert doctor.check_display("loop://", 115200).ok
    cfg = tmp_path / "bad.toml"
    cfg.write_text("version = 1\n[display]\nbaud = 'fast'\n")
    out = io.StringIO()
    assert doctor.main(str(cfg), out) == 1
    assert out.getvalue().splitlines()[0].startswith("FAIL  config")


def test_doctor_reports_an_unopenable_capture_device():
    c = doctor.check_source("/dev/video99")
    assert not c.ok and "video99" in c.detail


def test_doctor_checks_the_disk_under_the_data_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "cart-data"
    data.mkdir()
    cfg = tmp_path / "cart.toml"
    cfg.write_text(f'version = 1\n[source]\nurl = "phantom://clip"\n[display]\nurl = "none"\n'
                   f'\n[storage]\ndata_dir = "{data}"\n\n[log]\ndirectory = "logs"\n')
    out = io.StringIO()
    doctor.main(str(cfg), out)
    disk = [line for line in out.getvalue().splitlines() if line.split()[1:2] == ["disk"]]
    assert len(disk) == 1 and str(data) in disk[0], out.getvalue()


def test_doctor_fails_a_cart_config_that_names_no_source_or_display(tmp_path):
    cfg = tmp_path / "cart.toml"
    cfg.write_text("version = 1\n[display]\nbaud = 921600\n")
    out = io.StringIO()
    assert doctor.main(str(cfg), out) == 1
    assert out.getvalue().startswith("FAIL  config     ") and "[source] url: not set" in out.getvalue()


def test_doctor_fails_a_cart_config_on_the_phantom_or_the_emulated_display(tmp_path):
    cfg = tmp_path / "cart.toml"
    cfg.write_text('version = 1\n[source]\nurl = "phantom://clip?frames=2"\n[display]\nurl = "emulate"\n')
    out = io.StringIO()
    assert doctor.main(str(cfg), out) == 1
    status = {line.split()[1]: line for line in out.getvalue().splitlines()[:-1]}
    assert status["config"].startswith("PASS")
    assert status["capture"].startswith("FAIL") and "phantom scanner (SIMULATED)" in status["capture"]
    assert status["display"].startswith("FAIL") and "emulator" in status["display"]


def test_doctor_on_the_defaults_says_the_demo_source_is_simulated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check = doctor.check_source("phantom://clip?frames=2&size=256x256")
    assert check.ok and "SIMULATED" in check.detail


def test_doctor_fails_a_bundle_whose_int8_validation_failed(tmp_path):
    from edge.model.bundle import load_bundle, update_manifest

    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO_BUNDLE, bundle)
    b = load_bundle(bundle)
    validation = dict(b.manifest["validation"], gate={"passed": False, "failures": ["int8 mean IoU 0.02 below float"]})
    update_manifest(b, validation=validation)
    c = doctor.check_bundle(str(bundle))
    assert not c.ok and "failed its int8 validation: int8 mean IoU 0.02 below float" in c.detail
    assert doctor.check_bundle(str(DEMO_BUNDLE)).ok and "rewrite" not in doctor.check_bundle(str(DEMO_BUNDLE)).detail
