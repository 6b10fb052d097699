"""Turning request bodies into validated resources."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from medfusion.errors import InvalidRequestError, ResourceValidationError, UnknownResourceTypeError
from medfusion.fhir.validation import is_resource_type, validate_resource

__all__ = ["check_type", "parse_json", "parse_query", "parse_resource"]


def check_type(resource_type: str) -> None:
    """Raise :class:`UnknownResourceTypeError` unless ``resource_type`` is an R4 type."""
    if not is_resource_type(resource_type):
        raise UnknownResourceTypeError(f"'{resource_type[:64]}' is not a FHIR R4 resource type")


def parse_json(body: bytes | str) -> Any:
    """Parse JSON, turning a syntax error into a 400 that gives the position, not the text."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequestError(
            f"the body is not valid JSON (line {error.lineno}, column {error.colno})",
            code="structure",
        ) from None


def parse_resource(body: bytes | str | dict[str, Any], *, expected_type: str | None) -> dict[str, Any]:
    """Parse (if needed) and validate a resource against the R4 structure.

    Parameters
    ----------
    body
        Raw JSON or an already parsed dict.
    expected_type
        The type named by the URL; a different ``resourceType`` is a 400.
    """
    resource = parse_json(body) if isinstance(body, bytes | str) else body
    if not isinstance(resource, dict):
        raise ResourceValidationError("the body must be a JSON object holding one resource")
    if expected_type is not None and resource.get("resourceType") != expected_type:
        raise InvalidRequestError(
            f"resourceType must be '{expected_type}' to match the URL",
            expression=[f"{expected_type}.resourceType"],
        )
    validate_resource(resource, expected_type=expected_type)
    return resource


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split ``a=1&b=2`` (an optional leading ``Type?`` is dropped) into pairs."""
    if "?" in query:
        query = query.split("?", 1)[1]
    return parse_qsl(query, keep_blank_values=True)
