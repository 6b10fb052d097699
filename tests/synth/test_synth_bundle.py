"""Shape, determinism and internal references of generated Bundles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from medfusion.errors import InvalidRequestError
from medfusion.synth import generate_bundle

CONDITIONAL = re.compile(
    r"^(Practitioner\?identifier=http://hl7\.org/fhir/sid/us-npi\|999\d{7}"
    r"|Organization\?identifier=https://github\.com/synthetichealth/synthea\|[0-9a-f-]{36})$"
)


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_same_seed_gives_identical_bytes() -> None:
    for index in range(5):
        assert orjson.dumps(generate_bundle(index, 42)) == orjson.dumps(generate_bundle(index, 42))


def test_different_seed_or_index_gives_different_patients() -> None:
    assert orjson.dumps(generate_bundle(0, 42)) != orjson.dumps(generate_bundle(0, 43))
    assert orjson.dumps(generate_bundle(0, 42)) != orjson.dumps(generate_bundle(1, 42))


def test_bundle_is_a_synthea_style_transaction() -> None:
    bundle = generate_bundle(3, 42)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "transaction"
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "Organization", "Practitioner", "Encounter", "Observation"} <= kinds
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"urn:uuid:{resource['id']}"
        assert entry["request"]["method"] == "POST"
        assert entry["request"]["url"] == resource["resourceType"]
        if resource["resourceType"] == "Practitioner":
            npi = resource["identifier"][0]["value"]
            assert entry["request"]["ifNoneExist"] == (f"identifier=http://hl7.org/fhir/sid/us-npi|{npi}")
        elif resource["resourceType"] == "Organization":
            assert entry["request"]["ifNoneExist"].startswith(
                "identifier=https://github.com/synthetichealth/synthea|"
            )
        else:
            assert "ifNoneExist" not in entry["request"]


def test_references_resolve_in_bundle_or_are_conditional() -> None:
    for index in range(40):
        bundle = generate_bundle(index, 9)
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        conditional = {
            f"{e['request']['url']}?{e['request']['ifNoneExist']}"
            for e in bundle["entry"]
            if "ifNoneExist" in e["request"]
        }
        for reference in _references(bundle):
            if reference.startswith("urn:uuid:"):
                assert reference in full_urls
            else:
                assert CONDITIONAL.match(reference), reference
                # The conditional target is created (if absent) by this same bundle.
                assert reference in conditional


def test_observations_carry_loinc_and_ucum() -> None:
    bundle = generate_bundle(1, 42)
    observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    assert observations
    for obs in observations:
        assert obs["code"]["coding"][0]["system"] == "http://loinc.org"
        quantities = (
            [obs["valueQuantity"]]
            if "valueQuantity" in obs
            else [c["valueQuantity"] for c in obs.get("component", [])]
        )
        for quantity in quantities:
            assert quantity["system"] == "http://unitsofmeasure.org"
            assert quantity["code"] == quantity["unit"]


@pytest.mark.parametrize(("index", "seed"), [(-1, 42), (0, -1), (True, 42), ("1", 42)])
def test_bad_arguments_are_rejected(index: Any, seed: Any) -> None:
    with pytest.raises(InvalidRequestError):
        generate_bundle(index, seed)
