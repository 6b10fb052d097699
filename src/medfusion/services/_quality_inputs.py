"""Read what ``medfusion quality check --data PATH`` checks: the kind of input, then its items.

Tables go through :func:`medfusion.ml.read_table`; series through the sequence readers of
:mod:`medfusion.ml` (stay files and UCR tables, parsed but not judged); images (numpy,
Pillow) and DICOM files (pydicom, see ``_quality_dicom``) are read here, tolerantly: an
image that cannot be read becomes a finding, not an error, so one bad file does not hide
the state of the rest.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from medfusion.errors import DataError
from medfusion.ml import read_ucr_table, stay_files, stay_observations
from medfusion.quality import DicomObject, ImageItem, RegularSeries, Stay
from medfusion.services._quality_dicom import DICOM_SUFFIXES, read_dicom

__all__ = ["ImageInput", "InputKind", "input_kind", "read_images", "read_regular", "read_stays"]

InputKind = Literal["table", "images", "stays", "ucr"]
SPLITS = ("train", "val", "test")
_TABLES = (".csv", ".parquet", ".pq", ".data")
_IMAGES = (".npz", ".npy", ".png", *DICOM_SUFFIXES)
_FOLDER_IMAGES = (".png", ".npy", *DICOM_SUFFIXES)
_ARCHIVES = (".tar.gz", ".tgz", ".tar")
_EXPECTED = (
    "expected a table (.csv, .parquet), images (.npz, .npy, .png, .dcm or a folder of them) or "
    "series (a UCR .tsv, or a PhysioNet-style .txt stay file, or a folder or .tar.gz of them)"
)

Progress = Callable[[int, int | None], None]


def input_kind(path: Path) -> InputKind:
    """What ``path`` holds, from its suffix or the files in the folder.

    Raises
    ------
    DataError
        The path does not exist, or holds nothing the checks read (one line, naming it).
    """
    if not path.exists():
        raise DataError(f"data path {path} does not exist")
    name = path.name.lower()
    if path.is_dir():
        suffixes = Counter(p.suffix.lower() for p in path.rglob("*") if p.is_file())
        images = sum(suffixes[s] for s in _FOLDER_IMAGES)
        # The more numerous kind wins: a README.txt beside the images is not a stay file.
        if suffixes[".txt"] and suffixes[".txt"] >= images:
            return "stays"
        if images:
            return "images"
        raise DataError(
            f"folder {path} holds no .txt stay files and no .png / .npy / .dcm images; {_EXPECTED}"
        )
    if name.endswith((*_ARCHIVES, ".txt")):
        return "stays"
    if name.endswith(_TABLES):
        return "table"
    if name.endswith(".tsv"):
        return "ucr"
    if name.endswith(_IMAGES):
        return "images"
    raise DataError(f"unsupported input {path.name}: {_EXPECTED}")


# -- images -------------------------------------------------------------------------------


def _label(labels: np.ndarray | None, index: int) -> object:
    if labels is None or index >= len(labels):
        return None
    value = labels[index]
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(-1)[0]
    if isinstance(value, np.floating) and not np.isfinite(value):
        return None
    return value


def _npz(path: Path) -> tuple[list[ImageItem], bool]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path.name} is not a readable .npz archive: {type(error).__name__}") from None
    prefixes = [f"{s}_" for s in SPLITS if f"{s}_images" in arrays or f"{s}_labels" in arrays]
    if not prefixes and "images" in arrays:
        prefixes = [""]
    if not prefixes:
        keys = ", ".join(sorted(arrays)) or "none"
        raise DataError(
            f"{path.name} holds no image arrays (keys: {keys}); expected train_images ... or images"
        )
    labelled = any(f"{p}labels" in arrays for p in prefixes)
    items: list[ImageItem] = []
    for prefix in prefixes:
        split = prefix.rstrip("_")
        images, labels = arrays.get(f"{prefix}images"), arrays.get(f"{prefix}labels")
        if images is not None and images.ndim == 0:
            raise DataError(f"{path.name}: {prefix}images is a single number, not images")
        count = len(images) if images is not None else len(labels) if labels is not None else 0
        for index in range(count):
            row: int | str = f"{split}/{index}" if split else index
            label = _label(labels, index)
            if images is None:
                items.append(
                    ImageItem(row, None, f"{prefix}labels has no {prefix}images", True, label, split)
                )
            else:
                items.append(ImageItem(row, images[index], label=label, split=split))
    return items, labelled


def _npy_array(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path.name} is not a readable .npy array: {type(error).__name__}") from None
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path.name} is not a .npy array")
    return array


def _png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path.name} is not a readable PNG: {type(error).__name__}") from None


def _one(path: Path, row: int | str, label: object, split: str) -> ImageItem:
    """One image file as an item; unreadable or empty files become items with a problem."""
    if path.stat().st_size == 0:
        return ImageItem(row, None, "empty file (0 bytes)", True, label, split)
    try:
        pixels = _png(path) if path.suffix.lower() == ".png" else _npy_array(path)
    except DataError as error:
        return ImageItem(row, None, str(error), False, label, split)
    return ImageItem(row, pixels, label=label, split=split)


@dataclass(frozen=True)
class ImageInput:
    """What an image input holds: images, DICOM objects, and whether it is labelled."""

    images: list[ImageItem]
    dicom: list[DicomObject] = field(default_factory=list)
    labelled: bool = False


def _folder(path: Path, progress: Progress | None) -> ImageInput:
    """Images under a folder: ``[split/][class/]name.png``; a class folder is the label.

    DICOM files are read too, unlabelled: folders above them are patients, studies and
    series more often than classes.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _FOLDER_IMAGES)
    items, objects = [], []
    labelled = False
    for done, file in enumerate(files, start=1):
        parts = file.relative_to(path).parts
        split = parts[0] if len(parts) > 1 and parts[0] in SPLITS else ""
        row = file.relative_to(path).as_posix()
        if file.suffix.lower() in DICOM_SUFFIXES:
            objects.append(read_dicom(file, row, split))
        else:
            folders = parts[1 if split else 0 : -1]
            label = folders[-1] if folders else None
            labelled = labelled or label is not None
            items.append(_one(file, row, label, split))
        if progress is not None and (done % 500 == 0 or done == len(files)):
            progress(done, len(files))
    return ImageInput(items, objects, labelled)


