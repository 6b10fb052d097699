"""Racing writers on a real database: exactly one wins."""

from __future__ import annotations

import threading

import orjson

from medfusion.errors import PreconditionFailedError
from medfusion.services import records
from medfusion.store.repository import SqlRepository


def _race(repo: SqlRepository, version: int) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def update(gender: str) -> None:
        body = orjson.dumps({"resourceType": "Patient", "id": "p1", "gender": gender})
        barrier.wait()
        try:
            records.update(repo, resource_type="Patient", id="p1", body=body, if_match=f'W/"{version}"')
            outcomes.append("200")
        except PreconditionFailedError:
            outcomes.append("412")

    threads = [threading.Thread(target=update, args=(g,)) for g in ("male", "female")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_racing_updates_with_the_same_if_match(sql_repo: SqlRepository) -> None:
    body = orjson.dumps({"resourceType": "Patient", "id": "p1"})
    records.update(sql_repo, resource_type="Patient", id="p1", body=body)
    for round_ in range(5):
        version = sql_repo.read("Patient", "p1").version
        outcomes = _race(sql_repo, version)
        assert sorted(outcomes) == ["200", "412"], f"round {round_}: {outcomes}"
        assert sql_repo.read("Patient", "p1").version == version + 1
