"""``medfusion keys rotate``: a new data key, every body re-sealed under it, reads undisturbed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from medfusion.config import get_settings
from medfusion.errors import InvalidRequestError
from medfusion.services.database import open_repository
from medfusion.store.crypto import load_keyring
from medfusion.store.rotation import count_unsealed, reseal

__all__ = ["RotationReport", "rotate_keys"]


@dataclass
class RotationReport:
    """The outcome of one rotation."""

    active_key: str
    resealed: int
    sealed_plain: int
    reindexed: int
    retired: int
    seconds: float


def rotate_keys(
    url: str, *, retire: bool = False, progress: Callable[[int, int], None] | None = None
) -> RotationReport:
    """Add a new active key to the key file and re-seal every stored body under it.

    Parameters
    ----------
    url
        The database.
    retire
        Afterwards drop the old keys from the key file, once no row needs them.
        Processes still running with the old keyring pick the new one up within seconds
        (see :class:`medfusion.store.protection.Protection`); retire after they have.
    """
    settings = get_settings()
    if not settings.encrypt_at_rest:
        raise InvalidRequestError("encryption at rest is off (MEDFUSION_ENCRYPT_AT_REST=false)")
    if settings.encryption_key is not None:
        raise InvalidRequestError(
            "the keys come from MEDFUSION_ENCRYPTION_KEY; rotation works on the key file only"
        )
    started = time.perf_counter()
    key_file = settings.key_file
    rotated = load_keyring(secret=None, key_file=key_file).rotated()
    rotated.save(key_file)  # published first: readers learn the new key before any row uses it
    repo = open_repository(url)
    try:
        report = reseal(repo, progress=progress)
        retired = 0
        if retire:
            if count_unsealed(repo):  # a process still on the old key wrote meanwhile
                report_more = reseal(repo)
                report.resealed += report_more.resealed
            if count_unsealed(repo) == 0:
                retired = len(rotated.keys) - 1
                rotated.retire_others().save(key_file)
    finally:
        repo.close()
    return RotationReport(
        rotated.active,
        report.resealed,
        report.sealed_plain,
        report.reindexed,
        retired,
        time.perf_counter() - started,
    )
