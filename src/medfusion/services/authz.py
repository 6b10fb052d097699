"""Authorization: SMART scopes, role caps and object-level checks, in one place.

Every interaction names what it does (``read``, ``search``, ``create``, ...) and on which
type; :func:`authorize` checks the token's scopes and the role's rules. Object-level
checks then hold a ``patient`` user to their own compartment (their Patient and the
resources whose subject or patient is them) and hide records labelled restricted
(``meta.security`` R or V) from everyone without a break-glass token. A resource outside
the caller's compartment answers 404, never 403, so its existence does not leak.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from medfusion.errors import ForbiddenError, InvalidRequestError, MedfusionError, NotFoundError
from medfusion.fhir.repository import FhirRepository
from medfusion.fhir.search import search_param_types
from medfusion.services.scopes import allows
from medfusion.services.security import Principal

__all__ = [
    "PERMISSION",
    "authorize",
    "check_bundle",
    "check_visible",
    "filter_bundle",
    "in_compartment",
    "restrict_search",
    "visible",
]

# The SMART permission each interaction needs.
PERMISSION = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "everything": "r",
    "search": "s",
    "history-type": "s",
    "history-system": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
    # Bulk export (identified) and de-identified export; the export routes call these.
    "export": "s",
    "export-deidentified": "s",
}
_CONFIDENTIALITY = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
_RESTRICTED = {"R", "V"}
_PATIENT_PARAMS = {"patient", "subject", "beneficiary", "actor"}


def _compartment_types() -> set[str]:
    return {"Patient"} | {
        t
        for t in (
            "AllergyIntolerance",
            "Appointment",
            "CarePlan",
            "Claim",
            "Condition",
            "DiagnosticReport",
            "DocumentReference",
            "Encounter",
            "ExplanationOfBenefit",
            "ImagingStudy",
            "Immunization",
            "MedicationRequest",
            "Observation",
            "Procedure",
            "QuestionnaireResponse",
            "CareTeam",
        )
        if "patient" in search_param_types(t)
    }


_COMPARTMENT = _compartment_types()
# Directory data with no patient in it, which a patient needs to book a visit.
_DIRECTORY = frozenset(
    {"Slot", "Schedule", "Practitioner", "PractitionerRole", "Location", "Organization", "HealthcareService"}
)


def authorize(principal: Principal, interaction: str, resource_type: str, *, aggregate: bool = False) -> None:
    """Raise :class:`ForbiddenError` unless ``principal`` may do ``interaction`` on the type.

    Parameters
    ----------
    interaction
        A key of :data:`PERMISSION`.
    aggregate
        The search returns counts only (``_summary=count`` without includes): the one kind
        of search an analyst may run.
    """
    if resource_type == "AuditEvent":
        # The audit trail is append-only for everyone and readable by admins only.
        if interaction not in ("read", "search") or not (
            principal.unrestricted or (principal.kind == "user" and principal.role == "admin")
        ):
            raise ForbiddenError("the audit trail can be read by admins only and never changed")
        return
    if principal.unrestricted:
        return
    if principal.role == "analyst" and not (
        (interaction == "search" and aggregate) or interaction == "export-deidentified"
    ):
        raise ForbiddenError("an analyst may see aggregate and de-identified data only")
    if principal.role == "patient":
        if interaction in ("history-type", "history-system", "export", "export-deidentified"):
            raise ForbiddenError("a patient may read the history of their own records only")
        if resource_type not in _COMPARTMENT and not (
            resource_type in _DIRECTORY and PERMISSION[interaction] in "rs"
        ):
            raise ForbiddenError(f"a patient may not access {resource_type} resources")
    if not allows(principal.scopes, PERMISSION[interaction], resource_type):
        raise ForbiddenError(f"the token's scopes do not allow {interaction} on {resource_type}")


def _references(resource: dict[str, Any]) -> list[str]:
    refs: list[str] = []
    for key in ("subject", "patient", "beneficiary"):
        value = resource.get(key)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            refs.append(value["reference"])
    for participant in resource.get("participant") or []:
        actor = participant.get("actor") if isinstance(participant, dict) else None
        if isinstance(actor, dict) and isinstance(actor.get("reference"), str):
            refs.append(actor["reference"])
    return refs


def _is_patient_ref(reference: str, patient_id: str) -> bool:
    return reference == f"Patient/{patient_id}" or reference.endswith(f"/Patient/{patient_id}")


def in_compartment(resource: dict[str, Any], patient_id: str) -> bool:
    """Whether ``resource`` is in the Patient compartment of ``patient_id``."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id") == patient_id
    return any(_is_patient_ref(ref, patient_id) for ref in _references(resource))


def _restricted(resource: dict[str, Any]) -> bool:
    labels = (resource.get("meta") or {}).get("security") or []
    return any(
        isinstance(label, dict)
        and label.get("system") == _CONFIDENTIALITY
        and label.get("code") in _RESTRICTED
        for label in labels
    )


def visible(principal: Principal, resource: dict[str, Any]) -> bool:
    """Whether ``principal`` may see ``resource`` (compartment and confidentiality label)."""
    if principal.unrestricted:
        return True
    if principal.role == "patient":
        if resource.get("resourceType") in _DIRECTORY:
            return True
        return principal.patient_id is not None and in_compartment(resource, principal.patient_id)
    return principal.break_glass or not _restricted(resource)


