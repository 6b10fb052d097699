"""Read one DICOM file (pydicom) into the header facts and pixels the DICOM checks judge.

Tolerant by design: a file that is not DICOM, holds no pixel data, or whose pixel data
cannot be decoded (compressed syntaxes need pylibjpeg / GDCM, which medfusion does not
ship) becomes a :class:`~medfusion.quality.DicomObject` with the reason, never an error.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medfusion.quality import DICOM_REQUIRED, DicomObject

__all__ = ["DICOM_SUFFIXES", "read_dicom"]

DICOM_SUFFIXES = (".dcm", ".dicom")
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _rescale(ds: Any) -> tuple[float, float]:
    """RescaleSlope / RescaleIntercept: top level, else the enhanced objects' functional groups."""
    sources = [ds]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in (ds.get(group) or [])[:1]:
            sources.extend((item.get("PixelValueTransformationSequence") or [])[:1])
    for source in sources:
        if source.get("RescaleIntercept") is not None or source.get("RescaleSlope") is not None:
            slope = float(source.get("RescaleSlope") or 1.0)
            return slope, float(source.get("RescaleIntercept") or 0.0)
    return 1.0, 0.0


def _expected_bytes(ds: Any, rows: int, columns: int, frames: int, samples: int) -> int | None:
    bits = _int(ds.get("BitsAllocated"))
    if not bits:
        return None
    total_bits = rows * columns * frames * samples * bits
    return (total_bits + 7) // 8


def _sop_class(ds: Any) -> str | None:
    uid = ds.get("SOPClassUID")
    if uid is None:
        return None
    name = getattr(uid, "name", "") or ""
    return name if name and name != str(uid) else str(uid)


def read_dicom(path: Path, row: str, split: str = "") -> DicomObject:
    """One DICOM file as header facts and stored pixel values.

    Parameters
    ----------
    path
        The file.
    row
        Its row in findings (name, or path under a folder).
    split
        ``train`` / ``val`` / ``test`` or ``""``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    if path.stat().st_size == 0:
        return DicomObject(row, None, "empty file (0 bytes)", readable=False, split=split)
    note = ""
    # pydicom warns about every deviation from the standard it tolerates; the checks
    # report what matters, so its warnings would only be noise (and errors under pytest).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                ds = pydicom.dcmread(path)
            except InvalidDicomError:
                # No 128-byte preamble / 'DICM' prefix (older or raw dumps): read what is there.
                ds = pydicom.dcmread(path, force=True)
                note = "; the file lacks the DICOM preamble and file meta header"
            if len(ds) == 0 or ("SOPClassUID" not in ds and "Modality" not in ds):
                raise InvalidDicomError("no DICOM elements")
            facts = _facts(ds)
        except Exception as error:  # any parse failure of an untrusted file is a finding
            return DicomObject(
                row,
                None,
                f"not a readable DICOM file ({type(error).__name__})",
                readable=False,
                split=split,
            )
        pixels, problem = _pixels(ds, facts) if facts["has_pixel_data"] else (None, None)
    if not facts["has_pixel_data"]:
        problem = "no pixel data"
    return DicomObject(row, pixels, (problem + note) if problem else None, split=split, **facts)


def _facts(ds: Any) -> dict[str, Any]:
    header = {name: _text(ds.get(name)) for name in DICOM_REQUIRED}
    rows, columns = _int(ds.get("Rows")), _int(ds.get("Columns"))
    frames = _int(ds.get("NumberOfFrames"), 1) or 1
    samples = _int(ds.get("SamplesPerPixel"), 1) or 1
    has_pixel_data = any(name in ds for name in _PIXEL_ELEMENTS)
    pixel_bytes = expected = None
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    compressed = bool(syntax is not None and getattr(syntax, "is_compressed", False))
    if "PixelData" in ds and not compressed and rows and columns:
        pixel_bytes = len(ds.PixelData)
        expected = _expected_bytes(ds, rows, columns, frames, samples)
    slope, intercept = _rescale(ds)
    padding = ds.get("PixelPaddingValue")
    return {
        "has_pixel_data": has_pixel_data,
        "sop_class": _sop_class(ds),
        "modality": header["Modality"],
        "header": header,
        "rows": rows,
        "columns": columns,
        "frames": frames,
        "samples": samples,
        "pixel_bytes": pixel_bytes,
        "expected_bytes": expected,
        "slope": slope,
        "intercept": intercept,
        "padding": float(padding) if isinstance(padding, int | float) else None,
        "bits_stored": _int(ds.get("BitsStored")),
        "signed": _int(ds.get("PixelRepresentation"), 0) == 1,
    }


def _pixels(ds: Any, facts: dict[str, Any]) -> tuple[np.ndarray | None, str | None]:
    """The decoded stored values, or why they cannot be had."""
    expected, actual = facts["expected_bytes"], facts["pixel_bytes"]
    if expected is not None and actual is not None and not expected <= actual <= expected + 1:
        return None, "pixel data length does not match the header"  # dicom_shape reports it
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return np.asarray(ds.pixel_array), None
    except Exception as error:  # decoder plugins raise many kinds; each is a finding
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        compressed = syntax is not None and getattr(syntax, "is_compressed", False)
        if compressed and "missing dependencies" in str(error):
            return None, (
                f"compressed pixel data ({getattr(syntax, 'name', syntax)}) cannot be decoded "
                "without pylibjpeg or GDCM, which medfusion does not ship; decompress the file "
                "first (e.g. dcmdjpeg, gdcmconv --raw)"
            )
        if compressed:
            return (
                None,
                f"compressed pixel data ({getattr(syntax, 'name', syntax)}) cannot be decoded: {reason}",
            )
        return None, f"pixel data cannot be decoded ({type(error).__name__}: {reason})"
