"""A user's (or a session's) rows in every table that can hold them, as JSON Lines, streamed.

The lines, in order: one ``{"export": {...}}`` header (what, when, which tables), then one
``{"table": NAME, "row": {...}}`` per row, then one ``{"summary": {...}}`` with the rows per table. Rows are
serialised by Postgres (``row_to_json``) and streamed with ``COPY ... TO STDOUT``: nothing is held in
memory and throughput stays close to a plain COPY of the same rows. All tables are read in one REPEATABLE READ
snapshot, so the export is consistent even while the application writes.

Embedding vectors are left out unless asked for (they are derived from the text, and large); the
full-text column never goes out. Every export is audited (operation ``export``, counts per table).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.people import audit
from memcli.people.scope import (
    AUDIT_LOG,
    DATA_TABLES,
    VECTOR_COLUMNS,
    Subject,
    filter_params,
    row_filters,
    subject_sessions,
)

if TYPE_CHECKING:
    import psycopg

FORMAT = "memcli-export/1"
# COPY in CSV format with a quote character JSON text never contains raw (JSON escapes control characters):
# a single column of JSON comes out byte for byte, one row per line, with no quoting or escaping added.
_COPY = "COPY ({query}) TO STDOUT (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"


@dataclass
class ExportResult:
    subject_kind: str
    tables: dict[str, int] = field(default_factory=dict)  # rows written per table
    sessions: int = 0
    bytes: int = 0
    with_vectors: bool = False
    visibility: str = "all"  # "rls": row-level security limited what this role could read
    duration_seconds: float = 0.0
    rows_per_second: float | None = None

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


def row_query(conn: psycopg.Connection, table_name: str, link_filter: str, *, with_vectors: bool) -> Any:
    """``SELECT json_text FROM table WHERE ...`` for one table (parameters of ``scope.filter_params``).

    ``row_to_json`` of a sub-select naming the columns (vectors left out unless asked for), wrapped by
    plain text concatenation: cheaper per row than building ``jsonb`` objects.
    """
    from psycopg import sql

    dropped = {
        c for c in VECTOR_COLUMNS.get(table_name, ()) if not (with_vectors and c == "embedding_vector")
    }
    columns = [
        name
        for (name,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            (table_name,),
        ).fetchall()
        if name not in dropped
    ]
    prefix = json.dumps({"table": table_name})[:-1] + ', "row": '
    return sql.SQL(
        "SELECT {prefix} || row_to_json(x)::text || '}}' FROM "
        "(SELECT {columns} FROM {table} t WHERE {where}) x"
    ).format(
        prefix=sql.Literal(prefix),
        columns=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns),
        table=sql.Identifier(table_name),
        where=sql.SQL(link_filter),
    )


def _check_auditable(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT has_table_privilege(%s, 'INSERT')", (AUDIT_LOG,)).fetchone()
    if not row or not row[0]:
        raise ConfigError(
            f"this database role may not write the audit trail ({AUDIT_LOG}); nothing was exported",
            hint=f"GRANT INSERT ON {AUDIT_LOG} TO the role",
        )


def export(
    conn: psycopg.Connection,
    subject: Subject,
    out: IO[bytes],
    *,
    with_vectors: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> ExportResult:
    """Write the subject's rows to ``out`` as JSON Lines; returns the counts. Audited as ``export``."""
    from psycopg import sql

    from memcli.readiness import require_migrated

    started = time.perf_counter()
    result = ExportResult(subject_kind=subject.kind, with_vectors=with_vectors)
    require_migrated(conn)
    _check_auditable(conn)
    conn.commit()
    previous = conn.isolation_level
    from psycopg import IsolationLevel

    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            sessions = subject_sessions(conn, subject)
            result.sessions = len(sessions)
            params = filter_params(subject, sessions)
            # (table, clause) per disjoint part of the subject's rows, each part served by one index
            tables = [(t.name, w) for t in DATA_TABLES for w in row_filters(t, subject)]
            total = None
            if progress:
                total = 0
                for name, where in tables:
                    row = conn.execute(
                        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
                            sql.Identifier(name), sql.SQL(where)
                        ),
                        params,
                    ).fetchone()
                    total += int(row[0]) if row else 0
                progress(0, total)
            visible = conn.execute(
                "SELECT bool_or(row_security_active(to_regclass(n))) FROM unnest(%s::text[]) AS n",
                ([name for name, _ in tables],),
            ).fetchone()
            result.visibility = "rls" if visible and visible[0] else "all"
            header = {
                "export": {
                    "format": FORMAT,
                    "subject": subject.kind,
                    "id": subject.value,
                    "exported_at": datetime.now(UTC).isoformat(),
                    "tables": list(dict.fromkeys(name for name, _ in tables)),
                    "with_vectors": with_vectors,
                    "visibility": result.visibility,
                }
            }
            result.bytes += _write(out, json.dumps(header).encode() + b"\n")
            done = 0
            for name, where in tables:
                query = row_query(conn, name, where, with_vectors=with_vectors)
                statement = sql.SQL(_COPY).format(query=query)
                count = 0
                with conn.cursor().copy(statement, params) as copy:
                    for chunk in copy:
                        data = bytes(chunk)
                        lines = data.count(b"\n")
                        count += lines
                        result.bytes += _write(out, data)
                        if progress and lines:
                            done += lines
                            progress(done, total)
                result.tables[name] = result.tables.get(name, 0) + count
    finally:
        conn.isolation_level = previous
    elapsed = time.perf_counter() - started
    result.duration_seconds = elapsed
    result.rows_per_second = round(result.rows / elapsed, 1) if result.rows and elapsed > 0 else None
    summary = {"summary": {"rows": result.rows, "tables": result.tables, "sessions": result.sessions}}
    result.bytes += _write(out, json.dumps(summary).encode() + b"\n")
    out.flush()
    with conn.transaction():
        audit.record(conn, "export", target=subject.kind, user_id=subject.user_id, counts=result.tables)
    return result


def _write(out: IO[bytes], data: bytes) -> int:
    out.write(data)
    return len(data)
