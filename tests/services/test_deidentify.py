"""De-identified export end to end: synthetic cohorts (always) and the Synthea bundles (data dir).

Every check scans the written NDJSON for the original values, so a leak anywhere in any
resource fails the test, whatever element it sits in.
"""

from __future__ import annotations

import json
import re
import stat
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from medfusion.config import override_settings
from medfusion.deid import Pseudonymizer
from medfusion.errors import InvalidRequestError, UnknownResourceTypeError
from medfusion.fhir.memory import InMemoryRepository
from medfusion.fhir.repository import FhirRepository
from medfusion.services.deidentify import REPORT_FILE, export_deidentified, load_deid_key
from medfusion.services.importer import import_paths
from medfusion.synth import write_bundles

KEY = b"test-key-0123456789abcdef"
AS_OF = date(2026, 11, 27)


def _repo_from(folder: Path) -> InMemoryRepository:
    repo = InMemoryRepository()
    report = import_paths(repo, paths=[folder])
    assert report.problems == []
    return repo


@pytest.fixture(scope="module")
def synth_repo(tmp_path_factory: pytest.TempPathFactory) -> InMemoryRepository:
    folder = tmp_path_factory.mktemp("synth")
    write_bundles(folder, 30, 42)
    return _repo_from(folder)


@pytest.fixture(scope="module")
def synthea_repo(data_dir: Path) -> InMemoryRepository:
    folder = data_dir / "synthea"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return _repo_from(folder)


def _originals(repo: FhirRepository) -> dict[str, set[str]]:
    """Identifying values of every kind, read from the stored resources."""
    found: dict[str, set[str]] = defaultdict(set)

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            if "family" in value or "given" in value:
                for part in [value.get("family"), *(value.get("given") or [])]:
                    if isinstance(part, str) and len(part.rstrip("0123456789")) >= 3:
                        found["name"].add(part)
                        found["name"].add(part.rstrip("0123456789"))
            if key == "telecom" and isinstance(value.get("value"), str):
                found["phone/email"].add(value["value"])
            if key == "identifier" and isinstance(value.get("value"), str):
                kind = json.dumps(value.get("type", {}))
                label = "SSN" if "SS" in kind else "MRN" if "MR" in kind else "identifier"
                found[label].add(value["value"])
            if key == "address":
                found["address line"] |= {line for line in value.get("line") or [] if isinstance(line, str)}
                if isinstance(value.get("city"), str):
                    found["city"].add(value["city"])
                if isinstance(value.get("postalCode"), str) and len(value["postalCode"]) >= 5:
                    found["zip"].add(value["postalCode"])
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)

    for stored in repo.iter_current():
        resource = stored.json()
        walk(resource)
        found["resource id"].add(stored.id)
        if stored.resource_type == "Patient" and isinstance(resource.get("birthDate"), str):
            found["birth date"].add(resource["birthDate"])
    return found


def _scan_text(out: Path) -> str:
    text = "\n".join(p.read_text() for p in sorted(out.glob("*.ndjson")))
    # terminology displays and URIs are code-system text, not the records' own values
    return re.sub(r'"(display|system|url)":"[^"]*"', "", text)


def _export(repo: FhirRepository, out: Path, **options: Any) -> Any:
    return export_deidentified(repo, out=out, key=KEY, as_of=AS_OF, **options)


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted(out.glob("*.ndjson")) for line in p.read_text().splitlines()]


def _assert_no_identifier_survives(repo: FhirRepository, out: Path) -> None:
    text = _scan_text(out).lower()
    # whole alphanumeric tokens: a value must not be one, nor sit inside a pseudonym by chance
    tokens = set(re.findall(r"[a-z0-9]+", text))
    originals = _originals(repo)
    assert originals["name"] and originals["phone/email"] and originals["address line"]
    for kind, values in originals.items():
        for value in values:
            if len(value) < 5 and kind not in ("name", "city"):
                continue  # short numbers ("340") also occur as measurements
            lowered = value.lower()
            if re.fullmatch(r"[a-z0-9]+", lowered):
                assert lowered not in tokens, (kind, value)
            elif lowered in text or len(lowered) < 20:
                parts = re.findall(r"[a-z0-9]+", lowered)
                pattern = r"(?<![a-z0-9])" + r"[^a-z0-9]+".join(parts) + r"(?![a-z0-9])"
                assert re.search(pattern, text) is None, (kind, value)
    # no full date at all (instants keep the year as YYYY-01-01T00:00:00Z), no five-digit ZIP
    assert re.search(r"\d{4}-(?!01-01t00:00:00z)\d{2}-\d{2}", text) is None
    assert re.search(r'"postalcode":"\d{4,}', text) is None


