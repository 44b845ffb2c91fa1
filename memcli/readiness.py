"""Is this database ready for memcli's jobs? (pgvector installed, memory schema migrated)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcli.errors import NotReadyError
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

REQUIRED_TABLES = names.REQUIRED_TABLES


# The required tables that are missing, in their order; one row, one array.
MISSING_TABLES_SQL = (
    "SELECT coalesce(array_agg(name ORDER BY ord), '{}') "
    "FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, ord) "
    "WHERE to_regclass('public.' || quote_ident(name)) IS NULL"
)


def require_migrated(conn: psycopg.Connection) -> None:
    """Raise NotReadyError (exit 4) unless the memory schema exists."""
    row = conn.execute(MISSING_TABLES_SQL, (list(REQUIRED_TABLES),)).fetchone()
    check_missing(list(row[0]) if row else [])


def check_missing(missing: list[str]) -> None:
    """NotReadyError naming the ``missing`` tables (the result of :data:`MISSING_TABLES_SQL`), if any."""
    if missing:
        raise NotReadyError(
            f"the memory schema is not migrated (missing: {', '.join(missing[:3])})",
            hint="run: memcli migrate",
        )