def check_visible(principal: Principal, body: bytes | dict[str, Any]) -> None:
    """404 for a record outside a patient's compartment, 403 for a restricted record."""
    if principal.unrestricted:
        return
    if principal.role != "patient" and (
        principal.break_glass or (isinstance(body, bytes) and b'"security"' not in body)
    ):
        return  # the cheap path of every clinician read: no label, nothing to parse
    resource = orjson.loads(body) if isinstance(body, bytes) else body
    if visible(principal, resource):
        return
    if principal.role == "patient":
        raise NotFoundError("the resource is not known")
    raise ForbiddenError("the record is restricted; break the glass with a stated reason to open it")


def restrict_search(
    principal: Principal, resource_type: str, params: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Hold a patient's search to their compartment; naming another patient is a 403."""
    if principal.unrestricted or principal.role != "patient":
        return params
    own = principal.patient_id or ""
    for name, value in params:
        base = re.split(r"[:.]", name, maxsplit=1)[0]
        if base in _PATIENT_PARAMS or (base == "_id" and resource_type == "Patient"):
            for item in value.split(","):
                if "/" in item and "Patient/" not in item:
                    continue  # a reference to another type (a Practitioner actor)
                if item.rsplit("/", 1)[-1] != own or "." in name:
                    raise ForbiddenError("a patient may search their own records only")
    if resource_type in _DIRECTORY:
        return params
    if resource_type == "Patient":
        return [*params, ("_id", own)]
    return [*params, ("patient", f"Patient/{own}")]


def filter_bundle(principal: Principal, body: bytes) -> bytes:
    """Drop every entry ``principal`` may not see from a Bundle (matches and includes)."""
    if principal.unrestricted or (
        principal.role != "patient" and (principal.break_glass or b'"security"' not in body)
    ):
        return body
    bundle = orjson.loads(body)
    kept: list[dict[str, Any]] = []
    dropped = 0
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource")
        if resource is None or visible(principal, resource):
            kept.append(entry)
        elif (entry.get("search") or {}).get("mode", "match") == "match":
            dropped += 1
    if len(kept) == len(bundle.get("entry") or []):
        return body
    bundle["entry"] = kept
    if isinstance(bundle.get("total"), int):
        bundle["total"] = max(bundle["total"] - dropped, 0)
    return orjson.dumps(bundle)


def _entry_target(entry: dict[str, Any]) -> tuple[str, str, str | None, bool]:
    """(interaction, resource type, id, conditional) of a Bundle entry's request."""
    request = entry.get("request") or {}
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", ""))
    path, _, query = url.partition("?")
    parts = [p for p in path.split("/") if p]
    start = next((i for i, p in enumerate(parts) if p[:1].isupper()), None)
    if start is None:
        resource = entry.get("resource") or {}
        if method == "POST" and isinstance(resource, dict) and resource.get("resourceType"):
            return "create", str(resource["resourceType"]), None, False
        raise InvalidRequestError("the entry's request.url names no resource type")
    parts = parts[start:]
    resource_type = parts[0]
    id = parts[1] if len(parts) > 1 and not parts[1].startswith(("_", "$")) else None
    if method == "GET":
        if len(parts) > 1 and parts[1] == "_history":
            return "history-type", resource_type, None, False
        if id is None:
            return "search", resource_type, None, bool(query)
        if len(parts) > 2 and parts[2] == "_history":
            return ("vread" if len(parts) > 3 else "history-instance"), resource_type, id, False
        if len(parts) > 2 and parts[2] == "$everything":
            return "everything", resource_type, id, False
        return "read", resource_type, id, False
    interaction = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
    if interaction is None:
        raise InvalidRequestError("the entry's request.method is missing or unknown")
    return interaction, resource_type, id, id is None and method != "POST"


def check_bundle(
    principal: Principal,
    bundle: Any,
    repo: FhirRepository,
    wrap: Callable[[int, MedfusionError], MedfusionError],
) -> None:
    """Authorize every entry of a batch or transaction before any is processed.

    One forbidden entry fails the whole request, so nothing is half-written. ``wrap``
    turns an entry's error into the error raised (naming the entry).
    """
    if principal.unrestricted or not isinstance(bundle, dict):
        return
    for index, entry in enumerate(bundle.get("entry") or []):
        if not isinstance(entry, dict):
            continue
        try:
            interaction, resource_type, id, conditional = _entry_target(entry)
            authorize(principal, interaction, resource_type)
            if principal.role != "patient":
                continue
            if conditional or interaction in ("search", "history-type"):
                raise ForbiddenError("a patient may not send searches or conditional writes in a Bundle")
            resource = entry.get("resource")
            if isinstance(resource, dict) and not visible(principal, resource):
                raise ForbiddenError("a patient may write their own records only")
            if id is not None:
                current = repo.begin_read
                with current() as tx:
                    found = tx.read_current(resource_type, id)
                if found is not None and not found.deleted:
                    check_visible(principal, found.body)
        except MedfusionError as error:
            raise wrap(index, error) from None
