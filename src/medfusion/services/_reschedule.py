"""``$reschedule``: move a booked Appointment to other Slots in one transaction.

Re-exported by :mod:`medfusion.services.scheduling`. The new Slots are written ``busy``
with ``expected_version`` = the version read (the same compare-and-set as ``book``), the
old ones are released and the Appointment is rewritten, all in one transaction: a racing
booker that takes a new Slot first makes the whole move fail with 409 and roll back, so
the patient keeps the old Slot and never holds both.
"""

from __future__ import annotations

from typing import Any

from medfusion.errors import ConflictError, InvalidRequestError, PreconditionFailedError
from medfusion.fhir.repository import FhirRepository, StoredResource, WriteRequest
from medfusion.fhir.resource import now_utc
from medfusion.services._slot_store import available, has_booking, release, slot_ids, taken_body

__all__ = ["reschedule"]


def reschedule(repo: FhirRepository, *, appointment_id: str, slots: list[str]) -> StoredResource:
    """Move a ``booked`` Appointment to new Slots, atomically.

    Parameters
    ----------
    repo
        The record store.
    appointment_id
        Id of the Appointment to move.
    slots
        The new Slots, as ``Slot/<id>`` references; ``start``/``end`` are taken from them.

    Returns
    -------
    StoredResource
        The Appointment's new version.

    Raises
    ------
    ConflictError
        A new Slot is taken, or was taken by a concurrent booking (nothing changed);
        or the Appointment is not ``booked``, or changed concurrently.
    InvalidRequestError
        No Slot, a malformed reference or a Slot that does not exist.
    NotFoundError
        The Appointment does not exist.
    """
    new_ids = slot_ids({"slot": [{"reference": s} for s in slots]})
    try:
        with repo.begin() as tx:
            current = tx.read("Appointment", appointment_id)
            body = current.json()
            if body.get("status") != "booked":
                raise ConflictError(
                    f"only a booked Appointment can be rescheduled, this one is {body.get('status')}",
                    expression=["Appointment.status"],
                )
            old_ids = {
                ref.get("reference", "").partition("/")[2]
                for ref in body.get("slot", [])
                if ref.get("reference", "").startswith("Slot/")
            }
            now = now_utc()
            taken: list[tuple[StoredResource, dict[str, Any]]] = []
            new_bodies: list[dict[str, Any]] = []
            # Sorted ids (from ``slot_ids``): concurrent movers lock rows in the same order.
            for id in new_ids:
                found = tx.read_current("Slot", id)
                if found is None or found.deleted:
                    raise InvalidRequestError(
                        f"Slot/{id} does not exist", code="not-found", expression=["slot"]
                    )
                slot = found.json()
                new_bodies.append(slot)
                if id in old_ids:
                    continue  # already this Appointment's: a move that keeps part of the time
                if not available(slot, now):
                    raise ConflictError(f"Slot/{id} is already taken", expression=["slot"])
                taken.append((found, slot))
            # The new Slots first: if a racer committed one in between, the versioned write
            # fails here and the transaction rolls back before the old Slots were touched.
            if taken:
                tx.write_many([WriteRequest("Slot", f.id, taken_body(b), f.version) for f, b in taken])
            for id in sorted(old_ids - set(new_ids)):
                found = tx.read_current("Slot", id)
                if found is None or found.deleted:
                    continue  # an imported Appointment may name Slots that were never stored
                slot = found.json()
                if has_booking(slot):
                    release(tx, found, slot)
            body["slot"] = [{"reference": f"Slot/{id}"} for id in new_ids]
            body["start"] = min(b["start"] for b in new_bodies)
            body["end"] = max(b["end"] for b in new_bodies)
            body.pop("minutesDuration", None)  # would contradict the new start and end
            return tx.write("Appointment", appointment_id, body, expected_version=current.version)
    except PreconditionFailedError:
        raise ConflictError(
            "a new slot was taken by a concurrent booking; the appointment is unchanged",
            expression=["slot"],
        ) from None
