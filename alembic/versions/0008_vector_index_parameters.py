"""The vector index built for scale: HNSW with m = 24, ef_construction = 128.

pgvector's defaults (m = 16, ef_construction = 64), which revision 0002 used, stall near recall@10 0.85 at a
million clustered vectors whatever ``ef_search``; 24 / 128 keep it above 0.95 (benchmarks/vector_bench.py).
The index is rebuilt here only while ``semantic_memory`` is small (a new database): on a large table the
rebuild takes minutes to hours and belongs to ``memcli index rebuild --m 24 --ef-construction 128``, which
builds online with its memory sized to the graph; ``memcli tune`` and ``memcli health`` say when it is due.

Revision ID: 0008_vector_index_parameters
Revises: 0007_imports
Create Date: 2026-11-30 00:00:07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008_vector_index_parameters"
down_revision: str | Sequence[str] | None = "0007_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen with this revision (memcli.schema.names owns the current values).
INDEX = "idx_semantic_memory_vector"
M, EF_CONSTRUCTION = 24, 128
SMALL_TABLE_ROWS = 10_000  # rebuilt in place below this (seconds); above, left to memcli index rebuild


def _rebuild(with_clause: str) -> None:
    from alembic import context

    if context.is_offline_mode():
        # No table to look at: the script rebuilds, as for a new database. On a large table, leave this
        # statement out and rebuild online: memcli index rebuild --m 24 --ef-construction 128.
        _create(with_clause)
        return
    bind = op.get_bind()
    rows = bind.exec_driver_sql(
        "SELECT count(*) FROM (SELECT 1 FROM semantic_memory LIMIT %s) s", (SMALL_TABLE_ROWS,)
    ).scalar()
    method = bind.exec_driver_sql(
        "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.oid = to_regclass(%s)",
        (INDEX,),
    ).scalar()
    if (rows or 0) >= SMALL_TABLE_ROWS or method not in (None, "hnsw"):
        return  # a large table, or an index the operator chose (ivfflat): not rebuilt here
    _create(with_clause)


def _create(with_clause: str) -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(
        f"CREATE INDEX {INDEX} ON semantic_memory "
        f"USING hnsw (embedding_vector vector_cosine_ops){with_clause}"
    )


def upgrade() -> None:
    _rebuild(f" WITH (m = {M}, ef_construction = {EF_CONSTRUCTION})")


def downgrade() -> None:
    _rebuild("")
