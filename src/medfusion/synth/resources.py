"""Turn a simulated :class:`~medfusion.synth.model.History` into a FHIR R4 transaction Bundle.

The Bundle is shaped like Synthea's: every entry has ``fullUrl: urn:uuid:<id>`` and a
``POST`` request; entries point at one another through those ``urn:uuid`` references;
the shared Organization and Practitioners are conditional creates (``ifNoneExist`` on
their identifier) and are referenced conditionally (``Practitioner?identifier=...``), so
importing many bundles creates each provider once.
"""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from medfusion.synth import codes as c
from medfusion.synth.model import History, Visit
from medfusion.synth.people import Practitioner, Provider, random_uuid

__all__ = ["build_bundle", "organization_reference", "practitioner_reference"]

Json = dict[str, Any]

_OBS_VITAL = [{"coding": [{"system": c.OBS_CATEGORY, "code": "vital-signs",
                           "display": "Vital signs"}]}]  # fmt: skip
_OBS_LAB = [{"coding": [{"system": c.OBS_CATEGORY, "code": "laboratory",
                         "display": "Laboratory"}]}]  # fmt: skip
_OBS_SOCIAL = [{"coding": [{"system": c.OBS_CATEGORY, "code": "social-history",
                            "display": "Social History"}]}]  # fmt: skip
_ACTIVE = {"coding": [{"system": c.COND_CLINICAL, "code": "active"}]}
_CONFIRMED = {"coding": [{"system": c.COND_VERIFICATION, "code": "confirmed"}]}
_DIAGNOSIS = [{"coding": [{"system": c.COND_CATEGORY, "code": "encounter-diagnosis",
                           "display": "Encounter Diagnosis"}]}]  # fmt: skip
_PERFORMER = [{"coding": [{"system": c.PARTICIPATION, "code": c.PRIMARY_PERFORMER.code,
                           "display": c.PRIMARY_PERFORMER.display}],
               "text": c.PRIMARY_PERFORMER.display}]  # fmt: skip
_MEDICATION_REASON = {"metformin": "diabetes", "insulin": "diabetes",
                      "lisinopril": "hypertension"}  # fmt: skip


def practitioner_reference(npi: str) -> str:
    """Return the conditional reference Synthea uses for a practitioner."""
    return f"Practitioner?identifier={c.NPI_SYSTEM}|{npi}"


def organization_reference(identifier: str) -> str:
    """Return the conditional reference Synthea uses for an organization."""
    return f"Organization?identifier={c.SYNTHEA_SYSTEM}|{identifier}"


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _concept(system: str, code: c.Code) -> Json:
    return {"coding": [{"system": system, "code": code.code, "display": code.display}],
            "text": code.display}  # fmt: skip


def _quantity(measure: c.Measure, value: float) -> Json:
    number: float = round(value, measure.decimals) if measure.decimals else round(value)
    return {"value": number, "unit": measure.unit, "system": c.UCUM, "code": measure.ucum}


def _entry(resource: Json, conditional: str | None = None) -> Json:
    request: Json = {"method": "POST", "url": resource["resourceType"]}
    if conditional is not None:
        request["ifNoneExist"] = conditional
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource, "request": request}


def _organization(org: Provider) -> Json:
    resource = {
        "resourceType": "Organization",
        "id": org.uuid,
        "identifier": [{"system": c.SYNTHEA_SYSTEM, "value": org.identifier}],
        "active": True,
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
            "code": "prov", "display": "Healthcare Provider"}], "text": "Healthcare Provider"}],
        "name": org.name,
        "address": [{"line": [org.street], "city": org.place.city, "state": "MA",
                     "postalCode": org.place.postal_code, "country": "US"}],
    }  # fmt: skip
    return _entry(resource, f"identifier={c.SYNTHEA_SYSTEM}|{org.identifier}")


