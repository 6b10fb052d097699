"""Rendering every error as an OperationOutcome, in one place.

The error-to-status table itself is :data:`medfusion.fhir.outcome.STATUS_TABLE`, shared
with batch-response entries. Unexpected exceptions become a generic 500 with no stack
trace and no request data in the body.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from medfusion.errors import MedfusionError
from medfusion.fhir.outcome import operation_outcome, outcome_for_error, status_for

__all__ = ["FHIR_JSON", "install_error_handlers", "outcome_response"]

FHIR_JSON = "application/fhir+json"
log = logging.getLogger("medfusion.api")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}


def outcome_response(error: MedfusionError) -> Response:
    """The OperationOutcome response for a medfusion error."""
    return Response(
        orjson.dumps(outcome_for_error(error)), status_code=status_for(error), media_type=FHIR_JSON
    )


async def _medfusion_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, MedfusionError)
    return outcome_response(error)


async def _http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "processing")
    body = operation_outcome(str(error.detail), code=code)
    return Response(orjson.dumps(body), status_code=error.status_code, media_type=FHIR_JSON)


async def _validation_error(_request: Request, error: Exception) -> Response:
    body = operation_outcome("the request is malformed", code="invalid")
    return Response(orjson.dumps(body), status_code=400, media_type=FHIR_JSON)


async def _unexpected(_request: Request, error: Exception) -> Response:
    # Log the class only: messages of library errors can carry request data.
    log.error("unexpected %s while handling a request", type(error).__name__)
    body = operation_outcome("internal server error", code="exception", severity="fatal")
    return Response(orjson.dumps(body), status_code=500, media_type=FHIR_JSON)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into an OperationOutcome."""
    app.add_exception_handler(MedfusionError, _medfusion_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
