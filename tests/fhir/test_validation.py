"""The fast structure validator agrees with fhir.resources on every resource we can find.

Equivalence is checked on the Synthea bundles and official examples of the shared data
folder, on their automatically mutated variants, on a crafted corpus
(``invalid_cases.py``) and, per primitive type, against fhir_core's pydantic types.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import random
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from medfusion.config import get_settings
from medfusion.errors import (
    InvalidRequestError,
    MedfusionError,
    ResourceValidationError,
    UnknownResourceTypeError,
)
from medfusion.fhir._primitives import CHECKS, Unsure
from medfusion.fhir._structure import PRIMITIVE, load_types
from medfusion.fhir.validation import (
    RESOURCE_TYPES,
    is_resource_type,
    validate_resource,
    validate_resource_reference,
)
from tests.fhir.invalid_cases import INVALID, LAX, VALID

ROOT = Path(__file__).resolve().parents[2]
Validator = Callable[..., None]


def _decision(validator: Validator, resource: object) -> str | None:
    """None when accepted, else the error class name (the decision the paths must share)."""
    try:
        validator(resource)
    except MedfusionError as exc:
        return type(exc).__name__
    return None


def _agree(resource: object) -> tuple[str | None, str | None]:
    return _decision(validate_resource, resource), _decision(validate_resource_reference, resource)


@cache
def _data_resources() -> tuple[tuple[str, dict[str, Any]], ...]:
    data_dir = get_settings().data_dir
    out: list[tuple[str, dict[str, Any]]] = []
    for path in sorted((data_dir / "synthea").glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        out.append((path.name, bundle))
        out += [(f"{path.name}#{i}", e["resource"]) for i, e in enumerate(bundle["entry"])]
    for path in sorted((data_dir / "fhir-examples").glob("*.json")):
        out.append((path.name, json.loads(path.read_text(encoding="utf-8"))))
    return tuple(out)


@pytest.fixture(scope="module")
def data_resources() -> tuple[tuple[str, dict[str, Any]], ...]:
    data_dir = get_settings().data_dir
    if not (data_dir / "synthea").is_dir() or not (data_dir / "fhir-examples").is_dir():
        pytest.skip(f"shared data not found under {data_dir} (set MEDFUSION_DATA_DIR)")
    return _data_resources()


# --- the real data -----------------------------------------------------------------------


def test_every_real_resource_gets_the_same_decision(
    data_resources: tuple[tuple[str, dict[str, Any]], ...],
) -> None:
    assert len(data_resources) > 3000
    disagreements = [(name, *_agree(r)) for name, r in data_resources if len(set(_agree(r))) > 1]
    assert disagreements == []


def test_real_resources_are_all_valid(
    data_resources: tuple[tuple[str, dict[str, Any]], ...],
) -> None:
    for _, resource in data_resources:
        validate_resource(resource)


# --- mutated real data -------------------------------------------------------------------


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _set(root: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        root = root[part]
    root[path[-1]] = value


def _mutations(resource: dict[str, Any], rng: random.Random) -> Iterator[tuple[str, Any]]:
    """Mutated deep copies of one resource, each with one plausible authoring mistake."""
    nodes = list(_paths(resource))[1:]
    objects = [p for p, v in nodes if isinstance(v, dict)] + [()]
    strings = [p for p, v in nodes if isinstance(v, str) and p[-1] != "resourceType"]
    singles = [
        p for p, v in nodes if isinstance(p[-1], str) and not isinstance(v, list) and p[-1] != "resourceType"
    ]
    lists = [p for p, v in nodes if isinstance(v, list) and v]
    dates = [
        p
        for p in strings
        if p[-1]
        in (
            "birthDate",
            "date",
            "issued",
            "start",
            "end",
            "effectiveDateTime",
            "onsetDateTime",
            "created",
            "recordedDate",
            "authoredOn",
            "lastUpdated",
        )
    ]
    spec = load_types()[resource["resourceType"]]
    required = [k for k in spec.required if k in resource]
    required += [k for k, _ in spec.required_primitives if k in resource]
    edits: list[tuple[str, Callable[[Any], None]]] = []
    if required:
        key = rng.choice(required)
        edits.append(("drop required", lambda r: r.pop(key)))
    if objects:
        obj = rng.choice(objects)
        edits.append(
            ("unknown key", lambda r: _set(r, (*obj, "zzUnknown"), "x") if obj else r.update(zzUnknown="x"))
        )
    if dates:
        date = rng.choice(dates)
        edits.append(("garbage date", lambda r: _set(r, date, "2020-02-31")))
        edits.append(("date with space", lambda r: _set(r, date, "2020-01-01 ")))
    if singles:
        single = rng.choice(singles)
        edits.append(("wrap in list", lambda r: _set(r, single, [_get(r, single)])))
        edits.append(("number instead", lambda r: _set(r, single, 12)))
        edits.append(("null instead", lambda r: _set(r, single, None)))
    if lists:
        many = rng.choice(lists)
        edits.append(("unwrap list", lambda r: _set(r, many, _get(r, many)[0])))
        edits.append(("null in list", lambda r: _get(r, many).append(None)))
    if strings:
        text = rng.choice(strings)
        edits.append(("empty string", lambda r: _set(r, text, "")))
        edits.append(("padded string", lambda r: _set(r, text, f" {_get(r, text)}")))
        edits.append(("boolean instead", lambda r: _set(r, text, True)))
    for name, edit in edits:
        mutated = copy.deepcopy(resource)
        edit(mutated)
        yield name, mutated


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        root = root[part]
    return root


def test_mutated_real_resources_get_the_same_decision(
    data_resources: tuple[tuple[str, dict[str, Any]], ...],
) -> None:
    rng = random.Random(20240601)
    entries = [(n, r) for n, r in data_resources if r["resourceType"] != "Bundle"]
    sample = rng.sample(entries, 250)
    checked, rejected, disagreements = 0, 0, []
    for name, resource in sample:
        for mutation, mutated in _mutations(resource, rng):
            fast, reference = _agree(mutated)
            checked += 1
            rejected += reference is not None
            if fast != reference:
                disagreements.append((name, mutation, fast, reference))
    assert disagreements == []
    assert checked > 1500 and rejected > checked // 2  # the mutations do break things


# --- the crafted corpus ------------------------------------------------------------------


def test_corpus_size() -> None:
    assert len(INVALID) >= 40 and len(VALID) >= 20


@pytest.mark.parametrize(("name", "resource"), INVALID, ids=[n for n, _ in INVALID])
def test_crafted_invalid_is_rejected_by_both(name: str, resource: dict[str, Any]) -> None:
    fast, reference = _agree(resource)
    assert reference is not None, f"fhir.resources accepts {name!r}; move it to VALID/LAX"
    assert fast == reference


@pytest.mark.parametrize(("name", "resource"), VALID, ids=[n for n, _ in VALID])
def test_crafted_valid_is_accepted_by_both(name: str, resource: dict[str, Any]) -> None:
    assert _agree(resource) == (None, None)


@pytest.mark.parametrize(("name", "resource"), LAX, ids=[n for n, _ in LAX])
def test_lax_coercions_get_the_reference_decision(name: str, resource: dict[str, Any]) -> None:
    fast, reference = _agree(resource)
    assert fast == reference


# --- primitives against fhir_core's own pydantic types ------------------------------------


_ADAPTER_NAMES = {
    "string": "StringType",
    "markdown": "MarkdownType",
    "uri": "UriType",
    "canonical": "CanonicalType",
    "url": "UrlType",
    "xhtml": "XhtmlType",
    "code": "CodeType",
    "id": "IdType",
    "oid": "OidType",
    "base64Binary": "Base64BinaryType",
    "boolean": "BooleanType",
    "integer": "IntegerType",
    "unsignedInt": "UnsignedIntType",
    "positiveInt": "PositiveIntType",
    "decimal": "DecimalType",
    "date": "DateType",
    "dateTime": "DateTimeType",
    "instant": "InstantType",
    "time": "TimeType",
}
_SEEDS = [
    "",
    " ",
    "a",
    "a b",
    "a  b",
    " a",
    "a\n",
    "\t",
    "\x0b",
    "\x1c",
    "\u00a0",
    "\u2003x",
    "Zoë",
    "abc-1.2",
    "a" * 255,
    "a" * 256,
    "a_b",
    "urn:oid:1.2.3",
    "urn:oid:3.1",
    "urn:oid:1.02",
    "YWJj",
    "YWJ",
    "YW Jj",
    "!!!!",
    "0",
    "-0",
    "01",
    "1.50",
    "-1e5",
    "1E+5",
    "1.",
    ".5",
    "+1",
    "1_000",
    "1e",
    "2020",
    "0000",
    "2020-1",
    "2020-02",
    "2020-13",
    "2020-02-29",
    "2019-02-29",
    "2021-04-31",
    "2020-01-01T10:00:00Z",
    "2020-01-01T10:00:00",
    "2020-01-01T10:00Z",
    "2020-01-01T24:00:00Z",
    "2020-01-01T23:59:60.123+14:00",
    "2020-01-01T10:00:00+14:01",
    "2020-01-01T10:00:00.1234567890-05:00",
    "10:00:00",
    "23:59:60",
    "24:00:00",
    "10:00",
    "10:00:00.5Z",
    "true",
    "false",
    "yes",
    0,
    1,
    2,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    1.0,
    1.5,
    1e20,
    float("inf"),
    float("nan"),
    True,
    False,
    {},
    {"a": 1},
]


def _fuzz_values(rng: random.Random) -> list[object]:
    alphabet = "0123456789-:.TZ+ aZ\n\u00a0"
    out: list[object] = list(_SEEDS)
    for seed in [s for s in _SEEDS if isinstance(s, str)]:
        for _ in range(8):
            chars = list(seed or "0")
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
            out.append("".join(chars))
    return out


@pytest.mark.parametrize("primitive", sorted(_ADAPTER_NAMES))
def test_primitive_checks_match_fhir_core(primitive: str) -> None:
    import fhir_core.types

    adapter: TypeAdapter[Any] = TypeAdapter(getattr(fhir_core.types, _ADAPTER_NAMES[primitive]))
    check = CHECKS[primitive]
    mismatches = []
    for value in _fuzz_values(random.Random(primitive)):
        try:
            fast = check(value) is None
        except Unsure:
            continue
        try:
            adapter.validate_python(value)
            reference = True
        except (ValidationError, ValueError, AttributeError, TypeError):
            # fhir_core's Url lets raw AttributeError/TypeError out for non-strings; the
            # reference path turns those into rejections too
            reference = False
        if fast != reference:
            mismatches.append((value, fast, reference))
    assert mismatches == []


def test_every_primitive_in_the_table_has_a_check() -> None:
    used = {
        el.type for spec in load_types().values() for el in spec.elements.values() if el.kind == PRIMITIVE
    }
    assert used <= set(CHECKS)


# --- the API contract --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "expression"),
    [
        ({"resourceType": "Patient", "name": [{"given": ["Ann", 5]}]}, "Patient.name[0].given[1]"),
        (
            {"resourceType": "Observation", "status": "final", "code": {}, "valueQuantity": {"value": "1,5"}},
            "Observation.valueQuantity.value",
        ),
        ({"resourceType": "Observation", "status": "final"}, "Observation.code"),
        ({"resourceType": "Patient", "birthDate": "1990-02-30"}, "Patient.birthDate"),
        (
            {"resourceType": "Patient", "contained": [{"resourceType": "Patient", "x": 1}]},
            "Patient.contained[0].x",
        ),
        (
            {
                "resourceType": "Observation",
                "status": "final",
                "code": {},
                "valueString": "a",
                "valueBoolean": True,
            },
            "Observation.value[x]",
        ),
    ],
)
def test_expression_names_the_element(resource: dict[str, Any], expression: str) -> None:
    with pytest.raises(ResourceValidationError) as caught:
        validate_resource(resource)
    assert caught.value.expression == [expression]
    assert caught.value.code == "structure"


def test_messages_do_not_leak_values() -> None:
    secret = "1990-02-30-SECRET"
    for validator in (validate_resource, validate_resource_reference):
        with pytest.raises(ResourceValidationError) as caught:
            validator({"resourceType": "Patient", "birthDate": secret})
        assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("validator", [validate_resource, validate_resource_reference])
def test_top_level_errors(validator: Validator) -> None:
    not_resources: list[object] = [[], "Patient", None, {"id": "x"}, {"resourceType": 5}]
    for not_a_resource in not_resources:
        with pytest.raises(ResourceValidationError) as caught:
            validator(not_a_resource)
        assert caught.value.code == "structure"
    with pytest.raises(UnknownResourceTypeError):
        validator({"resourceType": "Pateint"})
    with pytest.raises(UnknownResourceTypeError):
        validator({"resourceType": "Coding"})
    with pytest.raises(InvalidRequestError) as mismatch:
        validator({"resourceType": "Patient"}, expected_type="Observation")
    assert not isinstance(mismatch.value, ResourceValidationError)
    assert "resourceType" in mismatch.value.expression


def test_resource_types() -> None:
    assert {"Patient", "Observation", "Bundle", "Encounter"} <= RESOURCE_TYPES
    assert not {"Resource", "DomainResource", "Coding", "HumanName"} & RESOURCE_TYPES
    assert is_resource_type("Patient") and not is_resource_type("patient")
    assert len(RESOURCE_TYPES) == 141


def test_input_is_not_mutated() -> None:
    resource = {
        "resourceType": "Patient",
        "resource_type": "Patient",
        "name": [{"resourceType": "HumanName", "given": ["A", None]}],
        "contained": [{"resourceType": "Observation", "status": "final", "code": {}}],
    }
    before = copy.deepcopy(resource)
    validate_resource(resource)
    validate_resource_reference(resource)
    assert resource == before


def test_shipped_structure_matches_the_generator() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_fhir_structure", ROOT / "scripts" / "gen_fhir_structure.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = (ROOT / "src/medfusion/fhir/data/r4_structure.json").read_text(encoding="utf-8")
    assert shipped == module.render(), "run: python scripts/gen_fhir_structure.py"
