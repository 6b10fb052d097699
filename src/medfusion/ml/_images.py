"""Image data sets: MedMNIST-style ``.npz`` files with train / val / test splits.

A file holds ``<split>_images`` and ``<split>_labels`` for the splits it has (MedMNIST:
``train``, ``val``, ``test``); a file of images to predict or evaluate may instead hold
plain ``images`` (and ``labels``). Labels may be ``(n,)`` or ``(n, 1)``.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfusion.errors import DataError
from medfusion.ml._cnn import as_images

__all__ = ["ImageSet", "describe_images", "read_image_split", "read_image_splits"]

SPLITS = ("train", "val", "test")


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
