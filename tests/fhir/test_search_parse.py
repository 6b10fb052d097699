"""Parsing search parameters: value forms, modifiers, result parameters and errors."""

from __future__ import annotations

import pytest

from medfusion.errors import InvalidRequestError, UnknownSearchParameterError, UnsupportedError
from medfusion.fhir.search import (
    DateMatch,
    Include,
    QuantityMatch,
    ReferenceMatch,
    SortKey,
    StringMatch,
    TokenMatch,
    parse_search,
)
from medfusion.fhir.search._query import SearchQuery


def _parse(resource_type: str, *params: tuple[str, str], strict: bool = False) -> SearchQuery:
    return parse_search(resource_type, list(params), strict=strict, default_count=20, max_count=50)


def test_defaults() -> None:
    query = _parse("Patient")
    assert (query.count, query.offset, query.summary_count, query.elements) == (20, 0, False, None)
    assert query.criteria == () and query.sort == () and query.include == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("abc", TokenMatch(None, "abc", any_system=True)),
        ("http://s|abc", TokenMatch("http://s", "abc", any_system=False)),
        ("|abc", TokenMatch(None, "abc", any_system=False)),
        ("http://s|", TokenMatch("http://s", None, any_system=False)),
        ("a\\|b", TokenMatch(None, "a|b", any_system=True)),
    ],
)
def test_token_forms(raw: str, expected: TokenMatch) -> None:
    (criterion,) = _parse("Observation", ("code", raw)).criteria
    assert criterion.values == (expected,)


def test_comma_is_or_and_repeats_are_and() -> None:
    query = _parse("Patient", ("gender", "male,female"), ("gender", "other"), ("name", "a\\,b"))
    first, second, third = query.criteria
    assert [v.code for v in first.values if isinstance(v, TokenMatch)] == ["male", "female"]
    assert len(second.values) == 1
    assert third.values == (StringMatch("a,b", "prefix"),)


def test_string_modifiers_normalize_except_exact() -> None:
    query = _parse("Patient", ("name", "MÜLLER"), ("name:exact", "Müller"), ("name:contains", "Ül"))
    assert [c.values for c in query.criteria] == [
        (StringMatch("muller", "prefix"),),
        (StringMatch("Müller", "exact"),),
        (StringMatch("ul", "contains"),),
    ]


def test_date_prefix_and_precision() -> None:
    (criterion,) = _parse("Patient", ("birthdate", "ge2020-03")).criteria
    (value,) = criterion.values
    assert isinstance(value, DateMatch)
    assert value.prefix == "ge"
    assert value.low == 1583020800.0  # 2020-03-01T00:00:00Z
    assert value.high == pytest.approx(1585699200.0 - 1e-6)  # just before 2020-04-01


def test_date_with_zone_is_converted_to_utc() -> None:
    (criterion,) = _parse("Observation", ("date", "2020-01-01T12:00:00+02:00")).criteria
    (value,) = criterion.values
    assert isinstance(value, DateMatch)
    assert value.low == 1577872800.0  # 10:00Z


def test_quantity_precision_range() -> None:
    (criterion,) = _parse("Observation", ("value-quantity", "5.4|http://u|mg")).criteria
    (value,) = criterion.values
    assert isinstance(value, QuantityMatch)
    assert (value.low, value.high) == pytest.approx((5.35, 5.45))
    assert (value.system, value.code, value.any_system) == ("http://u", "mg", False)
    (criterion,) = _parse("Observation", ("value-quantity", "lt100||mg")).criteria
    (value,) = criterion.values
    assert isinstance(value, QuantityMatch)
    assert (value.prefix, value.number, value.system, value.any_system) == ("lt", 100.0, None, True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("123", ReferenceMatch("Patient", "123")),
        ("Patient/123", ReferenceMatch("Patient", "123")),
        ("https://x.org/fhir/Patient/123", ReferenceMatch("Patient", "123")),
    ],
)
def test_reference_forms(raw: str, expected: ReferenceMatch) -> None:
    (criterion,) = _parse("Observation", ("subject:Patient", raw)).criteria
    assert criterion.values == (expected,)
    (criterion,) = _parse("Observation", ("subject", raw)).criteria
    assert criterion.values[0] == (expected if "/" in raw else ReferenceMatch(None, raw))


