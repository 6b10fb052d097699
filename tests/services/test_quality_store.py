"""Store checks through the repository protocol, the import gate, and the CLI on both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medfusion.cli.main import app
from medfusion.errors import InvalidRequestError
from medfusion.fhir.repository import FhirRepository, WriteRequest
from medfusion.services.database import open_repository
from medfusion.services.importer import import_paths
from medfusion.services.quality import QUALITY_TAG_SYSTEM, check_store
from medfusion.store.repository import SqlRepository
from tests.quality.fhir_cases import good_store, observation

runner = CliRunner()
LATER = "2021-02-02T08:00:00Z"


def _store(repo: FhirRepository, resources: list[dict[str, Any]]) -> None:
    with repo.begin() as tx:
        tx.write_many([WriteRequest(r["resourceType"], r["id"], r) for r in resources])


def test_check_store_reads_every_resource_and_writes_reports(repo: FhirRepository, tmp_path: Path) -> None:
    bad = observation("hot", "8310-5", 52.0, "Cel", when=LATER)
    orphan = observation("orphan", "8867-4", 70, "/min", when=LATER, subject="Patient/nobody")
    _store(repo, [*good_store(), bad, orphan])
    calls: list[tuple[int, int]] = []
    run = check_store(repo, out=tmp_path / "q", progress=lambda done, total: calls.append((done, total)))
    assert run.report.resources == 22 and calls[-1] == (22, 22)
    assert {(f.check, f.row) for f in run.report.findings} == {
        ("observation_range", "Observation/hot"),
        ("reference_resolves", "Observation/orphan"),
    }
    assert not run.report.passed
    document = json.loads(run.json_path.read_text())
    assert document["resources"] == 22 and document["passed"] is False
    assert {f["row"] for f in document["findings"]} == {"Observation/hot", "Observation/orphan"}
    page = run.html_path.read_text()
    assert "data:image/png;base64," in page and "Observation/hot" in page and "<script" not in page


def test_check_store_bad_config_fails_before_writing(repo: FhirRepository, tmp_path: Path) -> None:
    config = tmp_path / "q.toml"
    config.write_text("[checks.no_such_check]\nthreshold = 0.1\n")
    with pytest.raises(InvalidRequestError, match="unknown check 'no_such_check'"):
        check_store(repo, config=config, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _bundle(path: Path, resources: list[dict[str, Any]], kind: str = "transaction") -> Path:
    entries = [
        {
            "fullUrl": f"urn:uuid:{r['id']}",
            "resource": r,
            "request": {"method": "POST", "url": r["resourceType"]},
        }
        for r in resources
    ]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": kind, "entry": entries}))
    return path


def _bad_bundle(tmp_path: Path) -> Path:
    """A transaction with an impossible temperature (entry 3) and a report pointing at it."""
    resources = good_store()[:3]
    hot = observation("hot", "8310-5", 52.0, "Cel", when=LATER)
    for resource in [*resources, hot]:
        if "subject" in resource:
            resource["subject"] = {"reference": "urn:uuid:p1"}
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr",
        "status": "final",
        "code": {"text": "vitals"},
        "result": [{"reference": "urn:uuid:hot"}],
    }
    return _bundle(tmp_path / "bad.json", [*resources, hot, report])


def test_import_quality_off_keeps_everything_untagged(sql_repo: SqlRepository, tmp_path: Path) -> None:
    report = import_paths(sql_repo, paths=[_bad_bundle(tmp_path)])
    assert report.problems == [] and report.tagged == [] and report.resources == 5
    tags = sql_repo.read("Observation", "hot").json()["meta"].get("tag", [])
    assert tags == []


def test_import_quality_warn_tags_and_lists(sql_repo: SqlRepository, tmp_path: Path) -> None:
    report = import_paths(sql_repo, paths=[_bad_bundle(tmp_path)], quality="warn")
    assert report.problems == [] and report.resources == 5
    assert [(t.file, t.entry) for t in report.tagged] == [("bad.json", 3)]
    assert "observation_range" in report.tagged[0].message
    tags = sql_repo.read("Observation", "hot").json()["meta"]["tag"]
    assert {
        "system": QUALITY_TAG_SYSTEM,
        "code": "observation_range",
        "display": "failed observation_range",
    } in tags
    assert "tag" not in sql_repo.read("Observation", "hr").json()["meta"]


def test_import_quality_strict_rejects_and_names_each_entry(sql_repo: SqlRepository, tmp_path: Path) -> None:
    report = import_paths(sql_repo, paths=[_bad_bundle(tmp_path)], quality="strict")
    # The bad Observation and the report referring to it are rejected; the rest is written.
    assert [(p.file, p.entry) for p in report.problems] == [("bad.json", 3), ("bad.json", 4)]
    assert report.problems[0].message.startswith("quality: observation_range")
    assert report.problems[1].message == "quality: refers to rejected entry 3"
    assert report.resources == 3
    assert sql_repo.counts() == {"Patient": 1, "Encounter": 1, "Observation": 1}


def test_import_quality_strict_on_ndjson_and_collection(repo: FhirRepository, tmp_path: Path) -> None:
    good = good_store()
    lines = [good[0], observation("cold", "8310-5", 12.0, "Cel", when=LATER), good[2]]
    ndjson = tmp_path / "obs.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    collection = _bundle(
        tmp_path / "c.json", [observation("fast", "8867-4", 999, "/min", when=LATER)], "collection"
    )
    report = import_paths(repo, paths=[ndjson, collection], quality="strict")
    assert [(p.file, p.entry) for p in report.problems] == [("obs.ndjson", 1), ("c.json", 0)]
    assert report.resources == 2


def test_import_quality_mode_is_checked_first(repo: FhirRepository, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="--quality must be one of"):
        import_paths(repo, paths=[_bad_bundle(tmp_path)], quality="loud")
    assert repo.counts() == {}


def test_cli_store_check_json_line_and_exit_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    source = _bad_bundle(tmp_path)
    result = runner.invoke(app, ["import", str(source), "--db", url, "--quality", "warn"])
    assert result.exit_code == 0, result.output
    assert "tagged" in result.output and "bad.json entry 3" in result.output
    out = tmp_path / "report"
    result = runner.invoke(app, ["quality", "check", "--db", url, "--out", str(out), "--json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(document) == {"checks", "findings"}
    assert {f["row"] for f in document["findings"] if f["severity"] == "error"} == {"Observation/hot"}
    assert (out / "quality.json").is_file() and (out / "quality.html").is_file()


def test_cli_import_strict_quality_lists_rejections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    result = runner.invoke(app, ["import", str(_bad_bundle(tmp_path)), "--db", url, "--quality", "strict"])
    assert result.exit_code == 2
    assert "bad.json entry 3: quality: observation_range" in result.output
    assert "bad.json entry 4: quality: refers to rejected entry 3" in result.output
    result = runner.invoke(app, ["import", str(_bad_bundle(tmp_path)), "--db", url, "--quality", "sometimes"])
    assert result.exit_code == 1 and "--quality must be one of" in result.output


# -- real data: the Synthea sample, clean and with planted errors ---------------------------------


def _synthea_store(data_dir: Path, tmp_path: Path) -> SqlRepository:
    folder = data_dir / "synthea"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    repo = open_repository(f"sqlite:///{tmp_path / 'synthea.db'}")
    assert import_paths(repo, paths=[folder]).problems == []
    return repo


def _loinc(resource: dict[str, Any]) -> str:
    return str(resource.get("code", {}).get("coding", [{}])[0].get("code"))


def test_synthea_store_findings(data_dir: Path, tmp_path: Path) -> None:
    repo = _synthea_store(data_dir, tmp_path)
    try:
        report = check_store(repo, out=tmp_path / "report").report
    finally:
        repo.close()
    assert report.passed  # no error-severity check fails on the sample
    checks = {c.name: c for c in report.checks}
    assert checks["observation_range"].checked > 800 and checks["reference_resolves"].checked > 10_000
    # One patient has two complete blood counts at the same instant with different values.
    assert {f.check for f in report.findings} == {"duplicate_resources"}
    assert len(report.findings) == 10 and all("also recorded as" in f.message for f in report.findings)


def test_planted_errors_in_synthea_are_found(data_dir: Path, tmp_path: Path) -> None:
    repo = _synthea_store(data_dir, tmp_path)
    resources = {(s.resource_type, s.id): s.json() for s in repo.iter_current()}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for (kind, _), resource in sorted(resources.items()):
        by_type.setdefault(kind, []).append(resource)
    genders = {f"Patient/{p['id']}": p["gender"] for p in by_type["Patient"]}
    observations = by_type["Observation"]

    def first(code: str, skip: int = 0) -> dict[str, Any]:
        return [o for o in observations if _loinc(o) == code][skip]

    planted: dict[str, str] = {}  # row -> the check that must find it

    def plant(resource: dict[str, Any], check: str) -> None:
        row = f"{resource['resourceType']}/{resource['id']}"
        assert row not in planted
        planted[row] = check

    potassium = first("6298-4")
    potassium["valueQuantity"]["value"] = 22.9
    plant(potassium, "observation_range")
    temperature = first("8331-1")
    temperature["valueQuantity"]["value"] = 98.6  # Fahrenheit number, Celsius unit
    plant(temperature, "observation_range")
    weight = first("29463-7")
    weight["valueQuantity"] |= {"value": 1500.0, "code": "[lb_av]", "unit": "lb"}
    plant(weight, "observation_range")
    glucose = first("2339-0")
    glucose["valueQuantity"]["value"] = 5.5  # mmol/L number, mg/dL unit
    plant(glucose, "observation_range")
    pressure = first("55284-4")
    pressure["component"][0]["valueQuantity"]["value"] = 0
    plant(pressure, "observation_range")
    height = first("8302-2")
    height["valueQuantity"]["code"] = "centimetre"
    plant(height, "ucum_unit")
    bmi = first("39156-5")
    bmi["code"]["coding"][0]["code"] = "39156-6"  # check digit wrong
    plant(bmi, "code_format")
    condition = by_type["Condition"][0]
    code = condition["code"]["coding"][0]["code"]
    condition["code"]["coding"][0]["code"] = code[:-1] + str((int(code[-1]) + 1) % 10)  # one digit off
    plant(condition, "code_format")
    visit = by_type["Encounter"][0]
    visit["period"] = {"start": "2031-05-01T10:00:00Z", "end": "2031-05-01T11:00:00Z"}
    plant(visit, "temporal_order")
    early = first("8302-2", 1)
    early["effectiveDateTime"] = "1901-01-01T00:00:00Z"
    plant(early, "temporal_order")
    male_condition = next(c for c in by_type["Condition"][1:] if genders[c["subject"]["reference"]] == "male")
    male_condition["code"]["coding"] = [{"system": "http://snomed.info/sct", "code": "72892002"}]
    plant(male_condition, "sex_specific")
    orphan = first("29463-7", 1)
    orphan["subject"] = {"reference": "Patient/nobody"}
    plant(orphan, "reference_resolves")
    typed = first("39156-5", 1)
    typed["status"] = 7
    plant(typed, "fhir_structure")
    copied = dict(by_type["Immunization"][0], id="copy-of-an-immunization")
    plant(copied, "duplicate_resources")
    for patient in by_type["Patient"][:2]:
        del patient["birthDate"]  # 2 of 25 (8 %) is over the 5 % threshold
        plant(patient, "element_missing")
    changed = [r for r in (*resources.values(), copied) if f"{r['resourceType']}/{r['id']}" in planted]
    assert len(changed) == len(planted) == 16
    with repo.begin() as tx:
        tx.write_many([WriteRequest(r["resourceType"], r["id"], r) for r in changed])
    try:
        report = check_store(repo, out=tmp_path / "report").report
    finally:
        repo.close()
    found = {(f.check, f.row) for f in report.findings}
    missed = {(check, row) for row, check in planted.items()} - found
    assert not missed
    others = {f for f in report.findings if f.row not in planted}
    # Beyond the planted errors only the sample's own conflicting blood counts remain.
    assert {f.check for f in others} <= {"duplicate_resources"} and len(others) <= 10
    assert not report.passed


def test_import_gate_leaves_structure_to_the_importer_and_drops_nothing(
    repo: FhirRepository, tmp_path: Path
) -> None:
    broken = observation("broken", "8867-4", 70, "/min", when=LATER, status=7)
    ndjson = tmp_path / "broken.ndjson"
    ndjson.write_text(json.dumps(good_store()[0]) + "\n" + json.dumps(broken) + "\n")
    report = import_paths(repo, paths=[ndjson], quality="strict")
    # Reported once, by the importer's own validation, with its line number.
    assert [(p.file, p.entry) for p in report.problems] == [("broken.ndjson", 1)]
    assert not report.problems[0].message.startswith("quality:")
    assert report.resources == 1
