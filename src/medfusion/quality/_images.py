"""Image checks: conformance, completeness and plausibility of image sets (numpy only).

The checks take images as arrays, already read (the service reads ``.npz``, ``.npy``, PNG
and DICOM files); an image that could not be read arrives with the reason instead of pixels.
DICOM objects arrive as :class:`~medfusion.quality.DicomObject` s: their own checks run in
:mod:`medfusion.quality._dicom` and their frames join the pixel checks here.
An image is ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` with ``C`` in 1, 3 or 4.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medfusion.quality._config import QualityConfig
from medfusion.quality._dicom import DicomObject, check_dicom, dicom_frames
from medfusion.quality._items import (
    ItemReport,
    LabelledItem,
    Tally,
    check_labels_and_splits,
    digest,
    robust_z,
)

__all__ = ["ImageItem", "check_images"]

_CHANNELS = (1, 3, 4)
PIXELS = "pixels"


@dataclass(frozen=True)
class ImageItem:
    """One image as read.

    Parameters
    ----------
    row
        Its index (``split/index`` in a file of splits, the path in a folder).
    pixels
        The array, or ``None`` when it could not be read.
    problem
        Why it could not be read (``None`` when it could).
    missing
        True when the image is absent or empty rather than unreadable (a zero-byte file,
        images without their array).
    label
        Its label (``None``: none); a scalar, a class name or a multi-label vector.
    split
        ``train``, ``val``, ``test`` or ``""``.
    top
        The top of its stored range when the format says (DICOM BitsStored: 4095 for 12
        bits in a 16-bit array); ``None``: the dtype's (see ``image_saturation``).
    """

    row: int | str
    pixels: np.ndarray | None
    problem: str | None = None
    missing: bool = False
    label: object = None
    split: str = ""
    top: float | None = None


@dataclass(frozen=True)
class _Stats:
    row: int | str
    top_share: float
    zero_share: float
    mean: float
    spread: float
    low: float
    high: float


def _as_hwc(pixels: np.ndarray) -> np.ndarray | None:
    """``(H, W, C)`` or ``None`` when the array is not one image."""
    if pixels.ndim == 2:
        return pixels[:, :, None]
    if pixels.ndim == 3:
        if pixels.shape[2] in _CHANNELS:
            return pixels
        if pixels.shape[0] in _CHANNELS:
            return np.moveaxis(pixels, 0, -1)
    return None


def _expected(
    config: QualityConfig, shaped: list[tuple[ImageItem, np.ndarray]]
) -> tuple[str, tuple[int, int], int]:
    """Configured expectations, else what most images have."""

    def mode(values: list[object]) -> object:
        return Counter(values).most_common(1)[0][0] if values else None

    settings = config.images
    dtype = settings.dtype or str(mode([str(a.dtype) for _, a in shaped]))
    shape = settings.shape or mode([a.shape[:2] for _, a in shaped])
    channels = settings.channels or mode([a.shape[2] for _, a in shaped])
    return dtype, shape, channels  # type: ignore[return-value]


def _conformance(tally: Tally, images: Sequence[ImageItem]) -> list[tuple[ImageItem, np.ndarray]]:
    """Format and completeness; returns the images fit for the pixel checks."""
    shaped: list[tuple[ImageItem, np.ndarray]] = []
    for item in images:
        tally.checked("image_format")
        tally.checked("image_missing")
        if item.pixels is None:
            check = "image_missing" if item.missing else "image_format"
            tally.fail(check, item.row, PIXELS, None, item.problem or "no image")
            continue
        pixels = np.asarray(item.pixels)
        if pixels.size == 0:
            tally.fail("image_missing", item.row, PIXELS, list(pixels.shape), "empty image (no pixels)")
            continue
        if not (np.issubdtype(pixels.dtype, np.number) or pixels.dtype == np.bool_):
            tally.fail("image_format", item.row, PIXELS, str(pixels.dtype), f"pixels of dtype {pixels.dtype}")
            continue
        hwc = _as_hwc(pixels)
        if hwc is None:
            tally.fail(
                "image_format",
                item.row,
                PIXELS,
                list(pixels.shape),
                f"shape {pixels.shape} is not an image (H, W) or (H, W, C) with C in 1, 3, 4",
            )
            continue
        shaped.append((item, hwc))
    if not shaped:
        return []
    dtype, shape, channels = _expected(tally.config, shaped)
    fit: list[tuple[ImageItem, np.ndarray]] = []
    for item, hwc in shaped:
        problems = []
        if str(hwc.dtype) != dtype:
            problems.append(f"dtype {hwc.dtype}, expected {dtype}")
        if hwc.shape[:2] != tuple(shape):
            problems.append(f"size {hwc.shape[0]}x{hwc.shape[1]}, expected {shape[0]}x{shape[1]}")
        if hwc.shape[2] != channels:
            problems.append(f"{hwc.shape[2]} channel(s), expected {channels}")
        if problems:
            tally.fail("image_format", item.row, PIXELS, [*hwc.shape, str(hwc.dtype)], "; ".join(problems))
        if np.issubdtype(hwc.dtype, np.floating):
            finite = np.isfinite(hwc)
            if not finite.all():
                bad = int((~finite).sum())
                tally.fail(
                    "image_missing", item.row, PIXELS, bad, f"{bad} of {hwc.size} pixels are NaN or infinite"
                )
                continue
        fit.append((item, hwc))
    return fit


def _top(fit: list[tuple[ImageItem, np.ndarray]]) -> float:
    """The top of the intensity range: the dtype's maximum, or 1.0 / the data's for floats."""
    dtype = fit[0][1].dtype
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    if dtype == np.bool_:
        return 1.0
    highest = max(float(a.max()) for _, a in fit)
    return 1.0 if highest <= 1.0 else highest


def _pixel_checks(tally: Tally, fit: list[tuple[ImageItem, np.ndarray]]) -> None:
    if not fit:
        return
    set_top = _top(fit)
    settings = tally.config.images
    varied: list[tuple[_Stats, float]] = []
    for item, hwc in fit:
        top = item.top if item.top is not None else set_top
        values = hwc.astype(np.float64, copy=False)
        low, high = float(values.min()), float(values.max())
        tally.checked("image_constant")
        if low == high:
            what = (
                "all black"
                if high == 0
                else "saturated (all at the top)"
                if high >= top
                else "one grey level"
            )
            tally.fail(
                "image_constant", item.row, PIXELS, high, f"blank image: every pixel is {high:g} ({what})"
            )
            continue
        varied.append(
            (
                _Stats(
                    item.row,
                    float((values >= top).mean()),
                    float((values <= 0).mean()),
                    float(values.mean()),
                    float(values.std()),
                    low,
                    high,
                ),
                top,
            )
        )
    for stats, top in varied:
        tally.checked("image_saturation")
        if stats.top_share > settings.saturated_share:
            tally.fail(
                "image_saturation",
                stats.row,
                PIXELS,
                round(stats.top_share, 4),
                f"{stats.top_share:.1%} of pixels at the top of the range ({top:g}): saturated",
            )
        elif stats.zero_share > settings.saturated_share:
            tally.fail(
                "image_saturation",
                stats.row,
                PIXELS,
                round(stats.zero_share, 4),
                f"{stats.zero_share:.1%} of pixels are 0: mostly black",
            )
    means = robust_z(np.array([s.mean for s, _ in varied]))
    spreads = robust_z(np.array([s.spread for s, _ in varied]))
    for (stats, _), z_mean, z_spread in zip(varied, means, spreads, strict=True):
        tally.checked("image_intensity")
        if abs(z_mean) > settings.outlier_z:
            side = "bright" if z_mean > 0 else "dark"
            tally.fail(
                "image_intensity",
                stats.row,
                PIXELS,
                round(stats.mean, 4),
                f"mean intensity {stats.mean:.4g} is {abs(z_mean):.1f} robust SDs from the set's: "
                f"unusually {side}",
            )
        elif abs(z_spread) > settings.outlier_z:
            side = "high" if z_spread > 0 else "low"
            tally.fail(
                "image_intensity",
                stats.row,
                PIXELS,
                round(stats.spread, 4),
                f"intensity SD {stats.spread:.4g} is {abs(z_spread):.1f} robust SDs from the set's: "
                f"{side} contrast",
            )


def _is_number(label: object) -> bool:
    """A class index or a vector of them (not a class name)."""
    if isinstance(label, bool):
        return True
    if isinstance(label, int | float | np.number):
        return True
    if isinstance(label, list | tuple | np.ndarray):
        return bool(np.size(label)) and np.issubdtype(np.asarray(label).dtype, np.number)
    return False


def check_images(
    images: Sequence[ImageItem],
    config: QualityConfig | None = None,
    *,
    labelled: bool,
    dicom: Sequence[DicomObject] = (),
) -> ItemReport:
    """Run the image and label checks of the catalogue over a set of images.

    Parameters
    ----------
    images
        Every image in input order (all splits).
    config
        The configured catalogue (``images`` sets expectations and limits).
    labelled
        Whether the input carries labels at all; an unlabelled set skips the label checks.
    dicom
        DICOM objects (files) of the input: the ``dicom_*`` checks run over them (and are
        left out of the report without any), and every frame of those with pixels joins
        the image checks as an image of its own (row ``name.dcm#2`` for frame 2).

    Returns
    -------
    ItemReport
        ``row`` of a finding is the image's row, ``column`` ``"pixels"``, ``"label"`` or a
        DICOM element.
    """
    config = config or QualityConfig()
    tally = Tally(config, ("image", "labels", "dicom") if dicom else ("image", "labels"))
    check_dicom(tally, dicom)
    frames = [
        ImageItem(row, frame, label=obj.label, split=obj.split, top=obj.top)
        for obj, row, frame in dicom_frames(dicom)
    ]
    images = [*images, *frames]
    fit = _conformance(tally, images)
    _pixel_checks(tally, fit)
    keys = {id(item): digest(hwc) for item, hwc in fit}
    numeric = all(_is_number(i.label) for i in images if i.label is not None)
    items = [LabelledItem(i.split, i.row, i.label, keys.get(id(i))) for i in images]
    counts = check_labels_and_splits(tally, items, labelled=labelled, numeric_labels=numeric)
    sizes = Counter(f"{a.shape[0]}x{a.shape[1]}x{a.shape[2]} {a.dtype}" for _, a in fit)
    splits = Counter(i.split or "all" for i in images)
    summary: dict[str, object] = {
        "splits": dict(splits),
        "formats": dict(sizes.most_common(5)),
        "labels": counts,
    }
    if dicom:
        summary["dicom"] = {
            "files": len(dicom),
            "modalities": dict(Counter(o.modality or "unknown" for o in dicom if o.readable)),
            "frames": len(frames),
        }
    # DICOM files without frames (non-image objects, unreadable files) are items too.
    framed = {id(obj) for obj, _, _ in dicom_frames(dicom)}
    unframed = sum(id(obj) not in framed for obj in dicom)
    return tally.report("image", len(images) + unframed, summary)
