"""Sequence data: UCR ``.tsv`` series and PhysioNet-2012-style irregular clinical series.

Every reader returns a :class:`SequenceData` whose ``X`` is a float array of shape
``(n_series, n_steps, n_variables)`` with ``NaN`` where nothing was observed. Irregular
series are put on a regular grid (``resolution`` hours per step, the mean of the values
that fall in a step), which keeps the exact missingness pattern the GRU-D-style model
uses; the per-step observation counts are kept in ``counts`` for summary features.

Error messages name the file, column or line, never a value (it may be patient data).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medfusion.errors import DataError
from medfusion.ml._data import Task

__all__ = [
    "PHYSIONET_DESCRIPTORS",
    "SequenceData",
    "read_long_csv",
    "read_physionet",
    "read_sequences",
    "read_ucr",
    "sequence_kind",
]

# PhysioNet 2012 general descriptors, recorded at 00:00; there ``-1`` means "not recorded".
PHYSIONET_DESCRIPTORS = frozenset({"Age", "Gender", "Height", "ICUType", "Weight"})
_ID_PARAMETER = "RecordID"


@dataclass(frozen=True, slots=True)
class SequenceData:
    """Series on a regular grid, with labels when known.

    Attributes
    ----------
    X
        ``(n, n_steps, n_variables)`` float32, ``NaN`` = not observed.
    y
        Labels (``None`` when the data carries none, e.g. for prediction).
    task
        ``binary`` or ``multiclass`` (``None`` without labels).
    variables
        Variable (channel) names, the last axis of ``X``.
    ids
        Series identifiers (record ids, or ``row<k>`` for UCR rows).
    resolution
        Hours per step for irregular series; ``None`` for regularly sampled ones.
    counts
        Observations per step and variable (irregular series), else ``None``.
    """

    X: np.ndarray
    y: np.ndarray | None
    task: Task | None
    variables: tuple[str, ...]
    ids: tuple[str, ...]
    resolution: float | None = None
    counts: np.ndarray | None = None

    @property
    def regular(self) -> bool:
        """True for regularly sampled series (UCR style)."""
        return self.resolution is None

    def subset(self, rows: np.ndarray) -> SequenceData:
        """The series at ``rows``, in that order."""
        return SequenceData(
            self.X[rows],
            None if self.y is None else self.y[rows],
            self.task,
            self.variables,
            tuple(self.ids[i] for i in rows),
            self.resolution,
            None if self.counts is None else self.counts[rows],
        )

    def fingerprint(self) -> str:
        """SHA-256 of the grid, the labels and the names (independent of the file layout)."""
        digest = hashlib.sha256()
        digest.update(repr((self.variables, self.ids, self.resolution)).encode())
        digest.update(np.ascontiguousarray(self.X).tobytes())
        if self.y is not None:
            digest.update(repr(self.y.tolist()).encode())
        return digest.hexdigest()


def _task(y: np.ndarray, what: str) -> Task:
    classes = np.unique(y.astype(str))
    if len(classes) < 2:
        raise DataError(f"{what} has a single class; a classifier needs two or more")
    return "binary" if len(classes) == 2 else "multiclass"


def _labels(values: np.ndarray) -> np.ndarray:
    """Integer-valued labels as ints (UCR's ``-1``/``1``), else as text."""
    numeric = pd.to_numeric(pd.Series(values), errors="coerce")
    if numeric.notna().all() and np.allclose(numeric, np.round(numeric)):
        return numeric.to_numpy().astype(int)
    return np.asarray(values).astype(str)


def read_ucr(path: Path, *, labelled: bool = True) -> SequenceData:
    """A UCR-archive ``.tsv`` file: one series per line, the label in column 0.

    Parameters
    ----------
    path
        Tab-separated file; ``NaN`` cells (padding of shorter series) stay missing.
    labelled
        Whether column 0 is the label (always true for UCR files).

    Raises
    ------
    DataError
        Missing or empty file, a non-numeric cell, or fewer than two columns.
    """
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        frame = pd.read_csv(path, sep="\t", header=None, na_values=["NaN", "nan", ""])
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"data file {path} cannot be read as UCR .tsv: {type(error).__name__}") from None
    if frame.shape[1] < 2:
        raise DataError(f"UCR file {path} needs a label column and at least one value column")
    values = frame.iloc[:, 1:] if labelled else frame
    numeric = values.apply(pd.to_numeric, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.to_numpy().any():
        line = int(np.flatnonzero(bad.to_numpy().any(axis=1))[0]) + 1
        raise DataError(f"UCR file {path} has a non-numeric value on line {line}")
    X = numeric.to_numpy(dtype=np.float32)[:, :, None]
    if np.isnan(X).all(axis=(1, 2)).any():
        line = int(np.flatnonzero(np.isnan(X).all(axis=(1, 2)))[0]) + 1
        raise DataError(f"UCR file {path} has a series with no values on line {line}")
    y = task = None
    if labelled:
        raw = frame.iloc[:, 0]
        if raw.isna().any():
            raise DataError(f"UCR file {path} has a missing label on line {int(raw.isna().argmax()) + 1}")
        y = _labels(raw.to_numpy())
        task = _task(y, f"UCR file {path}")
    ids = tuple(f"row{i}" for i in range(len(X)))
    return SequenceData(X, y, task, ("value",), ids)


def _hours(text: str) -> float:
    """``HH:MM`` (PhysioNet) or a number of hours."""
    hours, sep, minutes = text.partition(":")
    if sep:
        return int(hours) + int(minutes) / 60.0
    return float(text)


Observation = tuple[str, float, str, float]  # id, hours, variable, value


def _stay_rows(name: str, text: str, stay: str) -> Iterator[Observation]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise DataError(f"series file {name} is empty")
    if [h.strip() for h in header[:3]] != ["Time", "Parameter", "Value"]:
        raise DataError(f"series file {name} must have the header Time,Parameter,Value")
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < 3:
            raise DataError(f"series file {name} line {line} has fewer than 3 fields")
        try:
            hours, value = _hours(row[0]), float(row[2])
        except ValueError:
            raise DataError(f"series file {name} line {line} has a non-numeric time or value") from None
        parameter = row[1].strip()
        if parameter == _ID_PARAMETER:
            continue
        if parameter in PHYSIONET_DESCRIPTORS and value == -1:
            continue  # PhysioNet's "not recorded"
        yield stay, hours, parameter, value


def _physionet_files(path: Path) -> Iterator[tuple[str, str]]:
    """``(file name, text)`` of each ``.txt`` stay file in a folder or a tar archive."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        for file in files:
            yield file.name, file.read_text()
        return
    try:
        with tarfile.open(path) as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                if member.isfile() and member.name.endswith(".txt"):
                    stream = archive.extractfile(member)
                    if stream is not None:
                        yield Path(member.name).name, stream.read().decode()
    except (tarfile.TarError, OSError):
        raise DataError(f"{path} is neither a folder of stay files nor a readable tar archive") from None


def _grid(
    observations: Iterable[Observation],
    *,
    resolution: float,
    variables: Sequence[str] | None,
    n_steps: int | None,
) -> tuple[list[str], np.ndarray, np.ndarray, tuple[str, ...], int]:
    if resolution <= 0 or not math.isfinite(resolution):
        raise DataError(f"the grid resolution must be a positive number of hours, got {resolution}")
    frame = pd.DataFrame(list(observations), columns=["id", "hours", "variable", "value"])
    if frame.empty:
        raise DataError("the series hold no observations")
    if (frame["hours"] < 0).any():
        raise DataError("a series has a negative observation time")
    ids = list(dict.fromkeys(frame["id"]))
    names = tuple(variables) if variables is not None else tuple(sorted(frame["variable"].unique()))
    frame = frame[frame["variable"].isin(names)]
    steps = n_steps if n_steps is not None else int(frame["hours"].max() // resolution) + 1
    row = frame["id"].map({k: i for i, k in enumerate(ids)}).to_numpy()
    col = frame["variable"].map({k: i for i, k in enumerate(names)}).to_numpy()
    # Observations after the grid's horizon (a longer test stay) fall into its last step.
    step = np.minimum((frame["hours"].to_numpy() // resolution).astype(int), steps - 1)
    total = np.zeros((len(ids), steps, len(names)), dtype=np.float64)
    counts = np.zeros((len(ids), steps, len(names)), dtype=np.float32)
    np.add.at(total, (row, step, col), frame["value"].to_numpy())
    np.add.at(counts, (row, step, col), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        X = np.where(counts > 0, total / np.maximum(counts, 1), np.nan).astype(np.float32)
    return ids, X, counts, names, steps


def _attach_labels(
    ids: list[str], labels: Path | None, id_col: str, target: str
) -> tuple[np.ndarray | None, Task | None]:
    if labels is None:
        return None, None
    if not labels.is_file():
        raise DataError(f"labels file {labels} does not exist")
    try:
        frame = pd.read_csv(labels, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"labels file {labels} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"labels file {labels} cannot be read: {type(error).__name__}") from None
    for column, role in ((id_col, "--id-col"), (target, "--target")):
        if column not in frame.columns:
            shown = ", ".join(list(frame.columns)[:12])
            raise DataError(f"{role} column '{column}' is not in {labels.name} (columns: {shown})")
    frame = frame.dropna(subset=[id_col])
    if frame[id_col].duplicated().any():
        raise DataError(f"labels file {labels.name} lists an id twice in column '{id_col}'")
    lookup = dict(zip(frame[id_col].str.strip(), frame[target], strict=True))
    missing = [i for i in ids if i not in lookup]
    if missing:
        raise DataError(f"{len(missing)} series have no row in {labels.name} (first id: {missing[0]})")
    raw = np.array([lookup[i] for i in ids], dtype=object)
    unlabeled = pd.isna(raw)
    if unlabeled.any():
        raise DataError(f"target column '{target}' is missing for {int(unlabeled.sum())} series")
    y = _labels(raw)
    return y, _task(y, f"target column '{target}'")


def read_physionet(
    path: Path,
    *,
    labels: Path | None = None,
    id_col: str = "RecordID",
    target: str = "In-hospital_death",
    resolution: float = 1.0,
    variables: Sequence[str] | None = None,
    n_steps: int | None = None,
) -> SequenceData:
    """A folder (or ``.tar.gz``) of per-stay files ``Time,Parameter,Value``, PhysioNet 2012 style.

    Parameters
    ----------
    path
        Folder or tar archive of ``<id>.txt`` files; the file stem is the stay id.
    labels, id_col, target
        CSV file with one row per stay: its id and outcome columns.
    resolution
        Hours per grid step.
    variables, n_steps
        The grid of a trained model (so new data lines up); by default every variable
        seen and enough steps for the longest stay.

    Raises
    ------
    DataError
        Unreadable or malformed files, no stays, or a stay without a label.
    """
    if not path.exists():
        raise DataError(f"data path {path} does not exist")

    def rows() -> Iterator[Observation]:
        found = False
        for name, text in _physionet_files(path):
            found = True
            yield from _stay_rows(name, text, Path(name).stem)
        if not found:
            raise DataError(f"{path} holds no .txt stay files")

    ids, X, counts, names, _ = _grid(rows(), resolution=resolution, variables=variables, n_steps=n_steps)
    y, task = _attach_labels(ids, labels, id_col, target)
    return SequenceData(X, y, task, names, tuple(ids), resolution, counts)


LONG_COLUMNS = ("id", "time", "variable", "value")


def read_long_csv(
    path: Path,
    *,
    labels: Path | None = None,
    id_col: str = "id",
    target: str = "target",
    resolution: float = 1.0,
    variables: Sequence[str] | None = None,
    n_steps: int | None = None,
) -> SequenceData:
    """One long CSV ``id,time,variable,value`` (time in hours, or ``HH:MM``); see :func:`read_physionet`."""
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    try:
        frame = pd.read_csv(path, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {path} is empty") from None
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise DataError(f"data file {path} cannot be read: {type(error).__name__}") from None
    missing = [c for c in LONG_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"long-format file {path.name} lacks columns: {', '.join(missing)}")
    if frame.empty:
        raise DataError(f"data file {path} is empty (a header but no rows)")
    if frame[list(LONG_COLUMNS)].isna().any().any():
        line = int(frame[list(LONG_COLUMNS)].isna().any(axis=1).to_numpy().argmax()) + 2
        raise DataError(f"long-format file {path.name} has an empty cell on line {line}")
    try:
        hours = [_hours(t) for t in frame["time"]]
    except ValueError:
        raise DataError(f"long-format file {path.name} has a time that is neither hours nor HH:MM") from None
    values = pd.to_numeric(frame["value"], errors="coerce")
    if values.isna().any():
        line = int(values.isna().to_numpy().argmax()) + 2
        raise DataError(f"long-format file {path.name} has a non-numeric value on line {line}")
    observations = zip(
        frame["id"].str.strip(), hours, frame["variable"].str.strip(), values.to_numpy(), strict=True
    )
    ids, X, counts, names, _ = _grid(
        observations, resolution=resolution, variables=variables, n_steps=n_steps
    )
    y, task = _attach_labels(ids, labels, id_col, target)
    return SequenceData(X, y, task, names, tuple(ids), resolution, counts)


def sequence_kind(path: Path) -> str:
    """``ucr``, ``physionet`` or ``long`` from a path's shape (suffix, folder, archive)."""
    name = path.name.lower()
    if name.endswith(".tsv"):
        return "ucr"
    if path.is_dir() or name.endswith((".tar.gz", ".tgz", ".tar")):
        return "physionet"
    return "long"


def read_sequences(
    path: Path,
    *,
    labels: Path | None = None,
    id_col: str | None = None,
    target: str | None = None,
    resolution: float = 1.0,
    variables: Sequence[str] | None = None,
    n_steps: int | None = None,
    labelled: bool = True,
) -> SequenceData:
    """Read any supported sequence layout (see :func:`sequence_kind`).

    UCR files carry their labels; the folder and long-CSV layouts take them from
    ``labels`` (with ``id_col`` and ``target``). ``labelled=False`` reads a UCR file's
    column 0 as a label anyway (UCR files always have one) but allows no ``labels``
    for the other layouts.

    Raises
    ------
    DataError
        Unreadable input, or labels needed but not given.
    """
    kind = sequence_kind(path)
    if kind == "ucr":
        data = read_ucr(path)
        if variables is not None and tuple(variables) != data.variables:
            raise DataError("the model was trained on irregular clinical series, not on a UCR file")
        return data
    if labels is None and labelled:
        raise DataError(f"{path.name} needs --labels FILE (with --id-col and --target) for its outcomes")
    reader = read_physionet if kind == "physionet" else read_long_csv
    defaults = ("RecordID", "In-hospital_death") if kind == "physionet" else ("id", "target")
    return reader(
        path,
        labels=labels,
        id_col=id_col or defaults[0],
        target=target or defaults[1],
        resolution=resolution,
        variables=variables,
        n_steps=n_steps,
    )
