"""The audit trail: AuditEvents on a keyed hash chain, a keyed checkpoint, verification.

Each row's ``hash`` is an HMAC, under a key derived from the server secret, over the
previous row's hash and this row's content. Someone who can write to the database but does
not hold the key cannot recompute the chain after changing a row. A checkpoint (row count
and chain head, with its own HMAC) is written to a file outside the database after every
append, so deleting rows at the tail is caught too.

Writes are audited inside the write's own transaction. Reads (and denials) are buffered
and appended in batches (``audit_flush_rows`` / ``audit_flush_seconds``) to keep read
throughput; a crash can lose at most one unflushed batch of read records.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError
from medfusion.fhir.bundle import searchset_bundle
from medfusion.fhir.repository import StoredResource
from medfusion.services.security import Principal, audit_key
from medfusion.store.security import AuditRow, SecurityStore

__all__ = [
    "AuditEntry",
    "AuditTrail",
    "VerifyReport",
    "audit_event",
    "verify_trail",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTIONS = {
    "create": "C",
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "update": "U",
    "patch": "U",
    "delete": "D",
}
_MAX_ENTITIES = 500


@dataclass(slots=True)
class AuditEntry:
    """What one request did, gathered while it runs (references only, never bodies)."""

    request_id: str
    address: str
    method: str
    principal: Principal | None = None
    interaction: str = ""
    entities: list[str] = field(default_factory=list)
    status: int = 0
    note: str = ""  # break-glass reason; never patient data by contract of the endpoint

    def add(self, reference: str) -> None:
        """Name a resource (``Type/id``) or a type the request touched."""
        if len(self.entities) < _MAX_ENTITIES and reference not in self.entities:
            self.entities.append(reference)

    @property
    def action(self) -> str:
        """The AuditEvent action: C, R, U, D, or E for searches and operations."""
        if self.interaction in _ACTIONS:
            return _ACTIONS[self.interaction]
        if not self.interaction:
            return {"POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}.get(self.method, "R")
        return "E"

    @property
    def outcome(self) -> str:
        """The AuditEvent outcome: 0 success, 4 minor failure (4xx), 8 serious failure (5xx)."""
        if self.status < 400:
            return "0"
        return "4" if self.status < 500 else "8"


def audit_event(entry: AuditEntry, *, event_id: str, recorded: datetime) -> dict[str, Any]:
    """The FHIR AuditEvent describing ``entry``."""
    principal = entry.principal
    who = principal.reference if principal else "unknown"
    agent: dict[str, Any] = {
        "type": {"text": principal.role if principal else "unauthenticated"},
        "who": {"identifier": {"system": "urn:medfusion:principal", "value": who}},
        "requestor": True,
        "network": {"address": entry.address, "type": "2"},
    }
    if principal is not None and principal.break_glass:
        agent["purposeOfUse"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "BTG"}]}
        ]
    if entry.note:
        agent.setdefault("purposeOfUse", [{}])[0]["text"] = entry.note
    entities: list[dict[str, Any]] = [
        {"what": {"reference": ref}} if "/" in ref else {"what": {"type": ref}} for ref in entry.entities
    ]
    entities.append(
        {"what": {"identifier": {"system": "urn:medfusion:request-id", "value": entry.request_id}}}
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        },
        "action": entry.action,
        "recorded": recorded.isoformat().replace("+00:00", "Z"),
        "outcome": entry.outcome,
        "outcomeDesc": f"HTTP {entry.status}",
        "agent": [agent],
        "source": {"observer": {"display": "medfusion"}},
        "entity": entities,
    }
    if entry.interaction:
        event["subtype"] = [{"system": "http://hl7.org/fhir/restful-interaction", "code": entry.interaction}]
    if principal is not None and principal.break_glass:
        event["purposeOfEvent"] = agent["purposeOfUse"]
    return event


def _micros(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1)


def chain_hash(key: bytes, prev: str, row: dict[str, Any] | AuditRow) -> str:
    """The keyed hash of one audit row, chained to the previous row's hash."""
    get = row.__getitem__ if isinstance(row, dict) else lambda name: getattr(row, name)
    parts = [
        prev,
        str(get("seq")),
        get("event_id"),
        str(_micros(get("recorded"))),
        get("action"),
        get("outcome"),
        get("agent"),
        get("entity"),
        hashlib.sha256(get("body")).hexdigest(),
    ]
    return hmac.digest(key, "\x1f".join(parts).encode(), "sha256").hex()


