"""``run_checks``: the selected checks in one read-only transaction, each judged on its own.

The whole run happens in one READ ONLY transaction that is rolled back at the end; each check runs inside
its own savepoint so a check that fails (permission denied, timeout, a missing table) is reported and the
others still run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from memcli.errors import NotReadyError, first_line
from memcli.health.core import Check, CheckResult, CheckSkipped, Context, HealthReport, Status
from memcli.health.registry import REGISTRY, resolve_names
from memcli.health.thresholds import Thresholds, load_thresholds
from memcli.schema.names import REQUIRED_TABLES

if TYPE_CHECKING:
    import psycopg

    from memcli.embeddings import Embedder


def memory_schema(conn: psycopg.Connection) -> str | None:
    """The schema on the search path that holds the memory tables; None when none of them exists."""
    row = conn.execute(
        """
        SELECT n.nspname, count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relname = ANY(%s) AND c.relkind IN ('r', 'p') AND n.nspname = ANY(current_schemas(false))
        GROUP BY n.nspname ORDER BY count(*) DESC, array_position(current_schemas(false), n.nspname) LIMIT 1
        """,
        (list(REQUIRED_TABLES),),
    ).fetchone()
    return str(row[0]) if row else None


def _raised(exc: Exception, ctx: Context) -> CheckResult | None:
    """What a check that raised reports: SKIP when it could not look, WARN when it could not finish; None
    when the connection is gone and nothing else can run."""
    import psycopg
    from psycopg import errors

    details: dict[str, Any] = {}
    if isinstance(exc, CheckSkipped):
        status, message, hint = Status.SKIP, exc.reason, exc.hint
    elif isinstance(exc, errors.InsufficientPrivilege):
        status, message = Status.SKIP, f"permission denied: {first_line(exc)}"
        hint = "grant the role pg_monitor (or pg_read_all_stats) and SELECT on the memory tables"
    elif isinstance(exc, errors.UndefinedTable | errors.UndefinedColumn | errors.UndefinedFunction):
        status, message = Status.SKIP, f"schema object missing: {first_line(exc)}"
        hint = "see schema_objects; run: memcli migrate"
    elif isinstance(exc, errors.LockNotAvailable):
        status, message = Status.WARN, f"could not read within lock_timeout: {first_line(exc)}"
        hint = "another session holds an exclusive lock; see blocking_locks and long_transactions"
    elif isinstance(exc, errors.QueryCanceled):
        status, message = Status.WARN, f"timed out after {ctx.thresholds['statement_timeout_ms']:g} ms"
        hint = (
            "the database is slow or the table very large; raise statement_timeout_ms in [health.thresholds]"
        )
    elif isinstance(exc, psycopg.OperationalError):
        return None
    elif isinstance(exc, psycopg.Error):
        status, message = Status.WARN, f"check failed: {exc.__class__.__name__}: {first_line(exc)}"
        hint = "see details.error; report it if the database looks fine"
        details["error"] = str(exc)
    else:
        # A defect in one check must not hide the others' results from the person on call.
        import traceback

        status, message = Status.WARN, f"check crashed: {exc.__class__.__name__}: {first_line(exc)}"
        hint = "a memcli defect: report it with details.traceback"
        details["traceback"] = traceback.format_exc()
    return CheckResult(status, message=message, hint=hint, details=details)


def _run_one(ctx: Context, check: Check) -> CheckResult:
    started = time.perf_counter()
    try:
        with ctx.conn.transaction():  # a savepoint: a failed check rolls back alone
            if check.reads:
                ctx.require_tables(*check.reads)
                ctx.require_visible_rows(*check.reads)
            result = check.function(ctx)
    except Exception as exc:
        verdict = _raised(exc, ctx)
        if verdict is None:
            raise
        result = verdict
    # What the declaration knows, the result does not repeat.
    result.name, result.group = check.name, check.group
    if result.status in (Status.WARN, Status.FAIL) and not result.hint:
        result.hint = check.hint
    result.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return result


def run_checks(
    conn: psycopg.Connection,
    names: Iterable[str] | None = None,
    thresholds: Mapping[str, Any] | Thresholds | None = None,
    deep: bool = False,
    embedder: Embedder | None = None,
) -> HealthReport:
    """Run the selected checks (all but the deep ones by default) and return the report.

    Read-only: everything runs in one READ ONLY transaction that is rolled back. Raises NotReadyError
    when the memory schema is missing entirely, ConfigError for unknown names or bad thresholds.
    """
    from psycopg.pq import TransactionStatus

    started = time.perf_counter()
    limits = thresholds if isinstance(thresholds, Thresholds) else load_thresholds(thresholds)
    selected = resolve_names(names, deep)
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("the connection has a transaction open; health runs in its own")

    results: list[CheckResult] = []
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)",
            (f"{limits['statement_timeout_ms']:g}", f"{limits['lock_timeout_ms']:g}"),
        )
        schema = memory_schema(conn)
        if schema is None:
            raise NotReadyError(
                "the memory schema is not migrated (none of its tables exists)", hint="run: memcli migrate"
            )
        info = conn.execute(
            """
            SELECT current_database(), current_user, current_setting('server_version'),
                   current_setting('transaction_read_only') = 'on', statement_timestamp()
            """
        ).fetchone()
        assert info is not None
        ctx = Context(conn, limits, deep, schema, embedder)
        for name in selected:
            results.append(_run_one(ctx, REGISTRY[name]))

    judged = [r.status for r in results if r.status is not Status.SKIP]
    overall = max(judged, key=lambda s: s.severity) if judged else Status.OK
    return HealthReport(
        results=results,
        status=overall,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        checked_at=info[4],
        database={"name": info[0], "user": info[1], "server_version": info[2], "schema": schema},
        read_only=bool(info[3]),
        deep=deep,
    )
