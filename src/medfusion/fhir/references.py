"""Reference parsing and rewriting (pure)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["ID_PATTERN", "is_valid_id", "rewrite_references", "split_reference"]

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]+)?$")


def is_valid_id(value: str) -> bool:
    """True for a FHIR ``id``: 1-64 letters, digits, ``-`` and ``.``."""
    return bool(ID_PATTERN.match(value))


def split_reference(reference: str) -> tuple[str, str] | None:
    """``"Patient/123"`` (or an absolute URL ending so) -> ``("Patient", "123")``, else None."""
    match = _RELATIVE.match(reference)
    if match:
        return match.group(1), match.group(2)
    if "://" in reference:
        parts = reference.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2:
            match = _RELATIVE.match(f"{parts[-2]}/{parts[-1]}")
            if match:
                return match.group(1), match.group(2)
    return None


def rewrite_references(value: Any, replace: Callable[[str], str | None]) -> None:
    """Pass every ``Reference.reference`` inside ``value`` through ``replace``, in place.

    ``replace`` returns the new reference string, or None to keep the old one. In place
    because Bundles are rewritten on the ingest hot path and the caller owns the dicts.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                new = replace(item)
                if new is not None:
                    value[key] = new
            elif isinstance(item, dict | list):
                rewrite_references(item, replace)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                rewrite_references(item, replace)
