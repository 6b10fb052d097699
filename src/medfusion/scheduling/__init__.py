"""Availability arithmetic for appointments: pure, standard library only.

:func:`parse_rules` validates a schedule's availability (weekly hours in an IANA zone,
slot length, buffer, service types, exceptions) and :func:`generate_slots` cuts it into
UTC slots, daylight-saving changes included. Storage and booking live in
:mod:`medfusion.services.scheduling`.
"""

from __future__ import annotations

from medfusion.scheduling._rules import WEEKDAYS, AvailabilityRules, DayException, TimeRange, parse_rules
from medfusion.scheduling._slots import SlotTime, generate_slots, local_to_utc

__all__ = [
    "WEEKDAYS",
    "AvailabilityRules",
    "DayException",
    "SlotTime",
    "TimeRange",
    "generate_slots",
    "local_to_utc",
    "parse_rules",
]
