"""Keyed pseudonyms and per-patient date offsets (HMAC-SHA256).

The same key gives the same pseudonym for the same ``Type/id`` in every export, so
references between resources of one patient still link; without the key the mapping
cannot be recomputed or reversed.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MAX_SHIFT_DAYS", "Pseudonymizer"]

# Shifts stay within one year either way: enough to hide the true dates, small enough to
# keep seasons and ages roughly right.
MAX_SHIFT_DAYS = 365


class Pseudonymizer:
    """Derive pseudonyms and date offsets from one secret key.

    Parameters
    ----------
    key
        The secret (at least 16 bytes).
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the de-identification key must be at least 16 bytes")
        self._key = key
        self._ids: dict[str, str] = {}

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()

    def resource_id(self, resource_type: str, id: str) -> str:
        """The pseudonymous id of ``resource_type/id`` (32 hex characters, a valid FHIR id)."""
        reference = f"{resource_type}/{id}"
        found = self._ids.get(reference)
        if found is None:
            found = self._digest("id", reference).hex()[:32]
            self._ids[reference] = found
        return found

    def token(self, value: str) -> str:
        """A pseudonym for any other unique value (32 hex characters)."""
        return self._digest("token", value).hex()[:32]

    def oid(self, value: str) -> str:
        """A pseudonymous OID under the UUID-derived arc ``2.25`` (valid as a DICOM UID)."""
        return "2.25." + str(int.from_bytes(self._digest("oid", value)[:16], "big"))

    def uuid(self, value: str) -> str:
        """A pseudonymous UUID (version 4 layout) for ``value``."""
        raw = bytearray(self._digest("uuid", value)[:16])
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        text = raw.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"

    def shift_days(self, patient: str) -> int:
        """The date offset of one patient: non-zero, within ``±MAX_SHIFT_DAYS`` days."""
        number = int.from_bytes(self._digest("shift", patient)[:8], "big")
        offset = number % (2 * MAX_SHIFT_DAYS) - MAX_SHIFT_DAYS
        return offset if offset < 0 else offset + 1
