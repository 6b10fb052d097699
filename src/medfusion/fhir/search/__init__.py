"""FHIR R4 search: parameter registry, index extraction, parsing and in-memory search.

Pure: the SQL executor lives in :mod:`medfusion.store.search_sql` and reads the same
:class:`SearchQuery` value objects.
"""

from __future__ import annotations

from medfusion.fhir.search._extract import (
    IndexEntries,
    extract_index,
    extract_index_deferred,
    normalize,
    reference_rows,
)
from medfusion.fhir.search._memory import search_in_memory
from medfusion.fhir.search._params import search_param_types
from medfusion.fhir.search._parse import parse_search
from medfusion.fhir.search._query import (
    Criterion,
    DateMatch,
    Include,
    QuantityMatch,
    ReferenceMatch,
    SearchQuery,
    SearchResult,
    SortKey,
    StringMatch,
    TokenMatch,
)

__all__ = [
    "Criterion",
    "DateMatch",
    "Include",
    "IndexEntries",
    "QuantityMatch",
    "ReferenceMatch",
    "SearchQuery",
    "SearchResult",
    "SortKey",
    "StringMatch",
    "TokenMatch",
    "extract_index",
    "extract_index_deferred",
    "normalize",
    "parse_search",
    "reference_rows",
    "search_in_memory",
    "search_param_types",
]
