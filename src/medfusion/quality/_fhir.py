"""The catalogue's store checks over FHIR resources (plain dicts; no database here).

:func:`check_resource` runs the checks that need nothing but the resource itself (the
import gate uses it); :class:`StoreChecker` is fed every resource of a store once and adds
the checks that need the others: references that resolve, a patient's birth, death, sex
and age against their events, duplicates, completeness per element. It keeps only small
records per resource (ids, references, dates), never whole resources.

A finding's ``row`` is ``Type/id`` and its ``column`` the element as a FHIRPath-like path
(``Observation.component[1].valueQuantity.value``).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from medfusion.errors import InvalidRequestError, MedfusionError
from medfusion.fhir.validation import validate_resource
from medfusion.quality._catalogue import CATALOGUE_VERSION
from medfusion.quality._checks import CheckResult, issue_json
from medfusion.quality._codes import CODE_SYSTEMS, LOINC, code_format_problem
from medfusion.quality._config import QualityConfig
from medfusion.quality._rules import (
    AFTER_DEATH_TYPES,
    AGE_RULES,
    LOINC_VARIABLES,
    POST_MORTEM_CODES,
    SEX_RULES,
    match_code,
)
from medfusion.quality._ucum import parse_ucum
from medfusion.quality._units import conversion

__all__ = ["RecordFinding", "StoreChecker", "StoreReport", "check_resource", "check_resources"]

UCUM = "http://unitsofmeasure.org"

# Top-level elements that date a clinical event (choice types spelled out).
_EVENT_ELEMENTS = (
    "effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued", "period",
    "onsetDateTime", "onsetPeriod", "abatementDateTime", "recordedDate", "occurrenceDateTime",
    "occurrencePeriod", "performedDateTime", "performedPeriod", "authoredOn", "created",
    "billablePeriod", "started", "recorded", "date", "assertedDate", "lastOccurrence",
)  # fmt: skip
# Elements holding codes the sex / age rules look at.
_CODE_ELEMENTS = ("code", "type", "vaccineCode", "productOrService")


@dataclass(frozen=True)
class RecordFinding:
    """One failing record: a resource element, an image or a series.

    ``row`` is ``Type/id`` for a resource, the image index (``split/index`` in a file of
    splits, the file's path in a folder) or the stay id / series row; ``column`` the
    element path, variable or ``"pixels"`` (None for the whole record); ``value`` the
    offending value where one helps (a number, a code, a date).
    """

    check: str
    category: str
    severity: str
    row: int | str
    column: str | None
    value: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The issue's finding shape: check, severity, row, column, value."""
        return {
            "check": self.check,
            "severity": self.severity,
            "row": self.row,
            "column": self.column,
            "value": self.value,
        }


class RecordResults:
    """The verdict and the issue's JSON of a report made of :class:`RecordFinding` rows."""

    checks: tuple[CheckResult, ...]
    findings: tuple[RecordFinding, ...]

    @property
    def errors(self) -> tuple[RecordFinding, ...]:
        """Findings of error-severity checks."""
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def passed(self) -> bool:
        """No error-severity check failed."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """Exactly the issue's JSON: ``{"checks": [...], "findings": [...]}``."""
        return issue_json(self.checks, (f.to_dict() for f in self.findings))


@dataclass(frozen=True)
class StoreReport(RecordResults):
    """Check totals and findings over a set of FHIR resources."""

    resources: int
    checks: tuple[CheckResult, ...]
    findings: tuple[RecordFinding, ...]
    catalogue_version: str = CATALOGUE_VERSION


# -- walking a resource ----------------------------------------------------------------


def _nodes(resource: dict[str, Any], root: str) -> list[tuple[str, dict[str, Any]]]:
    """Every JSON object in a resource with its path (``contained`` resources included).

    Iterative and built once per resource: the store checks walk every resource, and
    nested generators cost more than the checks themselves.
    """
    found: list[tuple[str, dict[str, Any]]] = []
    stack: list[tuple[str, Any]] = [(root, resource)]
    while stack:
        path, value = stack.pop()
        if type(value) is dict:
            found.append((path, value))
            for key, child in reversed(value.items()):
                if type(child) is dict or type(child) is list:
                    stack.append((f"{path}.{key}", child))
        else:
            for index in range(len(value) - 1, -1, -1):
                child = value[index]
                if type(child) is dict or type(child) is list:
                    stack.append((f"{path}[{index}]", child))
    return found


def _day(value: Any) -> str | None:
    """The calendar part of a FHIR date / dateTime / instant (``YYYY[-MM[-DD]]``), or None."""
    if not isinstance(value, str) or len(value) < 4 or not value[:4].isdigit():
        return None
    return value[:10]


def _before(a: str, b: str) -> bool:
    """``a`` is on an earlier day than ``b``, compared at the precision both have."""
    size = min(len(a), len(b))
    return a[:size] < b[:size]


def _event_dates(resource: dict[str, Any], kind: str) -> Iterator[tuple[str, str]]:
    for name in _EVENT_ELEMENTS:
        value = resource.get(name)
        if isinstance(value, dict):  # a Period
            for end in ("start", "end"):
                day = _day(value.get(end))
                if day is not None:
                    yield f"{kind}.{name}.{end}", day
        else:
            day = _day(value)
            if day is not None:
                yield f"{kind}.{name}", day


def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}"
    for name in ("subject", "patient"):
        target = resource.get(name)
        if isinstance(target, dict):
            reference = target.get("reference")
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference.split("/_history/")[0]
    return None


