"""The one typed settings object, read from ``MEDFUSION_*`` environment variables.

Nothing else in medfusion reads the environment. Code asks :func:`get_settings` for the
cached instance; tests and runtime modes switch values with :func:`override_settings`,
which restores the previous settings on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "override_settings"]


class Settings(BaseSettings):
    """Platform settings.

    Attributes
    ----------
    database_url
        SQLAlchemy URL of the record store. SQLite by default; PostgreSQL as
        ``postgresql+psycopg://user:pass@host/db``.
    data_dir
        Folder of the shared public data sets (read-only).
    max_body_bytes
        Largest accepted request body; bigger ones get 413.
    default_page_size, max_page_size
        ``_count`` default and cap for searches and history.
    models_dir
        Folder of the model registry (trained models, their cards and reports).
    base_url
        Public base URL used in ``Location`` headers and Bundle links; when empty the
        request's own URL is used.
    workers
        Server processes ``medfusion serve`` starts (one per core is the usual choice).
    import_workers
        Processes that validate files ahead of ``medfusion import`` while it writes:
        ``-1`` (default) one per core beyond the first, ``0`` none (validate inline).
    sqlite_mmap_mib
        SQLite only: how much of the database file each connection reads through a memory
        map (``PRAGMA mmap_size``) instead of ``read`` calls; ``0`` turns it off.
    max_future_appointments
        Booked future appointments one patient may hold; one more answers 422 (keeps bots
        from reserving every slot).
    hold_minutes
        How long ``$hold`` keeps slots for the holder.
    encrypt_at_rest
        Seal resource bodies with AES-256-GCM and store identifying search values as
        blind indexes (on by default; off only for benchmarks of the bare store).
    encryption_key
        Base64 of a 32-byte secret to derive the keys from; when empty the keyring is
        ``key_file``, created with mode 0600 on first use.
    key_file
        The keyring file (data keys, old ones kept for reading, and the index key).
    noshow_grace_minutes
        Minutes after an appointment's start without check-in before it is marked ``noshow``.
    reminder_offsets_hours
        How long before an appointment its reminders go out (JSON list in the environment).
    reminders_in_serve
        Run the reminder loop as a background task of ``medfusion serve``.
    reminder_interval_seconds
        Pause between two ticks of the reminder loop.
    notifier
        ``log`` (messages go to the log; the demo) or ``smtp``.
    smtp_host, smtp_port, smtp_sender, smtp_starttls, smtp_username, smtp_password
        The SMTP server email goes through, the ``From`` address and optional login.
    staff_email
        Where staff notices go (patient self-bookings and cancellations).
    outbox_max_attempts
        Tries before a message is marked ``failed``.
    outbox_backoff_seconds
        Wait before the first retry; doubled after each further failure.
    outbox_lease_seconds
        How long a sender may take over one message before it counts as interrupted.
    waitlist_offer_minutes
        How long a waitlist offer holds its slot for the patient offered it.
    deid_key
        Secret for de-identified exports (pseudonymous ids, per-patient date shifts); at
        least 16 characters. When empty, ``deid_key_file`` is used.
    deid_key_file
        File holding that secret, created with mode 0600 (32 random bytes, hex) on first
        use; a file readable by group or others is refused.
    bench_bare_file
        Benchmarks only: a file whose bytes ``GET /_bare`` serves, the ceiling that
        read-by-id is measured against.
    auth_enabled
        Require a bearer token on every route that touches patient data (secure by
        default; only tests and local experiments turn it off).
    audit_enabled
        Record every request that touches patient data as an AuditEvent.
    secret_key
        Key that signs access tokens and keys the audit chain; when empty it is read from
        ``secret_key_file``, which is created with mode 0600 at first start.
    token_issuer, token_audience
        ``iss`` and ``aud`` of issued tokens; tokens with others are refused.
    access_token_seconds, refresh_token_seconds
        Lifetimes of access tokens (short) and of rotating refresh tokens.
    break_glass_seconds
        How long a break-glass token stays valid.
    auth_rate_limit, auth_rate_window_seconds
        Requests to ``/auth/*`` one client address may make per window; more get 429.
    audit_checkpoint_file
        Where the keyed audit checkpoint (chain head and row count) is written, outside
        the database.
    audit_flush_rows, audit_flush_seconds
        Audit rows of reads are buffered and written in batches of this many rows, or
        after this many seconds, whichever comes first (writes are audited at once).
    """

    model_config = SettingsConfigDict(env_prefix="MEDFUSION_", extra="ignore")

    database_url: str = "sqlite:///./.medfusion/medfusion.db"
    data_dir: Path = Path("../shared/data")
    models_dir: Path = Path(".medfusion/models")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    default_page_size: int = Field(default=20, gt=0)
    max_page_size: int = Field(default=1000, gt=0)
    base_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    workers: int = Field(default=1, gt=0, le=64)
    import_workers: int = Field(default=-1, ge=-1, le=64)
    sqlite_mmap_mib: int = Field(default=4096, ge=0)
    max_future_appointments: int = Field(default=5, gt=0)
    hold_minutes: int = Field(default=5, gt=0, le=60)
    encrypt_at_rest: bool = True
    encryption_key: SecretStr | None = None
    key_file: Path = Path(".medfusion/keys.json")
    noshow_grace_minutes: int = Field(default=15, ge=0)
    reminder_offsets_hours: list[float] = Field(default_factory=lambda: [48.0, 2.0])
    reminders_in_serve: bool = True
    reminder_interval_seconds: float = Field(default=30.0, gt=0)
    notifier: Literal["log", "smtp"] = "log"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_sender: str = "medfusion@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    staff_email: str = "frontdesk@localhost"
    outbox_max_attempts: int = Field(default=5, gt=0)
    outbox_backoff_seconds: float = Field(default=30.0, gt=0)
    outbox_lease_seconds: float = Field(default=120.0, gt=0)
    waitlist_offer_minutes: int = Field(default=15, gt=0, le=60)
    deid_key: SecretStr | None = None
    deid_key_file: Path = Path(".medfusion/deid.key")
    bench_bare_file: Path | None = None
    auth_enabled: bool = True
    audit_enabled: bool = True
    secret_key: SecretStr | None = None
    secret_key_file: Path = Path(".medfusion/secret.key")
    token_issuer: str = "medfusion"
    token_audience: str = "medfusion-api"
    access_token_seconds: int = Field(default=900, gt=0, le=86400)
    refresh_token_seconds: int = Field(default=8 * 3600, gt=0)
    break_glass_seconds: int = Field(default=1800, gt=0, le=86400)
    auth_rate_limit: int = Field(default=30, gt=0)
    auth_rate_window_seconds: int = Field(default=60, gt=0)
    audit_checkpoint_file: Path = Path(".medfusion/audit.checkpoint")
    audit_flush_rows: int = Field(default=200, gt=0)
    audit_flush_seconds: float = Field(default=1.0, gt=0)


@lru_cache(maxsize=1)
def _from_environment() -> Settings:
    return Settings()


_overrides: list[Settings] = []


def get_settings() -> Settings:
    """Return the settings in force: the innermost override, else the cached environment."""
    return _overrides[-1] if _overrides else _from_environment()


@contextmanager
def override_settings(**changes: Any) -> Iterator[Settings]:
    """Temporarily replace settings fields; the previous values come back on exit.

    Parameters
    ----------
    **changes
        Field names and their temporary values.

    Yields
    ------
    Settings
        The settings in force inside the block.
    """
    updated = get_settings().model_copy(update=changes)
    _overrides.append(updated)
    try:
        yield updated
    finally:
        _overrides.remove(updated)
