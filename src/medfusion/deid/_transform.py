"""Safe Harbor over any R4 resource, driven by the datatype of every element.

The walk follows the R4 structure table (the one the validator uses), so every element of
every resource type is reached and handled by what it *is*, not by a list of paths:

=====================  ===================================================================
datatype               operator
=====================  ===================================================================
HumanName              removed (names)
Address                state, country, use and type kept; ZIP cut to three digits (000 for
                       the restricted prefixes); lines, city, district, text, period removed
ContactPoint           removed (phone, fax, email, URL)
Identifier             removed (SSN, MRN, health plan, account, licence, device numbers)
Reference              ``Type/<pseudonym>``; display and identifier removed
Attachment             photos and other binary data removed; ``text/*`` data scrubbed;
                       URL and hash removed
Narrative, xhtml       removed (``text.div``)
Extension              kept only for race, ethnicity and birth sex; others removed
                       (mother's maiden name, birth place, geolocation, ...)
Meta                   only ``profile`` kept (``lastUpdated`` is a date, tags are free)
LocationPosition       removed (coordinates)
Age                    values over 89 years become ``>= 90``
date, dateTime,        cut to the year, or shifted by the patient's offset
instant
string, markdown       scrubbed by the text detector (``Coding.display`` kept: terminology)
base64Binary, url      removed
uuid, oid, id          pseudonymised (the resource's own id too)
=====================  ===================================================================

``url`` elements of type uri outside Extension (``Device.url``) are network addresses and
are removed. Some ``string`` elements hold device or licence numbers by name (``serialNumber``,
``lotNumber``, ``udiCarrier`` parts); they are removed. Unknown elements are removed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from medfusion.deid._geo import zip3
from medfusion.deid._keys import Pseudonymizer
from medfusion.deid._text import TextDetector

# The structure table lives in the FHIR package; the validator reads it the same way.
from medfusion.fhir._structure import COMMENTS, COMPLEX, RESOURCE, ElementSpec, TypeSpec, load_types

__all__ = ["ALLOWED_EXTENSIONS", "OVER_89_AGE", "Deidentifier", "PatientFacts", "patient_of", "shift_date"]

ALLOWED_EXTENSIONS: Final = frozenset(
    {
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
    }
)

# ``string`` elements that are device, vehicle or licence numbers by name.
_IDENTIFYING_STRINGS: Final = frozenset(
    {
        "serialNumber",
        "lotNumber",
        "deviceIdentifier",
        "carrierHRF",
        "carrierAIDC",
        "distinctIdentifier",
        "modelNumber",
        "partNumber",
        "udi",
    }
)
_KEPT_PRIMITIVES: Final = frozenset(
    {
        "code",
        "boolean",
        "integer",
        "decimal",
        "positiveInt",
        "unsignedInt",
        "time",
        "uri",
        "canonical",
        "integer64",
    }
)
_DROPPED_PRIMITIVES: Final = frozenset({"base64Binary", "xhtml", "url"})
_DROPPED_TYPES: Final = frozenset(
    {"HumanName", "ContactPoint", "Identifier", "Narrative", "LocationPosition"}
)
_URI_LEAKS: Final = re.compile(r"^(?:mailto:|tel:|fax:|sms:|https?://\d)", re.IGNORECASE)
_REFERENCE: Final = re.compile(r"^(?:.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/.*)?$")
_YEARS: Final = frozenset({"a", "yr", "year", "years", "yrs"})
OVER_89_AGE: Final = 90


@dataclass(frozen=True, slots=True)
class PatientFacts:
    """What the transform needs to know about one patient before touching its resources.

    Attributes
    ----------
    age
        Age in years at death or at the export's reference date (None if unknown).
    anchor_year
        Year of death, else of the reference date: the year the age is counted to.
    """

    age: int | None
    anchor_year: int

    @property
    def over_89(self) -> bool:
        """Whether Safe Harbor's "90 or older" category applies."""
        return self.age is not None and self.age > 89


@dataclass(slots=True)
class _Context:
    patient: str | None
    facts: PatientFacts | None
    shift: int | None  # days, None when dates are cut to the year
    top: bool = True
    in_allowed_extension: bool = False


