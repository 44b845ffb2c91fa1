"""A legacy layout read from a database: the base every layout module builds on.

A layout lists the tables it imports (its streams, in order), the tables it only reads to enrich them
(related tables, optional), and turns a batch of rows into memory records. :class:`DatabaseSource` checks
the tables against the layout once, then serves the engine's ``Source`` protocol.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from memcli.imports.records import MemoryRecord, Rejection
from memcli.imports.source import SourceTable

if TYPE_CHECKING:
    import psycopg


class Layout:
    """One legacy layout. Subclasses set the class attributes and implement ``to_records``."""

    name: ClassVar[str]
    title: ClassVar[str]
    streams: ClassVar[tuple[SourceTable, ...]]  # imported, in this order
    related: ClassVar[tuple[SourceTable, ...]] = ()  # read to enrich the streams; optional
    mapping: ClassVar[dict[str, str]]  # stream (or related table) -> what it becomes, for --dry-run

    def to_records(
        self, source: DatabaseSource, stream: str, rows: list[dict[str, Any]]
    ) -> list[MemoryRecord | Rejection]:
        raise NotImplementedError

    def source_model(self, source: DatabaseSource) -> str | None:
        return None

    def settings(self, source: DatabaseSource) -> dict[str, Any]:
        return {}

    def dropped(self, source: DatabaseSource) -> dict[str, int]:
        return {}


class DatabaseSource:
    """A layout's tables in ``schema`` of the database behind ``conn`` (an autocommit connection)."""

    def __init__(
        self, layout: Layout, conn: psycopg.Connection, schema: str = "public", label: str = ""
    ) -> None:
        self.layout_impl = layout
        self.layout = layout.name
        self.conn = conn
        self.schema = schema
        database = conn.info.dbname
        self.name = f"{layout.name}:{label or database + '/' + schema}"
        self.tables = {t.name: t for t in (*layout.streams, *layout.related)}
        _load_vectors(conn)
        self.present: dict[str, set[str] | None] = {}
        for table in layout.streams:
            self.present[table.name] = table.check(conn, schema)
        for table in layout.related:
            self.present[table.name] = table.check(conn, schema, required=False)

    def has(self, table: str, column: str | None = None) -> bool:
        columns = self.present.get(table)
        return columns is not None and (column is None or column in columns)

    def streams(self) -> Sequence[str]:
        return [t.name for t in self.layout_impl.streams]

    def own_connection(self) -> None:
        """Read through a new connection, opened as the caller's was (in a forked reader process, whose copy
        of the caller's connection is the caller's to use)."""
        from memcli.db import reconnect

        self.conn = reconnect(self.conn, autocommit=True)
        _load_vectors(self.conn)

    def count(self, stream: str) -> int:
        return self.tables[stream].count(self.conn, self.schema)

    def batches(self, stream: str, batch_size: int) -> Iterator[list[Any]]:
        present = self.present[stream]
        assert present is not None
        return self.tables[stream].batches(self.conn, self.schema, present, batch_size)

    def to_records(self, stream: str, rows: list[Any]) -> list[MemoryRecord | Rejection]:
        return self.layout_impl.to_records(self, stream, rows)

    def source_model(self) -> str | None:
        return self.layout_impl.source_model(self)

    def settings(self) -> dict[str, Any]:
        return self.layout_impl.settings(self)

    def mapping(self) -> dict[str, str]:
        return {k: v for k, v in self.layout_impl.mapping.items() if k in self.tables and self.has(k)}

    def dropped(self) -> dict[str, int]:
        return self.layout_impl.dropped(self)

    def related_rows(
        self, table: str, match_column: str, values: Sequence[Any], order_by: str | None = None
    ) -> list[dict[str, Any]]:
        """Rows of a related table matching a batch (nothing when the table is absent)."""
        from memcli.imports.source import fetch_related

        present = self.present.get(table)
        if not present:
            return []
        columns = [c.name for c in self.tables[table].columns if c.name in present]
        return fetch_related(self.conn, self.schema, table, columns, match_column, values, order_by)

    def scalar(self, query: Any, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()
        return row[0] if row else None


def _load_vectors(conn: psycopg.Connection) -> None:
    """Read pgvector columns of the source as numpy arrays (a source without pgvector has none)."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is not None:
        register_vector_info(conn, info)
