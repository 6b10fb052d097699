"""Public entry points: one patient's Bundle, or a whole cohort written to a folder."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from medfusion.errors import InvalidRequestError
from medfusion.synth.model import simulate
from medfusion.synth.people import PRACTITIONERS_PER_ORGANIZATION, provider_pool
from medfusion.synth.resources import build_bundle

__all__ = [
    "MAX_PATIENTS",
    "SynthSummary",
    "check_arguments",
    "generate_bundle",
    "write_bundles",
]

MAX_PATIENTS: Final = 10_000_000
MAX_SEED: Final = 2**63 - 1
_CHUNK: Final = 100


@dataclass(frozen=True, slots=True)
class SynthSummary:
    """What :func:`write_bundles` wrote.

    Attributes
    ----------
    out
        The folder the bundles were written to.
    files
        Number of Bundle files written (one per patient).
    resources
        Number of resources written, by resource type, sorted by type.
    seconds
        Wall-clock time taken.
    """

    out: Path
    files: int
    resources: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_resources(self) -> int:
        """Total number of resources over all types."""
        return sum(self.resources.values())


def _check_int(name: str, value: object, low: int, high: int) -> int:
    # bool is an int subclass; --patients True is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequestError(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidRequestError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _patient_bundle(index: int, seed: int) -> tuple[str, dict[str, Any]]:
    pool = provider_pool(seed)
    history = simulate(index, seed, len(pool), PRACTITIONERS_PER_ORGANIZATION)
    # Resource ids come from a second stream so the clinical draws never depend on how
    # many resources the builder happens to emit.
    ids = random.Random(f"medfusion-synth-ids:{seed}:{index}")
    return history.uuid, build_bundle(history, pool, ids)


def generate_bundle(index: int, seed: int) -> dict[str, Any]:
    """Generate one synthetic patient as a FHIR R4 transaction Bundle.

    Parameters
    ----------
    index
        Position of the patient in the cohort (``>= 0``).
    seed
        The cohort's seed (``>= 0``); the same ``(index, seed)`` always gives the same Bundle.

    Returns
    -------
    dict
        The Bundle as JSON-ready data.

    Raises
    ------
    InvalidRequestError
        If ``index`` or ``seed`` is not a non-negative integer.
    """
    _check_int("index", index, 0, MAX_SEED)
    _check_int("seed", seed, 0, MAX_SEED)
    return _patient_bundle(index, seed)[1]


def check_arguments(out: Path, patients: int, seed: int) -> Path:
    """Check the arguments of :func:`write_bundles` without writing anything.

    Parameters
    ----------
    out, patients, seed
        As for :func:`write_bundles`.

    Returns
    -------
    Path
        ``out`` as a :class:`~pathlib.Path`.

    Raises
    ------
    InvalidRequestError
        If an argument is out of range or ``out`` exists and is not a folder.
    """
    _check_int("patients", patients, 1, MAX_PATIENTS)
    _check_int("seed", seed, 0, MAX_SEED)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidRequestError(f"output path {out} exists and is not a folder")
    return out


def _write_chunk(job: tuple[str, int, int, int]) -> tuple[int, dict[str, int]]:
    out, seed, start, stop = job
    folder = Path(out)
    counts: Counter[str] = Counter()
    for index in range(start, stop):
        patient_id, bundle = _patient_bundle(index, seed)
        counts.update(e["resource"]["resourceType"] for e in bundle["entry"])
        (folder / f"{patient_id}.json").write_bytes(orjson.dumps(bundle))
    return stop - start, dict(counts)


def write_bundles(
    out: Path,
    patients: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int = 1,
) -> SynthSummary:
    """Generate a cohort and write one ``<patient-id>.json`` transaction Bundle per patient.

    The output is byte-identical for the same ``patients`` and ``seed`` whatever the
    number of workers, because each patient depends only on ``(seed, index)``.

    Parameters
    ----------
    out
        Folder to write to; created if missing. Existing files of the same name are replaced.
    patients
        Number of patients, ``1`` to :data:`MAX_PATIENTS`.
    seed
        Seed of the cohort, ``>= 0``.
    progress
        Called with the number of patients written so far, after each chunk.
    workers
        Processes to use. One process writes 10,000 patients in about 16 s, and writing
        (not generating) dominates, so extra processes rarely help; they are ``spawn``-ed,
        so a calling script needs the usual ``if __name__ == "__main__"`` guard.

    Returns
    -------
    SynthSummary
        Files, resources per type and time taken.

    Raises
    ------
    InvalidRequestError
        If an argument is out of range or ``out`` exists and is not a folder.
    """
    out = check_arguments(out, patients, seed)
    _check_int("workers", workers, 1, 64)
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), seed, s, min(s + _CHUNK, patients)) for s in range(0, patients, _CHUNK)]
    totals: Counter[str] = Counter()
    done = 0

    def collect(result: tuple[int, dict[str, int]]) -> None:
        nonlocal done
        done += result[0]
        totals.update(result[1])
        if progress is not None:
            progress(done)

    if workers == 1:
        for job in jobs:
            collect(_write_chunk(job))
    else:
        # spawn, not fork: forking a process that may hold threads (rich, a server) is unsafe.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(_write_chunk, jobs):
                collect(result)
    return SynthSummary(
        out=out,
        files=done,
        resources=dict(sorted(totals.items())),
        seconds=time.perf_counter() - started,
    )
