"""The OpenAPI description: what FastAPI derives, plus what the routes read by hand.

The FHIR routes take the bare request (for speed and for FHIR's own content types), so
FastAPI sees neither their bodies nor their search parameters. This fills them in, so the
spec at ``/openapi.json`` describes the real surface: clients can read it, and the
property-based fuzz (schemathesis) generates bodies and queries from it.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

_FHIR_JSON = "application/fhir+json"
_FORM = "application/x-www-form-urlencoded"
_PARAM = re.compile(r"{([A-Za-z_]+)}")
_REFERENCE: dict[str, Any] = {"type": "object", "properties": {"reference": {"type": "string"}}}
_RESOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType"],
    "properties": {
        "resourceType": {"type": "string"},
        "id": {"type": "string"},
        "subject": _REFERENCE,
        "patient": _REFERENCE,
        "meta": {"type": "object"},
    },
}
_BUNDLE: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "type"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["Bundle"]},
        "type": {"type": "string", "enum": ["batch", "transaction"]},
        "entry": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "fullUrl": {"type": "string"},
                    "resource": _RESOURCE,
                    "request": {
                        "type": "object",
                        "properties": {
                            "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                            "url": {"type": "string"},
                            "ifNoneExist": {"type": "string"},
                        },
                    },
                },
            },
        },
    },
}
_JSON_PATCH: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["op", "path"],
        "properties": {
            "op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
            "path": {"type": "string"},
            "from": {"type": "string"},
            "value": {},
        },
    },
}
_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {"resourceType": {"type": "string"}}}
_SEARCH = {
    "_id": {"type": "string"},
    "_count": {"type": "integer"},
    "_offset": {"type": "integer"},
    "_summary": {"type": "string", "enum": ["true", "false", "count", "text", "data"]},
    "_include": {"type": "string"},
    "_revinclude": {"type": "string"},
    "_sort": {"type": "string"},
    "_elements": {"type": "string"},
    "subject": {"type": "string"},
    "patient": {"type": "string"},
    "name": {"type": "string"},
    "date": {"type": "string"},
}
_HISTORY = {"_count": {"type": "integer"}, "_since": {"type": "string"}, "_at": {"type": "string"}}
_FORMS: dict[str, dict[str, Any]] = {
    "/auth/token": {
        "grant_type": {"type": "string", "enum": ["password", "client_credentials", "refresh_token"]},
        "username": {"type": "string"},
        "password": {"type": "string"},
        "scope": {"type": "string"},
        "refresh_token": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
    "/auth/revoke": {"token": {"type": "string"}},
    "/auth/break-glass": {"reason": {"type": "string"}},
}
# Routes that read no body at all.
_NO_BODY = {
    "/fhir/Appointment/{id}/$check-in",
    "/fhir/Appointment/{id}/$fulfill",
    "/api/scheduling/no-shows",
    "/api/export/deidentified",
}
_QUERIES: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/fhir/{resource_type}"): _SEARCH,
    ("post", "/fhir/{resource_type}/_search"): _SEARCH,
    ("get", "/fhir/_history"): _HISTORY,
    ("get", "/fhir/{resource_type}/{id}/_history"): _HISTORY,
    ("put", "/fhir/{resource_type}"): {"_id": {"type": "string"}, "identifier": {"type": "string"}},
    ("post", "/api/export/deidentified"): {
        "k": {"type": "integer"},
        "dateShift": {"type": "string", "enum": ["true", "false"]},
        "_type": {"type": "string"},
    },
}


def _body(path: str, method: str) -> dict[str, Any] | None:
    """The request body a route reads, or None."""
    if path in _FORMS:
        schema = {"type": "object", "properties": _FORMS[path]}
        return {"required": True, "content": {_FORM: {"schema": schema}}}
    if method not in ("post", "put", "patch") or path in _NO_BODY or path.endswith("/_search"):
        return None
    if method == "patch":
        schema, media = _JSON_PATCH, "application/json-patch+json"
    elif path in ("/fhir", "/fhir/"):
        schema, media = _BUNDLE, _FHIR_JSON
    elif "$" in path:
        schema, media = _PARAMETERS, _FHIR_JSON
    elif path.startswith("/api/"):
        schema, media = {"type": "object"}, "application/json"
    else:
        schema, media = _RESOURCE, _FHIR_JSON
    return {"required": True, "content": {media: {"schema": schema}}}


def _enrich(spec: dict[str, Any]) -> None:
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
            known = {(p["name"], p["in"]) for p in parameters}
            for name in _PARAM.findall(path):
                if (name, "path") not in known:
                    parameters.append(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                    )
            for name, schema in _QUERIES.get((method, path), {}).items():
                if (name, "query") not in known:
                    parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
            if "requestBody" not in operation and (body := _body(path, method)) is not None:
                operation["requestBody"] = body
            if not parameters:
                del operation["parameters"]


def install_openapi(app: FastAPI) -> None:
    """Serve the enriched description at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
            _enrich(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
