"""Create, read, update, patch and delete of single resources (FHIR instance interactions).

Functions ending in ``_in`` work inside a transaction the caller holds (Bundle
processing composes them); the others open and commit their own.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch

from medfusion.config import get_settings
from medfusion.errors import (
    InvalidRequestError,
    MultipleMatchesError,
    NotFoundError,
)
from medfusion.fhir.references import is_valid_id
from medfusion.fhir.repository import FhirRepository, FhirTransaction, StoredResource
from medfusion.fhir.search import parse_search
from medfusion.services.parsing import check_type, parse_json, parse_query, parse_resource

__all__ = [
    "WriteOutcome",
    "conditional_update",
    "create",
    "create_in",
    "delete",
    "delete_in",
    "find_matches_in",
    "new_id",
    "parse_if_match",
    "patch",
    "read",
    "update",
    "update_in",
    "vread",
]

# Checks a found resource before a conditional write uses it (an authorization hook).
Guard = Callable[[StoredResource], None]
_ETAG = re.compile(r'^(?:W/)?"?([0-9]+)"?$')


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """A write's result: the stored version and whether it created the resource."""

    stored: StoredResource
    created: bool


def new_id() -> str:
    """A fresh server-assigned id."""
    return str(uuid.uuid4())


def parse_if_match(value: str | None) -> int | None:
    """``W/"3"`` -> 3; None stays None; anything else is a 400."""
    if value is None:
        return None
    match = _ETAG.match(value.strip())
    if not match:
        raise InvalidRequestError('If-Match must be a version ETag such as W/"3"')
    return int(match.group(1))


def _check_id(id: str) -> None:
    if not is_valid_id(id):
        raise InvalidRequestError("the id must be 1-64 letters, digits, '-' or '.'")


def find_matches_in(
    tx: FhirTransaction, resource_type: str, query: list[tuple[str, str]]
) -> list[StoredResource]:
    """Resources matching conditional-interaction criteria (unknown parameters are errors)."""
    settings = get_settings()
    if not [name for name, _ in query if not name.startswith("_") or name in ("_id", "_lastUpdated")]:
        raise InvalidRequestError("conditional criteria must name at least one search parameter")
    parsed = parse_search(
        resource_type,
        [*query, ("_count", "2")],
        strict=True,
        default_count=2,
        max_count=settings.max_page_size,
    )
    return list(tx.search(parsed).matches)


def create_in(
    tx: FhirTransaction,
    resource_type: str,
    resource: dict[str, Any],
    *,
    if_none_exist: str | None = None,
    id: str | None = None,
) -> WriteOutcome:
    """Create (or, with ``if_none_exist``, find) a validated resource inside ``tx``."""
    if if_none_exist:
        matches = find_matches_in(tx, resource_type, parse_query(if_none_exist))
        if len(matches) > 1:
            raise MultipleMatchesError("If-None-Exist criteria match more than one resource")
        if matches:
            return WriteOutcome(matches[0], created=False)
    stored = tx.write(resource_type, id or new_id(), resource, expected_version=0)
    return WriteOutcome(stored, created=True)


def update_in(
    tx: FhirTransaction,
    resource_type: str,
    id: str,
    resource: dict[str, Any],
    *,
    if_match: int | None = None,
) -> WriteOutcome:
    """Update, or create with the client's id, inside ``tx``."""
    _check_id(id)
    body_id = resource.get("id")
    if body_id is None:
        raise InvalidRequestError(
            "the resource must carry its id for an update", expression=[f"{resource_type}.id"]
        )
    if body_id != id:
        raise InvalidRequestError(
            "the resource id does not match the URL", expression=[f"{resource_type}.id"]
        )
    current = tx.read_current(resource_type, id)
    created = current is None or current.deleted
    stored = tx.write(resource_type, id, resource, expected_version=if_match)
    return WriteOutcome(stored, created=created)


def delete_in(tx: FhirTransaction, resource_type: str, id: str) -> None:
    """Delete inside ``tx``; deleting what is absent or already deleted succeeds (idempotent)."""
    tx.delete(resource_type, id)