@pytest.mark.parametrize("cohort", ["synth_repo", "synthea_repo"])
def test_no_identifier_survives_anywhere(cohort: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    repo: FhirRepository = request.getfixturevalue(cohort)
    report = _export(repo, tmp_path, k=1)
    assert report.resources == sum(repo.counts().values())
    _assert_no_identifier_survives(repo, tmp_path)


def test_references_still_link_within_the_export(synth_repo: InMemoryRepository, tmp_path: Path) -> None:
    _export(synth_repo, tmp_path, k=1)
    resources = _lines(tmp_path)
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    references: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("reference"), str) and not value["reference"].startswith("#"):
                references.append(value["reference"])
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)

    collect(resources)
    assert len(references) > 100
    assert all(ref in ids for ref in references)
    # an Observation of a patient points at that patient's pseudonym
    keys = Pseudonymizer(KEY)
    stored = next(synth_repo.iter_current(["Observation"])).json()
    original_patient = stored["subject"]["reference"].split("/")[1]
    pseudo_id = keys.resource_id("Observation", stored["id"])
    observation = next(r for r in resources if r["id"] == pseudo_id)
    assert observation["subject"]["reference"] == f"Patient/{keys.resource_id('Patient', original_patient)}"


def test_date_shift_is_consistent_per_patient(synth_repo: InMemoryRepository, tmp_path: Path) -> None:
    _export(synth_repo, tmp_path, k=1, date_shift=True)
    keys = Pseudonymizer(KEY)
    by_pseudo = {r["id"]: r for r in _lines(tmp_path)}
    offsets: dict[str, set[int]] = defaultdict(set)
    for resource_type in ("Patient", "Encounter", "Condition"):
        for stored in synth_repo.iter_current([resource_type]):
            original = stored.json()
            shifted = by_pseudo[keys.resource_id(resource_type, stored.id)]
            field, patient = {
                "Patient": ("birthDate", stored.id),
                "Encounter": ("period", None),
                "Condition": ("onsetDateTime", None),
            }[resource_type]
            if patient is None:
                patient = original["subject"]["reference"].split("/")[1]
            if field not in original:
                continue
            before, after = original[field], shifted[field]
            if isinstance(before, dict):
                before, after = before["start"], after["start"]
            offsets[patient].add((date.fromisoformat(after[:10]) - date.fromisoformat(before[:10])).days)
    assert len(offsets) >= 20
    assert all(len(days) == 1 for days in offsets.values()), offsets
    assert len({next(iter(days)) for days in offsets.values()}) > 1  # per patient, not one global shift
    assert all(0 < abs(next(iter(days))) <= 365 for days in offsets.values())


def test_k_anonymity_suppresses_patients_and_their_resources(
    synth_repo: InMemoryRepository, tmp_path: Path
) -> None:
    report = _export(synth_repo, tmp_path, k=3)
    kanon = report.k_anonymity
    assert kanon.records == 30 and kanon.suppressed > 0
    assert kanon.k_achieved >= 3 or kanon.suppressed == kanon.records
    assert all(count >= 3 for count in kanon.classes.values())
    saved = json.loads((tmp_path / REPORT_FILE).read_text())
    assert saved["k_anonymity"]["suppressed"] == kanon.suppressed
    assert saved["k_anonymity"]["k_achieved"] == kanon.k_achieved
    patients = [r for r in _lines(tmp_path) if r["resourceType"] == "Patient"]
    assert len(patients) == kanon.records - kanon.suppressed
    kept = {f"Patient/{p['id']}" for p in patients}
    for resource in _lines(tmp_path):
        subject = resource.get("subject", {}).get("reference", "")
        assert not subject.startswith("Patient/") or subject in kept
    assert report.dropped > 0


def test_bad_input_is_refused_before_anything_is_written(
    synth_repo: InMemoryRepository, tmp_path: Path
) -> None:
    with pytest.raises(InvalidRequestError, match="k must be a whole number of at least 1, got 0"):
        _export(synth_repo, tmp_path / "a", k=0)
    with pytest.raises(UnknownResourceTypeError, match="Bogus"):
        _export(synth_repo, tmp_path / "b", types=["Bogus"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_key_file_is_created_0600_and_a_loose_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "deid.key"
    with override_settings(deid_key=None, deid_key_file=path):
        key = load_deid_key()
        assert len(key) == 64 and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert load_deid_key() == key
        path.chmod(0o644)
        with pytest.raises(InvalidRequestError, match="must be 0600"):
            load_deid_key()
    with (
        override_settings(deid_key=SecretStr("short")),
        pytest.raises(InvalidRequestError, match="16 characters"),
    ):
        load_deid_key()
