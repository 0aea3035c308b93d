"""DICOM source on real ultrasound files: regions and spacing, colour models, compression,
multi-frame cines, damaged files, missing decoders and a missing pydicom."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import SourceError
from edge.sources import open_source
from edge.sources.dicom import DicomSource

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from conftest import DICOM_DIR as DICOM  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def frames_of(path, **kw):
    src = DicomSource(path, **kw).open()
    return src, list(src)


def test_region_crop_and_spacing_from_ultrasound_regions():
    src, frames = frames_of(DICOM / "JPGLosslessP14SV1_1s_1f_8b.dcm")
    assert src.cropped and src.roi == (14, 38, 997, 721) and src.calibration.source == "dicom"
    assert len(frames) == 1 and frames[0].image.shape == (721, 997)  # MONOCHROME2 stays gray
    assert frames[0].spacing_mm == pytest.approx((0.25476696592378157,) * 2)  # 0.0255 cm


def test_palette_colour_files_agree_across_compressions():
    _, plain = frames_of(DICOM / "OBXXXX1A.dcm")
    _, rle = frames_of(DICOM / "OBXXXX1A_rle.dcm")
    src, two = frames_of(DICOM / "OBXXXX1A_2frame.dcm")
    assert plain[0].image.shape == (459, 680, 3) and plain[0].image.dtype == np.uint8
    assert np.array_equal(plain[0].image, rle[0].image)  # RLE is lossless
    assert len(two) == 2 and src.frames == 2 and [f.seq for f in two] == [0, 1]
    assert plain[0].spacing_mm == pytest.approx((0.2622878766196998,) * 2)


def test_jpeg2000_ybr_rct_decodes_to_the_same_picture_as_the_uncompressed_file():
    pytest.importorskip("openjpeg", reason="pylibjpeg-openjpeg is not installed")
    src, j2k = frames_of(DICOM / "US1_J2KR.dcm")
    _, raw = frames_of(DICOM / "US1_UNCR.dcm")
    assert np.array_equal(j2k[0].image, raw[0].image)  # lossless, colour converted the same way
    # No ultrasound regions: whole frame, no spacing (the ROI stage must find the image).
    assert not src.cropped and src.roi is None and j2k[0].spacing_mm is None
    assert j2k[0].image.shape == (480, 640, 3)


def test_sixteen_bit_palette_and_dual_regions():
    src, frames = frames_of(DICOM / "gdcm-US-ALOKA-16.dcm")
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (392, 304, 3)
    assert src.roi == (32, 24, 304, 392)  # the first of two equal side-by-side B-mode regions
    assert frames[0].image.max() > 100
    src2, right = frames_of(DICOM / "gdcm-US-ALOKA-16.dcm", region=1)
    assert src2.roi == (336, 24, 304, 392)
    whole = DicomSource(DICOM / "gdcm-US-ALOKA-16.dcm", crop=False).open().read()
    assert whole.image.shape == (480, 640, 3) and whole.spacing_mm is not None


def test_url_options():
    src = open_source(f"dicom://{DICOM / 'gdcm-US-ALOKA-16.dcm'}?region=1&crop=0")
    assert isinstance(src, DicomSource) and src.region == 1 and not src.crop
    with pytest.raises(SourceError, match="region 'x' is not an integer"):
        open_source(f"dicom://{DICOM / 'gdcm-US-ALOKA-16.dcm'}?region=x")
    with pytest.raises(SourceError, match="region 7 does not exist"):
        DicomSource(DICOM / "gdcm-US-ALOKA-16.dcm", region=7).open()


def test_ybr_cine_from_pydicom_is_converted_to_bgr():
    path = get_testdata_file("examples_ybr_color.dcm")
    src, frames = frames_of(path)
    assert len(frames) == 30 and src.frames == 30
    assert frames[0].image.shape == (240, 320, 3)
    rgb = pydicom.pixels.pixel_array(path, index=0)  # pydicom's own YBR -> RGB
    assert np.array_equal(frames[0].image, rgb[:, :, ::-1])
    # Its region bounds exceed the (resampled) frame: neither bounds nor spacing are trusted.
    assert src.roi is None and frames[0].spacing_mm is None and "exceed" in src.note


def test_palette_example_becomes_colour():
    src, frames = frames_of(get_testdata_file("examples_palette.dcm"))
    img = frames[0].image
    assert img.ndim == 3 and img.dtype == np.uint8
    assert (img[:, :, 0] != img[:, :, 2]).any()  # a real colour map, not gray


def test_a_truncated_frame_is_skipped_and_counted():
    src, frames = frames_of(get_testdata_file("MR_truncated.dcm"))
    assert frames == [] and src.corrupt == 1


def test_a_transfer_syntax_without_any_decoder_is_one_clear_error(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG4HP41

    ds = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(60)])  # an MPEG-4 cine loop
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = MPEG4HP41
    path = tmp_path / "cine_mpeg4.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(SourceError) as err:
        DicomSource(path).open()
    msg = str(err.value)
    assert "cine_mpeg4.dcm" in msg and "MPEG-4" in msg and "\n" not in msg


def test_missing_jpeg_plugin_is_one_clear_error():
    # A fresh interpreter in which the pylibjpeg plugins cannot be found, as on a device
    # installed without the 'dicom' extra's decoders.
    code = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('libjpeg', 'pylibjpeg', 'openjpeg'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from edge.sources.dicom import DicomSource\n"
        "from edge.errors import SourceError\n"
        f"try:\n    DicomSource({str(DICOM / 'JPGLosslessP14SV1_1s_1f_8b.dcm')!r}).open()\n"
        "except SourceError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    msg = out.stdout.strip()
    assert "JPGLosslessP14SV1_1s_1f_8b.dcm" in msg and "pip install pylibjpeg" in msg, out.stderr
    assert "\n" not in msg


def test_missing_pydicom_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(SourceError, match="pydicom is not installed"):
        DicomSource(tmp_path / "any.dcm").open()


def test_not_a_dicom_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"hello" * 50)
    with pytest.raises(SourceError, match="cannot read DICOM .*scan.dcm") as e:
        DicomSource(bad).open()
    assert str(e.value).endswith("not a DICOM file (no 'DICM' marker, no file meta information)")
    assert "force" not in str(e.value)  # pydicom's advice is for its own callers, not for a user


def test_missing_dicom_file_is_one_clear_error(tmp_path):
    with pytest.raises(SourceError, match="no such DICOM file .*gone.dcm"):
        open_source(str(tmp_path / "gone.dcm")).open()


def test_a_dicom_without_pixels_is_one_clear_error():
    with pytest.raises(SourceError, match="holds no image"):
        DicomSource(get_testdata_file("rtplan.dcm")).open()


@pytest.mark.parametrize("factor, used", [(1.0, True), (0.05, True), (10.0, False), (0.01, False)])
def test_a_region_spacing_that_makes_the_image_deeper_or_shallower_than_a_b_mode_is_not_used(tmp_path, factor, used):
    """A real Philips file (its region 459 px deep at 0.262 mm per pixel: 120 mm) with its
    PhysicalDelta off by a unit slip: 10x is a 1.2 m deep image, 0.01x a 1.2 mm one; neither a
    B-mode shows (3-300 mm deep), so the spacing is not used, with the reason, and the thickness
    is in pixels; 0.05x (6 mm deep, as a high-frequency probe shows) is used."""
    ds = pydicom.dcmread(DICOM / "OBXXXX1A.dcm")
    for region in ds.SequenceOfUltrasoundRegions:
        region.PhysicalDeltaX, region.PhysicalDeltaY = (float(v) * factor for v in (region.PhysicalDeltaX, region.PhysicalDeltaY))
    path = tmp_path / "slip.dcm"
    ds.save_as(path)
    src, frames = frames_of(path)
    assert src.cropped and src.roi == (120, 60, 680, 459)
    if used:
        assert frames[0].spacing_mm == pytest.approx((0.26228787661969977 * factor,) * 2)
        return
    assert src.calibration.spacing_mm is None and frames[0].spacing_mm is None
    assert "beyond the 3-300 mm deep and 600 mm wide a B-mode image shows: not used" in src.note
