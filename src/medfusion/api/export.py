"""De-identified export for analysts: ``POST /api/export/deidentified``.

The body is NDJSON (``application/fhir+ndjson``), every resource type in one stream; the
k-anonymity outcome travels in headers. Authentication and scopes are added with the
security layer; the route itself only parses, calls the service and streams.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from medfusion.api.http import repo_of
from medfusion.api.security import allow
from medfusion.services.deidentify import deidentified_stream, load_deid_key, parse_deid_request

__all__ = ["NDJSON", "router"]

NDJSON = "application/fhir+ndjson"
router = APIRouter()


@router.post("/api/export/deidentified")
async def export_deidentified(request: Request) -> Response:
    """Stream the store de-identified (HIPAA Safe Harbor) with k-anonymity suppression.

    Query parameters: ``k`` (default 5), ``dateShift`` (``true`` shifts dates per patient
    instead of keeping the year), ``_type`` (comma-separated resource types).
    """
    allow(request, "export-deidentified", "*")
    options = parse_deid_request(list(request.query_params.multi_items()))
    stream = await run_in_threadpool(
        deidentified_stream,
        repo_of(request),
        key=load_deid_key(),
        k=options.k,
        date_shift=options.date_shift,
        types=options.types,
    )

    def lines() -> Iterator[bytes]:
        for _resource_type, line in stream.resources:
            if line:
                yield line + b"\n"

    report = stream.k_anonymity
    headers = {
        "X-Deid-K-Requested": str(report.k_requested),
        "X-Deid-K-Achieved": str(report.k_achieved),
        "X-Deid-Patients": str(report.records),
        "X-Deid-Suppressed": str(report.suppressed),
    }
    return StreamingResponse(lines(), media_type=NDJSON, headers=headers)
