"""The check registry, the shared context checks read through, and ``run_checks``.

Every check is a function ``(conn, ctx) -> CheckResult`` registered under a unique name and a group. The
whole run happens in one READ ONLY transaction that is rolled back at the end; each check runs inside its
own savepoint so a check that fails (permission denied, timeout, a missing table) is reported and the
others still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, ExitCode, NotReadyError, first_line
from memcli.health.thresholds import Thresholds, load_thresholds
from memcli.schema.names import REQUIRED_TABLES

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from memcli.embeddings import Embedder


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Status.SKIP: -1, Status.OK: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass
class CheckResult:
    """One check's verdict.

    ``value`` is what was measured (a number where one exists, so monitoring can graph it), ``unit`` says
    how to read it (count, bytes, seconds, ratio, ms, version), ``threshold`` the rule it was judged by,
    ``message`` what was found, ``hint`` what to do about it (set when the status is not OK), ``estimate``
    whether the value comes from statistics or a sample rather than an exact count.
    """

    name: str
    status: Status
    value: Any = None
    threshold: str | None = None
    hint: str | None = None
    message: str = ""
    unit: str | None = None
    estimate: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    elapsed_ms: float = 0.0


@dataclass
class HealthReport:
    results: list[CheckResult]
    status: Status
    elapsed_ms: float
    checked_at: datetime | None = None
    database: dict[str, Any] = field(default_factory=dict)
    read_only: bool = True
    deep: bool = False

    def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in Status}
        for result in self.results:
            counts[result.status.value] += 1
        return counts

    @property
    def not_checked(self) -> list[CheckResult]:
        """Checks that could not run (missing privileges, rows hidden by row-level security, missing
        objects): blind spots, which must not pass for health."""
        return [r for r in self.results if r.status is Status.SKIP]

    def exit_code(self, strict: bool = False, allow_skipped: bool = False) -> int:
        """0 all OK; 1 any FAIL, any WARN when ``strict``, or any check that could not run (unless
        ``allow_skipped``: a monitoring role that may not read the memories, say)."""
        if self.status is Status.FAIL or (strict and self.status is Status.WARN):
            return ExitCode.PROBLEMS
        if self.not_checked and not allow_skipped:
            return ExitCode.PROBLEMS
        return ExitCode.OK

    def not_checked_summary(self) -> str:
        """``N of M checks could not run: reason (check, check); reason (check)``; empty when all ran."""
        skipped = self.not_checked
        if not skipped:
            return ""
        reasons: dict[str, list[str]] = {}
        for result in skipped:
            reasons.setdefault(_reason(result.message), []).append(result.name)
        listing = "; ".join(f"{reason} ({', '.join(checks)})" for reason, checks in reasons.items())
        return f"{len(skipped)} of {len(self.results)} checks could not run: {listing}"

    def result(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)


def _reason(message: str) -> str:
    """A skip message without the table names, so checks skipped for one reason group together."""
    if message.startswith("row-level security may hide rows"):
        return "row-level security hides rows from this role"
    if message.startswith("permission denied"):
        return "permission denied"
    return message


CheckFunction = Callable[["psycopg.Connection", "Context"], CheckResult]


@dataclass(frozen=True)
class Check:
    name: str
    group: str
    title: str
    hint: str
    function: CheckFunction
    deep: bool = False  # only with deep=True (expensive: reads many rows)


REGISTRY: dict[str, Check] = {}
GROUPS = ("server", "schema", "hygiene", "operations", "internals", "vector")


def register(name: str, group: str, title: str, hint: str, *, deep: bool = False) -> Callable:
    """Decorator adding a check to the registry; ``hint`` is the default one-line advice."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def decorate(function: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"check {name!r} registered twice")
        REGISTRY[name] = Check(name, group, title, hint, function, deep)
        return function

    return decorate


