"""k-anonymity over quasi-identifiers (age band, gender, ZIP3), reached by suppression."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

__all__ = ["QUASI_IDENTIFIERS", "KAnonymityReport", "age_band", "age_in_years", "k_anonymize"]

QUASI_IDENTIFIERS = ("age_band", "gender", "zip3")

QuasiKey = tuple[str, str, str]


def age_in_years(born: date, at: date) -> int:
    """Completed years between ``born`` and ``at``."""
    return at.year - born.year - ((at.month, at.day) < (born.month, born.day))


def age_band(age: int | None) -> str:
    """Ten-year band (``"40-49"``), ``"90+"`` over 89 (Safe Harbor), ``"unknown"`` if missing."""
    if age is None:
        return "unknown"
    if age > 89:
        return "90+"
    low = max(age, 0) // 10 * 10
    return f"{low}-{low + 9}"


@dataclass(slots=True)
class KAnonymityReport:
    """What suppression achieved.

    Attributes
    ----------
    k_requested
        The ``k`` asked for.
    k_achieved
        Smallest equivalence class among the records kept (0 when none is kept).
    records, suppressed
        Patients before suppression and patients suppressed (with all their resources).
    classes
        Size of every equivalence class kept, keyed by ``(age_band, gender, zip3)``.
    suppressed_ids
        The original ids of the suppressed patients (never written to the report file).
    """

    k_requested: int
    k_achieved: int
    records: int
    suppressed: int
    classes: dict[QuasiKey, int] = field(default_factory=dict)
    suppressed_ids: frozenset[str] = frozenset()

    def as_json(self) -> dict[str, Any]:
        """The report as JSON (no ids: pseudonymous or not, they are not needed)."""
        return {
            "quasi_identifiers": list(QUASI_IDENTIFIERS),
            "k_requested": self.k_requested,
            "k_achieved": self.k_achieved,
            "records": self.records,
            "suppressed": self.suppressed,
            "kept": self.records - self.suppressed,
            "classes": [
                {"age_band": band, "gender": gender, "zip3": zip3, "count": count}
                for (band, gender, zip3), count in sorted(self.classes.items())
            ],
        }


def k_anonymize(records: Mapping[str, QuasiKey], k: int) -> KAnonymityReport:
    """Suppress every record whose equivalence class is smaller than ``k``.

    Parameters
    ----------
    records
        Quasi-identifier tuple per record id.
    k
        The smallest class size allowed (at least 1).

    Returns
    -------
    KAnonymityReport
        Classes kept, ``k`` achieved and the ids to suppress.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    sizes = Counter(records.values())
    suppressed = frozenset(rid for rid, key in records.items() if sizes[key] < k)
    kept = {key: count for key, count in sizes.items() if count >= k}
    return KAnonymityReport(
        k_requested=k,
        k_achieved=min(kept.values(), default=0),
        records=len(records),
        suppressed=len(suppressed),
        classes=kept,
        suppressed_ids=suppressed,
    )