def read_images(path: Path, progress: Progress | None = None) -> ImageInput:
    """Every image of an ``.npz`` / ``.npy`` / ``.png`` / ``.dcm`` file or a folder.

    Rows are ``split/index`` in a MedMNIST-style ``.npz`` (``train_images`` /
    ``train_labels`` ...), the index in a plain stack (``images`` / ``labels`` keys, an
    ``.npy`` of ``(n, H, W[, C])``), the file's path under a folder and its name for one
    ``.png``. In a folder, ``train/``, ``val/`` and ``test/`` name splits and the folder
    holding a file names its class; files at the top (of a split) have no label. DICOM
    files (``.dcm``, ``.dicom``) become :class:`~medfusion.quality.DicomObject` s, rows
    their name or path, unlabelled.

    Raises
    ------
    DataError
        An unreadable ``.npz``, or one holding no image arrays (a lone unreadable ``.png``
        or ``.npy`` is a finding instead).
    """
    if path.is_dir():
        return _folder(path, progress)
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise DataError(f"data file {path} is empty")
    if suffix == ".npz":
        items, labelled = _npz(path)
        return ImageInput(items, labelled=labelled)
    if suffix == ".npy":
        array = _npy_array(path)
        single = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
        if single or array.ndim < 2:
            return ImageInput([ImageItem(0, array)])
        return ImageInput([ImageItem(index, array[index]) for index in range(len(array))])
    if suffix in DICOM_SUFFIXES:
        return ImageInput([], [read_dicom(path, path.name, "")])
    return ImageInput([_one(path, path.name, None, "")])


# -- series ---------------------------------------------------------------------------------


def read_stays(path: Path, progress: Progress | None = None) -> list[Stay]:
    """Every stay file of a folder or tar archive (or one ``.txt`` stay file), parsed; a malformed
    file is a stay with a problem.

    Raises
    ------
    DataError
        The path is neither a folder nor a readable archive, or holds no ``.txt`` files.
    """
    stays: list[Stay] = []
    for name, text in _files(path):
        stem = Path(name).stem
        try:
            observations = stay_observations(name, text, keep_missing=True)
        except DataError as error:
            stays.append(Stay(stem, (), str(error)))
        else:
            stays.append(Stay(stem, [(hours, variable, value) for _, hours, variable, value in observations]))
        if progress is not None and len(stays) % 200 == 0:
            progress(len(stays), None)
    if not stays:
        raise DataError(f"{path} holds no .txt stay files")
    if progress is not None:
        progress(len(stays), len(stays))
    return stays


def _files(path: Path) -> Iterator[tuple[str, str]]:
    try:
        if path.is_file() and path.suffix.lower() == ".txt":
            yield path.name, path.read_text(encoding="utf-8")  # one stay file
            return
        yield from stay_files(path)
    except UnicodeDecodeError:
        raise DataError(f"{path} holds a stay file that is not UTF-8 text") from None


def read_regular(path: Path) -> list[RegularSeries]:
    """A UCR ``.tsv`` file, with its ``_TRAIN`` / ``_TEST`` sibling as the other split when present.

    Raises
    ------
    DataError
        Missing, empty or unparseable file.
    """
    name = path.name
    pair = None
    for own, other in (("_TRAIN.tsv", "_TEST.tsv"), ("_TEST.tsv", "_TRAIN.tsv")):
        if name.endswith(own) and (path.parent / (name[: -len(own)] + other)).is_file():
            pair = (own, path.parent / (name[: -len(own)] + other))
    if pair is None:
        table = read_ucr_table(path)
        return [RegularSeries("", table.values, table.bad, list(table.labels))]
    own, sibling = pair
    files = [(path, own), (sibling, "_TEST.tsv" if own == "_TRAIN.tsv" else "_TRAIN.tsv")]
    parts = []
    for file, tag in sorted(files, key=lambda f: f[1] != "_TRAIN.tsv"):
        table = read_ucr_table(file)
        parts.append(RegularSeries(tag[1:-4].lower(), table.values, table.bad, list(table.labels)))
    return parts
