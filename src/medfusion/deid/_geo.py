"""Safe Harbor geography: the first three ZIP digits, unless the area is too small."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["RESTRICTED_ZIP3", "zip3"]

# The 17 three-digit ZIP prefixes whose areas held 20,000 people or fewer in the 2000
# census (HHS guidance on Safe Harbor); they become 000.
RESTRICTED_ZIP3: Final = frozenset(
    {"036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884",
     "890", "893"}
)  # fmt: skip

_US = frozenset({"", "us", "usa", "united states", "united states of america"})
_ZIP = re.compile(r"^\s*(\d{3})\d{2}(?:-?\d{4})?\s*$")


def zip3(postal_code: str | None, country: str | None = None) -> str | None:
    """Generalise a postal code to Safe Harbor's three-digit ZIP.

    Parameters
    ----------
    postal_code
        The code as recorded.
    country
        The address's country; codes outside the US are not kept at all.

    Returns
    -------
    str or None
        The first three digits, ``"000"`` for a restricted prefix, or None when the code
        is not a US ZIP code (dropped).
    """
    if not postal_code or (country or "").strip().lower() not in _US:
        return None
    match = _ZIP.match(postal_code)
    if match is None:
        return None
    prefix = match.group(1)
    return "000" if prefix in RESTRICTED_ZIP3 else prefix
