"""Search, history and ``$everything``: the read interactions that return Bundles."""

from __future__ import annotations

from datetime import datetime

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError, NotFoundError
from medfusion.fhir.bundle import bundle_links, history_bundle, searchset_bundle
from medfusion.fhir.repository import FhirRepository, StoredResource
from medfusion.fhir.search import SearchResult, parse_search, search_param_types
from medfusion.services.parsing import check_type

__all__ = ["everything", "history", "search"]

# Types of the patient compartment that this server indexes by ``patient``.
_COMPARTMENT_CANDIDATES = (
    "AllergyIntolerance", "Appointment", "CarePlan", "Claim", "Condition", "DiagnosticReport",
    "DocumentReference", "Encounter", "ExplanationOfBenefit", "ImagingStudy", "Immunization",
    "MedicationRequest", "Observation", "Procedure",
)  # fmt: skip


def _patient_compartment() -> list[str]:
    return [t for t in _COMPARTMENT_CANDIDATES if "patient" in search_param_types(t)]


def _page_links(
    url: str, params: list[tuple[str, str]], offset: int, count: int, total: int
) -> dict[str, str]:
    rest = [(k, v) for k, v in params if k not in ("_count", "_offset")]
    links = {"self": bundle_links(url, [*rest, ("_count", str(count)), ("_offset", str(offset))])}
    if offset + count < total and count > 0:
        links["next"] = bundle_links(url, [*rest, ("_count", str(count)), ("_offset", str(offset + count))])
    if offset > 0 and count > 0:
        previous = max(offset - count, 0)
        links["previous"] = bundle_links(url, [*rest, ("_count", str(count)), ("_offset", str(previous))])
    return links


def search(
    repo: FhirRepository,
    *,
    resource_type: str,
    params: list[tuple[str, str]],
    base: str,
    strict: bool = False,
) -> bytes:
    """Run ``GET [type]?params`` and render the ``searchset`` Bundle.

    Parameters
    ----------
    resource_type
        The type searched.
    params
        Query parameters in request order (repeats mean AND).
    base
        The FHIR base URL, used for ``fullUrl`` and links.
    strict
        ``Prefer: handling=strict``: unknown parameters are errors instead of ignored.
    """
    check_type(resource_type)
    settings = get_settings()
    query = parse_search(
        resource_type,
        params,
        strict=strict,
        default_count=settings.default_page_size,
        max_count=settings.max_page_size,
    )
    result: SearchResult = repo.search(query)
    url = f"{base}/{resource_type}"
    links = _page_links(url, query.link_params(query.offset), query.offset, query.count, result.total)
    if query.summary_count:
        return searchset_bundle(
            base, matches=[], included=[], total=result.total, links={"self": links["self"]}
        )
    return searchset_bundle(
        base,
        matches=result.matches,
        included=result.included,
        total=result.total,
        links=links,
        elements=query.elements,
    )


def _parse_history_params(params: list[tuple[str, str]]) -> tuple[datetime | None, int, int]:
    settings = get_settings()
    since: datetime | None = None
    count = settings.default_page_size
    offset = 0
    for name, value in params:
        try:
            if name == "_since":
                since = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if since.tzinfo is None:
                    raise ValueError("no zone")
            elif name == "_count":
                count = min(int(value), settings.max_page_size)
            elif name == "_offset":
                offset = int(value)
        except ValueError:
            raise InvalidRequestError(f"history parameter {name} has an invalid value") from None
    if count < 0 or offset < 0:
        raise InvalidRequestError("_count and _offset must not be negative")
    return since, count, offset


def history(
    repo: FhirRepository,
    *,
    resource_type: str | None,
    id: str | None,
    params: list[tuple[str, str]],
    base: str,
) -> bytes:
    """``_history`` at system, type or instance level, newest first, paged."""
    if resource_type is not None:
        check_type(resource_type)
    since, count, offset = _parse_history_params(params)
    with repo.begin_read() as tx:
        if id is not None and resource_type is not None and tx.read_current(resource_type, id) is None:
            raise NotFoundError(f"{resource_type}/{id} is not known")
        page = tx.history(resource_type, id, since=since, count=count, offset=offset)
    path = "/".join(p for p in (resource_type, id) if p)
    url = f"{base}/{path}/_history" if path else f"{base}/_history"
    keep = [(k, v) for k, v in params if k == "_since"]
    links = _page_links(url, keep, offset, count, page.total)
    return history_bundle(base, entries=page.entries, total=page.total, links=links)


def everything(repo: FhirRepository, *, id: str, base: str) -> bytes:
    """``Patient/[id]/$everything``: the patient and every resource in their compartment.

    The compartment is every supported type whose ``patient`` search parameter points
    at the patient.
    """
    settings = get_settings()
    with repo.begin_read() as tx:
        patient = tx.read("Patient", id)
        members: dict[tuple[str, str], StoredResource] = {("Patient", id): patient}
        for resource_type in _patient_compartment():
            offset = 0
            while True:
                query = parse_search(
                    resource_type,
                    [("patient", id), ("_offset", str(offset))],
                    strict=True,
                    default_count=settings.max_page_size,
                    max_count=settings.max_page_size,
                )
                result = tx.search(query)
                for stored in result.matches:
                    members.setdefault((stored.resource_type, stored.id), stored)
                offset += query.count
                if offset >= result.total or not result.matches:
                    break
    ordered = sorted(members.values(), key=lambda s: (s.resource_type != "Patient", s.resource_type, s.id))
    return searchset_bundle(
        base,
        matches=ordered,
        included=[],
        total=len(ordered),
        links={"self": f"{base}/Patient/{id}/$everything"},
    )