def _practitioner(doc: Practitioner, org: Provider) -> Json:
    resource = {
        "resourceType": "Practitioner",
        "id": doc.uuid,
        "identifier": [{"system": c.NPI_SYSTEM, "value": doc.npi}],
        "active": True,
        "name": [{"family": doc.family, "given": [doc.given], "prefix": ["Dr."]}],
        "gender": doc.gender,
        "address": [{"line": [org.street], "city": org.place.city, "state": "MA",
                     "postalCode": org.place.postal_code, "country": "US"}],
    }  # fmt: skip
    return _entry(resource, f"identifier={c.NPI_SYSTEM}|{doc.npi}")


def _patient(h: History, org: Provider, gp: Practitioner) -> Json:
    resource: Json = {
        "resourceType": "Patient",
        "id": h.uuid,
        "identifier": [
            {"system": c.SYNTHEA_SYSTEM, "value": h.uuid},
            {"type": {"coding": [{"system": c.MRN_TYPE, "code": "MR",
                                  "display": "Medical Record Number"}],
                      "text": "Medical Record Number"},
             "system": c.MRN_SYSTEM, "value": h.mrn},
        ],
        "name": [{"use": "official", "family": h.family, "given": [h.given],
                  "prefix": ["Mr." if h.gender == "male" else "Ms."]}],
        "telecom": [{"system": "phone", "value": h.phone, "use": "home"}],
        "gender": h.gender,
        "birthDate": h.birth.date().isoformat(),
        "address": [{"line": [h.street], "city": h.place.city, "state": "MA",
                     "postalCode": h.place.postal_code, "country": "US"}],
        "generalPractitioner": [{"reference": practitioner_reference(gp.npi)}],
        "managingOrganization": {"reference": organization_reference(org.identifier)},
    }  # fmt: skip
    if h.death is not None:
        resource["deceasedDateTime"] = _when(h.death)
    return _entry(resource)


