"""Benchmark FHIR structure validation: fast path vs the fhir.resources reference.

Run ``python benchmarks/bench_validation.py``; it prints a markdown table of microseconds
per resource over every resource in the Synthea bundles of ``MEDFUSION_DATA_DIR``
(best of three passes, so the import/first-use costs are excluded).
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from medfusion.config import get_settings
from medfusion.fhir.validation import validate_resource, validate_resource_reference

Validator = Callable[[object], None]


def _load() -> list[dict[str, Any]]:
    folder = get_settings().data_dir / "synthea"
    resources: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        resources += [entry["resource"] for entry in bundle["entry"]]
    return resources


def _per_resource_us(validator: Validator, resources: list[dict[str, Any]]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for resource in resources:
            validator(resource)
        best = min(best, time.perf_counter() - start)
    return best / len(resources) * 1e6


def table() -> list[str]:
    """The Markdown table lines (empty when the Synthea bundles are absent)."""
    resources = _load()
    if not resources:
        return []
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in resources:
        by_type[resource["resourceType"]].append(resource)
    rows = [("all Synthea resources", resources)]
    rows += sorted(by_type.items(), key=lambda item: -len(item[1]))[:8]
    lines = ["| resources | n | fast µs | reference µs | speed-up |", "|---|---:|---:|---:|---:|"]
    for label, group in rows:
        fast = _per_resource_us(validate_resource, group)
        reference = _per_resource_us(validate_resource_reference, group)
        lines.append(f"| {label} | {len(group)} | {fast:.1f} | {reference:.1f} | {reference / fast:.1f}x |")
    return lines


def main() -> int:
    """Print the table; returns a process exit status."""
    lines = table()
    if not lines:
        print(f"no Synthea bundles under {get_settings().data_dir}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
