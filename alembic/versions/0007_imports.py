"""Import bookkeeping: one row per import run, and the map from each source row to what it became.

- ``memory_imports``: one row per import (layout, source, status, options, counts). A rerun of an
  unfinished import of the same source continues that import rather than starting another.
- ``memory_import_keys``: (source, source row key, target table) -> the id of the row memcli wrote. Its
  primary key is what makes an import resumable: a source row already in the map is never written again;
  it is also exactly what ``memcli import rollback`` removes.

Both are operating tables: row-level security on, only their owner (memcli's jobs) reads or writes them.

Revision ID: 0007_imports
Revises: 0006_semantic_memory_hot_access
Create Date: 2024-12-01 00:00:06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007_imports"
down_revision: str | Sequence[str] | None = "0006_semantic_memory_hot_access"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE memory_imports (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            layout text NOT NULL,
            source_name text NOT NULL,
            status text NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            options jsonb,
            counts jsonb,
            CONSTRAINT ck_memory_imports_status
                CHECK (status IN ('running', 'completed', 'failed', 'rolled_back'))
        )
        """
    )
    op.execute("CREATE INDEX idx_memory_imports_source ON memory_imports (source_name, started_at DESC)")
    op.execute(
        """
        CREATE TABLE memory_import_keys (
            source_name text NOT NULL,
            source_key text NOT NULL,
            target_table text NOT NULL,
            target_id uuid NOT NULL,
            import_id uuid NOT NULL REFERENCES memory_imports (id) ON DELETE CASCADE,
            CONSTRAINT memory_import_keys_pkey PRIMARY KEY (source_name, source_key, target_table)
        )
        """
    )
    op.execute("CREATE INDEX idx_memory_import_keys_import ON memory_import_keys (import_id)")
    for table in ("memory_imports", "memory_import_keys"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("DROP TABLE memory_import_keys")
    op.execute("DROP TABLE memory_imports")
