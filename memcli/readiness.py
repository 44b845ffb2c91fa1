"""Is this database ready for memcli's jobs? (pgvector installed, memory schema migrated)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcli.errors import NotReadyError
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

REQUIRED_TABLES = names.REQUIRED_TABLES


def require_migrated(conn: psycopg.Connection) -> None:
    """Raise NotReadyError (exit 4) unless the memory schema exists."""
    row = conn.execute(
        "SELECT coalesce(array_agg(name ORDER BY ord), '{}') "
        "FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, ord) "
        "WHERE to_regclass('public.' || quote_ident(name)) IS NULL",
        (list(REQUIRED_TABLES),),
    ).fetchone()
    missing: list[str] = list(row[0]) if row else []
    if missing:
        raise NotReadyError(
            f"the memory schema is not migrated (missing: {', '.join(missing[:3])})",
            hint="run: memcli migrate",
        )