class CheckSkipped(Exception):
    """A check raises this when it cannot judge (missing privilege, hidden rows, missing table)."""

    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class Context:
    """What checks share: thresholds, the memory schema, cached catalog facts and a few query helpers."""

    def __init__(
        self,
        conn: psycopg.Connection,
        thresholds: Thresholds,
        deep: bool,
        schema: str,
        embedder: Embedder | None = None,
    ) -> None:
        self.conn = conn
        self.thresholds = thresholds
        self.deep = deep
        self.schema = schema
        self.embedder = embedder  # the configured model, for checks that re-embed (--deep)
        self.cache: dict[str, Any] = {}

    # -- queries -------------------------------------------------------------------------------------
    def rows(self, query: str | sql.Composable, params: Any = None) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall()

    def row(self, query: str | sql.Composable, params: Any = None) -> dict[str, Any] | None:
        rows = self.rows(query, params)
        return rows[0] if rows else None

    def scalar(self, query: str | sql.Composable, params: Any = None) -> Any:
        row = self.conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None

    def table(self, name: str) -> sql.Identifier:
        from psycopg import sql

        return sql.Identifier(self.schema, name)

    def qualified(self, name: str) -> str:
        """``schema.name`` quoted, for regclass casts passed as parameters."""
        from psycopg import sql

        return sql.Identifier(self.schema, name).as_string(self.conn)

    # -- cached facts --------------------------------------------------------------------------------
    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def relations(self) -> dict[str, str]:
        """Relation name -> relkind of everything in the memory schema."""
        return self.memo(
            "relations",
            lambda: {
                r["relname"]: r["relkind"]
                for r in self.rows(
                    """
                    SELECT c.relname, c.relkind FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s
                    """,
                    (self.schema,),
                )
            },
        )

    def has_table(self, name: str) -> bool:
        return self.relations().get(name) in ("r", "p")

    def require_tables(self, *names: str) -> None:
        missing = [name for name in names if not self.has_table(name)]
        if missing:
            raise CheckSkipped(
                f"table {', '.join(missing)} missing (see schema_objects)", hint="run: memcli migrate"
            )

    def columns(self, table: str) -> set[str]:
        return self.memo(
            f"columns:{table}",
            lambda: {
                r["attname"]
                for r in self.rows(
                    """
                    SELECT a.attname FROM pg_attribute a
                    JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
                    """,
                    (self.schema, table),
                )
            },
        )

    def role(self) -> dict[str, Any]:
        """The current role's powers that decide what it can see."""
        return self.memo(
            "role",
            lambda: (
                self.row(
                    """
                SELECT current_user AS name, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
                       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats
                FROM pg_roles r WHERE r.rolname = current_user
                """
                )
                or {"name": None, "superuser": False, "bypassrls": False, "read_all_stats": False}
            ),
        )

    def require_visible_rows(self, *tables: str) -> None:
        """Skip when row-level security may hide rows of ``tables`` from this role (counts would lie)."""
        role = self.role()
        if role["superuser"] or role["bypassrls"]:
            return
        # One query for every table of the schema, shared by all the checks that ask.
        hiding = self.memo(
            "rls_hidden",
            lambda: {
                r["relname"]
                for r in self.rows(
                    """
                    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = %s AND c.relrowsecurity
                      AND (c.relforcerowsecurity OR NOT pg_has_role(c.relowner, 'USAGE'))
                      -- a permissive read-everything policy for one of this role's roles shows every row
                      AND NOT EXISTS (
                          SELECT 1 FROM pg_policy p
                          WHERE p.polrelid = c.oid AND p.polpermissive AND p.polcmd IN ('r', '*')
                            AND pg_get_expr(p.polqual, p.polrelid) = 'true'
                            AND (p.polroles = '{0}'
                                 OR EXISTS (SELECT 1 FROM unnest(p.polroles) AS r(oid)
                                            WHERE r.oid <> 0 AND pg_has_role(r.oid, 'USAGE'))))
                    """,
                    (self.schema,),
                )
            },
        )
        hidden = [table for table in tables if table in hiding]
        if hidden:
            raise CheckSkipped(
                f"row-level security may hide rows of {', '.join(hidden)} from role {role['name']}",
                hint="run health as the tables' owner or a role with BYPASSRLS",
            )

    @contextmanager
    def local_settings(self, values: Mapping[str, str]) -> Iterator[None]:
        """Planner/timeouts settings for a block, restored after it (SET LOCAL would outlive a savepoint)."""
        previous = {name: self.scalar("SELECT current_setting(%s)", (name,)) for name in values}
        for name, value in values.items():
            self.conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        try:
            yield
        finally:
            if not self.conn.closed and self.conn.info.transaction_status == _in_transaction():
                for name, value in previous.items():
                    self.conn.execute("SELECT set_config(%s, %s, true)", (name, value))

    def settings(self) -> dict[str, Any]:
        """memory_settings with defaults filled in; skipped when row-level security hides the table."""
        from memcli.settings import get_settings

        self.require_visible_rows("memory_settings")

        return self.memo("settings", lambda: get_settings(self.conn))

    def row_estimate(self, table: str) -> float:
        """Rows in ``table`` from the statistics: the larger of reltuples and the live-tuple counter.

        reltuples is -1 until the first VACUUM/ANALYZE, while n_live_tup follows inserts at once. One query
        reads every table of the schema, shared by all the checks that count.
        """
        estimates = self.memo(
            "row_estimates",
            lambda: {
                r["relname"]: float(r["estimate"])
                for r in self.rows(
                    """
                    SELECT c.relname, greatest(c.reltuples, coalesce(s.n_live_tup, 0), 0) AS estimate
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                    WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'm')
                    """,
                    (self.schema,),
                )
            },
        )
        return estimates.get(table, 0.0)

    def count_where(
        self, table: str, where: sql.Composable, params: Iterable[Any] = (), alias: str = "t"
    ) -> tuple[int, bool]:
        """Rows of ``table`` matching ``where``: exact on small tables, else estimated from a page sample.

        Returns ``(count, estimated)``. The sample (TABLESAMPLE SYSTEM) reads about ``sample_rows`` rows'
        worth of pages instead of the whole table, which keeps health fast on big tables and does not
        count as a sequential scan in the statistics the seq_scans check reads.
        """
        from psycopg import sql

        rows = self.row_estimate(table)
        exact_limit = self.thresholds["exact_count_max_rows"]
        if rows <= exact_limit:
            query = sql.SQL("SELECT count(*) FROM {} AS {} WHERE {}").format(
                self.table(table), sql.Identifier(alias), where
            )
            return int(self.scalar(query, list(params))), False
        percent = min(100.0, 100.0 * self.thresholds["sample_rows"] / rows)
        query = sql.SQL("SELECT count(*) FROM {} AS {} TABLESAMPLE SYSTEM (%s) WHERE {}").format(
            self.table(table), sql.Identifier(alias), where
        )
        sampled = int(self.scalar(query, [percent, *params]))
        return round(sampled * 100.0 / percent), True


