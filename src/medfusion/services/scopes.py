"""SMART on FHIR scopes: parsing (v2 and v1 forms), role caps, and checks.

``patient/Observation.rs`` reads and searches one type in a patient's compartment;
``user/*.cruds`` is everything the user may do; ``system/*.rs`` is a backend service's
read access. The v1 forms ``.read``, ``.write`` and ``.*`` are accepted and mean ``rs``,
``cud`` and ``cruds``. Scopes with granular query parameters (``?category=...``) are not
supported and are never granted, since ignoring the filter would grant more than asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ROLES",
    "Scope",
    "allows",
    "format_scopes",
    "grant",
    "parse_scope",
    "parse_scopes",
    "role_cap",
]

ROLES = ("admin", "clinician", "analyst", "patient")

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]{1,63})\.(\*|read|write|c?r?u?d?s?)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_ORDER = "cruds"

# What each role may be granted at most. A patient's scopes are further held to their
# own compartment, an analyst's to aggregate searches (``_summary=count``) and
# de-identified exports, by the policy in :mod:`medfusion.services.authz`.
_CAPS = {
    "admin": "user/*.cruds",
    "clinician": "user/*.cruds",
    "analyst": "user/*.s",
    "patient": "patient/*.rs patient/Appointment.cu",
}


@dataclass(frozen=True, slots=True)
class Scope:
    """One resource scope: its context, resource type (or ``*``) and permissions."""

    context: str
    resource_type: str
    permissions: str

    def __str__(self) -> str:
        return f"{self.context}/{self.resource_type}.{self.permissions}"


def parse_scope(text: str) -> Scope | None:
    """One scope string as a :class:`Scope`; None for anything that is not a resource scope."""
    match = _SCOPE.match(text)
    if match is None:
        return None
    context, resource_type, permissions = match.groups()
    permissions = _V1.get(permissions, permissions)
    if not permissions:
        return None
    return Scope(context, resource_type, permissions)


def parse_scopes(text: str) -> list[Scope]:
    """The resource scopes of a space-separated scope string (others are dropped)."""
    return [scope for part in text.split() if (scope := parse_scope(part)) is not None]


def format_scopes(scopes: list[Scope]) -> str:
    """Scopes back to a space-separated string, duplicates removed, order kept."""
    return " ".join(dict.fromkeys(str(scope) for scope in scopes))


def role_cap(role: str) -> list[Scope]:
    """The most a user of ``role`` may be granted."""
    return parse_scopes(_CAPS.get(role, ""))


def _meet(wanted: Scope, cap: Scope) -> Scope | None:
    if wanted.context != cap.context:
        return None
    if cap.resource_type != "*" and wanted.resource_type not in ("*", cap.resource_type):
        return None
    resource_type = cap.resource_type if wanted.resource_type == "*" else wanted.resource_type
    permissions = "".join(p for p in _ORDER if p in wanted.permissions and p in cap.permissions)
    return Scope(cap.context, resource_type, permissions) if permissions else None


def grant(requested: str, cap: list[Scope]) -> list[Scope]:
    """What to grant for ``requested`` under ``cap``; an empty request gets the whole cap.

    Each requested scope is narrowed to what the cap allows; scopes the cap does not
    cover at all are dropped rather than refused, as OAuth allows.
    """
    wanted = parse_scopes(requested)
    if not requested.strip():
        return list(cap)
    granted: list[Scope] = []
    for scope in wanted:
        for limit in cap:
            met = _meet(scope, limit)
            if met is not None:
                granted.append(met)
    return list(dict.fromkeys(granted))


def allows(scopes: tuple[Scope, ...] | list[Scope], permission: str, resource_type: str) -> bool:
    """Whether any scope gives ``permission`` (one of c r u d s) on ``resource_type``."""
    return any(
        permission in scope.permissions and scope.resource_type in ("*", resource_type) for scope in scopes
    )
