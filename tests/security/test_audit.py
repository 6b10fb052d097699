"""The audit trail: what is recorded, who may read it, and tamper evidence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from medfusion.cli.main import app as cli
from medfusion.config import get_settings
from medfusion.services.audit import verify_trail
from medfusion.services.security import audit_key
from medfusion.store.tables import audit_log

from .conftest import FHIR, Secured, observation

pytestmark = pytest.mark.auth


def _events(secured: Secured, query: str = "") -> list[dict[str, object]]:
    found = secured.client.get(f"/fhir/AuditEvent{query}", headers=secured.auth("admin"))
    assert found.status_code == 200
    return [e["resource"] for e in found.json().get("entry", [])]


def test_reads_writes_and_denials_are_recorded(secured: Secured) -> None:
    read = secured.client.get(
        "/fhir/Observation/obs-A", headers=secured.auth("clinician", **{"X-Request-ID": "req-1"})
    )
    assert read.headers["x-request-id"] == "req-1"
    created = secured.client.post(
        "/fhir/Observation", json=observation("A", "n1"), headers=secured.auth("clinician", **FHIR)
    )
    new_id = created.json()["id"]
    secured.client.get("/fhir/Patient/B", headers=secured.auth("patient-a"))  # 404
    secured.client.get("/fhir/Patient/A")  # 401
    events = _events(secured, "?_count=50")
    by_request = {
        next(e["what"]["identifier"]["value"] for e in ev["entity"] if "identifier" in e["what"]): ev  # type: ignore[index, union-attr]
        for ev in events
    }
    first = by_request["req-1"]
    assert first["action"] == "R" and first["outcome"] == "0"
    assert {"what": {"reference": "Observation/obs-A"}} in first["entity"]  # type: ignore[operator]
    agent = first["agent"][0]  # type: ignore[index]
    assert agent["who"]["identifier"]["value"] == "user/clinician"
    assert agent["network"]["address"]
    # Only references: no resource content in any record.
    text = orjson.dumps(events).decode()
    assert "Alpha" not in text and "Bravo" not in text and "valueQuantity" not in text
    writes = [e for e in events if e["action"] == "C"]
    assert any({"what": {"reference": f"Observation/{new_id}"}} in e["entity"] for e in writes)  # type: ignore[operator]
    outcomes = {(e["outcome"], e["outcomeDesc"]) for e in events}
    assert ("4", "HTTP 404") in outcomes and ("4", "HTTP 401") in outcomes


def test_a_write_and_its_audit_commit_together(secured: Secured) -> None:
    def count() -> int:
        secured.flush()
        with secured.repo.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())

    before = count()
    ok = secured.client.put(
        "/fhir/Observation/w1", json=observation("A", "w1"), headers=secured.auth("clinician", **FHIR)
    )
    assert ok.status_code == 201
    # Recorded in the write's transaction: present before any buffer flush.
    with secured.repo.engine.connect() as conn:
        rows = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.entity).order_by(audit_log.c.seq.desc())
        ).first()
    assert rows is not None and rows.action == "U" and " Observation/w1 " in rows.entity
    # A failed write leaves no success record, only a failure one.
    bad = secured.client.put(
        "/fhir/Observation/w2",
        json={"resourceType": "Observation"},
        headers=secured.auth("clinician", **FHIR),
    )
    assert bad.status_code == 400
    assert count() == before + 2
    last = _events(secured, "?_count=1")[0]
    assert last["outcome"] == "4"


def test_only_admins_read_and_nobody_changes_audit_events(secured: Secured) -> None:
    secured.client.get("/fhir/Patient/A", headers=secured.auth("clinician"))
    for who in ("clinician", "analyst", "patient-a", "etl"):
        assert secured.client.get("/fhir/AuditEvent", headers=secured.auth(who)).status_code == 403
    event = _events(secured)[0]
    one = secured.client.get(f"/fhir/AuditEvent/{event['id']}", headers=secured.auth("admin"))
    assert one.status_code == 200 and one.json()["id"] == event["id"]
    for method in ("PUT", "DELETE", "PATCH"):
        response = secured.client.request(
            method, f"/fhir/AuditEvent/{event['id']}", headers=secured.auth("admin", **FHIR), json=event
        )
        assert response.status_code == 403
    assert (
        secured.client.post("/fhir/AuditEvent", json=event, headers=secured.auth("admin", **FHIR)).status_code
        == 403
    )
    bundle = {"resourceType": "Bundle", "type": "batch",
              "entry": [{"request": {"method": "DELETE", "url": f"AuditEvent/{event['id']}"}}]}  # fmt: skip
    assert secured.client.post("/fhir", json=bundle, headers=secured.auth("admin", **FHIR)).status_code == 403


# -- tamper evidence ------------------------------------------------------------------------
def _fill(secured: Secured, n: int = 6) -> None:
    for i in range(n):
        secured.client.get(f"/fhir/Observation/obs-{'AB'[i % 2]}", headers=secured.auth("clinician"))
        secured.flush()  # one flush per request, so the rows come from several appends


def _execute(secured: Secured, sql: str) -> None:
    with secured.repo.engine.begin() as conn:
        conn.exec_driver_sql(sql)


def _tamper_modify(secured: Secured) -> int:
    _execute(secured, "UPDATE audit_log SET agent = 'user/nobody' WHERE seq = 3")
    return 3


def _tamper_delete(secured: Secured) -> int:
    _execute(secured, "DELETE FROM audit_log WHERE seq = 2")
    return 2


def _tamper_reorder(secured: Secured) -> int:
    _execute(secured, "UPDATE audit_log SET seq = 100 WHERE seq = 2")
    _execute(secured, "UPDATE audit_log SET seq = 2 WHERE seq = 3")
    _execute(secured, "UPDATE audit_log SET seq = 3 WHERE seq = 100")
    return 2


def _tamper_truncate(secured: Secured) -> int:
    with secured.repo.engine.connect() as conn:
        last = int(conn.execute(sa.select(sa.func.max(audit_log.c.seq))).scalar_one())
    _execute(secured, f"DELETE FROM audit_log WHERE seq > {last - 2}")
    return last - 1


def _tamper_recompute(secured: Secured) -> int:
    # An attacker with database access but not the key rewrites row 2 and recomputes
    # every hash after it with a key of their own: the chain looks whole, but is not ours.
    from medfusion.services.audit import chain_hash
    from medfusion.store.security import SecurityStore

    rows = list(SecurityStore(secured.repo.engine).audit_rows())
    prev = rows[0].hash
    with secured.repo.engine.begin() as conn:
        for row in rows[1:]:
            values = (
                {**row.__dict__} if hasattr(row, "__dict__") else {f: getattr(row, f) for f in row.__slots__}
            )  # type: ignore[attr-defined]
            if row.seq == 2:
                values["agent"] = "user/nobody"
            values["prev_hash"] = prev
            values["hash"] = prev = chain_hash(b"k" * 32, prev, values)
            conn.execute(
                sa.update(audit_log).where(audit_log.c.seq == row.seq).values(
                    agent=values["agent"], prev_hash=values["prev_hash"], hash=values["hash"]
                )
            )  # fmt: skip
    return 2


TAMPERS: dict[str, Callable[[Secured], int]] = {
    "modified": _tamper_modify,
    "deleted": _tamper_delete,
    "reordered": _tamper_reorder,
    "truncated": _tamper_truncate,
    "recomputed": _tamper_recompute,
}


def _verify_cli(secured: Secured) -> tuple[int, str]:
    url = secured.repo.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["audit", "verify", "--db", url])
    return result.exit_code, result.output


def test_intact_trail_verifies(secured: Secured) -> None:
    _fill(secured)
    code, output = _verify_cli(secured)
    assert code == 0, output
    assert "intact" in output


@pytest.mark.parametrize("kind", list(TAMPERS))
def test_tampering_is_detected_and_the_first_bad_row_named(secured: Secured, kind: str) -> None:
    _fill(secured)
    assert verify_trail(secured.security, key=audit_key(), checkpoint=get_settings().audit_checkpoint_file).ok
    bad = TAMPERS[kind](secured)
    report = verify_trail(secured.security, key=audit_key(), checkpoint=get_settings().audit_checkpoint_file)
    assert not report.ok
    assert report.bad_row == bad, report
    code, output = _verify_cli(secured)
    assert code == 1
    assert f"first bad row: {bad}" in output


def test_a_forged_checkpoint_is_detected(secured: Secured) -> None:
    _fill(secured)
    path: Path = get_settings().audit_checkpoint_file
    data = orjson.loads(path.read_bytes())
    data["count"] = 2
    path.write_bytes(orjson.dumps(data))
    report = verify_trail(secured.security, key=audit_key(), checkpoint=path)
    assert not report.ok and "not genuine" in report.problem


def test_no_patient_data_in_server_logs(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    auth = secured.auth("clinician", **FHIR)
    planted = {"resourceType": "Patient", "name": [{"family": "Zzyzxplanted"}], "birthDate": "1950-01-02",
               "identifier": [{"value": "MRN-998877"}]}  # fmt: skip
    created = secured.client.post("/fhir/Patient", json=planted, headers=auth)
    assert created.status_code == 201
    secured.client.get("/fhir/Patient?name=Zzyzxplanted", headers=auth)
    secured.client.get("/fhir/Patient?identifier=MRN-998877", headers=secured.auth("patient-a"))
    secured.client.post(
        "/fhir/Patient", content=b'{"resourceType":"Patient","name":"Zzyzxplanted"', headers=auth
    )
    secured.flush()
    for record in caplog.records:
        if record.name.startswith(("httpx", "httpcore")):
            continue  # the test client's own request log, not the server's
        text = record.getMessage()
        assert "Zzyzxplanted" not in text and "MRN-998877" not in text and "1950-01-02" not in text


def test_audit_search_filters_and_rejects_bad_parameters(secured: Secured) -> None:
    secured.client.get("/fhir/Patient/A", headers=secured.auth("clinician"))
    secured.client.get("/fhir/Patient/B", headers=secured.auth("patient-a"))
    by_agent = _events(secured, "?agent=user/patient-a")
    assert by_agent and all(e["agent"][0]["who"]["identifier"]["value"] == "user/patient-a" for e in by_agent)  # type: ignore[index]
    assert _events(secured, "?entity=Patient/A&date=ge2000-01-01")
    assert not _events(secured, "?date=lt2000-01-01")
    admin = secured.auth("admin")
    for query in ("?_count=x", "?date=yesterday", "?date=ge-not-a-date", "?_offset=-1"):
        assert secured.client.get(f"/fhir/AuditEvent{query}", headers=admin).status_code == 400
