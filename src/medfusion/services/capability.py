"""The CapabilityStatement: what this server supports, stated exactly."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from medfusion import __version__
from medfusion.fhir.search import search_param_types
from medfusion.fhir.validation import RESOURCE_TYPES

__all__ = ["capability_statement"]

_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
_DOCS = {
    "string": "starts-with, case and accent insensitive; :exact, :contains",
    "token": "system|code, |code, system|, code",
    "date": "prefixes eq ne lt gt le ge sa eb; partial dates are ranges",
    "quantity": "[prefix]number|system|code",
    "reference": "id, Type/id or absolute URL",
}


def _resource_entry(resource_type: str) -> dict[str, Any]:
    params = search_param_types(resource_type)
    return {
        "type": resource_type,
        "interaction": [{"code": code} for code in _INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "not-supported",
        "searchInclude": ["*"] if any(t == "reference" for t in params.values()) else [],
        "searchRevInclude": ["*"],
        "searchParam": [
            {
                "name": name,
                "type": kind,
                **({"documentation": _DOCS[kind]} if kind in _DOCS else {}),
            }
            for name, kind in sorted(params.items())
        ],
        **({"operation": _OPERATIONS[resource_type]} if resource_type in _OPERATIONS else {}),
    }


_ARGONAUT = "http://fhir.org/guides/argonaut-scheduling/OperationDefinition"
_OPERATIONS: dict[str, list[dict[str, str]]] = {
    "Patient": [
        {"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}
    ],
    # Scheduling (docs/scheduling.md); $cancel has no published definition, so it names ours.
    "Appointment": [
        {"name": "find", "definition": f"{_ARGONAUT}/appointment-find"},
        {"name": "hold", "definition": f"{_ARGONAUT}/appointment-hold"},
        {"name": "book", "definition": f"{_ARGONAUT}/appointment-book"},
        {"name": "cancel", "definition": "https://medfusion.dev/fhir/OperationDefinition/appointment-cancel"},
    ],
}


@lru_cache(maxsize=4)
def capability_statement(base: str) -> bytes:
    """The server's CapabilityStatement as JSON bytes (built once per base URL)."""
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-27",
        "publisher": "medfusion",
        "kind": "instance",
        "software": {"name": "medfusion", "version": __version__},
        "implementation": {"description": "medfusion FHIR R4 server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Every R4 resource type can be created, read, updated, patched, deleted and "
                    "listed; searches support _id, _lastUpdated, _count (capped), _offset, _sort, "
                    "_include, _revinclude, _summary=count and _elements. Unknown parameters are "
                    "ignored under Prefer: handling=lenient (default) and rejected under "
                    "handling=strict."
                ),
                "resource": [_resource_entry(t) for t in sorted(RESOURCE_TYPES)],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
            }
        ],
    }
    return orjson.dumps(statement)
