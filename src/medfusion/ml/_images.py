"""Image data sets: MedMNIST-style ``.npz`` files with train / val / test splits (numpy only).

A file holds ``<split>_images`` and ``<split>_labels`` for the splits it has (MedMNIST:
``train``, ``val``, ``test``); a file of images to predict or evaluate may instead hold
plain ``images`` (and ``labels``). Labels may be ``(n,)`` or ``(n, 1)``.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medfusion.errors import DataError

__all__ = [
    "ImageSet",
    "as_images",
    "describe_images",
    "file_sha256",
    "read_image_split",
    "read_image_splits",
]

SPLITS = ("train", "val", "test")
MIN_SIDE = 28


def as_images(X: Any, *, what: str = "X") -> np.ndarray:
    """Images as a float32 ``(n, C, H, W)`` array, checking their shape and values.

    Raises
    ------
    ValueError
        Not 3-D / 4-D, no images, fewer than 28x28 pixels, a channel count other than
        1 or 3, or a non-finite value.
    """
    array = np.asarray(X)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
    ):
        raise ValueError(f"{what} must be numeric images; got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4:
        if array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
            array = np.moveaxis(array, -1, 1)
        elif array.shape[1] not in (1, 3):
            raise ValueError(
                f"{what} has shape {array.shape}: a 4-D image array needs 1 or 3 channels, "
                "first (n, C, H, W) or last (n, H, W, C)"
            )
    else:
        raise ValueError(
            f"{what} has shape {array.shape}: expected images (n, H, W) or (n, H, W, C), "
            f"not a {array.ndim}-D array"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{what} holds no images (shape {array.shape})")
    if min(array.shape[2:]) < MIN_SIDE:
        raise ValueError(
            f"{what} has images of {array.shape[2]}x{array.shape[3]} pixels; at least "
            f"{MIN_SIDE}x{MIN_SIDE} is needed"
        )
    scale = 255.0 if np.issubdtype(array.dtype, np.integer) else 1.0
    images = array.astype(np.float32) / np.float32(scale)
    if not np.isfinite(images).all():
        raise ValueError(f"{what} contains NaN or infinity")
    return images


@dataclass(frozen=True, slots=True)
class ImageSet:
    """Images ``(n, H, W[, C])`` as stored, with their labels (``None`` when the file has none)."""

    images: np.ndarray
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.images)


def _load(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"data file {path} is not a readable .npz archive: {type(error).__name__}") from None


def _checked(path: Path, arrays: dict[str, np.ndarray], prefix: str, *, labels: bool) -> ImageSet:
    images = arrays[f"{prefix}images"]
    what = f"{path.name}: {prefix}images"
    try:
        as_images(images, what=what)
    except ValueError as error:
        raise DataError(str(error)) from None
    key = f"{prefix}labels"
    if key not in arrays:
        if labels:
            raise DataError(f"{path.name} has {prefix}images but no {key}")
        return ImageSet(images, None)
    values = np.asarray(arrays[key])
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(
            f"{path.name}: {key} has shape {values.shape}; one label per image is needed "
            "(multi-label targets are not supported)"
        )
    if len(values) != len(images):
        raise DataError(f"{path.name}: {len(images)} {prefix}images but {len(values)} {key}")
    return ImageSet(images, values)


def read_image_splits(path: Path) -> dict[str, ImageSet]:
    """Every split of a MedMNIST-style file: ``{"train": ..., "val": ..., "test": ...}``.

    Only the splits present are returned; ``train`` (with labels) is required.

    Raises
    ------
    DataError
        Missing, empty or unreadable file; no ``train_images``; a split with images of the
        wrong shape, non-finite values or a label count that does not match.
    """
    arrays = _load(path)
    if "train_images" not in arrays:
        keys = ", ".join(sorted(arrays)) or "none"
        raise DataError(f"{path.name} has no train_images (keys: {keys}); a MedMNIST .npz is expected")
    splits = {
        split: _checked(path, arrays, f"{split}_", labels=True)
        for split in SPLITS
        if f"{split}_images" in arrays
    }
    shapes = {split: s.images.shape[1:] for split, s in splits.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path.name}: the splits have different image shapes {shapes}")
    return splits


def read_image_split(path: Path, *, labels: bool = False) -> ImageSet:
    """The images to predict or evaluate: ``images`` if present, else the ``test`` split.

    Parameters
    ----------
    labels
        Require labels (for evaluation).
    """
    arrays = _load(path)
    for prefix in ("", "test_"):
        if f"{prefix}images" in arrays:
            return _checked(path, arrays, prefix, labels=labels)
    keys = ", ".join(sorted(arrays)) or "none"
    raise DataError(f"{path.name} has neither images nor test_images (keys: {keys})")


def describe_images(images: np.ndarray) -> str:
    """``28x28 grayscale`` / ``224x224 RGB``: the shape in words."""
    array = as_images(images[:1])
    channels, height, width = array.shape[1:]
    return f"{height}x{width} {'grayscale' if channels == 1 else 'RGB'}"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
