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
