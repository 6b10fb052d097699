"""The authorization policy as a unit: scopes, role caps and export rights."""

from __future__ import annotations

import pytest

from medfusion.errors import ForbiddenError
from medfusion.services.authz import authorize
from medfusion.services.scopes import grant, parse_scope, role_cap
from medfusion.services.security import Principal


def _principal(role: str, scope: str = "") -> Principal:
    return Principal("user", role, role, "A" if role == "patient" else None,
                     tuple(grant(scope, role_cap(role))), "j", 1e12)  # fmt: skip


def test_scope_parsing_v2_and_v1() -> None:
    assert str(parse_scope("patient/Observation.rs")) == "patient/Observation.rs"
    assert str(parse_scope("user/*.read")) == "user/*.rs"
    assert str(parse_scope("user/Patient.write")) == "user/Patient.cud"
    assert str(parse_scope("system/*.*")) == "system/*.cruds"
    for bad in ("patient/Observation.", "user/*.rsc", "patient/Observation.rs?category=x", "openid", "x/*.r"):
        assert parse_scope(bad) is None


def test_grants_never_exceed_the_role_cap() -> None:
    assert [str(s) for s in grant("user/*.cruds", role_cap("analyst"))] == ["user/*.s"]
    assert grant("system/*.rs", role_cap("clinician")) == []
    assert [str(s) for s in grant("", role_cap("patient"))] == ["patient/*.rs", "patient/Appointment.cu"]


@pytest.mark.parametrize(
    ("role", "interaction", "allowed"),
    [
        ("analyst", "export-deidentified", True),
        ("analyst", "export", False),
        ("analyst", "read", False),
        ("clinician", "export", True),
        ("patient", "export", False),
        ("patient", "export-deidentified", False),
    ],
)
def test_export_rights(role: str, interaction: str, allowed: bool) -> None:
    principal = _principal(role)
    if allowed:
        authorize(principal, interaction, "Observation")
    else:
        with pytest.raises(ForbiddenError):
            authorize(principal, interaction, "Observation")
