"""Crafted resources for the fast/reference equivalence tests.

``INVALID`` must be rejected by both paths, ``VALID`` accepted by both, and ``LAX`` shows
inputs where fhir.resources' pydantic lax mode decides (strings as booleans, numbers as
dates, ...): the test only asks both paths to agree there. Each entry is
``(name, resource)``; the name says what the case exercises.
"""

from __future__ import annotations

from typing import Any

Case = tuple[str, dict[str, Any]]


def _obs(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
    }
    base.update(extra)
    return base


def _pat(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", **extra}


INVALID: list[Case] = [
    ("unknown element", _pat(nickname="x")),
    ("unknown element in datatype", _pat(name=[{"family": "x", "surname": "y"}])),
    ("unknown element in backbone", _obs(component=[{"code": {}, "foo": 1}])),
    ("boolean as number string", _pat(active="maybe")),
    ("boolean as object", _pat(active={"value": True})),
    ("string as number", _pat(name=[{"family": 42}])),
    ("string as boolean", _pat(name=[{"family": True}])),
    ("empty string", _pat(name=[{"family": ""}])),
    ("whitespace-only string", _pat(name=[{"text": "\u00a0\u2003"}])),
    ("empty id", _pat(id="")),
    ("id with bad character", _pat(id="a_b")),
    ("id too long", _pat(id="a" * 256)),
    ("id as number", _pat(id=5)),
    ("code with leading whitespace", _pat(gender=" male")),
    ("code with double space", _obs(status="fi  nal")),
    ("code with trailing newline", _obs(status="final\n")),
    ("empty code", _obs(status="")),
    ("bad date", _pat(birthDate="1990-13-01")),
    ("impossible date", _pat(birthDate="2019-02-29")),
    ("date with time", _pat(birthDate="1990-01-01T00:00:00Z")),
    ("garbage date", _pat(birthDate="yesterday")),
    ("dateTime without zone", _obs(effectiveDateTime="2020-01-01T10:00:00")),
    ("dateTime without seconds", _obs(effectiveDateTime="2020-01-01T10:00Z")),
    ("dateTime hour 24", _obs(effectiveDateTime="2020-01-01T24:00:00Z")),
    ("dateTime bad day", _obs(effectiveDateTime="2021-04-31T10:00:00Z")),
    ("instant without time", _obs(issued="2020-01-01")),
    ("instant with partial date", _obs(issued="2020-01")),
    ("time with zone", _obs(valueTime="10:00:00Z")),
    ("time without seconds", _obs(valueTime="10:00")),
    ("decimal leading zero", _obs(valueQuantity={"value": "01.5"})),
    ("decimal as boolean", _obs(valueQuantity={"value": True})),
    ("decimal infinity", _obs(valueQuantity={"value": float("inf")})),
    ("decimal garbage string", _obs(valueQuantity={"value": "1,5"})),
    ("integer out of range", _obs(valueInteger=2**31)),
    ("positiveInt zero", _obs(valueSampledData={"origin": {}, "period": 1, "dimensions": 0})),
    ("unsignedInt negative", _pat(photo=[{"size": -1}])),
    ("bad base64", _pat(photo=[{"data": "YWJ"}])),
    (
        "oid without prefix",
        {
            "resourceType": "Basic",
            "code": {},
            "identifier": [{"system": "1.2.3"}],
            "extension": [{"url": "u", "valueOid": "1.2.3"}],
        },
    ),
    ("list where single expected", _pat(gender=["male"])),
    ("list of objects where single expected", _obs(code=[{"text": "x"}])),
    ("single where list expected", _pat(name={"family": "x"})),
    ("string where list of strings expected", _pat(name=[{"given": "Ann"}])),
    ("nested arrays", _pat(name=[[{"family": "x"}]])),
    ("two value[x]", _obs(valueString="a", valueInteger=1)),
    ("two effective[x]", _obs(effectiveDateTime="2020", effectivePeriod={})),
    ("missing required code", {"resourceType": "Observation", "status": "final"}),
    ("missing required status", {"resourceType": "Observation", "code": {}}),
    ("required status null", _obs(status=None)),
    ("status extension without extensions", _obs(status=None, _status={"id": "s"})),
    (
        "missing required choice",
        {
            "resourceType": "Basic",
            "code": {},
            "extension": [{"url": "u", "valueString": "x"}],
            "modifierExtension": [{"valueString": "x"}],
        },
    ),
    ("extension without url", _pat(extension=[{"valueString": "x"}])),
    ("empty primitive extension", _pat(birthDate="1990", _birthDate={})),
    ("primitive extension as list", _pat(birthDate="1990", _birthDate=[{"id": "x"}])),
    ("null inside complex list", _pat(name=[None])),
    ("unknown contained resourceType", _pat(contained=[{"resourceType": "Foo"}])),
    ("datatype as contained resource", _pat(contained=[{"resourceType": "Coding"}])),
    ("invalid contained resource", _pat(contained=[{"resourceType": "Patient", "foo": 1}])),
    ("contained not an object", _pat(contained=[5])),
    (
        "invalid resource in bundle entry",
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": {"resourceType": "Observation", "status": "final"}}],
        },
    ),
    ("bundle without type", {"resourceType": "Bundle"}),
    ("invalid nested datatype", _obs(valueQuantity={"value": 1, "unit": {"text": "mg"}})),
    ("complex element as number", _obs(code=7)),
    ("wrong resourceType inside datatype", _pat(name=[{"resourceType": "Patient"}])),
    ("element without value", _pat(name=[{"given": [None]}], birthDate="1990-02-30")),
    ("fhir_comments as number", _pat(fhir_comments=5)),
    ("narrative status bad code", _pat(text={"status": "generated ", "div": "<div/>"})),
    ("reference with unknown key", _obs(subject={"reference": "Patient/1", "ref": "x"})),
]