def _checkpoint_mac(key: bytes, count: int, head: str) -> str:
    return hmac.new(key, f"checkpoint\x1f{count}\x1f{head}".encode(), hashlib.sha256).hexdigest()


def write_checkpoint(path: Path, key: bytes, count: int, head: str) -> None:
    """Advance the checkpoint file to (count, head); never moves it backwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            current = read_checkpoint(path)
            if current is not None and current[0] >= count:
                return
            tmp = path.with_name(path.name + ".tmp")
            payload = orjson.dumps({"count": count, "head": head, "mac": _checkpoint_mac(key, count, head)})
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
            os.replace(tmp, path)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_checkpoint(path: Path) -> tuple[int, str, str] | None:
    """(count, head, mac) from the checkpoint file, or None when there is none."""
    try:
        data = orjson.loads(path.read_bytes())
        return int(data["count"]), str(data["head"]), str(data["mac"])
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return (-1, "", "")


class AuditTrail:
    """Appends AuditEvents to the chain: in a write's transaction, or buffered for reads.

    Parameters
    ----------
    store
        The security store on the record store's engine.
    """

    def __init__(self, store: SecurityStore) -> None:
        self.store = store
        self._buffer: list[tuple[AuditEntry, datetime]] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._last_flush = time.monotonic()
        # A file database is flushed by a background thread so no request waits for the
        # batch's commit; an in-memory one (a single shared connection) inline.
        database = store.engine.url.database
        self._background = bool(database) and database != ":memory:"
        self._flusher: threading.Thread | None = None

    def _rows(
        self, conn: sa.Connection, entries: Iterable[tuple[AuditEntry, datetime]]
    ) -> list[dict[str, Any]]:
        key = audit_key()
        seq, prev = self.store.lock_chain(conn)
        rows: list[dict[str, Any]] = []
        for entry, recorded in entries:
            seq += 1
            event_id = os.urandom(16).hex()
            body = orjson.dumps(audit_event(entry, event_id=event_id, recorded=recorded))
            row = {
                "seq": seq,
                "event_id": event_id,
                "recorded": recorded,
                "action": entry.action,
                "outcome": entry.outcome,
                "agent": entry.principal.reference if entry.principal else "unknown",
                "entity": " " + " ".join(entry.entities) + " ",
                "body": body,
                "prev_hash": prev,
            }
            row["hash"] = prev = chain_hash(key, prev, row)
            rows.append(row)
        return rows

    def record_in(
        self, conn: sa.Connection, entry: AuditEntry, written: Sequence[StoredResource]
    ) -> tuple[int, str]:
        """Append ``entry`` (as a success) on the write transaction ``conn``; returns (seq, hash)."""
        for stored in written:
            entry.add(f"{stored.resource_type}/{stored.id}")
        entry.status = entry.status or 200
        rows = self._rows(conn, [(entry, datetime.now(UTC))])
        self.store.append_audit(conn, rows)
        return rows[-1]["seq"], rows[-1]["hash"]

    def buffer(self, entry: AuditEntry) -> None:
        """Queue a record; flushed in batches."""
        with self._lock:
            self._buffer.append((entry, datetime.now(UTC)))
            due = len(self._buffer) >= get_settings().audit_flush_rows or (
                time.monotonic() - self._last_flush >= get_settings().audit_flush_seconds
            )
        if not due:
            return
        if not self._background:
            self.flush()
            return
        with self._lock:
            if self._flusher is not None and self._flusher.is_alive():
                return
            self._flusher = threading.Thread(target=self.flush, name="audit-flush", daemon=True)
            self._flusher.start()

    def flush(self) -> None:
        """Append every buffered record in one transaction and advance the checkpoint."""
        with self._flushing:
            with self._lock:
                pending, self._buffer = self._buffer, []
                self._last_flush = time.monotonic()
            if not pending:
                return
            try:
                with self.store.write_transaction() as conn:
                    rows = self._rows(conn, pending)
                    self.store.append_audit(conn, rows)
            except Exception:
                with self._lock:  # keep the records for the next attempt
                    self._buffer[:0] = pending
                raise
            self.checkpoint(rows[-1]["seq"], rows[-1]["hash"])

    def checkpoint(self, count: int, head: str) -> None:
        """Advance the keyed checkpoint outside the database."""
        write_checkpoint(get_settings().audit_checkpoint_file, audit_key(), count, head)

    def search(self, params: list[tuple[str, str]], *, base: str, count: int, offset: int) -> bytes:
        """A searchset Bundle of AuditEvents (``agent``, ``entity``, ``action``, ``date``)."""
        self.flush()
        wanted = dict(params)
        since = until = None
        for name, value in params:
            if name != "date":
                continue
            if value[:2] not in ("ge", "gt", "le", "lt"):
                raise InvalidRequestError(
                    "date takes ge, gt, le or lt and an instant, e.g. date=ge2026-01-01"
                )
            try:
                when = datetime.fromisoformat(value[2:].replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequestError("date must be an ISO 8601 date or instant") from None
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            if value[:2] in ("ge", "gt"):
                since = when
            else:
                until = when
        rows, total = self.store.search_audit(
            agent=wanted.get("agent"),
            entity=wanted.get("entity"),
            action=wanted.get("action"),
            since=since,
            until=until,
            count=count,
            offset=offset,
        )
        matches = [_stored(row) for row in rows]
        return searchset_bundle(
            base, matches=matches, included=[], total=total, links={"self": f"{base}/AuditEvent"}
        )

    def read(self, event_id: str) -> StoredResource | None:
        """One AuditEvent by id."""
        self.flush()
        row = self.store.audit_event(event_id)
        return _stored(row) if row is not None else None


def _stored(row: AuditRow) -> StoredResource:
    recorded = row.recorded if row.recorded.tzinfo else row.recorded.replace(tzinfo=UTC)
    return StoredResource("AuditEvent", row.event_id, 1, recorded, False, row.body)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The result of :func:`verify_trail`: ``bad_row`` is the first bad ``seq`` (None if sound)."""

    rows: int
    ok: bool
    bad_row: int | None = None
    problem: str = ""


