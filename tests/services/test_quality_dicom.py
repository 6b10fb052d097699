"""DICOM quality checks: each flags a crafted bad file (written with pydicom) and passes a good one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medfusion.quality import ItemReport, check_images, load_config
from medfusion.services._quality_inputs import input_kind, read_images
from tests.services.dicom_cases import JPEG2000Lossless, JPEGLSLossless, texture, write_dicom

DICOM_CHECKS = {"dicom_pixel_data", "dicom_header", "dicom_shape", "dicom_hounsfield", "dicom_duplicate_uid"}


def _check(path: Path, config: Path | None = None) -> ItemReport:
    read = read_images(path)
    return check_images(read.images, load_config(config), labelled=read.labelled, dicom=read.dicom)


def _found(report: ItemReport) -> dict[str, set[object]]:
    found: dict[str, set[object]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, set()).add(finding.row)
    return found


def _ct(seed: int = 0) -> np.ndarray:
    """Stored CT values 24..3000 (-1000..1976 HU with intercept -1024)."""
    return texture(24, 24, seed=seed, low=24, high=3000)


def test_a_good_folder_of_ct_and_multiframe_mr_passes(tmp_path: Path) -> None:
    write_dicom(tmp_path / "ct1.dcm", _ct(1), modality="CT", slope=1.0, intercept=-1024.0)
    write_dicom(tmp_path / "ct2.dcm", _ct(2), modality="CT", slope=1.0, intercept=-1024.0)
    frames = np.stack([texture(24, 24, seed=s) for s in range(4)])
    write_dicom(tmp_path / "cine.dcm", frames, modality="MR")
    assert input_kind(tmp_path) == "images"
    report = _check(tmp_path, _config(tmp_path, "[images]\noutlier_z = 1e6\n"))
    assert report.passed and report.findings == (), report.findings
    checks = {c.name: c for c in report.checks}
    assert set(checks) >= DICOM_CHECKS
    assert all(checks[name].checked > 0 for name in DICOM_CHECKS)
    assert checks["dicom_hounsfield"].checked == 2
    assert report.summary["dicom"] == {"files": 3, "modalities": {"CT": 2, "MR": 1}, "frames": 6}


def test_rgb_ultrasound_single_and_multiframe(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    write_dicom(tmp_path / "us.dcm", rng.integers(20, 230, size=(24, 24, 3)).astype(np.uint8), modality="US")
    clip = rng.integers(20, 230, size=(3, 24, 24, 3)).astype(np.uint8)
    write_dicom(tmp_path / "clip.dcm", clip, modality="US")
    report = _check(tmp_path)
    assert report.passed and report.findings == (), report.findings
    assert report.summary["formats"] == {"24x24x3 uint8": 4}


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path.parent / f"{tmp_path.name}.toml"
    path.write_text(text)
    return path


def test_non_image_objects_and_unreadable_files_are_findings(tmp_path: Path) -> None:
    write_dicom(tmp_path / "good.dcm", texture(), modality="MR")
    write_dicom(tmp_path / "plan.dcm", None, modality="RTPLAN")
    (tmp_path / "junk.dcm").write_bytes(b"DICM" + b"\x01" * 40)
    # JPEG-LS needs pylibjpeg-libjpeg, GDCM or pyjpegls, none of which medfusion ships.
    write_dicom(tmp_path / "jls.dcm", texture(), modality="MR", syntax=JPEGLSLossless)
    # JPEG 2000: Pillow may decode it where built with OpenJPEG, but this codestream is broken.
    write_dicom(tmp_path / "j2k.dcm", texture(), modality="MR", syntax=JPEG2000Lossless)
    report = _check(tmp_path)
    pixel = {f.row: f for f in report.findings if f.check == "dicom_pixel_data"}
    assert set(pixel) == {"plan.dcm", "junk.dcm", "jls.dcm", "j2k.dcm"}
    assert pixel["plan.dcm"].value == {"sop_class": "RT Plan Storage", "modality": "RTPLAN"}
    assert "no pixel data" in pixel["plan.dcm"].message
    assert "not a readable DICOM file" in pixel["junk.dcm"].message
    assert "pylibjpeg" in pixel["jls.dcm"].message and "JPEG-LS" in pixel["jls.dcm"].message
    assert "JPEG 2000" in pixel["j2k.dcm"].message and "cannot be decoded" in pixel["j2k.dcm"].message
    # The non-image plan does not need Rows / Columns; nothing else fails for it.
    assert {f.check for f in report.findings if f.row == "plan.dcm"} == {"dicom_pixel_data"}
    assert not report.passed


def test_missing_header_elements_are_flagged_per_element(tmp_path: Path) -> None:
    write_dicom(tmp_path / "good.dcm", texture(), modality="MR")
    write_dicom(tmp_path / "bad.dcm", texture(seed=1), modality="MR", drop=("StudyInstanceUID",), Modality="")
    report = _check(tmp_path)
    header = {(f.row, f.column) for f in report.findings if f.check == "dicom_header"}
    assert header == {("bad.dcm", "StudyInstanceUID"), ("bad.dcm", "Modality")}


def test_pixel_data_that_disagrees_with_the_header_is_flagged(tmp_path: Path) -> None:
    write_dicom(tmp_path / "good.dcm", np.stack([texture(seed=s) for s in range(2)]), modality="MR")
    # Three frames announced, two stored.
    write_dicom(tmp_path / "frames.dcm", np.stack([texture(seed=s) for s in range(2)]), frames=3)
    write_dicom(tmp_path / "rows.dcm", texture(seed=4), Rows=20)  # 20 x 16 pixels announced, 16 x 16 stored
    report = _check(tmp_path)
    shape = {f.row: f.message for f in report.findings if f.check == "dicom_shape"}
    assert set(shape) == {"frames.dcm", "rows.dcm"}
    assert "need 1536" in shape["frames.dcm"] and "holds 1024 bytes" in shape["frames.dcm"]
    # A size mismatch is reported once, as a shape finding, not also as undecodable.
    assert not {f.row for f in report.findings if f.check == "dicom_pixel_data"}


def test_ct_values_outside_the_hounsfield_range_are_flagged(tmp_path: Path) -> None:
    write_dicom(tmp_path / "good.dcm", _ct(), modality="CT", slope=1.0, intercept=-1024.0)
    # Outside the scanner's field: padding value -2000, left out of the range check.
    padded = _ct(1)
    padded[:8] = -2000
    write_dicom(
        tmp_path / "padded.dcm", padded, modality="CT", slope=1.0, intercept=0.0, PixelPaddingValue=-2000
    )
    # Stored values shifted up by 2000 with no intercept: about two thirds read above 3071 HU.
    wrong = _ct(2) + 2000
    write_dicom(tmp_path / "wrong.dcm", wrong, modality="CT", slope=1.0, intercept=0.0)
    report = _check(tmp_path)
    hounsfield = {f.row: f for f in report.findings if f.check == "dicom_hounsfield"}
    assert set(hounsfield) == {"wrong.dcm"}
    assert "outside -1024..3071 HU" in hounsfield["wrong.dcm"].message
    assert hounsfield["wrong.dcm"].severity == "error"
    # The tolerance is the config's: allowing 90 % outside passes the file.
    relaxed = _check(tmp_path, _config(tmp_path, "[images]\nhounsfield_share = 0.9\n"))
    assert "dicom_hounsfield" not in _found(relaxed)
    # And so is the range itself.
    wide = _check(tmp_path, _config(tmp_path, "[images]\nhounsfield = [-1024, 6000]\n"))
    assert "dicom_hounsfield" not in _found(wide)


def test_a_sop_instance_uid_shared_by_two_files_is_flagged(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", texture(seed=1), SOPInstanceUID="1.2.3.4")
    write_dicom(tmp_path / "b.dcm", texture(seed=2), SOPInstanceUID="1.2.3.4")
    write_dicom(tmp_path / "c.dcm", texture(seed=3))
    report = _check(tmp_path)
    duplicates = [f for f in report.findings if f.check == "dicom_duplicate_uid"]
    assert [(f.row, f.value) for f in duplicates] == [("b.dcm", "a.dcm")]
    # Distinct pixels: the exact-pixel duplicate check does not see it.
    assert "duplicate_items" not in _found(report)


def test_threshold_and_severity_overrides_apply(tmp_path: Path) -> None:
    write_dicom(tmp_path / "a.dcm", texture(seed=1), SOPInstanceUID="1.2.3.4")
    write_dicom(tmp_path / "b.dcm", texture(seed=2), SOPInstanceUID="1.2.3.4")
    config = _config(tmp_path, "[checks.dicom_duplicate_uid]\nseverity = 'warning'\n")
    report = _check(tmp_path, config)
    assert report.passed and [f.severity for f in report.findings] == ["warning"]
    config = _config(tmp_path, "[checks.dicom_duplicate_uid]\nthreshold = 0.5\n")
    assert _check(tmp_path, config).findings == ()


def test_frames_go_through_the_image_checks(tmp_path: Path) -> None:
    frames = np.stack([texture(seed=s).astype(np.uint16) for s in range(4)])
    frames[2] = 0  # a blank frame in a cine
    write_dicom(tmp_path / "cine.dcm", frames, modality="MR")
    # 12 bits stored in 16: most pixels at 4095 is saturation, though far below 65535.
    saturated = texture(seed=9).astype(np.uint16)
    saturated[:12] = 4095
    write_dicom(tmp_path / "sat.dcm", saturated, BitsStored=12, HighBit=11)
    report = _check(tmp_path)
    found = _found(report)
    assert found["image_constant"] == {"cine.dcm#3"}
    assert found["image_saturation"] == {"sat.dcm"}
    assert "(4095)" in next(f.message for f in report.findings if f.check == "image_saturation")


def test_a_single_file_and_non_dicom_input(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "one.dcm", texture(), modality="MR")
    assert input_kind(path) == "images"
    report = _check(path)
    assert report.passed and report.items == 1
    np.save(tmp_path / "plain.npy", texture())
    plain = _check(tmp_path / "plain.npy")
    assert not DICOM_CHECKS & {c.name for c in plain.checks}


def test_mixed_folder_reads_both_kinds(tmp_path: Path) -> None:
    write_dicom(tmp_path / "scan.dcm", texture(), modality="MR")
    np.save(tmp_path / "array.npy", texture(seed=1))
    (tmp_path / "notes.txt").write_text("a README is not a stay file\n")
    assert input_kind(tmp_path) == "images"
    read = read_images(tmp_path)
    assert [i.row for i in read.images] == ["array.npy"] and [o.row for o in read.dicom] == ["scan.dcm"]


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "US1_UNCI.dcm", "emri_small.dcm", "rtplan.dcm", "rtstruct.dcm"]
)
def test_real_dicom_files(data_dir: Path, name: str) -> None:
    report = _check(data_dir / "dicom" / name)
    failed = {c.name for c in report.checks if not c.passed}
    if name.startswith("rt"):
        assert failed == {"dicom_pixel_data"}
    else:
        assert report.passed and report.findings == ()


def test_real_dicom_folder(data_dir: Path) -> None:
    report = _check(data_dir / "dicom")
    found = _found(report)
    assert found["dicom_pixel_data"] == {"rtplan.dcm", "rtstruct.dcm", "test-SR.dcm", "waveform_ecg.dcm"}
    assert found["dicom_duplicate_uid"] == {"liver_1frame.dcm"}
    assert "dicom_header" not in found and "dicom_shape" not in found and "dicom_hounsfield" not in found
    assert report.summary["dicom"]["files"] == 15
