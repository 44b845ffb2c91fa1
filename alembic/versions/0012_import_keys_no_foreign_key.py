"""The import key map without its foreign key to ``memory_imports``.

Every row an import writes into ``memory_import_keys`` fired the foreign key's check against
``memory_imports``: about a third of the server's work on the map, paid once per source row
(benchmarks/import_bench.py). The map's rows are written only by an import, in the transaction that holds
the import's own ``memory_imports`` row, and removed by its rollback; memcli never deletes a
``memory_imports`` row (a rollback marks it ``rolled_back``), so the check and its cascade guarded nothing
memcli does.

Downgrade puts the foreign key back. Key-map rows of an import whose ``memory_imports`` row was deleted by
hand meanwhile are removed first, as the constraint's ``ON DELETE CASCADE`` would have removed them.

Revision ID: 0012_import_keys_no_foreign_key
Revises: 0011_memory_key_index
Create Date: 2026-12-01 00:00:01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012_import_keys_no_foreign_key"
down_revision: str | Sequence[str] | None = "0011_memory_key_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen with this revision: the name Postgres gave the constraint of revision 0007.
CONSTRAINT = "memory_import_keys_import_id_fkey"


def upgrade() -> None:
    op.execute(f"ALTER TABLE memory_import_keys DROP CONSTRAINT {CONSTRAINT}")


def downgrade() -> None:
    op.execute(
        "DELETE FROM memory_import_keys k "
        "WHERE NOT EXISTS (SELECT 1 FROM memory_imports i WHERE i.id = k.import_id)"
    )
    op.execute(
        f"ALTER TABLE memory_import_keys ADD CONSTRAINT {CONSTRAINT} "
        "FOREIGN KEY (import_id) REFERENCES memory_imports (id) ON DELETE CASCADE"
    )
