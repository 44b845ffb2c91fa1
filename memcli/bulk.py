"""Bulk loading with COPY: the fast path for many rows, firing the table's triggers as INSERT does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def copy_rows(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    progress: Progress | None = None,
    stage: str | None = None,
    total: int = 0,
    every: int = 2000,
) -> int:
    """COPY ``rows`` into ``table`` (text format; JSON as text, vectors as numpy rows). Returns the count.

    COPY fires the table's triggers as INSERT does; it just skips the per-row statement overhead.
    """
    from psycopg import sql

    query = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    count = 0
    with conn.cursor() as cur, cur.copy(query) as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
            if progress is not None and count % every == 0:
                progress(stage or table, count, total)
    if progress is not None:
        progress(stage or table, count, total)
    return count
