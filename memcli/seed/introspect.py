"""What an application's tables look like: which exist and which columns they have.

memcli adopts databases it did not create, so readers build their SELECTs from the columns that exist
instead of assuming the document's layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def table_columns(conn: psycopg.Connection, table: str) -> dict[str, str] | None:
    """Column name -> data type of ``table`` as the search path finds it; None if there is no such table."""
    from psycopg import sql

    # to_regclass follows the search path (an app may keep its tables outside "public") and never raises
    # for a missing table; quote_ident keeps names such as "Live Dining Board" intact.
    row = conn.execute(
        """
        SELECT n.nspname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = to_regclass(%s)
        """,
        (sql.Identifier(table).as_string(conn),),
    ).fetchone()
    if row is None:
        return None
    rows = conn.execute(
        """
        SELECT column_name, data_type FROM information_schema.columns
        WHERE table_schema = %s AND table_name = %s
        ORDER BY ordinal_position
        """,
        (row[0], table),
    ).fetchall()
    return {name: data_type for name, data_type in rows}


def first_present(columns: dict[str, str], *candidates: str) -> str | None:
    """The first of ``candidates`` the table has (apps name the same thing differently)."""
    return next((name for name in candidates if name in columns), None)