def _codings(resource: dict[str, Any], kind: str) -> Iterator[tuple[str, str, str]]:
    """``(path, system, code)`` of the codings under the main code elements."""
    for name in _CODE_ELEMENTS:
        value = resource.get(name)
        concepts = value if isinstance(value, list) else [value]
        for number, concept in enumerate(concepts):
            if not isinstance(concept, dict):
                continue
            where = f"{kind}.{name}" + (f"[{number}]" if isinstance(value, list) else "")
            for index, coding in enumerate(concept.get("coding") or []):
                if isinstance(coding, dict) and isinstance(coding.get("system"), str):
                    code = coding.get("code")
                    if isinstance(code, str):
                        yield f"{where}.coding[{index}].code", coding["system"], code


# -- the resource-local checks -----------------------------------------------------------


@dataclass
class _Tally:
    """Failures and checked counts per (check, group), and the findings, for one run."""

    config: QualityConfig
    counts: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    findings: list[RecordFinding] = field(default_factory=list)

    def enabled(self, check_id: str) -> bool:
        return self.config.checks[check_id].enabled

    def checked(self, check_id: str, group: str = "", n: int = 1) -> None:
        self.counts[(check_id, group)][1] += n

    def fail(
        self, check_id: str, row: str, column: str | None, value: Any, message: str, group: str = ""
    ) -> None:
        check = self.config.checks[check_id]
        self.counts[(check_id, group)][0] += 1
        self.findings.append(
            RecordFinding(check_id, check.category, check.severity, row, column, value, message)
        )


def _structure(tally: _Tally, resource: dict[str, Any], row: str) -> None:
    tally.checked("fhir_structure")
    try:
        validate_resource(resource)
    except MedfusionError as error:
        where = error.expression[0] if error.expression else None
        tally.fail("fhir_structure", row, where, None, error.message)


def _codes_and_units(tally: _Tally, nodes: list[tuple[str, dict[str, Any]]], row: str) -> None:
    for path, node in nodes:
        system, code = node.get("system"), node.get("code")
        if not isinstance(system, str) or not isinstance(code, str):
            continue
        if system == UCUM:
            if tally.enabled("ucum_unit"):
                tally.checked("ucum_unit")
                try:
                    parse_ucum(code)
                except InvalidRequestError as error:
                    tally.fail("ucum_unit", row, f"{path}.code", code, error.message)
            continue
        if tally.enabled("code_format"):
            if system not in CODE_SYSTEMS:
                continue
            tally.checked("code_format")
            problem = code_format_problem(system, code)
            if problem is not None:
                tally.fail("code_format", row, f"{path}.code", code, f"{code!r} is {problem}")