def create(
    repo: FhirRepository,
    *,
    resource_type: str,
    body: bytes,
    if_none_exist: str | None = None,
    guard: Guard | None = None,
) -> WriteOutcome:
    """Create a resource from a request body (``POST [type]``).

    ``guard`` is called with the resource an ``If-None-Exist`` search found before it is
    returned, and may raise (the caller must be allowed to see it).
    """
    check_type(resource_type)
    resource = parse_resource(body, expected_type=resource_type)
    with repo.begin() as tx:
        outcome = create_in(tx, resource_type, resource, if_none_exist=if_none_exist)
        if guard is not None and not outcome.created:
            guard(outcome.stored)
        return outcome


def read(repo: FhirRepository, *, resource_type: str, id: str) -> StoredResource:
    """Read the current version (``GET [type]/[id]``)."""
    check_type(resource_type)
    return repo.read(resource_type, id)


def vread(repo: FhirRepository, *, resource_type: str, id: str, version: str) -> StoredResource:
    """Read one version (``GET [type]/[id]/_history/[vid]``)."""
    check_type(resource_type)
    if not version.isdigit():
        raise NotFoundError(f"{resource_type}/{id} has no version '{version[:16]}'")
    with repo.begin_read() as tx:
        return tx.vread(resource_type, id, int(version))


def update(
    repo: FhirRepository, *, resource_type: str, id: str, body: bytes, if_match: str | None = None
) -> WriteOutcome:
    """Update or update-as-create (``PUT [type]/[id]``)."""
    check_type(resource_type)
    resource = parse_resource(body, expected_type=resource_type)
    expected = parse_if_match(if_match)
    with repo.begin() as tx:
        return update_in(tx, resource_type, id, resource, if_match=expected)


def conditional_update(
    repo: FhirRepository,
    *,
    resource_type: str,
    query: list[tuple[str, str]],
    body: bytes,
    guard: Guard | None = None,
) -> WriteOutcome:
    """``PUT [type]?criteria``: update the one match, create when none, 412 when several.

    ``guard`` is called with the match before it is overwritten, and may raise.
    """
    check_type(resource_type)
    resource = parse_resource(body, expected_type=resource_type)
    with repo.begin() as tx:
        matches = find_matches_in(tx, resource_type, query)
        if len(matches) > 1:
            raise MultipleMatchesError("the conditional update criteria match more than one resource")
        if matches:
            target = matches[0]
            if guard is not None:
                guard(target)
            if resource.get("id", target.id) != target.id:
                raise InvalidRequestError(
                    "the resource id differs from the matched resource",
                    expression=[f"{resource_type}.id"],
                )
            resource = {**resource, "id": target.id}
            return update_in(tx, resource_type, target.id, resource, if_match=target.version)
        id = resource.get("id")
        if id is not None:
            return update_in(tx, resource_type, id, resource)
        return create_in(tx, resource_type, resource)


def patch(
    repo: FhirRepository, *, resource_type: str, id: str, body: bytes, if_match: str | None = None
) -> WriteOutcome:
    """Apply a JSON Patch (``PATCH [type]/[id]``); the result is validated like any write."""
    check_type(resource_type)
    operations = parse_json(body)
    if not isinstance(operations, list):
        raise InvalidRequestError("a JSON Patch body must be an array of operations")
    expected = parse_if_match(if_match)
    with repo.begin() as tx:
        current = tx.read(resource_type, id)
        try:
            patched = jsonpatch.JsonPatch(operations).apply(current.json())
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as error:
            raise InvalidRequestError(f"the JSON Patch cannot be applied: {type(error).__name__}") from None
        resource = parse_resource(patched, expected_type=resource_type)
        if resource.get("id") != id:
            raise InvalidRequestError("a patch may not change the id", expression=[f"{resource_type}.id"])
        version = current.version if expected is None else expected
        stored = tx.write(resource_type, id, resource, expected_version=version)
        return WriteOutcome(stored, created=False)


def delete(repo: FhirRepository, *, resource_type: str, id: str) -> None:
    """Logical delete (``DELETE [type]/[id]``): later reads give 410, history keeps all."""
    check_type(resource_type)
    with repo.begin() as tx:
        delete_in(tx, resource_type, id)
