"""The shipped migrations build exactly the schema the code declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medfusion.store.migrate import current_revision, head_revision, upgrade
from medfusion.store.repository import SqlRepository
from medfusion.store.tables import metadata


def test_migrated_schema_matches_the_tables(sql_repo: SqlRepository) -> None:
    engine = sql_repo.engine
    assert current_revision(engine) == head_revision()
    assert upgrade(engine) == head_revision()  # a second run is a no-op
    postgres = engine.dialect.name == "postgresql"

    def include(obj: object, name: str | None, kind: str, reflected: bool, other: object) -> bool:
        # The text_pattern_ops index is created on PostgreSQL only (``ddl_if``).
        return postgres or name != "ix_idx_string_prefix"

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include})
        differences = compare_metadata(context, metadata)
    assert differences == []
