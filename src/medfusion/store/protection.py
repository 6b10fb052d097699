"""What the SQL store seals and blinds, and how queries are rewritten to match.

:class:`Protection` is the store's one place for encryption at rest: bodies go through
:meth:`Protection.seal` / :meth:`Protection.open`, index rows of identifying parameters
through :meth:`Protection.index`, and searches on those parameters through
:meth:`Protection.query`. ``Protection(None)`` stores plain JSON and plain index values.

Identifying parameters (names, identifiers, telecom, addresses of people) are indexed as
blind indexes, so the search semantics on them narrow:

- string, default mode (prefix): each normalised value is indexed under the HMAC of
  every prefix (up to :data:`MAX_PREFIX` characters), so ``name=joh`` still finds
  "Johnson", as an equality on one hash;
- string ``:exact`` and tokens (``system|code``, ``|code``, ``code``): equality on the
  HMAC of the value;
- ``:contains`` and ``_sort`` on these parameters are refused (400): they need the
  value itself.

``birthdate`` stays a numeric range in ``idx_date`` so that date prefixes (``ge``,
``lt``...) keep working; docs/security.md states this trade-off.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from medfusion.errors import UnsupportedError
from medfusion.fhir.search import Criterion, IndexEntries, SearchQuery, StringMatch, TokenMatch
from medfusion.store.crypto import Keyring

__all__ = ["IDENTIFYING", "MAX_PREFIX", "Protection"]

_PEOPLE = ("Patient", "Practitioner", "RelatedPerson", "Person")
_PARAMS = (
    "name", "family", "given", "phonetic", "identifier", "telecom", "phone", "email",
    "address", "address-city", "address-postalcode", "address-state", "address-country",
)  # fmt: skip
IDENTIFYING: frozenset[tuple[str, str]] = frozenset((t, p) for t in _PEOPLE for p in _PARAMS)
MAX_PREFIX = 40  # longer string-search prefixes compare on their first 40 characters
_RELOAD_SECONDS = 5.0
_TEXT_PREFIX = "enc1:"  # sealed text in a text column (the outbox): base64 after it


class Protection:
    """Encryption at rest for one store.

    Parameters
    ----------
    keyring
        The keys; None stores everything in the clear (benchmarks of the bare store).
    reload
        Reads the keyring again (from its file). Given, a body sealed under a key this
        process does not know yet, or a changed key file seen at most every few seconds
        when sealing, makes it pick up a rotation without a restart.
    """

    def __init__(self, keyring: Keyring | None, reload: Callable[[], Keyring] | None = None) -> None:
        self.keyring = keyring
        self._reload = reload
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Reload the keyring now (after ``keys rotate`` in another process)."""
        if self._reload is not None:
            with self._lock:
                self.keyring = self._reload()
                self._checked = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    # -- bodies -----------------------------------------------------------------------
    def seal(self, resource_type: str, id: str, version: int, body: bytes) -> bytes:
        """The bytes to store for a body (sealed when a keyring is set)."""
        return self._seal(body, f"{resource_type}/{id}/{version}".encode())

    def open(self, resource_type: str, id: str, version: int, stored: bytes) -> bytes:
        """The JSON body of stored bytes (plain rows pass through)."""
        return self._open(stored, f"{resource_type}/{id}/{version}".encode())

    def seal_text(self, context: str, text: str) -> str:
        """Text for a text column outside ``resource`` (outbox messages), sealed when on."""
        if self.keyring is None:
            return text
        return _TEXT_PREFIX + base64.b64encode(self._seal(text.encode(), context.encode())).decode()

    def open_text(self, context: str, stored: str) -> str:
        """The text :meth:`seal_text` stored (text written in the clear passes through)."""
        if self.keyring is None or not stored.startswith(_TEXT_PREFIX):
            return stored
        return self._open(base64.b64decode(stored[len(_TEXT_PREFIX) :]), context.encode()).decode()

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        if self.keyring is None:
            return data
        if self._reload is not None and time.monotonic() - self._checked > _RELOAD_SECONDS:
            self.refresh()  # seal under the newest active key after a rotation
        assert self.keyring is not None
        return self.keyring.seal(data, aad)

    def _open(self, stored: bytes, aad: bytes) -> bytes:
        keyring = self.keyring
        if keyring is None or not stored:
            return stored
        if not keyring.knows(stored) and self._reload is not None:
            self.refresh()  # sealed by a process that already rotated
            keyring = self.keyring
            assert keyring is not None
        return keyring.open(stored, aad)

    # -- index rows -------------------------------------------------------------------
    def index(self, resource_type: str, entries: IndexEntries) -> IndexEntries:
        """Index rows with the values of identifying parameters replaced by blind indexes."""
        keyring = self.keyring
        if keyring is None or resource_type not in _PEOPLE:
            return entries
        strings: list[tuple[str, str, str]] = []
        for param, value, exact in entries.strings:
            if (resource_type, param) not in IDENTIFYING:
                strings.append((param, value, exact))
                continue
            exact_hash = keyring.blind(f"e:{param}:{exact}")
            for end in range(1, min(len(value), MAX_PREFIX) + 1):
                strings.append((param, keyring.blind(f"p:{param}:{value[:end]}"), exact_hash))
        tokens = [
            (param, system, keyring.blind(f"t:{param}:{code}") if code is not None else None)
            if (resource_type, param) in IDENTIFYING
            else (param, system, code)
            for param, system, code in entries.tokens
        ]
        return replace(entries, strings=strings, tokens=tokens)

    # -- queries ----------------------------------------------------------------------
    def query(self, query: SearchQuery) -> SearchQuery:
        """The query with values on identifying parameters turned into blind indexes."""
        keyring = self.keyring
        if keyring is None or query.resource_type not in _PEOPLE:
            return query
        for key in query.sort:
            if (query.resource_type, key.name) in IDENTIFYING:
                raise UnsupportedError(
                    f"_sort={key.name} is not available: {key.name} values are stored as blind indexes"
                )
        criteria = tuple(
            self._criterion(keyring, query.resource_type, c)
            if (query.resource_type, c.name) in IDENTIFYING
            else c
            for c in query.criteria
        )
        return replace(query, criteria=criteria)

    @staticmethod
    def _criterion(keyring: Keyring, resource_type: str, criterion: Criterion) -> Criterion:
        values = []
        for value in criterion.values:
            if isinstance(value, StringMatch):
                if value.mode == "contains":
                    raise UnsupportedError(
                        f"{criterion.name}:contains is not available: "
                        f"{criterion.name} values are stored as blind indexes"
                    )
                if value.mode == "exact":
                    value = StringMatch(keyring.blind(f"e:{criterion.name}:{value.text}"), "exact")
                else:
                    prefix = value.text[:MAX_PREFIX]
                    value = StringMatch(keyring.blind(f"p:{criterion.name}:{prefix}"), "equal")
            elif isinstance(value, TokenMatch) and value.code is not None:
                value = replace(value, code=keyring.blind(f"t:{criterion.name}:{value.code}"))
            values.append(value)
        return replace(criterion, values=tuple(values))