def verify_trail(store: SecurityStore, *, key: bytes, checkpoint: Path) -> VerifyReport:
    """Check the whole chain and the checkpoint; name the first bad row."""
    prev = ""
    expected = 1
    head_at: dict[int, str] = {}
    marker = read_checkpoint(checkpoint)
    for row in store.audit_rows():
        if row.seq != expected:
            return VerifyReport(expected - 1, False, expected, f"row {expected} is missing")
        if row.prev_hash != prev or chain_hash(key, prev, row) != row.hash:
            return VerifyReport(expected - 1, False, row.seq, f"row {row.seq} was changed")
        if marker is not None and row.seq == marker[0]:
            head_at[row.seq] = row.hash
        prev = row.hash
        expected += 1
    rows = expected - 1
    if marker is None:
        if rows == 0:
            return VerifyReport(0, True)
        return VerifyReport(rows, False, 1, f"the checkpoint file {checkpoint} is missing")
    count, head, mac = marker
    if count < 0 or not hmac.compare_digest(mac, _checkpoint_mac(key, count, head)):
        return VerifyReport(rows, False, None, "the checkpoint file is not genuine")
    if rows < count:
        return VerifyReport(rows, False, rows + 1, f"rows {rows + 1} to {count} were removed from the tail")
    if count and head_at.get(count) != head:
        return VerifyReport(rows, False, count, f"row {count} does not match the checkpoint")
    return VerifyReport(rows, True)
