"""Reading a source: its tables checked against the layout, then read in key order, one batch at a time.

A layout names, for each table it reads, the columns it needs and the types it accepts (Postgres type names
as ``information_schema.columns.udt_name`` spells them; ``_float8`` is ``float8[]``). A table that is missing,
or a column that is missing or of another type, stops the import before anything is written (exit 2, naming
the column). Rows are read by keyset pagination on the table's key column, each batch its own short query, so
no long transaction is held on the source.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

TEXT = ("text", "varchar", "bpchar")
INTEGER = ("int2", "int4", "int8")
FLOAT = ("float4", "float8", "numeric")
TIMESTAMP = ("timestamp", "timestamptz")
UUID = ("uuid",)
JSON = ("jsonb", "json")


@dataclass(frozen=True)
class Column:
    name: str
    types: tuple[str, ...]
    required: bool = True


def _type_name(udt: str) -> str:
    return udt[1:] + "[]" if udt.startswith("_") else udt


@dataclass(frozen=True)
class SourceTable:
    """One table of a layout: the columns read from it, and the column rows are keyed and ordered by."""

    name: str
    key: str
    columns: tuple[Column, ...]

    def check(self, conn: psycopg.Connection, schema: str, *, required: bool = True) -> set[str] | None:
        """The names of the layout's columns the table has; None if the table is absent and optional.

        Raises ConfigError (exit 2) for an absent required table and a missing or mistyped column.
        """
        found = dict(
            conn.execute(
                """
                SELECT column_name, udt_name FROM information_schema.columns
                WHERE table_schema = %s AND table_name = %s
                """,
                (schema, self.name),
            ).fetchall()
        )
        if not found:
            if not required:
                return None
            raise ConfigError(
                f"source table {schema}.{self.name} not found",
                hint="check --from, --schema and the layout name (memcli import --help lists the layouts)",
            )
        present: set[str] = set()
        for column in self.columns:
            udt = found.get(column.name)
            if udt is None:
                if column.required:
                    raise ConfigError(
                        f"source table {schema}.{self.name} has no column {column.name!r} "
                        f"({' or '.join(_type_name(t) for t in column.types)})",
                        hint="the table does not match this layout; see docs/imports.md",
                    )
                continue
            if udt not in column.types:
                raise ConfigError(
                    f"source column {schema}.{self.name}.{column.name} is {_type_name(udt)}, expected "
                    f"{' or '.join(_type_name(t) for t in column.types)}",
                    hint="the table does not match this layout; see docs/imports.md",
                )
            present.add(column.name)
        return present

    def count(self, conn: psycopg.Connection, schema: str) -> int:
        from psycopg import sql

        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(self.name))
        ).fetchone()
        return int(row[0]) if row else 0

    def batches(
        self, conn: psycopg.Connection, schema: str, present: set[str], batch_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows as dicts (only the present columns), ``batch_size`` at a time, in key order."""
        from psycopg import sql
        from psycopg.rows import dict_row

        names = [c.name for c in self.columns if c.name in present]
        select = sql.SQL(", ").join(sql.Identifier(n) for n in names)
        table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(self.name))
        key = sql.Identifier(self.key)
        first = sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT %s").format(select, table, key)
        after = sql.SQL("SELECT {} FROM {} WHERE {} > %s ORDER BY {} LIMIT %s").format(
            select, table, key, key
        )
        last: Any = None
        while True:
            # binary results: arrays of floats (and pgvector's vectors, where its loaders are registered)
            # arrive as numbers, not as text to parse
            with conn.cursor(row_factory=dict_row, binary=True) as cur:
                if last is None:
                    rows = cur.execute(first, (batch_size,)).fetchall()
                else:
                    rows = cur.execute(after, (last, batch_size)).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][self.key]
            if len(rows) < batch_size:
                return


def fetch_related(
    conn: psycopg.Connection,
    schema: str,
    table: str,
    columns: Sequence[str],
    match_column: str,
    values: Sequence[Any],
    order_by: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of ``table`` whose ``match_column`` is one of ``values`` (entity mentions of a batch's messages,
    the logs of a batch's memories)."""
    from psycopg import sql
    from psycopg.rows import dict_row

    if not values:
        return []
    query = sql.SQL("SELECT {} FROM {}.{} WHERE {} = ANY(%s){}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        sql.Identifier(schema),
        sql.Identifier(table),
        sql.Identifier(match_column),
        sql.SQL(" ORDER BY {}").format(sql.Identifier(order_by)) if order_by else sql.SQL(""),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (list(values),)).fetchall()