def _in_transaction() -> Any:
    from psycopg.pq import TransactionStatus

    return TransactionStatus.INTRANS


# -- running ---------------------------------------------------------------------------------------------


def resolve_names(names: Iterable[str] | None, deep: bool = False) -> list[str]:
    """Check names to run, in registry order; a group name selects its checks. ConfigError if unknown."""
    _load_checks()
    ordered = sorted(REGISTRY.values(), key=lambda c: GROUPS.index(c.group))  # stable: keeps module order
    if not names:
        return [check.name for check in ordered if deep or not check.deep]
    wanted: set[str] = set()
    unknown: list[str] = []
    for name in names:
        key = name.strip().lower().replace("-", "_")
        if key in REGISTRY:
            wanted.add(key)
        elif key in GROUPS:
            wanted.update(n for n, c in REGISTRY.items() if c.group == key and (deep or not c.deep))
        else:
            unknown.append(name)
    if unknown:
        raise ConfigError(
            f"unknown health check {', '.join(unknown)}",
            hint=f"choose from the groups {', '.join(GROUPS)} or: {', '.join(REGISTRY)}",
        )
    return [check.name for check in ordered if check.name in wanted]


def _load_checks() -> None:
    # Importing the modules registers their checks (in this order, which is the report's order).
    from memcli.health import (  # noqa: F401
        checks_hygiene,
        checks_internals,
        checks_operations,
        checks_partitions,
        checks_people,
        checks_schema,
        checks_server,
        checks_vector,
    )


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


def _run_one(conn: psycopg.Connection, ctx: Context, check: Check) -> CheckResult:
    import psycopg
    from psycopg import errors

    started = time.perf_counter()
    try:
        with conn.transaction():  # a savepoint: a failed check rolls back alone
            result = check.function(conn, ctx)
    except CheckSkipped as exc:
        result = CheckResult(check.name, Status.SKIP, message=exc.reason, hint=exc.hint)
    except errors.InsufficientPrivilege as exc:
        result = CheckResult(
            check.name,
            Status.SKIP,
            message=f"permission denied: {first_line(exc)}",
            hint="grant the role pg_monitor (or pg_read_all_stats) and SELECT on the memory tables",
        )
    except (errors.UndefinedTable, errors.UndefinedColumn, errors.UndefinedFunction) as exc:
        result = CheckResult(
            check.name,
            Status.SKIP,
            message=f"schema object missing: {first_line(exc)}",
            hint="see schema_objects; run: memcli migrate",
        )
    except errors.LockNotAvailable as exc:
        result = CheckResult(
            check.name,
            Status.WARN,
            message=f"could not read within lock_timeout: {first_line(exc)}",
            hint="another session holds an exclusive lock; see blocking_locks and long_transactions",
        )
    except errors.QueryCanceled:
        timeout = ctx.thresholds["statement_timeout_ms"]
        result = CheckResult(
            check.name,
            Status.WARN,
            message=f"timed out after {timeout:g} ms",
            hint="the database is slow or the table very large; raise statement_timeout_ms in "
            "[health.thresholds]",
        )
    except psycopg.OperationalError:
        raise  # the connection is gone: nothing else can run
    except psycopg.Error as exc:
        result = CheckResult(
            check.name,
            Status.WARN,
            message=f"check failed: {exc.__class__.__name__}: {first_line(exc)}",
            hint="see details.error; report it if the database looks fine",
            details={"error": str(exc)},
        )
    except Exception as exc:
        # A defect in one check must not hide the others' results from the person on call.
        import traceback

        result = CheckResult(
            check.name,
            Status.WARN,
            message=f"check crashed: {exc.__class__.__name__}: {first_line(exc)}",
            hint="a memcli defect: report it with details.traceback",
            details={"traceback": traceback.format_exc()},
        )
    result.group = check.group
    if result.status in (Status.WARN, Status.FAIL) and not result.hint:
        result.hint = check.hint
    result.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
    return result


def human_bytes(size: float | None) -> str:
    """``512 B``, ``3.4 kB``, ``12.0 MB``, ``1.5 GB``; ``-`` when unknown."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size:.0f} B"


def human_duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``5.5 h``, ``3.2 d``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 72 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


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
            results.append(_run_one(conn, ctx, REGISTRY[name]))

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