VALID: list[Case] = [
    ("minimal patient", _pat()),
    ("minimal observation", _obs()),
    ("empty datatype object", _obs(code={})),
    ("empty list", _pat(name=[])),
    ("null optional element", _pat(gender=None)),
    ("null inside primitive list", _pat(name=[{"given": ["Ann", None]}])),
    ("primitive extension without value", _pat(_birthDate={"extension": [{"url": "u"}]})),
    (
        "required status given only as extension",
        _obs(status=None, _status={"extension": [{"url": "u", "valueCode": "x"}]}),
    ),
    ("partial dates", _pat(birthDate="1990-05", deceasedDateTime="2020")),
    ("leap second", _obs(effectiveDateTime="2016-12-31T23:59:60Z")),
    ("long fraction and far zone", _obs(issued="2020-01-01T00:00:00.123456789+14:00")),
    ("time with fraction", _obs(valueTime="23:59:59.5")),
    (
        "decimal forms",
        _obs(
            valueQuantity={"value": "-1.50e+3"},
            referenceRange=[{"low": {"value": 0}, "high": {"value": 1e20}}],
        ),
    ),
    ("empty uri is allowed", _pat(identifier=[{"system": ""}])),
    ("contained without resourceType is a bare Resource", _pat(contained=[{"id": "a"}])),
    (
        "nested contained and bundle",
        {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": _pat(contained=[_obs(id="o1")])}],
        },
    ),
    ("resourceType repeated on a datatype", _pat(name=[{"resourceType": "HumanName"}])),
    ("null resourceType on a datatype", _pat(name=[{"resourceType": None}])),
    ("fhir_comments", _pat(fhir_comments=["a", "b"], name=[{"fhir_comments": "c"}])),
    ("base64 with whitespace", _pat(photo=[{"data": "YWJj\nZGVm"}])),
    ("oid", {"resourceType": "Basic", "code": {}, "extension": [{"url": "u", "valueOid": "urn:oid:1.2.3"}]}),
    ("integer bounds", _obs(valueInteger=-(2**31))),
    ("unicode text", _pat(name=[{"text": "Zoë \u00a0Ng"}])),
    ("required complex element given as null", _obs(code=None)),
    ("keyword element", {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}),
]

LAX: list[Case] = [
    ("boolean as string", _pat(active="true")),
    ("boolean as yes", _pat(active="yes")),
    ("boolean as 1", _pat(active=1)),
    ("boolean as 2", _pat(active=2)),
    ("integer as string", _pat(multipleBirthInteger="3")),
    ("integer as float", _pat(multipleBirthInteger=3.0)),
    ("integer as fraction", _pat(multipleBirthInteger=3.5)),
    ("integer as boolean", _pat(multipleBirthInteger=True)),
    ("date as timestamp", _pat(birthDate=0)),
    ("date as inexact timestamp", _pat(birthDate=5)),
    ("dateTime as timestamp", _obs(effectiveDateTime=1_600_000_000)),
    ("instant as boolean", _obs(issued=True)),
    ("datatype as JSON string", _obs(code='{"text": "x"}')),
    ("datatype as bad JSON string", _obs(code="not json")),
    ("python field name", {"resourceType": "Encounter", "status": "planned", "class_fhir": {"code": "AMB"}}),
    ("python extension name", _pat(gender__ext={"id": "x"})),
    ("contained resourceType not a string", _pat(contained=[{"resourceType": 5}])),
    (
        "uuid",
        {
            "resourceType": "Task",
            "status": "draft",
            "intent": "order",
            "input": [{"type": {}, "valueUuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"}],
        },
    ),
    ("tuple instead of list", _pat(name=({"family": "x"},))),
]