def _quantity_value(tally: _Tally, row: str, path: str, variable_name: str, quantity: Any) -> None:
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return
    variable = tally.config.variables[variable_name]
    value = float(quantity["value"])
    unit = quantity.get("code") if quantity.get("system") == UCUM else quantity.get("unit")
    tally.checked("observation_range")
    if not isinstance(unit, str) or not unit:
        if variable.unit == "[pH]":
            unit = "[pH]"  # pH is often sent without a unit
        else:
            tally.fail("observation_range", row, f"{path}.value", value, f"{variable_name} value has no unit")
            return
    try:
        scale, offset = conversion(unit, variable.unit, variable_name)
    except InvalidRequestError:
        tally.fail(
            "observation_range",
            row,
            f"{path}.unit",
            unit,
            f"{variable_name} in '{unit}' cannot be read as {variable.unit}",
        )
        return
    canonical = value * scale + offset
    if not variable.low <= canonical <= variable.high:
        shown = f"{value:g} {unit}" + ("" if unit == variable.unit else f" = {canonical:.4g} {variable.unit}")
        tally.fail(
            "observation_range",
            row,
            f"{path}.value",
            value,
            f"{variable_name} {shown} outside {variable.low:g}-{variable.high:g} {variable.unit}",
        )


def _variable(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if (
            isinstance(coding, dict)
            and coding.get("system") == LOINC
            and coding.get("code") in LOINC_VARIABLES
        ):
            return LOINC_VARIABLES[coding["code"]]
    return None


def _observation_range(tally: _Tally, resource: dict[str, Any], row: str) -> None:
    if resource.get("resourceType") != "Observation":
        return
    variable = _variable(resource.get("code"))
    if variable is not None:
        _quantity_value(tally, row, "Observation.valueQuantity", variable, resource.get("valueQuantity"))
    for index, component in enumerate(resource.get("component") or []):
        if isinstance(component, dict):
            name = _variable(component.get("code"))
            if name is not None:
                path = f"Observation.component[{index}].valueQuantity"
                _quantity_value(tally, row, path, name, component.get("valueQuantity"))


def _local_temporal(tally: _Tally, resource: dict[str, Any], row: str, kind: str, today: str) -> None:
    dates = list(_event_dates(resource, kind))
    if kind == "Patient":
        for name in ("birthDate", "deceasedDateTime"):
            day = _day(resource.get(name))
            if day is not None:
                dates.append((f"Patient.{name}", day))
    tally.checked("temporal_order")
    for path, day in dates:
        if _before(today, day):
            tally.fail("temporal_order", row, path, day, "date in the future")
    for name in _EVENT_ELEMENTS:
        period = resource.get(name)
        if isinstance(period, dict):
            start, end = _day(period.get("start")), _day(period.get("end"))
            if start and end and _before(end, start):
                tally.fail(
                    "temporal_order",
                    row,
                    f"{kind}.{name}.end",
                    end,
                    f"period ends before it starts ({start})",
                )
    if kind == "Patient":
        birth, death = _day(resource.get("birthDate")), _day(resource.get("deceasedDateTime"))
        if birth and death and _before(death, birth):
            tally.fail(
                "temporal_order", row, "Patient.deceasedDateTime", death, f"death before birth ({birth})"
            )


def _local(
    tally: _Tally, resource: dict[str, Any], today: str, nodes: list[tuple[str, dict[str, Any]]] | None = None
) -> None:
    kind = str(resource.get("resourceType"))
    row = f"{kind}/{resource.get('id')}"
    if tally.enabled("fhir_structure"):
        _structure(tally, resource, row)
    _codes_and_units(tally, _nodes(resource, kind) if nodes is None else nodes, row)
    if tally.enabled("observation_range"):
        _observation_range(tally, resource, row)
    if tally.enabled("temporal_order"):
        _local_temporal(tally, resource, row, kind, today)


def _today(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).date().isoformat()


def check_resource(
    resource: dict[str, Any], config: QualityConfig | None = None, *, now: datetime | None = None
) -> list[RecordFinding]:
    """The checks one resource can answer alone (for the import gate).

    Structure and value types, code formats, UCUM units, Observation ranges after unit
    conversion, and the temporal checks inside the resource (future dates, periods ending
    before they start, death before birth).
    """
    tally = _Tally(config or QualityConfig())
    _local(tally, resource, _today(now))
    return tally.findings


# -- the store-wide checks ----------------------------------------------------------------


@dataclass
class _Patient:
    birth: str | None
    death: str | None
    gender: str | None


class StoreChecker:
    """Feed every resource once (:meth:`add`), then :meth:`finish` for the report.

    Parameters
    ----------
    config
        The configured catalogue; only its ``store``-scope checks run.
    now
        The instant "future" is measured from (default: now).
    """

    def __init__(self, config: QualityConfig | None = None, *, now: datetime | None = None) -> None:
        self.config = config or QualityConfig()
        self.tally = _Tally(self.config)
        self.today = _today(now)
        self.resources = 0
        self.ids: set[str] = set()
        self.references: list[tuple[str, str, str]] = []
        self.patients: dict[str, _Patient] = {}
        self.events: list[tuple[str, str, str, str, bool]] = []  # row, patient, path, day, may follow death
        self.coded: list[
            tuple[str, str, str, str, str, str | None]
        ] = []  # row, patient, path, system, code, day
        self.digests: dict[bytes, str] = {}
        self.observed: dict[tuple[str, str, str], dict[str, tuple[Any, Any]]] = defaultdict(dict)
        self.elements = self._elements()

    def _elements(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        by_type: dict[str, list[tuple[str, tuple[str, ...]]]] = defaultdict(list)
        for name in self.config.elements:
            kind, _, element = name.partition(".")
            by_type[kind].append((name, tuple(element.split("|"))))
        return by_type

    def add(self, resource: dict[str, Any]) -> None:
        """Check one resource and keep what the store-wide checks need."""
        self.resources += 1
        kind = str(resource.get("resourceType"))
        row = f"{kind}/{resource.get('id')}"
        self.ids.add(row)
        nodes = _nodes(resource, kind)
        _local(self.tally, resource, self.today, nodes)
        patient = _patient_of(resource)
        if kind == "Patient":
            gender = resource.get("gender")
            self.patients[row] = _Patient(
                _day(resource.get("birthDate")),
                _day(resource.get("deceasedDateTime")),
                gender if isinstance(gender, str) else None,
            )
        elif patient is not None:
            codings = list(_codings(resource, kind))
            post_mortem = kind in AFTER_DEATH_TYPES or any(
                match_code(system, code, POST_MORTEM_CODES) for _, system, code in codings
            )
            first: str | None = None
            for path, day in _event_dates(resource, kind):
                # The end of the stay in which a patient died may follow the death.
                self.events.append((row, patient, path, day, post_mortem or path.endswith(".end")))
                first = day if first is None or day < first else first
            for path, system, code in codings:
                self.coded.append((row, patient, path, system, code, first))
        if self.tally.enabled("reference_resolves"):
            self._collect_references(resource, row, nodes)
        if self.tally.enabled("element_missing"):
            self._completeness(resource, row, kind)
        if self.tally.enabled("duplicate_resources"):
            self._duplicates(resource, row, kind, patient)

    def _collect_references(
        self, resource: dict[str, Any], row: str, nodes: list[tuple[str, dict[str, Any]]]
    ) -> None:
        contained = {
            f"#{c.get('id')}" for c in resource.get("contained") or [] if isinstance(c, dict) and c.get("id")
        }
        for path, node in nodes:
            reference = node.get("reference")
            if not isinstance(reference, str) or "://" in reference or reference.startswith("urn:"):
                continue  # absolute references point outside the store
            self.tally.checked("reference_resolves")
            if reference.startswith("#"):
                if reference not in contained and reference != "#":
                    self.tally.fail(
                        "reference_resolves",
                        row,
                        f"{path}.reference",
                        reference,
                        "no contained resource has this id",
                    )
                continue
            self.references.append((row, f"{path}.reference", reference.split("/_history/")[0]))

    def _completeness(self, resource: dict[str, Any], row: str, kind: str) -> None:
        for name, alternatives in self.elements.get(kind, ()):
            self.tally.checked("element_missing", group=name)
            if not any(_present(resource, element) for element in alternatives):
                self.tally.fail("element_missing", row, name, None, f"{name} is missing", group=name)

    def _duplicates(self, resource: dict[str, Any], row: str, kind: str, patient: str | None) -> None:
        content = {k: v for k, v in resource.items() if k not in ("id", "meta", "text")}
        digest = hashlib.blake2b(orjson.dumps(content, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
        self.tally.checked("duplicate_resources")
        first = self.digests.setdefault(digest, row)
        if first != row:
            self.tally.fail("duplicate_resources", row, None, first, f"same content as {first}")
            return
        if kind != "Observation" or patient is None:
            return
        when = resource.get("effectiveDateTime") or resource.get("effectiveInstant")
        quantity = resource.get("valueQuantity")
        codes = [code for _, system, code in _codings(resource, kind) if system == LOINC]
        if not isinstance(when, str) or not codes or not isinstance(quantity, dict):
            return
        # One patient, code and instant with two different values: which one is right?
        seen = self.observed[(patient, codes[0], when)]
        value = (quantity.get("value"), quantity.get("code") or quantity.get("unit"))
        for other, other_value in seen.items():
            if other_value != value:
                self.tally.fail(
                    "duplicate_resources",
                    row,
                    "Observation.valueQuantity.value",
                    value[0],
                    f"{codes[0]} at {when} also recorded as {other_value[0]} in {other}",
                )
                break
        seen[row] = value

    def finish(self) -> StoreReport:
        """Run the store-wide checks and total everything into a report."""
        if self.tally.enabled("reference_resolves"):
            for row, path, reference in self.references:
                if reference not in self.ids:
                    self.tally.fail(
                        "reference_resolves", row, path, reference, "the target is not in the store"
                    )
        if self.tally.enabled("temporal_order"):
            self._temporal()
        self._sex_and_age()
        return self._report()

    def _temporal(self) -> None:
        for row, patient, path, day, may_follow_death in self.events:
            known = self.patients.get(patient)
            if known is None:
                continue
            if known.birth and _before(day, known.birth):
                self.tally.fail(
                    "temporal_order", row, path, day, f"before the patient's birth ({known.birth})"
                )
            elif known.death and not may_follow_death and _before(known.death, day):
                self.tally.fail(
                    "temporal_order", row, path, day, f"after the patient's death ({known.death})"
                )

    def _sex_and_age(self) -> None:
        sex_on, age_on = self.tally.enabled("sex_specific"), self.tally.enabled("age_specific")
        for row, patient, path, system, code, day in self.coded:
            known = self.patients.get(patient)
            if known is None:
                continue
            if sex_on and known.gender in ("male", "female"):
                self.tally.checked("sex_specific")
                for rule in SEX_RULES:
                    if match_code(system, code, rule.codes) and known.gender != rule.sex:
                        self.tally.fail(
                            "sex_specific", row, path, code, f"{rule.name} code for a {known.gender} patient"
                        )
            if age_on and known.birth and day:
                age = _years(known.birth, day)
                self.tally.checked("age_specific")
                for band in AGE_RULES:
                    if match_code(system, code, band.codes) and not band.low <= age <= band.high:
                        self.tally.fail("age_specific", row, path, code, f"{band.name} code at age {age:.1f}")

    def _report(self) -> StoreReport:
        checks = self.config.scoped("store")
        over: set[tuple[str, str]] = set()
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (check_id, group), (failed, checked) in self.tally.counts.items():
            totals[check_id][0] += failed
            totals[check_id][1] += checked
            threshold = checks[check_id].threshold
            if check_id == "element_missing" and self.config.elements.get(group) is not None:
                threshold = float(self.config.elements[group])  # type: ignore[arg-type]
            if failed > 0 and failed > threshold * checked:
                over.add((check_id, group))
        findings = tuple(
            f
            for f in self.tally.findings
            if (f.check, f.column if f.check == "element_missing" else "") in over
        )
        results = tuple(
            CheckResult(
                check_id,
                check.category,
                check.severity,
                check.threshold,
                totals[check_id][0],
                totals[check_id][1],
                not any(c == check_id for c, _ in over),
            )
            for check_id, check in checks.items()
            if check.enabled
        )
        return StoreReport(self.resources, results, findings)


def _present(resource: dict[str, Any], element: str) -> bool:
    if element.endswith("[x]"):
        stem = element[:-3]
        return any(k.startswith(stem) and k[len(stem) : len(stem) + 1].isupper() for k in resource)
    value = resource.get(element)
    return value not in (None, "", [], {})


def _years(birth: str, day: str) -> float:
    """Age in years at ``day`` (partial dates count from their first day)."""

    def parse(text: str) -> datetime:
        parts = (
            (text + "-01-01")[:10] if len(text) == 4 else (text + "-01")[:10] if len(text) == 7 else text[:10]
        )
        return datetime.fromisoformat(parts)

    return (parse(day) - parse(birth)).days / 365.25


def check_resources(resources: Iterable[dict[str, Any]], config: QualityConfig | None = None) -> StoreReport:
    """Run the store checks over resources in memory (tests, small sets)."""
    checker = StoreChecker(config)
    for resource in resources:
        checker.add(resource)
    return checker.finish()
