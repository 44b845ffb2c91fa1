"""The SQLAlchemy models and the migrations describe the same schema (Alembic autogenerate sees no change)."""

from __future__ import annotations

import warnings

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from memcli.migrations import make_engine
from memcli.schema.models import Base
from memcli.schema.names import CORE_TABLES, MEMORY_TABLES


def differences(dsn: str) -> list:
    engine = make_engine(dsn)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_models_match_the_migrated_schema(plain_db: str) -> None:
    # The models describe the plain layout (the partitioned one differs only in keys: docs/scaling.md).
    # Nothing excluded: every table (core, memory, operating, bookkeeping), column type, nullability,
    # server default, index, unique constraint, foreign key and comment is compared. Autogenerate does not
    # compare views, functions, triggers, policies or CHECK bodies: those have their own tests.
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what autogenerate cannot compare, it reports as a warning
        assert differences(plain_db) == []


def test_the_comparison_notices_a_difference(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_semantic_memory_vector")
        conn.execute("ALTER TABLE conversation_memory ALTER COLUMN importance_score SET DEFAULT 0.7")
    kinds = {diff[0][0] if isinstance(diff, list) else diff[0] for diff in differences(migrated_db)}
    assert "add_index" in kinds and "modify_default" in kinds


def test_models_name_every_table_and_check_constraint(migrated_db: str) -> None:
    assert set(CORE_TABLES) | set(MEMORY_TABLES) <= set(Base.metadata.tables)
    with psycopg.connect(migrated_db) as conn:
        checks = {
            row[0]
            for row in conn.execute(
                "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
                "WHERE n.nspname = 'public' AND contype = 'c'"
            )
        }
    modelled = {
        constraint.name
        for table in Base.metadata.tables.values()
        for constraint in table.constraints
        if constraint.__class__.__name__ == "CheckConstraint"
    }
    assert modelled == checks