class Deidentifier:
    """Apply Safe Harbor to resources one at a time.

    Parameters
    ----------
    pseudonymizer
        Keyed pseudonyms and date offsets.
    detector
        The free-text detector (its gazetteer holds the export's own names and places).
    patients
        Facts per original Patient id (age for the over-89 rule).
    date_shift
        Shift dates by a per-patient offset instead of cutting them to the year.
    """

    def __init__(
        self,
        *,
        pseudonymizer: Pseudonymizer,
        detector: TextDetector,
        patients: dict[str, PatientFacts],
        date_shift: bool = False,
    ) -> None:
        self._keys = pseudonymizer
        self._detector = detector
        self._patients = patients
        self._date_shift = date_shift
        self._types = load_types()
        self._handlers: dict[str, Callable[[dict[str, Any], _Context], dict[str, Any] | None]] = {
            "Address": self._address,
            "Reference": self._reference,
            "Attachment": self._attachment,
            "Extension": self._extension,
            "Meta": self._meta,
            "Age": self._age,
        }

    def transform(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The de-identified copy of one resource (the input is not changed)."""
        patient = patient_of(resource)
        if self._date_shift:
            shift = self._keys.shift_days(patient or f"{resource.get('resourceType')}/{resource.get('id')}")
        else:
            shift = None
        context = _Context(patient, self._patients.get(patient) if patient else None, shift)
        out = self._resource(resource, context)
        return out if out is not None else {"resourceType": resource.get("resourceType")}

    # -- structure ---------------------------------------------------------------------------

    def _resource(self, value: Any, context: _Context) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            return None
        spec = self._types.get(str(value.get("resourceType")))
        if spec is None or not spec.is_resource:
            return None
        return self._complex(value, spec, context)

    def _complex(self, value: dict[str, Any], spec: TypeSpec, context: _Context) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        top = context.top
        for key, item in value.items():
            if key == "resourceType" and spec.is_resource:
                out[key] = item
                continue
            element = spec.elements.get(key)
            if element is None or key.startswith("_") or element.kind == COMMENTS:
                continue  # unknown elements and primitive extensions: nothing we can vouch for
            if spec.is_resource and key == "id":
                if isinstance(item, str):
                    # contained resources keep their local ids: ``#id`` references point at them
                    out[key] = self._keys.resource_id(spec.resource_type, item) if top else item
                continue
            if spec.name == "Patient" and key == "birthDate" and context.facts and context.facts.over_89:
                out[key] = str(context.facts.anchor_year - OVER_89_AGE)
                continue
            if spec.name == "Coding" and key == "display":
                out[key] = item  # terminology text, not a person's
                continue
            if key in _IDENTIFYING_STRINGS:
                continue
            if key == "url" and element.type == "uri" and spec.name != "Extension":
                continue  # a network address (Device.url), not a code system
            context.top = False
            try:
                if element.is_list:
                    items = item if isinstance(item, list) else [item]
                    kept = [v for v in (self._item(i, element, context) for i in items) if v is not None]
                    if kept:
                        out[key] = kept
                else:
                    new = self._item(item, element, context)
                    if new is not None:
                        out[key] = new
            finally:
                context.top = top
        if spec.is_resource or out:
            return out
        return None

    def _item(self, value: Any, element: ElementSpec, context: _Context) -> Any:
        if value is None:
            return None
        if element.kind == RESOURCE:
            return self._resource(value, context)
        if element.kind == COMPLEX:
            if element.type in _DROPPED_TYPES or not isinstance(value, dict):
                return None
            handler = self._handlers.get(element.type)
            if handler is not None:
                return handler(value, context)
            return self._complex(value, self._types[element.type], context)
        return self._primitive(value, element.type, context)

    # -- primitives --------------------------------------------------------------------------

    def _primitive(self, value: Any, type_name: str, context: _Context) -> Any:
        if type_name in _KEPT_PRIMITIVES:
            if type_name == "uri" and isinstance(value, str) and _URI_LEAKS.match(value):
                return None
            return value
        if type_name in _DROPPED_PRIMITIVES or not isinstance(value, str):
            return None
        if type_name in ("date", "dateTime", "instant"):
            return self._date(value, type_name, context)
        if type_name in ("string", "markdown"):
            return self._detector.scrub(value)
        if type_name == "uuid":
            return "urn:uuid:" + self._keys.uuid(value)
        if type_name == "oid":
            return "urn:oid:" + self._keys.oid(value)
        if type_name == "id":
            # element ids of other types (DICOM UIDs such as ImagingStudy.series.uid)
            return self._keys.oid(value) if re.fullmatch(r"[0-9.]+", value) else self._keys.token(value)
        return None

    def _date(self, value: str, type_name: str, context: _Context) -> str | None:
        if len(value) < 4 or not value[:4].isdigit():
            return None
        if context.shift is None:
            year = value[:4]
            return f"{year}-01-01T00:00:00Z" if type_name == "instant" else year
        return shift_date(value, context.shift)

    # -- datatypes ---------------------------------------------------------------------------

    def _address(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        out = {
            key: value[key] for key in ("use", "type", "state", "country") if isinstance(value.get(key), str)
        }
        code = zip3(value.get("postalCode"), value.get("country"))
        if code is not None:
            out["postalCode"] = code
        return out or None

    def _reference(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        target = value.get("reference")
        if isinstance(target, str):
            if target.startswith("#"):
                out["reference"] = target
            elif target.startswith("urn:uuid:"):
                out["reference"] = "urn:uuid:" + self._keys.uuid(target[9:])
            else:
                match = _REFERENCE.match(target)
                if match is not None:
                    kind, id = match.groups()
                    out["reference"] = f"{kind}/{self._keys.resource_id(kind, id)}"
        if isinstance(value.get("type"), str):
            out["type"] = value["type"]
        return out or None

    def _attachment(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        out = self._complex(value, self._types["Attachment"], context) or {}
        out.pop("size", None)  # the size of removed data
        content_type = value.get("contentType")
        data = value.get("data")
        if isinstance(content_type, str) and content_type.startswith("text/") and isinstance(data, str):
            try:
                text = base64.b64decode(data, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return out or None
            out["data"] = base64.b64encode(self._detector.scrub(text).encode("utf-8")).decode("ascii")
        return out or None

    def _extension(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        url = value.get("url")
        allowed = url in ALLOWED_EXTENSIONS
        # sub-extensions of an allowed one have relative urls ("ombCategory", "text")
        nested = context.in_allowed_extension and isinstance(url, str) and "/" not in url
        if not (allowed or nested):
            return None
        outer = context.in_allowed_extension
        context.in_allowed_extension = True
        try:
            return self._complex(value, self._types["Extension"], context)
        finally:
            context.in_allowed_extension = outer

    def _meta(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        profile = value.get("profile")
        return {"profile": profile} if isinstance(profile, list) and profile else None

    def _age(self, value: dict[str, Any], context: _Context) -> dict[str, Any] | None:
        out = self._complex(value, self._types["Age"], context) or {}
        number = value.get("value")
        unit = str(value.get("code") or value.get("unit") or "a").lower()
        if isinstance(number, int | float) and unit in _YEARS and number > 89:
            out["value"] = OVER_89_AGE
            out["comparator"] = ">="
        return out or None


def patient_of(resource: dict[str, Any]) -> str | None:
    """The original id of the patient a resource belongs to (itself for a Patient).

    The first ``Patient/<id>`` reference found in document order counts: the subject or
    patient element for nearly every clinical resource.
    """
    if resource.get("resourceType") == "Patient":
        id = resource.get("id")
        return id if isinstance(id, str) else None
    return _first_patient_reference(resource)


def _first_patient_reference(value: Any) -> str | None:
    if isinstance(value, dict):
        target = value.get("reference")
        if isinstance(target, str) and target.startswith("Patient/"):
            return target[8:].split("/", 1)[0]
        for key, item in value.items():
            if key != "contained":
                found = _first_patient_reference(item)
                if found is not None:
                    return found
    elif isinstance(value, list):
        for item in value:
            found = _first_patient_reference(item)
            if found is not None:
                return found
    return None


def shift_date(value: str, days: int) -> str | None:
    """Shift a FHIR date, dateTime or instant by ``days``, keeping its precision and zone."""
    delta = timedelta(days=days)
    try:
        if len(value) == 4:
            return str((date(int(value), 7, 1) + delta).year)
        if len(value) == 7:
            moved = date(int(value[:4]), int(value[5:7]), 15) + delta
            return f"{moved.year:04d}-{moved.month:02d}"
        if len(value) == 10:
            return (date.fromisoformat(value) + delta).isoformat()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
    except ValueError:
        return None
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if value.endswith("Z") else text
