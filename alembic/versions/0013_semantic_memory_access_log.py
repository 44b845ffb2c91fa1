"""An append-only log for searches' access records while a vector index is built concurrently.

A search counts the rows it returns as read (``access_count``, ``last_accessed_at``) by updating them in
place, normally heap-only. ``CREATE INDEX CONCURRENTLY`` holds one snapshot for its whole build, so the
versions those updates leave behind cannot be pruned meanwhile: pages fill, the updates stop being
heap-only, each then inserts into every index of ``semantic_memory`` (the HNSW one included) and the
searches slow down the longer the build runs. While memcli builds such an index it sets the setting
``search.access_deferred``; searches then append ``(memory_id, accessed_at)`` here instead, and memcli
folds the rows into ``semantic_memory`` once the build is over (:mod:`memcli.access`).

No index and no foreign key: an append is one heap insertion. Rows of a memory deleted meanwhile are dropped
by the fold.

Revision ID: 0013_semantic_memory_access_log
Revises: 0012_import_keys_no_foreign_key
Create Date: 2026-12-01 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013_semantic_memory_access_log"
down_revision: str | Sequence[str] | None = "0012_import_keys_no_foreign_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE semantic_memory_access (
            memory_id uuid NOT NULL,
            accessed_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "COMMENT ON TABLE semantic_memory_access IS 'searches'' access records while a vector index is "
        "built concurrently; folded into semantic_memory.access_count / last_accessed_at afterwards'"
    )


def downgrade() -> None:
    # Access recorded and not folded yet is folded first: downgrading loses no count. No search appends
    # once the flag is gone and the log is locked (one waiting meanwhile fails when the table goes).
    op.execute("DELETE FROM memory_settings WHERE key = 'search.access_deferred'")
    op.execute("LOCK TABLE semantic_memory_access IN ACCESS EXCLUSIVE MODE")
    op.execute(
        """
        UPDATE semantic_memory m
           SET access_count = coalesce(m.access_count, 0) + a.n,
               last_accessed_at = greatest(m.last_accessed_at, a.last)
          FROM (SELECT memory_id, count(*) AS n, max(accessed_at) AS last
                  FROM semantic_memory_access GROUP BY memory_id) AS a
         WHERE m.id = a.memory_id
        """
    )
    op.execute("DROP TABLE semantic_memory_access")
