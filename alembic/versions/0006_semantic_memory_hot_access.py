"""Recording a search's access in place: semantic_memory pages keep room for HOT updates.

Every search adds one to ``access_count`` and sets ``last_accessed_at`` on the rows it returns. Neither
column is indexed, so Postgres can update such a row "HOT" (heap-only: the new version on the same page, no
index touched) as long as the page has room for it. Packed pages (fillfactor 100, the default) have none,
and every access update then writes a new entry into each of the table's indexes, the HNSW graph among them:
more work than the search itself. With fillfactor 75, inserts leave a quarter of each page free, enough for
one more version of the largest row that stays on the page (Postgres moves a row's vector out of line, to
TOAST, past about 2 kB), and page pruning frees it again for the next update.

Existing pages are not rewritten here (that would lock the table): they gain room as rows are deleted and
vacuumed, or at once with ``VACUUM FULL semantic_memory`` in a maintenance window.

Revision ID: 0006_semantic_memory_hot_access
Revises: 0005_audit_erasure
Create Date: 2024-12-01 00:00:06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006_semantic_memory_hot_access"
down_revision: str | Sequence[str] | None = "0005_audit_erasure"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILLFACTOR = 75  # a quarter of each page kept free: room for one more version of a row of up to 2 kB


def upgrade() -> None:
    # A storage parameter change takes a brief SHARE UPDATE EXCLUSIVE lock and rewrites nothing.
    op.execute(f"ALTER TABLE semantic_memory SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE semantic_memory RESET (fillfactor)")
