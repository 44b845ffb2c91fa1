"""People's data: retention of what grows, and erasures left unfinished."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memcli.health.core import CheckResult, Context, Status, register
from memcli.people.retention import TARGETS
from memcli.people.scope import ERASURE_RECEIPTS

if TYPE_CHECKING:
    import psycopg


@register(
    "retention",
    "hygiene",
    "Semantic memories, logs and relevance rows within their retention",
    "run memcli maintain daily (its retention step deletes older rows), or change the retention.* settings",
)
def retention(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    from memcli.people.retention import growth

    ctx.require_tables(*{t.table for t in TARGETS}, "memory_settings")
    ctx.require_visible_rows(*{t.table for t in TARGETS})
    measured = growth(conn)
    overdue = sum(g.overdue for g in measured)
    parts = [
        f"{g.name} {g.rows:,} rows (+{g.added_last_day:,}/day, oldest "
        + (f"{g.oldest_age_days:.0f} d" if g.oldest_age_days is not None else "-")
        + f", keep {'forever' if g.retention_days is None else f'{g.retention_days:g} d'})"
        for g in measured
    ]
    return CheckResult(
        "retention",
        Status.WARN if overdue else Status.OK,
        value=overdue,
        unit="count",
        threshold="0 rows older than their retention",
        message=(f"{overdue:,} rows past their retention; " if overdue else "") + "; ".join(parts),
        details={"targets": [g.__dict__ for g in measured]},
    )


@register(
    "erasures",
    "operations",
    "No erasure left unfinished",
    "run the same memcli users forget / sessions forget again: it resumes and ends with the proof",
)
def erasures(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    from psycopg import sql

    ctx.require_tables(ERASURE_RECEIPTS)
    ctx.require_visible_rows(ERASURE_RECEIPTS)
    row = ctx.row(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE status = 'running') AS open, count(*) AS total, "
            "min(started_at) FILTER (WHERE status = 'running') AS oldest FROM {}"
        ).format(ctx.table(ERASURE_RECEIPTS))
    )
    assert row is not None
    open_ = int(row["open"])
    return CheckResult(
        "erasures",
        Status.FAIL if open_ else Status.OK,
        value=open_,
        unit="count",
        threshold="0 unfinished",
        message=f"{open_} erasure(s) not proven yet (oldest started {row['oldest']})"
        if open_
        else f"{int(row['total'])} erasure(s), all proven",
    )
