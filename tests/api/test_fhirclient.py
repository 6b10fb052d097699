"""A real FHIR client library against the server running on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fhirclient import client as fhir_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from medfusion.api import create_app
from medfusion.services.database import open_repository


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    app = create_app(open_repository(f"sqlite:///{tmp_path / 'live.db'}"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}/fhir"
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def test_fhirclient_reads_and_searches(live_server: str) -> None:
    headers = {"Content-Type": "application/fhir+json"}
    patient = {
        "resourceType": "Patient",
        "id": "pc1",
        "name": [{"family": "Chalmers", "given": ["Peter"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
    }
    assert httpx.put(f"{live_server}/Patient/pc1", json=patient, headers=headers).status_code == 201
    for value in (60, 72, 95):
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/pc1"},
            "effectiveDateTime": "2024-01-02",
            "valueQuantity": {
                "value": value,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
        assert httpx.post(f"{live_server}/Observation", json=observation, headers=headers).status_code == 201

    smart = fhir_client.FHIRClient(settings={"app_id": "medfusion-test", "api_base": live_server})
    read = Patient.read("pc1", smart.server)
    assert read.name[0].family == "Chalmers"
    assert read.birthDate.isostring == "1974-12-25"

    found = Observation.where(
        struct={"patient": "pc1", "code": "http://loinc.org|8867-4", "value-quantity": "gt70"}
    ).perform_resources(smart.server)
    assert sorted(o.valueQuantity.value for o in found) == [72, 95]
    patients = Patient.where(struct={"family": "chal"}).perform_resources(smart.server)
    assert [p.id for p in patients] == ["pc1"]
