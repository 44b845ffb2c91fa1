"""The layout chosen at the first migration, and the way back on downgrade (both inside a migration).

At the first migration the tables are empty: each is rebuilt partitioned at once. A table that already has
rows is refused with a pointer to ``memcli partition convert``, which copies them online. A downgrade of the
partitioned layout copies the rows back into plain tables (under the migration's locks: plan for it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memcli.partitions.layout import SPECS, PartitionSpec, is_partitioned
from memcli.partitions.twin import build_twin, swap
from memcli.partitions.upkeep import required_months

if TYPE_CHECKING:
    import psycopg


class LayoutRefused(RuntimeError):
    """The partitioned layout can be chosen at the first migration only."""


def copy_columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The columns an INSERT ... SELECT copies (generated columns are computed again)."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (table,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def triggers_statement(table: str, enabled: bool) -> Any:
    """Turn the table's own (not internal) triggers off while rows are copied in, and on again."""
    from psycopg import sql

    return sql.SQL("ALTER TABLE {} {} TRIGGER USER").format(
        sql.Identifier(table), sql.SQL("ENABLE" if enabled else "DISABLE")
    )


def set_triggers(conn: psycopg.Connection, table: str, enabled: bool) -> None:
    conn.execute(triggers_statement(table, enabled))


def _lock(conn: psycopg.Connection, table: str) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))


def partition_new_tables(conn: psycopg.Connection) -> list[str]:
    """Rebuild the empty tables of ``SPECS`` partitioned; LayoutRefused if one has rows."""
    from psycopg import sql

    done = []
    for spec in SPECS:
        if is_partitioned(conn, spec.table):
            continue
        row = conn.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(spec.table))
        ).fetchone()
        if row and row[0]:
            raise LayoutRefused(
                f"{spec.table} has rows: the partitioned layout is chosen at the first migration; convert "
                f"this database online with: memcli partition convert"
            )
        _lock(conn, spec.table)
        build_twin(conn, spec, partitioned=True, months=required_months(conn, spec))
        swap(conn, spec)
        done.append(spec.table)
    return done


def unpartition(conn: psycopg.Connection, spec: PartitionSpec) -> None:
    """Copy a partitioned table into a plain twin and swap it in (in the caller's transaction)."""
    from psycopg import sql

    _lock(conn, spec.table)
    build_twin(conn, spec, partitioned=False)
    columns = sql.SQL(", ").join(map(sql.Identifier, copy_columns(conn, spec.table)))
    set_triggers(conn, spec.twin, False)
    conn.execute(
        sql.SQL("INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {}").format(
            sql.Identifier(spec.twin), columns, columns, sql.Identifier(spec.table)
        )
    )
    set_triggers(conn, spec.twin, True)
    swap(conn, spec)


def unpartition_tables(conn: psycopg.Connection) -> list[str]:
    done = []
    for spec in SPECS:
        if is_partitioned(conn, spec.table):
            unpartition(conn, spec)
            done.append(spec.table)
    return done
