"""``$hold``: keep a proposed Appointment's Slots for its holder a few minutes.

Re-exported by :mod:`medfusion.services.scheduling`; :func:`~medfusion.services._slot_store.available`
decides who may take a held Slot.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from medfusion.config import get_settings
from medfusion.errors import ConflictError, InvalidRequestError, PreconditionFailedError
from medfusion.fhir.repository import FhirRepository, WriteRequest
from medfusion.fhir.resource import now_utc
from medfusion.services._slot_store import (
    HOLD_URL,
    available,
    hold_token,
    instant,
    slot_ids,
    token_digest,
    without_hold,
)
from medfusion.services.parsing import parse_resource

__all__ = ["hold"]


def hold(
    repo: FhirRepository, *, appointment: dict[str, Any] | bytes, minutes: int | None = None
) -> dict[str, Any]:
    """Hold the Slots of a proposed Appointment for a short time (``$hold``).

    The Slots turn ``busy-tentative`` with a hold (expiry and a token) in one transaction;
    until the expiry only an Appointment carrying the token (the returned one) can book
    them. Nothing is stored for the Appointment itself.

    Parameters
    ----------
    minutes
        Length of the hold (default ``settings.hold_minutes``).

    Returns
    -------
    dict
        The Appointment, status ``pending``, with the hold token and expiry as extensions.

    Raises
    ------
    ConflictError
        A Slot is booked or held by someone else.
    """
    resource = parse_resource(appointment, expected_type="Appointment")
    length = get_settings().hold_minutes if minutes is None else minutes
    if not 1 <= length <= 60:
        raise InvalidRequestError(f"a hold lasts 1 to 60 minutes, got {length}", expression=["minutes"])
    ids = slot_ids(resource)
    token = uuid.uuid4().hex
    try:
        with repo.begin() as tx:
            expires = instant(now_utc() + timedelta(minutes=length))
            claim = [
                {"url": "expires", "valueInstant": expires},
                {"url": "tokenSha256", "valueString": token_digest(token)},
            ]
            writes = []
            for id in ids:
                found = tx.read("Slot", id)
                body = found.json()
                if not available(body, now_utc(), hold_token(resource)):
                    raise ConflictError(f"Slot/{id} is already taken", expression=["Appointment.slot"])
                held = {**without_hold(body), "status": "busy-tentative"}
                held["extension"] = [*held.get("extension", []), {"url": HOLD_URL, "extension": claim}]
                writes.append(WriteRequest("Slot", id, held, found.version))
            tx.write_many(writes)
    except PreconditionFailedError:
        raise ConflictError(
            "the slot was taken at the same moment", expression=["Appointment.slot"]
        ) from None
    extension = [
        {"url": HOLD_URL, "valueString": token},
        {"url": f"{HOLD_URL}-expires", "valueInstant": expires},
    ]
    return {**without_hold(resource), "status": "pending", "extension": extension}
