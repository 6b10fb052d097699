"""DICOM checks: header completeness, pixel data and its shape, Hounsfield range, duplicate UIDs.

Pure: the service reads the files (pydicom) and passes each object in as a
:class:`DicomObject` of header facts and decoded stored pixel values. The frames of the
objects with pixels then go through the ordinary image checks (:func:`dicom_frames`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from medfusion.quality._items import Tally

__all__ = ["DICOM_REQUIRED", "DicomObject", "check_dicom", "dicom_frames"]

#: Elements every object must carry a value for; ``Rows`` / ``Columns`` only with pixel data.
DICOM_REQUIRED = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality", "Rows", "Columns")
_IMAGE_ONLY = ("Rows", "Columns")
HEADER = "header"
PIXELS = "pixels"


@dataclass(frozen=True)
class DicomObject:
    """One DICOM file as read: header facts and, for an image, its stored pixel values.

    Parameters
    ----------
    row
        The file's name (its path under a folder).
    pixels
        Stored values as decoded, ``(frames, rows, columns[, samples])`` with the frame axis
        only for more than one frame; ``None`` when there are none or they cannot be decoded.
    problem
        Why there are no pixels: the file is not readable DICOM, holds no pixel data, or
        its pixel data cannot be decoded (``None`` when ``pixels`` is set).
    readable
        Whether the file parsed as DICOM at all (the header facts are empty when not).
    has_pixel_data
        Whether the object carries a Pixel Data element (decodable or not).
    sop_class, modality
        The SOP class (by name where known) and modality, for messages.
    header
        The values of :data:`DICOM_REQUIRED` as text; absent or empty elements map to ``None``.
    rows, columns, frames, samples
        Rows, Columns, NumberOfFrames (1 when absent) and SamplesPerPixel.
    pixel_bytes, expected_bytes
        Length of uncompressed Pixel Data and the length the header implies (``None`` for
        compressed data, where lengths say nothing).
    slope, intercept
        RescaleSlope and RescaleIntercept (from the functional groups of enhanced objects).
    padding
        PixelPaddingValue (stored value of pixels outside the scanned area), or ``None``.
    bits_stored, signed
        BitsStored and PixelRepresentation: the top of the stored range.
    label, split
        As for :class:`~medfusion.quality.ImageItem`.
    """

    row: str
    pixels: np.ndarray | None
    problem: str | None = None
    readable: bool = True
    has_pixel_data: bool = True
    sop_class: str | None = None
    modality: str | None = None
    header: Mapping[str, str | None] = field(default_factory=dict)
    rows: int | None = None
    columns: int | None = None
    frames: int = 1
    samples: int = 1
    pixel_bytes: int | None = None
    expected_bytes: int | None = None
    slope: float = 1.0
    intercept: float = 0.0
    padding: float | None = None
    bits_stored: int | None = None
    signed: bool = False
    label: object = None
    split: str = ""

    @property
    def expected_shape(self) -> tuple[int, ...] | None:
        """The pixel array shape the header implies (``None`` without Rows / Columns)."""
        if self.rows is None or self.columns is None:
            return None
        frames = (self.frames,) if self.frames > 1 else ()
        samples = (self.samples,) if self.samples > 1 else ()
        return (*frames, self.rows, self.columns, *samples)

    @property
    def top(self) -> float | None:
        """The largest stored value BitsStored allows (``None`` when unknown)."""
        if not self.bits_stored:
            return None
        return float(2 ** (self.bits_stored - 1) - 1 if self.signed else 2**self.bits_stored - 1)

    def size_mismatch(self) -> str | None:
        """Why Pixel Data and the header disagree on size or shape, or ``None``."""
        # Pixel Data is padded to an even length: one extra byte is allowed.
        if (
            self.pixel_bytes is not None
            and self.expected_bytes is not None
            and not self.expected_bytes <= self.pixel_bytes <= self.expected_bytes + 1
        ):
            return (
                f"Pixel Data holds {self.pixel_bytes} bytes; Rows x Columns x frames x samples "
                f"({self.rows} x {self.columns} x {self.frames} x {self.samples}) need "
                f"{self.expected_bytes}"
            )
        expected = self.expected_shape
        if self.pixels is not None and expected is not None and tuple(self.pixels.shape) != expected:
            return f"pixel array {tuple(self.pixels.shape)} does not match the header's {expected}"
        return None

    def what(self) -> str:
        """The SOP class and modality, for messages."""
        return f"{self.sop_class or 'unknown SOP class'}, modality {self.modality or 'unknown'}"


def dicom_frames(objects: Sequence[DicomObject]) -> list[tuple[DicomObject, str, np.ndarray]]:
    """Every frame of the objects with pixels: ``(object, row, frame)``.

    A multi-frame object's frames are rows ``name.dcm#1``, ``name.dcm#2`` ...; a single
    frame keeps the file's row. Frames are views, not copies.
    """
    frames: list[tuple[DicomObject, str, np.ndarray]] = []
    for obj in objects:
        if obj.pixels is None or obj.size_mismatch() is not None:
            continue
        if obj.frames > 1:
            frames.extend((obj, f"{obj.row}#{i + 1}", frame) for i, frame in enumerate(obj.pixels))
        else:
            frames.append((obj, obj.row, obj.pixels))
    return frames


def check_dicom(tally: Tally, objects: Sequence[DicomObject]) -> None:
    """Run the DICOM checks of the catalogue over every object (findings go to ``tally``)."""
    for obj in objects:
        _pixel_data(tally, obj)
        if not obj.readable:
            continue
        _header(tally, obj)
        if obj.has_pixel_data:
            tally.checked("dicom_shape")
            mismatch = obj.size_mismatch()
            if mismatch is not None:
                tally.fail("dicom_shape", obj.row, PIXELS, list(obj.expected_shape or ()), mismatch)
        if (obj.modality or "").upper() == "CT" and obj.pixels is not None:
            _hounsfield(tally, obj)
    _duplicate_uids(tally, objects)


def _pixel_data(tally: Tally, obj: DicomObject) -> None:
    tally.checked("dicom_pixel_data")
    if obj.pixels is not None:
        return
    if not obj.readable:
        tally.fail("dicom_pixel_data", obj.row, PIXELS, None, obj.problem or "not a readable DICOM file")
    elif not obj.has_pixel_data:
        tally.fail(
            "dicom_pixel_data",
            obj.row,
            PIXELS,
            {"sop_class": obj.sop_class, "modality": obj.modality},
            # the reader's notes (a missing preamble) follow "no pixel data" in ``problem``
            f"no pixel data: {obj.what()} is not an image object"
            + (obj.problem or "no pixel data").removeprefix("no pixel data"),
        )
    elif obj.size_mismatch() is None:  # a size mismatch is dicom_shape's finding
        tally.fail(
            "dicom_pixel_data",
            obj.row,
            PIXELS,
            {"sop_class": obj.sop_class, "modality": obj.modality},
            obj.problem or "pixel data cannot be decoded",
        )


def _header(tally: Tally, obj: DicomObject) -> None:
    for element in DICOM_REQUIRED:
        if element in _IMAGE_ONLY and not obj.has_pixel_data:
            continue
        tally.checked("dicom_header")
        if obj.header.get(element) in (None, ""):
            tally.fail(
                "dicom_header", obj.row, element, None, f"required element {element} is absent or empty"
            )


def _hounsfield(tally: Tally, obj: DicomObject) -> None:
    if obj.pixels is None:
        return
    settings = tally.config.images
    low, high = settings.hounsfield
    stored = obj.pixels
    if obj.padding is not None:
        stored = stored[stored != obj.padding]  # outside the scanned field: not tissue
    tally.checked("dicom_hounsfield")
    if stored.size == 0:
        return
    hu = stored.astype(np.float64) * obj.slope + obj.intercept
    outside = float(((hu < low) | (hu > high)).mean())
    if outside > settings.hounsfield_share:
        found = [round(float(hu.min()), 1), round(float(hu.max()), 1)]
        tally.fail(
            "dicom_hounsfield",
            obj.row,
            PIXELS,
            found,
            f"{outside:.1%} of pixels lie outside {low:g}..{high:g} HU after RescaleSlope "
            f"{obj.slope:g} / RescaleIntercept {obj.intercept:g} (range {found[0]:g}..{found[1]:g})",
        )


def _duplicate_uids(tally: Tally, objects: Sequence[DicomObject]) -> None:
    first: dict[str, str] = {}
    for obj in objects:
        uid = obj.header.get("SOPInstanceUID") if obj.readable else None
        if not uid:
            continue
        tally.checked("dicom_duplicate_uid")
        if uid in first:
            tally.fail(
                "dicom_duplicate_uid",
                obj.row,
                "SOPInstanceUID",
                first[uid],
                f"SOPInstanceUID {uid} is also that of {first[uid]}",
            )
        else:
            first[uid] = obj.row
