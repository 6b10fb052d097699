"""OperationOutcome builders."""

from __future__ import annotations

from typing import Any

from medfusion.errors import (
    BundleEntryError,
    BusinessRuleError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidRequestError,
    MedfusionError,
    NotFoundError,
    PayloadTooLargeError,
    PreconditionFailedError,
    TooManyRequestsError,
    UnauthorizedError,
)

__all__ = ["STATUS_TABLE", "operation_outcome", "outcome_for_error", "status_for"]

# The one table from error class to HTTP status (first match wins, so subclasses first
# where they differ). The API and batch-response entries both read it.
STATUS_TABLE: tuple[tuple[type[MedfusionError], int], ...] = (
    (PayloadTooLargeError, 413),
    (InvalidRequestError, 400),
    (ForbiddenError, 403),
    (NotFoundError, 404),
    (GoneError, 410),
    (ConflictError, 409),
    (PreconditionFailedError, 412),
    (BusinessRuleError, 422),
    (UnauthorizedError, 401),
    (TooManyRequestsError, 429),
)


def status_for(error: MedfusionError) -> int:
    """The HTTP status for ``error`` (a Bundle entry error takes its cause's status)."""
    if isinstance(error, BundleEntryError):
        return status_for(error.cause)
    for kind, status in STATUS_TABLE:
        if isinstance(error, kind):
            return status
    return 500


def operation_outcome(
    diagnostics: str,
    *,
    code: str = "processing",
    severity: str = "error",
    expression: list[str] | None = None,
) -> dict[str, Any]:
    """A one-issue OperationOutcome.

    Parameters
    ----------
    diagnostics
        What went wrong, without patient data.
    code
        FHIR ``IssueType`` code.
    severity
        ``fatal``, ``error``, ``warning`` or ``information``.
    expression
        FHIRPath locations of the problem.
    """
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = list(expression)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def outcome_for_error(error: MedfusionError) -> dict[str, Any]:
    """The OperationOutcome describing a medfusion error."""
    return operation_outcome(error.message, code=error.code, expression=error.expression)
