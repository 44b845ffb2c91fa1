"""The vectors' type: ``vector`` (4-byte floats) or ``halfvec`` (2-byte floats), recorded as a setting.

``memcli migrate --vector-type halfvec`` (or ``[embedding] vector_type`` in memcli.toml) gives a new database
halfvec vectors: half the table and index, the same recall on all-MiniLM-L6-v2 (docs/vector-index.md).
The column's type is changed here only while ``semantic_memory`` is empty (a new database; nothing to
rewrite); a database with memories switches online with ``memcli vectors convert``, which memcli migrate
names when asked for another type than the stored one. The type in force is recorded as the setting
``embedding.vector_type`` (the column itself stays the source: search reads its type from the catalog).

Downgrade gives a halfvec column back its ``vector`` type (a rewrite of the table: run it on a quiet
database) and removes the setting.

Revision ID: 0009_vector_type
Revises: 0008_vector_index_parameters
Create Date: 2026-11-30 00:00:08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009_vector_type"
down_revision: str | Sequence[str] | None = "0008_vector_index_parameters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen with this revision (memcli.schema.names owns the current values).
INDEX = "idx_semantic_memory_vector"
M, EF_CONSTRUCTION = 24, 128
OPCLASSES = {"vector": "vector_cosine_ops", "halfvec": "halfvec_cosine_ops"}
SETTING = "embedding.vector_type"
DESCRIPTION = "type of semantic_memory.embedding_vector: vector or halfvec (memcli vectors convert)"


def _requested() -> str:
    from alembic import context

    value = context.config.attributes.get("memcli.vector_type") or "vector"
    if value not in OPCLASSES:
        raise ValueError(f"vector type must be one of {', '.join(OPCLASSES)}, got {value!r}")
    return str(value)


def _retype(kind: str, dimension: str) -> None:
    """Give the column type ``kind`` and rebuild its index with the matching operator class."""
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(
        f"ALTER TABLE semantic_memory ALTER COLUMN embedding_vector TYPE {kind}{dimension} "
        f"USING embedding_vector::{kind}{dimension}"
    )
    op.execute(
        f"CREATE INDEX {INDEX} ON semantic_memory USING hnsw (embedding_vector {OPCLASSES[kind]}) "
        f"WITH (m = {M}, ef_construction = {EF_CONSTRUCTION})"
    )


def _record(kind: str) -> None:
    op.execute(
        sa.text(
            "INSERT INTO memory_settings (key, value, description) "
            "VALUES (:key, to_jsonb(CAST(:kind AS text)), :description) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"
        ).bindparams(key=SETTING, kind=kind, description=DESCRIPTION)
    )


def _forget() -> None:
    op.execute(sa.text("DELETE FROM memory_settings WHERE key = :key").bindparams(key=SETTING))


def _column() -> tuple[str, str]:
    """(type name, "(dimension)" or "") of the column."""
    row = (
        op.get_bind()
        .exec_driver_sql(
            "SELECT t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = 'semantic_memory'::regclass AND a.attname = 'embedding_vector' "
            "AND NOT a.attisdropped"
        )
        .one()
    )
    return str(row[0]), f"({int(row[1])})" if row[1] and row[1] > 0 else ""


def upgrade() -> None:
    from alembic import context

    kind = _requested()
    if context.is_offline_mode():  # a script for a new database
        if kind != "vector":
            dimension = context.config.attributes.get("memcli.embedding_dim")
            _retype(kind, f"({int(dimension)})" if dimension else "")
        _record(kind)
        return
    current, dimension = _column()
    if kind != current:
        empty = op.get_bind().exec_driver_sql("SELECT NOT EXISTS (SELECT 1 FROM semantic_memory)").scalar()
        if empty:
            _retype(kind, dimension)
            current = kind
        # else: memcli migrate refused before running (memcli vectors convert switches a full table online)
    _record(current)


def downgrade() -> None:
    from alembic import context

    if context.is_offline_mode():
        _forget()
        return
    current, dimension = _column()
    if current != "vector":
        _retype("vector", dimension)
    _forget()