def test_missing_and_not() -> None:
    missing, negated = _parse("Patient", ("birthdate:missing", "true"), ("gender:not", "male")).criteria
    assert (missing.missing, missing.values) == (True, ())
    assert negated.negate


def test_result_parameters() -> None:
    query = _parse(
        "Observation",
        ("_count", "500"),
        ("_offset", "40"),
        ("_sort", "-date,_id"),
        ("_include", "Observation:subject:Patient"),
        ("_revinclude", "DiagnosticReport:result"),
        ("_summary", "count"),
        ("_elements", "code, status"),
        ("_total", "accurate"),
        ("_format", "json"),
    )
    assert (query.count, query.offset, query.summary_count) == (50, 40, True)
    assert query.sort == (SortKey("date", "date", True), SortKey("_id", "token", False))
    assert query.include == (Include("Observation", "subject", "Patient"),)
    assert query.revinclude == (Include("DiagnosticReport", "result"),)
    assert query.elements == ("code", "status")


def test_count_zero_and_include_star() -> None:
    query = _parse("Observation", ("_count", "0"), ("_include", "*"), ("_revinclude", "*"))
    assert query.count == 0
    assert query.include == (Include("Observation", "*"),)
    assert query.revinclude == (Include("*", "*"),)


def test_link_params_are_canonical() -> None:
    query = _parse(
        "Observation",
        ("_count", "5"),
        ("unknown", "x"),
        ("code", "http://loinc.org|8867-4"),
        ("_sort", "date"),
        ("date", "ge2020"),
        ("_include", "Observation:patient"),
        ("_offset", "10"),
    )
    assert query.link_params(15) == [
        ("code", "http://loinc.org|8867-4"),
        ("date", "ge2020"),
        ("_sort", "date"),
        ("_include", "Observation:patient"),
        ("_count", "5"),
        ("_offset", "15"),
    ]


def test_unknown_parameter_lenient_vs_strict() -> None:
    assert _parse("Patient", ("shoe-size", "44"), ("name:", "x")).criteria[0].name == "name"
    with pytest.raises(UnknownSearchParameterError, match="shoe-size"):
        _parse("Patient", ("shoe-size", "44"), strict=True)
    with pytest.raises(UnknownSearchParameterError):
        _parse("Observation", ("subject.name", "x"), strict=True)


def test_empty_values_are_ignored() -> None:
    assert _parse("Patient", ("name", ""), ("gender", ",")).criteria == ()


@pytest.mark.parametrize(
    ("resource_type", "name", "value"),
    [
        ("Patient", "birthdate", "2020-13-01"),
        ("Patient", "birthdate", "yesterday"),
        ("Patient", "birthdate", "xx2020"),
        ("Patient", "birthdate", "2020-02-30"),
        ("Observation", "value-quantity", "abc"),
        ("Observation", "value-quantity", "5|a"),
        ("Observation", "value-quantity", "zz5"),
        ("Observation", "value-quantity", "NaN"),
        ("Observation", "code", "a|b|c"),
        ("Observation", "subject", "Patient/"),
        ("Observation", "subject:Patient", "Group/1"),
        ("Patient", "gender:missing", "maybe"),
        ("Patient", "_count", "-1"),
        ("Patient", "_count", "ten"),
        ("Patient", "_offset", "-5"),
        ("Patient", "_sort", "shoe-size"),
        ("Patient", "_sort", "organization"),
        ("Patient", "_include", "Patient"),
        ("Patient", "_include", "Patient:name"),
        ("Patient", "_include", "Patient:organization:lower"),
        ("Patient", "_revinclude", "Nothing:patient"),
        ("Patient", "_summary", "maybe"),
    ],
)
def test_malformed_values_raise(resource_type: str, name: str, value: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _parse(resource_type, (name, value))
    assert name.split(":")[0] in str(caught.value)


@pytest.mark.parametrize(("name", "value"), [("name:below", "x"), ("gender:text", "x"), ("_id:exact", "1")])
def test_unsupported_modifiers_raise(name: str, value: str) -> None:
    with pytest.raises(UnsupportedError):
        _parse("Patient", (name, value))


def test_error_message_does_not_echo_long_values() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _parse("Patient", ("birthdate", "9" * 500))
    assert len(str(caught.value)) < 150
