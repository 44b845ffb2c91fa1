"""Retention of everything that grows beside the tiered conversation memories.

Each target has a setting in days, or ``"never"``:

- semantic memories per content type: ``retention.semantic.<type>_days`` (by ``created_at``);
- the consolidation log: ``retention.consolidation_log_days`` (by ``created_at``);
- the maintenance log: ``retention.maintenance_log_days`` (by ``started_at``; rows still ``running`` stay);
- relevance rows: ``retention.relevance_days`` (by ``created_at``).

``apply_retention`` (a step of ``maintain daily``) deletes what is older, in bounded batches under the jobs'
timeouts; ``growth`` measures each target (rows, rows added in the last day and week, the oldest row's age)
for ``memcli health``. Conversation memories expire by tier (``cleanup``); partition drops of partitioned
tables are the partitioning job's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.jobs import common
from memcli.schema.names import CONTENT_TYPES
from memcli.settings import get_settings

if TYPE_CHECKING:
    import psycopg

NEVER = "never"


@dataclass(frozen=True)
class Target:
    name: str  # what the result and health call it
    table: str
    setting: str
    age_column: str
    extra: str = ""  # a further condition (SQL constant) on the rows retention may delete
    key: str = "id"


TARGETS: tuple[Target, ...] = (
    *(
        Target(
            f"semantic_memory.{ct}",
            "semantic_memory",
            f"retention.semantic.{ct}_days",
            "created_at",
            f"content_type = '{ct}'",
        )
        for ct in CONTENT_TYPES
    ),
    Target(
        "memory_consolidation_log",
        "memory_consolidation_log",
        "retention.consolidation_log_days",
        "created_at",
    ),
    Target(
        "system_maintenance_log",
        "system_maintenance_log",
        "retention.maintenance_log_days",
        "started_at",
        "status <> 'running'",
    ),
    Target("context_relevance", "context_relevance", "retention.relevance_days", "created_at"),
)


def retention_days(value: Any, setting: str) -> float | None:
    """A setting's value as days; None for ``"never"``. ConfigError for anything else."""
    if isinstance(value, str) and value.strip().lower() == NEVER:
        return None
    try:
        days = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f'setting {setting} must be a number of days or "never", not {value!r}',
            hint=f'set {setting} to a number of days, or to the JSON string "never"',
        ) from None
    if days < 0:
        raise ConfigError(f"setting {setting} must not be negative, not {days:g}")
    return days


@dataclass
class RetentionResult:
    dry_run: bool
    days: dict[str, float | None] = field(default_factory=dict)  # per target; None: kept forever
    deleted: dict[str, int] = field(default_factory=dict)  # dry run: would delete
    batches: int = 0
    longest_batch_ms: float = 0.0
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


def _where(target: Target) -> str:
    clause = f"{target.age_column} < %(cutoff)s"
    return f"{clause} AND {target.extra}" if target.extra else clause


def apply_retention(
    conn: psycopg.Connection,
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    timeouts: common.Timeouts = common.DEFAULT_TIMEOUTS,
) -> RetentionResult:
    """Delete, per target, the rows older than its retention (none for ``never``)."""
    from psycopg import sql

    started = time.perf_counter()
    result = RetentionResult(dry_run=dry_run)
    with common.own_transactions(conn):
        settings = get_settings(conn)
        size = common.check_batch_size(
            batch_size if batch_size is not None else settings["cleanup.batch_size"]
        )
        now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        with common.partial_on_failure(result, started):
            for target in TARGETS:
                days = retention_days(settings.get(target.setting), target.setting)
                result.days[target.name] = days
                if days is None:
                    continue
                params = {"cutoff": now - timedelta(days=days), "limit": size}
                where = sql.SQL(_where(target))
                table = sql.Identifier(target.table)
                if dry_run:
                    row = conn.execute(
                        sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, where), params
                    ).fetchone()
                    result.deleted[target.name] = int(row[0]) if row else 0
                    continue
                result.deleted[target.name] = 0
                statement = sql.SQL(
                    "WITH gone AS (DELETE FROM {t} WHERE {k} = ANY(ARRAY("
                    "SELECT {k} FROM {t} WHERE {w} LIMIT %(limit)s FOR UPDATE SKIP LOCKED)) RETURNING 1) "
                    "SELECT count(*) FROM gone"
                ).format(t=table, k=sql.Identifier(target.key), w=where)

                def batch(statement: Any = statement, params: dict[str, Any] = params) -> tuple[int, float]:
                    began = time.perf_counter()
                    row = conn.execute(statement, params).fetchone()
                    return (int(row[0]) if row else 0), (time.perf_counter() - began) * 1000

                def book(outcome: tuple[int, float], name: str = target.name) -> None:
                    n, ms = outcome
                    result.deleted[name] += n
                    if n:
                        result.batches += 1
                        result.longest_batch_ms = max(result.longest_batch_ms, ms)

                while common.in_batch(conn, timeouts, batch, book)[0] == size:
                    pass
    result.duration_seconds = time.perf_counter() - started
    return result


@dataclass
class Growth:
    name: str
    table: str
    rows: int
    added_last_day: int
    added_last_week: int
    oldest: datetime | None
    oldest_age_days: float | None
    retention_days: float | None  # None: kept forever
    overdue: int  # rows older than the retention (maintain daily has not run, or is failing)


def growth(conn: psycopg.Connection) -> list[Growth]:
    """Rows, recent growth and age of every retained target (``memcli health``)."""
    from psycopg import sql

    settings = get_settings(conn)
    measured: list[Growth] = []
    for target in TARGETS:
        days = retention_days(settings.get(target.setting), target.setting)
        age = sql.Identifier(target.age_column)
        where = sql.SQL(f"WHERE {target.extra}" if target.extra else "")
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE {a} >= now() - interval '1 day'), "
                "count(*) FILTER (WHERE {a} >= now() - interval '7 days'), min({a}), "
                "extract(epoch FROM now() - min({a})) / 86400, "
                "count(*) FILTER (WHERE {a} < now() - %(days)s::float8 * interval '1 day') FROM {t} {w}"
            ).format(a=age, t=sql.Identifier(target.table), w=where),
            {"days": days},  # NULL for "never": nothing is overdue
        ).fetchone()
        assert row is not None
        measured.append(
            Growth(
                name=target.name,
                table=target.table,
                rows=int(row[0]),
                added_last_day=int(row[1]),
                added_last_week=int(row[2]),
                oldest=row[3],
                oldest_age_days=float(row[4]) if row[4] is not None else None,
                retention_days=days,
                overdue=int(row[5]),
            )
        )
    return measured
