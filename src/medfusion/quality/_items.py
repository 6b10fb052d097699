"""Shared machinery of the image and series checks: a tally, the report, labels and splits.

Images and series are *items*: each has a row (its index, ``split/index``, a file path or
a stay id), may carry a label and may belong to a split (train / val / test). The label
and split checks (``label_missing``, ``label_set``, ``label_balance``, ``duplicate_items``,
``split_leakage``) are the same for both and live here.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfusion.quality._catalogue import CATALOGUE_VERSION
from medfusion.quality._checks import CheckResult
from medfusion.quality._config import QualityConfig, label_text
from medfusion.quality._fhir import RecordFinding, RecordResults

__all__ = ["ItemReport", "LabelledItem", "check_labels_and_splits", "digest", "robust_z"]

_SPLIT_ORDER = ("train", "val", "test")


@dataclass(frozen=True)
class ItemReport(RecordResults):
    """Check totals and findings over images or series.

    Attributes
    ----------
    kind
        ``"image"`` or ``"series"``.
    items
        Images, stays or series rows checked.
    checks, findings
        Per-check totals and every finding of the checks that failed.
    summary
        What a reader wants besides the findings: class counts per split (``labels``),
        shapes, observation counts.
    """

    kind: str
    items: int
    checks: tuple[CheckResult, ...]
    findings: tuple[RecordFinding, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    catalogue_version: str = CATALOGUE_VERSION


@dataclass
class Tally:
    """Failures and checked counts per check, and the findings, for one run."""

    config: QualityConfig
    scopes: tuple[str, ...]
    counts: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    findings: list[RecordFinding] = field(default_factory=list)

    def enabled(self, check_id: str) -> bool:
        """Whether the check runs."""
        return self.config.checks[check_id].enabled

    def checked(self, check_id: str, n: int = 1) -> None:
        """Count ``n`` items checked."""
        self.counts[check_id][1] += n

    def fail(self, check_id: str, row: int | str, column: str | None, value: Any, message: str) -> None:
        """Record one failing item."""
        check = self.config.checks[check_id]
        self.counts[check_id][0] += 1
        self.findings.append(
            RecordFinding(check_id, check.category, check.severity, row, column, _plain(value), message)
        )

    def report(
        self, kind: str, items: int, summary: dict[str, Any], skip: tuple[str, ...] = ()
    ) -> ItemReport:
        """Apply thresholds: a check fails when its failures exceed ``threshold x checked``.

        ``skip`` names checks of the scopes that do not apply to this input (left out).
        """
        checks = {
            k: c
            for k, c in self.config.checks.items()
            if c.scope in self.scopes and c.enabled and k not in skip
        }
        failing: set[str] = set()
        for check_id, check in checks.items():
            failed, checked = self.counts.get(check_id, [0, 0])
            # label_balance's threshold is the smallest share a class may hold; its findings
            # are made against that threshold already.
            limit = 0.0 if check_id == "label_balance" else check.threshold * checked
            if failed > 0 and failed > limit:
                failing.add(check_id)
        results = tuple(
            CheckResult(
                check_id,
                check.category,
                check.severity,
                check.threshold,
                self.counts.get(check_id, [0, 0])[0],
                self.counts.get(check_id, [0, 0])[1],
                check_id not in failing,
            )
            for check_id, check in checks.items()
        )
        findings = tuple(f for f in self.findings if f.check in failing)
        return ItemReport(kind, items, results, findings, summary)


def _plain(value: Any) -> Any:
    """A JSON-friendly value (numpy scalars to Python, non-finite floats to None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return round(value, 6) if np.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def digest(array: np.ndarray) -> str:
    """SHA-1 of an array's shape, dtype and bytes: equal digests are exact duplicates."""
    contiguous = np.ascontiguousarray(array)
    return hashlib.sha1(
        repr((contiguous.shape, contiguous.dtype.str)).encode() + contiguous.tobytes(), usedforsecurity=False
    ).hexdigest()


def robust_z(values: np.ndarray) -> np.ndarray:
    """``(x - median) / (1.4826 * MAD)``; zeros when the values do not spread (MAD 0)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    if mad == 0:
        return np.zeros_like(values)
    scores: np.ndarray = (values - median) / mad
    return scores


@dataclass(frozen=True)
class LabelledItem:
    """What the label and split checks need of one item.

    ``label`` is ``None`` when the item has none; ``key`` the item's content digest
    (``None`` when it could not be read).
    """

    split: str
    row: int | str
    label: Any
    key: str | None


def _label_key(label: Any) -> str:
    if isinstance(label, list | tuple | np.ndarray) and np.size(label) == 1:
        return label_text(np.ravel(label)[0])  # MedMNIST's (n, 1) labels: one class each
    if isinstance(label, list | tuple | np.ndarray):
        return "[" + ",".join(label_text(v) for v in np.ravel(label)) + "]"
    return label_text(label)


def _allowed(config: QualityConfig, label: Any, *, numeric: bool) -> bool:
    values = list(np.ravel(label)) if isinstance(label, list | tuple | np.ndarray) else [label]
    texts = [label_text(v) for v in values]
    if config.labels is not None:
        return all(t in config.labels for t in texts)
    if numeric:
        # Class indices (MedMNIST) and multi-label 0/1 vectors are non-negative integers.
        return all(t.lstrip("-").isdigit() and not t.startswith("-") for t in texts)
    return True


def check_labels_and_splits(
    tally: Tally, items: Sequence[LabelledItem], *, labelled: bool, numeric_labels: bool
) -> dict[str, dict[str, int]]:
    """Run the label and split checks; return class counts per split for the summary.

    Parameters
    ----------
    tally
        Where failures go.
    items
        Every item, in input order.
    labelled
        Whether the input carries labels at all (an unlabelled set skips the label checks).
    numeric_labels
        Whether labels are numbers (class indices), which the default label set expects.
    """
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    splits = sorted(
        {i.split for i in items}, key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else 3, s)
    )
    if labelled:
        for item in items:
            tally.checked("label_missing")
            if item.label is None:
                tally.fail("label_missing", item.row, "label", None, "no label")
                continue
            key = _label_key(item.label)
            counts[item.split][key] += 1
            tally.checked("label_set")
            if not _allowed(tally.config, item.label, numeric=numeric_labels):
                allowed = ", ".join(tally.config.labels) if tally.config.labels else "non-negative integers"
                tally.fail(
                    "label_set", item.row, "label", key, f"label {key} is not in the label set ({allowed})"
                )
        _unseen_in_train(tally, items, counts)
        _balance(tally, counts, splits)
    _duplicates(tally, items)
    return {split: dict(sorted(counts[split].items())) for split in splits if split in counts}


def _unseen_in_train(tally: Tally, items: Sequence[LabelledItem], counts: dict[str, Counter[str]]) -> None:
    if "train" not in counts:
        return
    known = set(counts["train"])
    for item in items:
        if item.split != "train" and item.label is not None:
            key = _label_key(item.label)
            if key not in known and _allowed(tally.config, item.label, numeric=False):
                tally.fail(
                    "label_set", item.row, "label", key, f"class {key} does not occur in the train split"
                )


def _balance(tally: Tally, counts: dict[str, Counter[str]], splits: list[str]) -> None:
    classes = sorted({c for split in counts.values() for c in split})
    if any(c.startswith("[") for c in classes):
        return  # multi-label vectors: no single class per item to balance
    floor = tally.config.checks["label_balance"].threshold
    for split in splits:
        total = sum(counts[split].values())
        if not total:
            continue
        for name in classes:
            tally.checked("label_balance")
            held = counts[split][name]
            if held < floor * total:
                where = f"the {split} split" if split else "the file"
                tally.fail(
                    "label_balance",
                    split or "all",
                    "label",
                    {name: held},
                    f"class {name} holds {held / total:.1%} of {where} ({held} of {total}); "
                    f"at least {floor:.1%} expected",
                )


def _duplicates(tally: Tally, items: Sequence[LabelledItem]) -> None:
    first: dict[str, LabelledItem] = {}
    leak_seen: set[tuple[str, str]] = set()
    for item in items:
        if item.key is None:
            continue
        tally.checked("duplicate_items")
        tally.checked("split_leakage")
        earlier = first.get(item.key)
        if earlier is None:
            first[item.key] = item
            continue
        other = ""
        if earlier.label is not None and item.label is not None:
            same = _label_key(earlier.label) == _label_key(item.label)
            other = " with the same label" if same else " with a different label"
        if earlier.split == item.split:
            tally.fail(
                "duplicate_items", item.row, None, earlier.row, f"repeats {earlier.row} exactly{other}"
            )
        elif (item.key, item.split) not in leak_seen:
            leak_seen.add((item.key, item.split))
            tally.fail(
                "split_leakage",
                item.row,
                None,
                earlier.row,
                f"the same as {earlier.row} of the {earlier.split} split{other}: leakage between splits",
            )