class _Builder:
    """Accumulates one patient's entries; ``rng`` supplies the resource ids."""

    def __init__(self, h: History, org: Provider, rng: random.Random) -> None:
        self.h = h
        self.org = org
        self.rng = rng
        self.subject = {"reference": f"urn:uuid:{h.uuid}", "display": f"{h.given} {h.family}"}
        self.provider = {"reference": organization_reference(org.identifier),
                         "display": org.name}  # fmt: skip
        self.entries: list[Json] = []
        self.conditions: dict[str, str] = {}

    def encounter(self, v: Visit) -> Json:
        doc = self.org.practitioners[v.practitioner]
        period = {"start": _when(v.start), "end": _when(v.end)}
        kind, code = (c.INPATIENT, c.ADMISSION) if v.inpatient else (c.AMBULATORY, c.WELLNESS)
        resource: Json = {
            "resourceType": "Encounter",
            "id": random_uuid(self.rng),
            "status": "finished",
            "class": {"system": c.ACT_CODE, "code": kind.code, "display": kind.display},
            "type": [_concept(c.SNOMED, code)],
            "subject": self.subject,
            "participant": [{"type": _PERFORMER, "period": period, "individual": {
                "reference": practitioner_reference(doc.npi),
                "display": f"Dr. {doc.given} {doc.family}"}}],
            "period": period,
            "serviceProvider": self.provider,
        }  # fmt: skip
        if v.reason is not None:
            resource["reasonCode"] = [_concept(c.SNOMED, c.ADMISSION_REASONS[v.reason])]
        self.entries.append(_entry(resource))
        return {"reference": f"urn:uuid:{resource['id']}"}

    def condition(self, name: str, encounter: Json, v: Visit) -> None:
        resource = {
            "resourceType": "Condition",
            "id": random_uuid(self.rng),
            "clinicalStatus": _ACTIVE,
            "verificationStatus": _CONFIRMED,
            "category": _DIAGNOSIS,
            "code": _concept(c.SNOMED, c.CONDITIONS[name]),
            "subject": self.subject,
            "encounter": encounter,
            "onsetDateTime": _when(self.h.onsets[name]),
            "recordedDate": _when(v.start),
        }
        self.conditions[name] = f"urn:uuid:{resource['id']}"
        self.entries.append(_entry(resource))

    def observation(self, category: list[Json], code: c.Code, encounter: Json, when: str,
                    **value: Any) -> None:  # fmt: skip
        resource = {
            "resourceType": "Observation",
            "id": random_uuid(self.rng),
            "status": "final",
            "category": category,
            "code": _concept(c.LOINC, code),
            "subject": self.subject,
            "encounter": encounter,
            "effectiveDateTime": when,
            "issued": when,
            **value,
        }
        self.entries.append(_entry(resource))

    def measurements(self, v: Visit, encounter: Json) -> None:
        when = _when(v.start)
        values = v.values
        sbp, dbp = c.VITALS["sbp"], c.VITALS["dbp"]
        self.observation(_OBS_VITAL, c.BP_PANEL, encounter, when, component=[
            {"code": _concept(c.LOINC, c.Code(sbp.loinc, sbp.display)),
             "valueQuantity": _quantity(sbp, values["sbp"])},
            {"code": _concept(c.LOINC, c.Code(dbp.loinc, dbp.display)),
             "valueQuantity": _quantity(dbp, values["dbp"])},
        ])  # fmt: skip
        for group, category in ((c.VITALS, _OBS_VITAL), (c.LABS, _OBS_LAB)):
            for key, m in group.items():
                if key in ("sbp", "dbp"):
                    continue
                self.observation(category, c.Code(m.loinc, m.display), encounter, when,
                                 valueQuantity=_quantity(m, values[key]))  # fmt: skip
        self.observation(
            _OBS_SOCIAL,
            c.SMOKING_LOINC,
            encounter,
            when,
            valueCodeableConcept=_concept(c.SNOMED, c.SMOKING[self.h.smoking]),
        )

    def medication(self, name: str, encounter: Json, v: Visit) -> None:
        doc = self.org.practitioners[v.practitioner]
        resource: Json = {
            "resourceType": "MedicationRequest",
            "id": random_uuid(self.rng),
            # A dead patient's prescriptions were stopped; the rest are still being taken.
            "status": "stopped" if self.h.death is not None else "active",
            "intent": "order",
            "medicationCodeableConcept": _concept(c.RXNORM, c.MEDICATIONS[name]),
            "subject": self.subject,
            "encounter": encounter,
            "authoredOn": _when(v.start),
            "requester": {"reference": practitioner_reference(doc.npi),
                          "display": f"Dr. {doc.given} {doc.family}"},
        }  # fmt: skip
        reason = _MEDICATION_REASON.get(name)
        if reason is not None and reason in self.conditions:
            resource["reasonReference"] = [{"reference": self.conditions[reason]}]
        self.entries.append(_entry(resource))


def build_bundle(h: History, pool: tuple[Provider, ...], rng: random.Random) -> Json:
    """Build the transaction Bundle of one simulated patient.

    Parameters
    ----------
    h
        The simulated patient.
    pool
        The run's shared organizations and practitioners.
    rng
        Seeded generator for the ids of the patient's own resources.

    Returns
    -------
    dict
        A FHIR R4 ``Bundle`` of type ``transaction`` as plain JSON data.
    """
    org = pool[h.organization]
    gp = org.practitioners[h.practitioner]
    b = _Builder(h, org, rng)
    used = sorted({v.practitioner for v in h.visits} | {h.practitioner})
    b.entries.append(_organization(org))
    b.entries.extend(_practitioner(org.practitioners[i], org) for i in used)
    b.entries.append(_patient(h, org, gp))
    for v in sorted(h.visits, key=lambda v: v.start):
        encounter = b.encounter(v)
        for name in v.diagnoses:
            b.condition(name, encounter, v)
        if v.values:
            b.measurements(v, encounter)
        for name in v.prescriptions:
            b.medication(name, encounter, v)
    return {"resourceType": "Bundle", "type": "transaction", "entry": b.entries}
