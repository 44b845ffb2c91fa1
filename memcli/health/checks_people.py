"""People's data: retention of what grows, and erasures left unfinished."""

from __future__ import annotations

from memcli.health.core import CheckResult, Context, Status, counted, health_check
from memcli.people.retention import TARGETS
from memcli.people.scope import ERASURE_RECEIPTS


@health_check("hygiene", reads=tuple(dict.fromkeys(t.table for t in TARGETS)))
def retention(ctx: Context) -> CheckResult:
    """Semantic memories, logs and relevance rows within their retention.

    Fix: run memcli maintain daily (its retention step deletes older rows), or change the retention.*
    settings.
    """
    from memcli.people.retention import growth

    ctx.require_tables("memory_settings")
    measured = growth(ctx.conn)
    overdue = sum(g.overdue for g in measured)
    parts = [
        f"{g.name} {g.rows:,} rows (+{g.added_last_day:,}/day, oldest "
        + (f"{g.oldest_age_days:.0f} d" if g.oldest_age_days is not None else "-")
        + f", keep {'forever' if g.retention_days is None else f'{g.retention_days:g} d'})"
        for g in measured
    ]
    return counted(
        overdue,
        threshold="0 rows older than their retention",
        message=(f"{overdue:,} rows past their retention; " if overdue else "") + "; ".join(parts),
        details={"targets": [g.__dict__ for g in measured]},
    )


@health_check("operations", reads=(ERASURE_RECEIPTS,))
def erasures(ctx: Context) -> CheckResult:
    """No erasure left unfinished.

    Fix: run the same memcli users forget / sessions forget again: it resumes and ends with the proof.
    """
    from psycopg import sql

    row = ctx.row(
        sql.SQL(
            "SELECT count(*) FILTER (WHERE status = 'running') AS open, count(*) AS total, "
            "min(started_at) FILTER (WHERE status = 'running') AS oldest FROM {}"
        ).format(ctx.table(ERASURE_RECEIPTS))
    )
    assert row is not None
    open_ = int(row["open"])
    return counted(
        open_,
        threshold="0 unfinished",
        message=f"{open_} erasure(s) not proven yet (oldest started {row['oldest']})"
        if open_
        else f"{int(row['total'])} erasure(s), all proven",
        bad=Status.FAIL,
    )
