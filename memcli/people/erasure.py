"""Forgetting a user or a session, proving it, and leaving a receipt.

An erasure:
1. takes the jobs' advisory lock ``erasure`` (one erasure at a time; another run exits 75) and logs itself
   in ``system_maintenance_log`` like every job;
2. finds or starts its receipt: a ``running`` receipt whose salted digest matches the subject is an earlier,
   interrupted erasure of the same subject, and is resumed with the scope it recorded; otherwise a new
   receipt records the subject's sessions in ``memcli_erasure_scope`` before anything is deleted;
3. deletes the subject's rows table by table (``scope.ERASE_ORDER``) in bounded batches, each its own
   transaction under the jobs' timeouts, adding the batch's count to the receipt in the same transaction;
4. replaces the user id in their audit rows by the digest;
5. **proves** it: counts the subject's rows in every table of ``scope.DATA_TABLES`` and the audit trail; any
   row left makes the erasure fail (ErasureIncomplete, exit 1) with the receipt kept ``running`` so the next
   run resumes; all zero completes the receipt, writes the proof into it and drops the scope rows.

The receipt holds no personal data: the subject only as ``sha256(salt:subject)`` with a random salt, the
role and operating-system user that ran it, times, counts per table and the proof.

A killed run leaves committed batches done and counted, the receipt ``running`` and its scope: running the
same command again resumes and ends with the proof. Under row-level security the proof can only see what the
role may see; the result says so (``visibility``).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memcli import access
from memcli.errors import MemcliError
from memcli.jobs import common, interrupts
from memcli.jobs.locks import check_direct_connection, job_lock
from memcli.jobs.runlog import FAILED, SUCCEEDED, RunLog
from memcli.people import audit
from memcli.people.scope import (
    AUDIT_LOG,
    DATA_TABLES,
    ERASE_ORDER,
    ERASURE_RECEIPTS,
    ERASURE_SCOPE,
    TABLES_BY_NAME,
    Subject,
    filter_params,
    row_filters,
    subject_sessions,
)
from memcli.schema.names import ERASURE_BATCH_SIZE, MEMORY_KEYS, SEMANTIC_MEMORY

if TYPE_CHECKING:
    import psycopg

LOCK = "erasure"
DEFAULT_BATCH_SIZE = ERASURE_BATCH_SIZE


class ErasureIncomplete(MemcliError):
    """Rows of the subject are still there after the erasure: the proof failed (exit 1)."""


@dataclass
class Receipt:
    id: uuid.UUID
    subject_kind: str
    subject_digest: str
    salt: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    db_role: str
    os_user: str | None
    erased: dict[str, int]
    proof: dict[str, Any] | None


@dataclass
class ErasureResult:
    subject_kind: str
    dry_run: bool
    found: bool = False  # the subject had any rows at all
    sessions: int = 0  # sessions in scope
    erased: dict[str, int] = field(default_factory=dict)  # dry run: what would go
    audit_rows_pseudonymised: int = 0
    remaining: dict[str, int] = field(default_factory=dict)  # the proof: rows left per table
    proven: bool = False
    visibility: str = "all"  # "all", or "rls": row-level security limited what the proof could see
    resumed: bool = False  # an interrupted erasure of the same subject was finished
    receipt_id: uuid.UUID | None = None
    batches: int = 0
    longest_batch_ms: float = 0.0
    duration_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(self.erased.values())


def _table_sql(table: str, where: str, select: str) -> Any:
    from psycopg import sql

    return sql.SQL("SELECT {select} FROM {table} WHERE {where}").format(
        select=sql.SQL(select), table=sql.Identifier(table), where=sql.SQL(where)
    )


def count_rows(
    conn: psycopg.Connection, subject: Subject, sessions: list[str], *, audit_rows: bool = True
) -> dict[str, int]:
    """Rows of the subject per data table (and, for a user with ``audit_rows``, audit rows naming them)."""
    params = filter_params(subject, sessions)
    counts: dict[str, int] = {}
    for table in DATA_TABLES:
        parts = row_filters(table, subject)
        if not parts:
            continue
        counts[table.name] = 0
        for where in parts:
            row = conn.execute(_table_sql(table.name, where, "count(*)"), params).fetchone()
            counts[table.name] += int(row[0]) if row else 0
    if subject.kind == "user" and audit_rows:
        row = conn.execute(_table_sql(AUDIT_LOG, "user_id = %(u)s", "count(*)"), params).fetchone()
        counts[AUDIT_LOG] = int(row[0]) if row else 0
    return counts


def _visibility(conn: psycopg.Connection) -> str:
    names = [t.name for t in DATA_TABLES] + [AUDIT_LOG]
    row = conn.execute(
        "SELECT bool_or(row_security_active(to_regclass(n))) FROM unnest(%s::text[]) AS n", (names,)
    ).fetchone()
    return "rls" if row and row[0] else "all"


def _find_running(conn: psycopg.Connection, subject: Subject) -> Receipt | None:
    rows = conn.execute(
        f"SELECT * FROM {ERASURE_RECEIPTS} WHERE status = 'running' AND subject_kind = %s",  # noqa: S608
        (subject.kind,),
    )
    names = [c.name for c in rows.description or ()]
    for values in rows.fetchall():
        receipt = Receipt(**dict(zip(names, values, strict=True)))
        if audit.digest(receipt.salt, subject.value) == receipt.subject_digest:
            return receipt
    return None


def _start_receipt(conn: psycopg.Connection, subject: Subject, sessions: list[str]) -> uuid.UUID:
    """A new ``running`` receipt and its scope, committed together before anything is deleted."""
    salt = secrets.token_hex(16)
    with conn.transaction():
        row = conn.execute(
            f"""
            INSERT INTO {ERASURE_RECEIPTS} (subject_kind, subject_digest, salt, os_user)
            VALUES (%s, %s, %s, %s) RETURNING id
            """,  # noqa: S608 - a constant table name
            (subject.kind, audit.digest(salt, subject.value), salt, audit.os_user()),
        ).fetchone()
        assert row is not None
        conn.execute(
            f"INSERT INTO {ERASURE_SCOPE} (receipt_id, session_id) SELECT %s, unnest(%s::text[])",
            (row[0], sessions),
        )
    return row[0]


def _scope(conn: psycopg.Connection, receipt_id: uuid.UUID) -> list[str]:
    rows = conn.execute(
        f"SELECT session_id FROM {ERASURE_SCOPE} WHERE receipt_id = %s ORDER BY 1",  # noqa: S608
        (receipt_id,),
    ).fetchall()
    return [r[0] for r in rows]


_DELETE = """
WITH gone AS (
    DELETE FROM {table} WHERE {key} = ANY(ARRAY(
        SELECT {key} FROM {table} WHERE {where} LIMIT %(limit)s FOR UPDATE
    ))
    RETURNING {key}
){also}
SELECT count(*) FROM gone
"""


def _erase_table(
    conn: psycopg.Connection,
    table_name: str,
    subject: Subject,
    sessions: list[str],
    receipt_id: uuid.UUID,
    size: int,
    timeouts: common.Timeouts,
    result: ErasureResult,
    progress: common.ProgressCallback | None,
    planned: int,
) -> None:
    from psycopg import sql

    table = TABLES_BY_NAME[table_name]
    parts = row_filters(table, subject)
    if not parts:
        return
    result.erased.setdefault(table.name, 0)
    also = sql.SQL("")
    if table.name == SEMANTIC_MEMORY and access.may_unlog(conn):
        # the memories' access records logged during an index build go with them
        gone = sql.SQL("SELECT {} FROM gone").format(sql.Identifier(table.key))
        also = sql.SQL(", unlogged AS ({})").format(access.unlog_sql(gone))
    for where in parts:
        statement = sql.SQL(_DELETE).format(
            table=sql.Identifier(table.name), key=sql.Identifier(table.key), where=sql.SQL(where), also=also
        )
        _erase_part(
            conn,
            statement,
            filter_params(subject, sessions),
            table.name,
            receipt_id,
            size,
            timeouts,
            result,
            progress,
            planned,
        )


def _erase_part(
    conn: psycopg.Connection,
    statement: Any,
    base_params: dict[str, Any],
    table_name: str,
    receipt_id: uuid.UUID,
    size: int,
    timeouts: common.Timeouts,
    result: ErasureResult,
    progress: common.ProgressCallback | None,
    planned: int,
) -> None:
    params = {**base_params, "limit": size}

    def batch() -> tuple[int, float]:
        started = time.perf_counter()
        row = conn.execute(statement, params).fetchone()
        n = int(row[0]) if row else 0
        if n:
            conn.execute(
                f"""
                UPDATE {ERASURE_RECEIPTS}
                SET erased = erased || jsonb_build_object(%(t)s::text,
                                                          coalesce((erased ->> %(t)s)::bigint, 0) + %(n)s)
                WHERE id = %(id)s
                """,  # noqa: S608 - a constant table name
                {"t": table_name, "n": n, "id": receipt_id},
            )
        return n, (time.perf_counter() - started) * 1000

    def book(outcome: tuple[int, float]) -> None:
        n, ms = outcome
        result.erased[table_name] += n
        if n:
            result.batches += 1
            result.longest_batch_ms = max(result.longest_batch_ms, ms)
        if progress:
            progress(result.rows, planned)

    while common.in_batch(conn, timeouts, batch, book)[0] == size:
        pass


# The partitioned layout's key table can still hold keys (session id, context key) of the subject's sessions
# whose memories left with a dropped partition (maintain weekly sweeps them): they go with the erasure, and
# the proof counts them. Keys of live rows in those sessions (another user's) stay.
_STALE_KEYS = (
    "FROM {keys} k WHERE k.session_id = ANY(%(s)s) "
    "AND NOT EXISTS (SELECT 1 FROM conversation_memory m WHERE m.id = k.memory_id)"
)


def _stale_keys(conn: psycopg.Connection, sessions: list[str], verb: str) -> int | None:
    """Count (``SELECT count(*)``) or remove (``DELETE``) the subject's sessions' keys that name no row;
    None on the plain layout (the key table stays empty) or for a role without access to the key table."""
    from psycopg import sql

    from memcli.partitions.layout import is_partitioned

    if not is_partitioned(conn, "conversation_memory"):
        return None
    allowed = conn.execute(
        "SELECT has_table_privilege(%s, 'SELECT') AND has_table_privilege(%s, 'DELETE')",
        (MEMORY_KEYS, MEMORY_KEYS),
    ).fetchone()
    if not (allowed and allowed[0]):
        return None
    statement = sql.SQL(verb + " " + _STALE_KEYS).format(keys=sql.Identifier(MEMORY_KEYS))
    cur = conn.execute(statement, {"s": sessions})
    if verb == "DELETE":
        return cur.rowcount
    row = cur.fetchone()
    return int(row[0]) if row else 0


def forget(
    conn: psycopg.Connection,
    subject: Subject,
    *,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    timeouts: common.Timeouts = common.DEFAULT_TIMEOUTS,
    progress: common.ProgressCallback | None = None,
) -> ErasureResult:
    """Erase every row of ``subject`` (see the module docstring) and prove it.

    ``conn`` becomes autocommit for the run and holds the ``erasure`` lock (LockedError, exit 75, when
    another erasure runs). An unknown subject is not an error: zero rows, proven, and a receipt saying so.
    Raises ErasureIncomplete (exit 1) when the proof finds rows left.
    """
    from memcli.readiness import require_migrated

    size = common.check_batch_size(batch_size)
    started = time.perf_counter()
    result = ErasureResult(subject_kind=subject.kind, dry_run=dry_run)
    with common.own_transactions(conn):
        require_migrated(conn)
        result.visibility = _visibility(conn)
        if result.visibility == "rls":
            result.warnings.append(
                "row-level security applies to this role: the erasure and its proof cover only the rows it "
                "may see; run as the tables' owner for a complete proof"
            )
        if dry_run:
            sessions = subject_sessions(conn, subject)
            result.sessions = len(sessions)
            result.erased = count_rows(conn, subject, sessions)
            result.found = any(result.erased.values())
            result.duration_seconds = time.perf_counter() - started
            return result
        result.warnings.extend(check_direct_connection(conn))
        with job_lock(conn, (LOCK,), f"forget {subject.kind}"):
            log = RunLog(conn, f"forget_{subject.kind}")
            log.close_interrupted()
            running = _find_running(conn, subject)
            if running is not None:
                result.resumed = True
                receipt_id = running.id
                sessions = _scope(conn, receipt_id)
                for name, n in running.erased.items():
                    result.erased[name] = int(n)
            else:
                sessions = subject_sessions(conn, subject)
                receipt_id = _start_receipt(conn, subject, sessions)
            result.receipt_id = receipt_id
            result.sessions = len(sessions)
            entry = log.start(None, {"receipt_id": str(receipt_id), "resumed": result.resumed})
            try:
                planned = sum(count_rows(conn, subject, sessions).values()) + result.rows
                result.found = planned > 0
                for name in ERASE_ORDER:
                    _erase_table(
                        conn, name, subject, sessions, receipt_id, size, timeouts, result, progress, planned
                    )
                keys = common.in_batch(conn, timeouts, lambda: _stale_keys(conn, sessions, "DELETE"))
                if keys is not None:
                    result.erased[MEMORY_KEYS] = result.erased.get(MEMORY_KEYS, 0) + keys
                _finish(conn, subject, sessions, receipt_id, result)
            except BaseException as exc:
                result.duration_seconds = time.perf_counter() - started
                common.attach_partial(exc, result)
                if not conn.broken:
                    with interrupts.deferred():
                        log.finish(
                            entry,
                            FAILED,
                            rows=result.rows,
                            error=str(exc)[:200] or exc.__class__.__name__,
                            details={"receipt_id": str(receipt_id), "erased": result.erased},
                        )
                raise
            log.finish(
                entry,
                SUCCEEDED,
                rows=result.rows,
                details={"receipt_id": str(receipt_id), "erased": result.erased},
            )
    result.duration_seconds = time.perf_counter() - started
    return result


def _finish(
    conn: psycopg.Connection,
    subject: Subject,
    sessions: list[str],
    receipt_id: uuid.UUID,
    result: ErasureResult,
) -> None:
    """Pseudonymise the audit trail, prove zero rows, complete the receipt and audit the erasure."""
    from psycopg.types.json import Jsonb

    receipt = conn.execute(
        f"SELECT salt, subject_digest FROM {ERASURE_RECEIPTS} WHERE id = %s",  # noqa: S608
        (receipt_id,),
    ).fetchone()
    assert receipt is not None
    digest = receipt[1]
    with conn.transaction():
        if subject.user_id is not None:
            result.audit_rows_pseudonymised = audit.pseudonymise(conn, subject.user_id, digest)
        result.remaining = count_rows(conn, subject, sessions)
        stale_keys = _stale_keys(conn, sessions, "SELECT count(*)")
        if stale_keys is not None:
            result.remaining[MEMORY_KEYS] = stale_keys
        left = {name: n for name, n in result.remaining.items() if n}
        if left:
            raise ErasureIncomplete(
                f"erasure of the {subject.kind} is not proven: rows left in "
                + ", ".join(f"{name} ({n})" for name, n in left.items()),
                hint="new rows arrived while erasing, or a role without access; run the same command "
                "again to resume (the receipt stays open until the proof passes)",
            )
        proof = {
            "tables": result.remaining,
            "visibility": result.visibility,
            "sessions_checked": len(sessions),
        }
        conn.execute(
            f"""
            UPDATE {ERASURE_RECEIPTS} SET status = 'completed', finished_at = clock_timestamp(), proof = %s
            WHERE id = %s
            """,  # noqa: S608 - a constant table name
            (Jsonb(proof), receipt_id),
        )
        conn.execute(f"DELETE FROM {ERASURE_SCOPE} WHERE receipt_id = %s", (receipt_id,))  # noqa: S608
        scope_left = conn.execute(
            f"SELECT count(*) FROM {ERASURE_SCOPE} WHERE receipt_id = %s",  # noqa: S608
            (receipt_id,),
        ).fetchone()
        assert scope_left is not None and scope_left[0] == 0
        audit.record(
            conn,
            "forget",
            target=subject.kind,
            user_id=None,  # the subject is gone: the audit row carries the receipt's digest instead
            subject_digest=digest,
            counts=result.erased,
        )
    result.proven = True


def receipts(conn: psycopg.Connection, *, subject: Subject | None = None, limit: int = 50) -> list[Receipt]:
    """Erasure receipts, newest first; with ``subject``, only those whose digest matches it."""
    cursor = conn.execute(
        f"SELECT * FROM {ERASURE_RECEIPTS} ORDER BY started_at DESC LIMIT %s",  # noqa: S608
        (limit if subject is None else 100_000,),
    )
    names = [c.name for c in cursor.description or ()]
    found = [Receipt(**dict(zip(names, values, strict=True))) for values in cursor.fetchall()]
    if subject is not None:
        found = [
            r
            for r in found
            if r.subject_kind == subject.kind and audit.digest(r.salt, subject.value) == r.subject_digest
        ][:limit]
    return found
