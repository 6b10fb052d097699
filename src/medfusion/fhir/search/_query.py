"""Value objects of a parsed search: what to match, how to order, what to include.

Both executors (:mod:`medfusion.fhir.search._memory` and
:mod:`medfusion.store.search_sql`) read these; nothing here knows about SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from medfusion.fhir.repository import StoredResource

__all__ = [
    "Criterion",
    "DateMatch",
    "Include",
    "QuantityMatch",
    "ReferenceMatch",
    "SearchQuery",
    "SearchResult",
    "SortKey",
    "StringMatch",
    "TokenMatch",
]


@dataclass(frozen=True, slots=True)
class StringMatch:
    """A string value; ``mode`` is ``prefix``, ``exact`` or ``contains``.

    ``text`` is normalized (lower-case, no accents) except for ``exact``. The SQL store
    also uses ``equal`` (equality on the normalised column) for blind indexes.
    """

    text: str
    mode: str


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """A token value.

    Attributes
    ----------
    system
        The system to match; ignored when ``any_system``. None with ``any_system``
        False means "no system" (the ``|code`` form).
    code
        The code, or None for any code (the ``system|`` form).
    """

    system: str | None
    code: str | None
    any_system: bool


@dataclass(frozen=True, slots=True)
class DateMatch:
    """A date value with its prefix.

    ``low``/``high`` are the inclusive epoch-second bounds of the value's range (for
    ``ap`` already widened); ``start``/``end`` are the same range as UTC datetimes,
    ``end`` exclusive, for comparing ``_lastUpdated`` instants.
    """

    prefix: str
    low: float
    high: float
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class QuantityMatch:
    """A number or quantity value with its prefix.

    ``number`` is the value as given; ``low``/``high`` the half-open range
    ``[low, high)`` that ``eq``/``ne``/``ap`` use (implicit precision, or 10 % for ap).
    ``system``/``code`` follow :class:`TokenMatch` rules; ``code`` None matches any unit.
    """

    prefix: str
    number: float
    low: float
    high: float
    system: str | None
    code: str | None
    any_system: bool


@dataclass(frozen=True, slots=True)
class ReferenceMatch:
    """A reference value: ``target_type`` None matches a target of any type."""

    target_type: str | None
    target_id: str


Value = StringMatch | TokenMatch | DateMatch | QuantityMatch | ReferenceMatch


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence; its values are OR-ed.

    Attributes
    ----------
    name
        Parameter name (``_id`` and ``_lastUpdated`` included).
    type
        The parameter's type (``string``, ``token``, ``date``, ...).
    values
        The alternatives; empty when ``missing`` is set.
    negate
        True for ``:not``: match resources having none of the values.
    missing
        ``:missing``: True for "has no value", False for "has some value".
    """

    name: str
    type: str
    values: tuple[Value, ...] = ()
    negate: bool = False
    missing: bool | None = None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` element."""

    name: str
    type: str
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """An ``_include`` / ``_revinclude`` directive.

    ``source_type`` is the type holding the reference, ``param`` the reference
    parameter (``*`` for all), ``target_type`` an optional restriction of the target.
    """

    source_type: str
    param: str
    target_type: str | None = None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed, validated search (see :func:`~medfusion.fhir.search.parse_search`).

    Attributes
    ----------
    resource_type
        The type searched.
    count, offset
        Page size (0 allowed) and number of matches skipped.
    summary_count
        ``_summary=count``: only the total is wanted.
    elements
        ``_elements``, for the API layer to filter bodies; None when absent.
    criteria
        Conditions, all of which must hold (repeated parameters are AND-ed).
    sort
        ``_sort`` keys in order; ties always end ordered by resource id.
    include, revinclude
        ``_include`` and ``_revinclude`` directives.
    params
        The canonical form of the criteria and result parameters, for links.
    """

    resource_type: str
    count: int
    offset: int = 0
    summary_count: bool = False
    elements: tuple[str, ...] | None = None
    criteria: tuple[Criterion, ...] = ()
    sort: tuple[SortKey, ...] = ()
    include: tuple[Include, ...] = ()
    revinclude: tuple[Include, ...] = ()
    params: tuple[tuple[str, str], ...] = ()

    def link_params(self, offset: int) -> list[tuple[str, str]]:
        """Canonical query parameters for a Bundle link at ``offset``.

        Parameters
        ----------
        offset
            The ``_offset`` of the page the link points at.

        Returns
        -------
        list[tuple[str, str]]
            Criteria in request order, then ``_sort``, ``_include``, ``_revinclude``,
            ``_summary``, ``_elements``, ``_count`` and ``_offset``.
        """
        return [*self.params, ("_count", str(self.count)), ("_offset", str(offset))]


@dataclass
class SearchResult:
    """The outcome of a search.

    Attributes
    ----------
    matches
        The page of matches, in order.
    total
        Number of matches across all pages.
    included
        Resources added by ``_include``/``_revinclude``: no duplicates and none that
        is already in ``matches``; ordered by type then id.
    """

    matches: list[StoredResource]
    total: int
    included: list[StoredResource] = field(default_factory=list)
