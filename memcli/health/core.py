"""What checks are made of: their result, their declaration, and the context they read the database through.

A check is a function ``(ctx) -> CheckResult`` declared with ``@health_check(group)``: its name is the
function's name, its title the docstring's first line, its default hint the docstring's ``Fix:`` paragraph.
It returns its verdict without its name, which the runner fills in from the declaration. The check modules
import this one; this one imports none of them (``registry.py`` collects them, ``runner.py`` runs them).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from memcli.errors import ExitCode

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from memcli.embeddings import Embedder
    from memcli.health.thresholds import Thresholds


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
    whether the value comes from statistics or a sample rather than an exact count. ``name`` and ``group``
    come from the check's declaration: the runner fills them in, so a check never repeats its own name.
    """

    # Keyword-only, so a check writes CheckResult(Status.OK, ...) while the JSON keeps name first.
    name: str = field(default="", kw_only=True)
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


def counted(
    count: int,
    *,
    threshold: str,
    message: str,
    details: dict[str, Any] | None = None,
    estimate: bool = False,
    bad: Status = Status.WARN,
) -> CheckResult:
    """The verdict of a check that counts problems: ``bad`` when there is any, OK when there is none."""
    return CheckResult(
        bad if count else Status.OK,
        value=count,
        unit="count",
        threshold=threshold,
        message=message,
        estimate=estimate,
        details=details or {},
    )


def warn_if(
    flagged: object,
    value: Any,
    unit: str,
    *,
    threshold: str,
    message: str,
    details: dict[str, Any] | None = None,
    estimate: bool = False,
) -> CheckResult:
    """The verdict of a check that measures one value: WARN when ``flagged`` holds, OK otherwise."""
    return CheckResult(
        Status.WARN if flagged else Status.OK,
        value=value,
        unit=unit,
        threshold=threshold,
        message=message,
        estimate=estimate,
        details=details or {},
    )


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


CheckFunction = Callable[["Context"], CheckResult]
GROUPS = ("server", "schema", "hygiene", "operations", "internals", "vector")


@dataclass(frozen=True)
class Check:
    name: str
    group: str
    title: str
    hint: str
    function: CheckFunction
    deep: bool = False  # only with deep=True (expensive: reads many rows)
    reads: tuple[str, ...] = ()  # tables that must exist with every row visible, or the check is skipped


def health_check(
    group: str,
    *,
    name: str | None = None,
    title: str | None = None,
    hint: str | None = None,
    deep: bool = False,
    reads: tuple[str, ...] = (),
) -> Callable[[CheckFunction], Check]:
    """Decorator declaring a check of ``group``; registry.py collects them.

    The check's name is the function's name, its title the docstring's first sentence and its default
    one-line advice the docstring's ``Fix:`` paragraph, so each is written once. ``name``, ``title`` and
    ``hint`` override them, for checks a helper builds. ``reads`` are the memory tables whose rows it counts
    (the runner skips it when one is missing or hidden); ``deep`` checks run only with ``--deep``.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}")

    def decorate(function: CheckFunction) -> Check:
        paragraphs = _paragraphs(function.__doc__ or "")
        fixes = [p.removeprefix("Fix:").strip() for p in paragraphs if p.startswith("Fix:")]
        titled = paragraphs and not paragraphs[0].startswith("Fix:")
        found_title = title or (_sentence(paragraphs[0]) if titled else None)
        found_hint = hint or (_sentence(fixes[0]) if fixes else None)
        if not found_title or not found_hint:
            raise ValueError(
                f"check {function.__name__}: its docstring needs a title line and a 'Fix:' paragraph"
            )
        return Check(name or function.__name__, group, found_title, found_hint, function, deep, reads)

    return decorate


def _paragraphs(docstring: str) -> list[str]:
    """A docstring's paragraphs, each on one line (white space folded)."""
    return [" ".join(p.split()) for p in inspect.cleandoc(docstring).split("\n\n") if p.strip()]


def _sentence(text: str) -> str:
    """A docstring sentence as the report shows it: without its closing full stop."""
    return text.removesuffix(".")


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


# -- units ----------------------------------------------------------------------------------------------


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
