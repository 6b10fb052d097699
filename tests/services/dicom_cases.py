"""Small uncompressed DICOM files written with pydicom, for the DICOM quality tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    MRImageStorage,
    RTPlanStorage,
    UltrasoundImageStorage,
    generate_uid,
)

_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage, "US": UltrasoundImageStorage, "RTPLAN": RTPlanStorage}


def texture(
    rows: int = 16, columns: int = 16, *, seed: int = 0, low: int = 0, high: int = 1000
) -> np.ndarray:
    """A varied int16 image (no blank, no saturation)."""
    return np.random.default_rng(seed).integers(low, high, size=(rows, columns)).astype(np.int16)


def write_dicom(
    path: Path,
    pixels: np.ndarray | None,
    *,
    modality: str = "MR",
    frames: int | None = None,
    slope: float | None = None,
    intercept: float | None = None,
    drop: tuple[str, ...] = (),
    syntax: str = ExplicitVRLittleEndian,
    **elements: Any,
) -> Path:
    """Write one DICOM Part 10 file.

    ``pixels`` is ``(rows, columns)``, ``(frames, rows, columns)``, ``(rows, columns, 3)`` or
    ``(frames, rows, columns, 3)``; the header is derived from it (``elements`` override,
    ``drop`` removes). ``None`` writes an object without pixel data.
    """
    meta = FileMetaDataset()
    sop_class = _CLASSES[modality]
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = "TEST"
    if pixels is not None:
        rgb = pixels.shape[-1] == 3
        height, width = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
        multi = pixels.ndim == (4 if rgb else 3)
        ds.Rows, ds.Columns = height, width
        ds.SamplesPerPixel = 3 if rgb else 1
        ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
        if rgb:
            ds.PlanarConfiguration = 0
        bits = pixels.dtype.itemsize * 8
        ds.BitsAllocated = ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 1 if np.issubdtype(pixels.dtype, np.signedinteger) else 0
        if multi or frames is not None:
            ds.NumberOfFrames = frames if frames is not None else pixels.shape[0]
        if slope is not None:
            ds.RescaleSlope = slope
        if intercept is not None:
            ds.RescaleIntercept = intercept
        data = np.ascontiguousarray(pixels).tobytes()
        ds.PixelData = data + b"\0" * (len(data) % 2)
    for name, value in elements.items():
        setattr(ds, name, value)
    for name in drop:
        delattr(ds, name)
    if syntax != ExplicitVRLittleEndian:
        # Encapsulated fragments with a codestream header: compressed data to a reader (the
        # frame's bytes are not a valid image; only the syntax decides which decoder is asked).
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60])
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


__all__ = ["JPEG2000Lossless", "JPEGLSLossless", "texture", "write_dicom"]
