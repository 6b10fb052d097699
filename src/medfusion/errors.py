"""One exception tree for the whole platform.

Every error carries a FHIR ``IssueType`` code and, where it helps, FHIRPath expressions
naming the element at fault. Each also inherits the builtin a Python user expects, so a
validation failure is a ``ValueError`` and a missing resource a ``LookupError``.

The mapping from error class to HTTP status lives in exactly one place:
:mod:`medfusion.api.errors`.

Hierarchy::

    MedfusionError
    ├── InvalidRequestError (ValueError)          400 invalid
    │   ├── ResourceValidationError               400 structure / required / value
    │   ├── UnknownSearchParameterError           400 not-supported
    │   ├── UnsupportedError                      400 not-supported
    │   └── DataError                             400 invalid (ML input data)
    ├── PayloadTooLargeError (ValueError)         413 too-long
    ├── UnauthorizedError (PermissionError)       401 login
    ├── ForbiddenError (PermissionError)          403 forbidden
    ├── TooManyRequestsError                      429 throttled
    ├── NotFoundError (LookupError)               404 not-found
    │   └── UnknownResourceTypeError              404 not-supported
    ├── ForbiddenError (PermissionError)          403 forbidden
    ├── GoneError (LookupError)                   410 deleted
    ├── ConflictError                             409 conflict
    ├── BusinessRuleError (ValueError)            422 business-rule
    ├── PreconditionFailedError                   412 conflict
    │   └── MultipleMatchesError                  412 multiple-matches
    └── BundleEntryError                          status of the entry's own error
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BundleEntryError",
    "BusinessRuleError",
    "ConflictError",
    "DataError",
    "EncryptionError",
    "ForbiddenError",
    "GoneError",
    "InvalidRequestError",
    "MedfusionError",
    "MultipleMatchesError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "ResourceValidationError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "UnknownResourceTypeError",
    "UnknownSearchParameterError",
    "UnsupportedError",
]


class MedfusionError(Exception):
    """Base of every error medfusion raises on purpose.

    Parameters
    ----------
    message
        Human-readable diagnostics. Must never contain patient data.
    expression
        FHIRPath expressions locating the problem, e.g. ``["Patient.birthDate"]``.
    code
        FHIR ``IssueType`` code overriding the class default.
    """

    code: str = "exception"

    def __init__(
        self,
        message: str,
        *,
        expression: Sequence[str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.expression: list[str] = list(expression or [])
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        if self.expression:
            return f"{self.message} (at {', '.join(self.expression)})"
        return self.message


class InvalidRequestError(MedfusionError, ValueError):
    """The request cannot be processed as sent (bad JSON, wrong type, bad parameter)."""

    code = "invalid"


class ResourceValidationError(InvalidRequestError):
    """A resource does not conform to the FHIR R4 structure."""

    code = "structure"


class UnknownSearchParameterError(InvalidRequestError):
    """A search parameter is not supported (raised under ``handling=strict``)."""

    code = "not-supported"


class UnsupportedError(InvalidRequestError):
    """The request asks for something this server does not support."""

    code = "not-supported"


class DataError(InvalidRequestError):
    """Input data for a model cannot be used (missing column, non-numeric value, one class, empty file)."""

    code = "invalid"


class PayloadTooLargeError(MedfusionError, ValueError):
    """The request body exceeds the configured size cap."""

    code = "too-long"


class UnauthorizedError(MedfusionError, PermissionError):
    """No valid credentials: a missing, malformed, expired, forged or revoked token.

    The message never says which, so it gives an attacker nothing to work with.
    """

    code = "login"


class ForbiddenError(MedfusionError, PermissionError):
    """Valid credentials, but the scopes or the role do not allow the interaction."""

    code = "forbidden"


class TooManyRequestsError(MedfusionError):
    """Too many requests from one client address; retry after ``retry_after`` seconds."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundError(MedfusionError, LookupError):
    """No resource (or version) exists at the requested location."""

    code = "not-found"


class UnknownResourceTypeError(NotFoundError):
    """The resource type is not an R4 resource type."""

    code = "not-supported"


class GoneError(MedfusionError, LookupError):
    """The resource existed but has been deleted."""

    code = "deleted"


class ConflictError(MedfusionError):
    """The request conflicts with the current state of the server."""

    code = "conflict"


class BusinessRuleError(MedfusionError, ValueError):
    """Well-formed, but a business rule forbids it (a patient's appointment limit)."""

    code = "business-rule"


class PreconditionFailedError(MedfusionError):
    """A precondition (``If-Match``, conditional match count) does not hold."""

    code = "conflict"


class MultipleMatchesError(PreconditionFailedError):
    """A conditional interaction matched more than one resource."""

    code = "multiple-matches"


class EncryptionError(MedfusionError):
    """Stored data cannot be decrypted (unknown key, tampered bytes) or the keyring is unusable.

    A server-side fault: it renders as 500, with no detail about the data.
    """

    code = "security"


class BundleEntryError(MedfusionError):
    """An entry of a batch or transaction Bundle failed.

    Parameters
    ----------
    index
        Zero-based index of the entry in ``Bundle.entry``.
    cause
        The error the entry raised; its class decides the status.
    """

    def __init__(self, index: int, cause: MedfusionError) -> None:
        expression = [f"Bundle.entry[{index}]"] + [
            e
            if e.startswith("Bundle.")
            else f"Bundle.entry[{index}].resource.{e.split('.', 1)[1]}"
            if "." in e
            else f"Bundle.entry[{index}].resource"
            for e in cause.expression
        ]
        super().__init__(
            f"Bundle.entry[{index}] failed: {cause.message}",
            expression=expression,
            code=cause.code,
        )
        self.index = index
        self.cause = cause
