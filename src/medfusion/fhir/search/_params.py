"""The registry of supported search parameters (a subset of the R4 definitions).

Each parameter names its type and the element paths it indexes. Paths are a tiny
FHIRPath subset: dotted element names, lists flatten at every step, and a step may
carry one ``[field=value]`` filter (``telecom[system=phone]``). Choice elements are
spelled out (``effectiveDateTime``, ``effectivePeriod``, ...), so extraction never has
to guess a type from a suffix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

__all__ = ["SPECIAL_PARAMS", "ParamDef", "param_defs", "search_param_types"]


@dataclass(frozen=True, slots=True)
class ParamDef:
    """One search parameter of one resource type.

    Attributes
    ----------
    name
        The parameter name as used in URLs.
    type
        ``string``, ``token``, ``date``, ``quantity``, ``reference``, ``number`` or ``uri``.
    paths
        Element paths whose values are indexed (see the module docstring).
    targets
        For references: the resource types kept (None keeps every type).
    """

    name: str
    type: str
    paths: tuple[str, ...]
    targets: frozenset[str] | None = None


# Parameters every type has; they read resource columns, not index rows.
SPECIAL_PARAMS: dict[str, str] = {"_id": "token", "_lastUpdated": "date"}

_PATIENT = frozenset({"Patient"})
_PRACTITIONER = frozenset({"Practitioner"})


def _s(name: str, *paths: str) -> ParamDef:
    return ParamDef(name, "string", paths)


def _t(name: str, *paths: str) -> ParamDef:
    return ParamDef(name, "token", paths)


def _d(name: str, *paths: str) -> ParamDef:
    return ParamDef(name, "date", paths)


def _q(name: str, *paths: str) -> ParamDef:
    return ParamDef(name, "quantity", paths)


def _r(name: str, *paths: str, targets: frozenset[str] | None = None) -> ParamDef:
    return ParamDef(name, "reference", paths, targets)


def _patient(path: str = "subject") -> list[ParamDef]:
    """``patient``: the reference at ``path``, indexed only when it points at a Patient."""
    return [_r("patient", path, targets=_PATIENT)]


def _subject() -> list[ParamDef]:
    return [*_patient("subject"), _r("subject", "subject")]


def _address(prefix: str) -> list[ParamDef]:
    return [
        _s("address", prefix),
        _s("address-city", f"{prefix}.city"),
        _s("address-postalcode", f"{prefix}.postalCode"),
        _s("address-state", f"{prefix}.state"),
        _s("address-country", f"{prefix}.country"),
    ]


def _telecom() -> list[ParamDef]:
    return [
        _t("telecom", "telecom"),
        _t("phone", "telecom[system=phone]"),
        _t("email", "telecom[system=email]"),
    ]


def _person_name() -> list[ParamDef]:
    return [_s("name", "name"), _s("family", "name.family"), _s("given", "name.given")]


_EFFECTIVE = ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "effectiveTiming")

_DEFINITIONS: dict[str, list[ParamDef]] = {
    "Patient": [
        _t("identifier", "identifier"),
        *_person_name(),
        _d("birthdate", "birthDate"),
        _t("gender", "gender"),
        *_address("address"),
        *_telecom(),
        ParamDef("deceased", "token", ("deceasedBoolean", "deceasedDateTime")),
        _t("active", "active"),
        _r("general-practitioner", "generalPractitioner"),
        _r("organization", "managingOrganization"),
    ],
    "Practitioner": [
        _t("identifier", "identifier"),
        *_person_name(),
        _t("gender", "gender"),
        _t("active", "active"),
        *_address("address"),
        *_telecom(),
    ],
    "PractitionerRole": [
        _t("identifier", "identifier"),
        _r("practitioner", "practitioner"),
        _r("organization", "organization"),
        _r("location", "location"),
        _t("role", "code"),
        _t("specialty", "specialty"),
        _t("active", "active"),
    ],
    "Organization": [
        _t("identifier", "identifier"),
        _s("name", "name", "alias"),
        _t("type", "type"),
        _t("active", "active"),
        _r("partof", "partOf"),
        *_address("address"),
    ],
    "Location": [
        _t("identifier", "identifier"),
        _s("name", "name", "alias"),
        _t("status", "status"),
        _t("type", "type"),
        _r("organization", "managingOrganization"),
        _r("partof", "partOf"),
        *_address("address"),
    ],
    "Encounter": [
        _t("identifier", "identifier"),
        *_subject(),
        _d("date", "period"),
        _t("class", "class"),
        _t("type", "type"),
        _t("status", "status"),
        _r("participant", "participant.individual"),
        _r("practitioner", "participant.individual", targets=_PRACTITIONER),
        _r("service-provider", "serviceProvider"),
        _t("reason-code", "reasonCode"),
        _r("location", "location.location"),
    ],
    "Observation": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("code", "code"),
        _t("category", "category"),
        _d("date", *_EFFECTIVE),
        _q("value-quantity", "valueQuantity"),
        _t("value-concept", "valueCodeableConcept"),
        _t("status", "status"),
        _r("encounter", "encounter"),
        _t("component-code", "component.code"),
        _r("performer", "performer"),
    ],
    "Condition": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("code", "code"),
        _t("clinical-status", "clinicalStatus"),
        _t("verification-status", "verificationStatus"),
        _t("category", "category"),
        _d("onset-date", "onsetDateTime", "onsetPeriod"),
        _d("abatement-date", "abatementDateTime", "abatementPeriod"),
        _d("recorded-date", "recordedDate"),
        _r("encounter", "encounter"),
        _r("asserter", "asserter"),
    ],
    "Procedure": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("code", "code"),
        _t("category", "category"),
        _d("date", "performedDateTime", "performedPeriod"),
        _t("status", "status"),
        _r("encounter", "encounter"),
        _r("performer", "performer.actor"),
    ],
    "MedicationRequest": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("code", "medicationCodeableConcept"),
        _r("medication", "medicationReference"),
        _d("authoredon", "authoredOn"),
        _t("status", "status"),
        _t("intent", "intent"),
        _t("category", "category"),
        _r("encounter", "encounter"),
        _r("requester", "requester"),
    ],
    "Immunization": [
        _t("identifier", "identifier"),
        *_patient("patient"),
        _d("date", "occurrenceDateTime"),
        _t("status", "status"),
        _t("vaccine-code", "vaccineCode"),
        _r("location", "location"),
        _r("performer", "performer.actor"),
    ],
    "AllergyIntolerance": [
        _t("identifier", "identifier"),
        *_patient("patient"),
        _t("code", "code", "reaction.substance"),
        _t("clinical-status", "clinicalStatus"),
        _t("verification-status", "verificationStatus"),
        _t("category", "category"),
        _t("criticality", "criticality"),
        _t("type", "type"),
        _d("date", "recordedDate"),
        _r("recorder", "recorder"),
        _r("asserter", "asserter"),
    ],
    "DiagnosticReport": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("code", "code"),
        _d("date", "effectiveDateTime", "effectivePeriod"),
        _d("issued", "issued"),
        _t("status", "status"),
        _t("category", "category"),
        _r("encounter", "encounter"),
        _r("result", "result"),
        _r("performer", "performer"),
    ],
    "DocumentReference": [
        _t("identifier", "identifier"),
        *_subject(),
        _t("type", "type"),
        _t("category", "category"),
        _d("date", "date"),
        _d("period", "context.period"),
        _t("status", "status"),
        _r("author", "author"),
        _r("encounter", "context.encounter"),
    ],
    "ImagingStudy": [
        _t("identifier", "identifier"),
        *_subject(),
        _d("started", "started"),
        _t("status", "status"),
        _t("modality", "series.modality"),
        _t("bodysite", "series.bodySite"),
        _r("encounter", "encounter"),
        _r("referrer", "referrer"),
    ],
    "CarePlan": [
        _t("identifier", "identifier"),
        *_subject(),
        _d("date", "period"),
        _t("status", "status"),
        _t("intent", "intent"),
        _t("category", "category"),
        _r("encounter", "encounter"),
    ],
    "Claim": [
        _t("identifier", "identifier"),
        *_patient("patient"),
        _d("created", "created"),
        _t("status", "status"),
        _t("use", "use"),
        _t("priority", "priority"),
        _r("provider", "provider"),
        _r("insurer", "insurer"),
        _r("enterer", "enterer"),
        _r("encounter", "item.encounter"),
    ],
    "ExplanationOfBenefit": [
        _t("identifier", "identifier"),
        *_patient("patient"),
        _d("created", "created"),
        _t("status", "status"),
        _r("provider", "provider"),
        _r("claim", "claim"),
        _r("encounter", "item.encounter"),
    ],
    "Schedule": [
        _t("identifier", "identifier"),
        _r("actor", "actor"),
        _d("date", "planningHorizon"),
        _t("active", "active"),
        _t("service-type", "serviceType"),
        _t("specialty", "specialty"),
    ],
    "Slot": [
        _t("identifier", "identifier"),
        _r("schedule", "schedule"),
        _d("start", "start"),
        _t("status", "status"),
        _t("service-type", "serviceType"),
        _t("specialty", "specialty"),
        _t("appointment-type", "appointmentType"),
    ],
    "Appointment": [
        _t("identifier", "identifier"),
        _r("actor", "participant.actor"),
        _r("patient", "participant.actor", targets=_PATIENT),
        _r("practitioner", "participant.actor", targets=_PRACTITIONER),
        _r("location", "participant.actor", targets=frozenset({"Location"})),
        _d("date", "start"),
        _t("status", "status"),
        _t("part-status", "participant.status"),
        _t("service-type", "serviceType"),
        _t("appointment-type", "appointmentType"),
        _t("reason-code", "reasonCode"),
        _r("slot", "slot"),
    ],
}


@cache
def param_defs(resource_type: str) -> dict[str, ParamDef]:
    """The index-backed parameters of ``resource_type`` by name (empty for other types)."""
    return {p.name: p for p in _DEFINITIONS.get(resource_type, [])}


def search_param_types(resource_type: str) -> dict[str, str]:
    """Supported search parameters of a type and their FHIR types.

    Parameters
    ----------
    resource_type
        A resource type name; types without indexed parameters still get ``_id`` and
        ``_lastUpdated``.

    Returns
    -------
    dict[str, str]
        Parameter name to ``string``, ``token``, ``date``, ``quantity``,
        ``reference``, ``number`` or ``uri`` (for the CapabilityStatement).
    """
    out = dict(SPECIAL_PARAMS)
    out.update({name: p.type for name, p in param_defs(resource_type).items()})
    return out
