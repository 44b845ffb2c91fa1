"""Operations: the scheduled maintenance runs happen and succeed (from system_maintenance_log).

A job that never ran is judged against the age of the schema (the oldest memory_settings row, written by
the first migration): a freshly migrated database is fine, one migrated longer ago than twice a job's period
without a successful run fails like a job that stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memcli.health.core import CheckResult, Context, Status, counted, health_check, human_duration

LOG = "system_maintenance_log"


def _installed_age(ctx: Context) -> float | None:
    """Seconds since the schema was created, from the oldest settings row (None if unknown)."""

    def compute() -> float | None:
        from psycopg import sql

        value = ctx.scalar(
            sql.SQL("SELECT extract(epoch FROM now() - min(updated_at)) FROM {}").format(
                ctx.table("memory_settings")
            )
        )
        return float(value) if value is not None else None

    return ctx.memo("installed_age", compute)


def _job_check(job: str) -> Any:
    def check(ctx: Context) -> CheckResult:
        from psycopg import sql

        period_h = ctx.thresholds[f"maintenance_{job}_hours"]
        factor = ctx.thresholds["maintenance_fail_factor"]
        limit_s = period_h * 3600 * factor
        threshold = (
            f"succeeded within {human_duration(limit_s)} ({factor:g} x {human_duration(period_h * 3600)})"
        )
        # The run's summary row has step NULL; both lookups walk the (maintenance_type, started_at) index.
        row = ctx.row(
            sql.SQL(
                """
                SELECT
                  (SELECT coalesce(finished_at, started_at) FROM {t}
                    WHERE maintenance_type = %(job)s AND step IS NULL AND status = 'succeeded'
                    ORDER BY started_at DESC LIMIT 1) AS last_success,
                  (SELECT json_build_object('status', status, 'started_at', started_at,
                                            'finished_at', finished_at, 'error', error)
                     FROM {t} WHERE maintenance_type = %(job)s AND step IS NULL
                    ORDER BY started_at DESC LIMIT 1) AS last_run,
                  now() AS now
                """
            ).format(t=ctx.table(LOG)),
            {"job": job},
        )
        assert row is not None
        last_success: datetime | None = row["last_success"]
        last_run: dict[str, Any] | None = row["last_run"]
        now: datetime = row["now"]
        details: dict[str, Any] = {
            "last_success": last_success,
            "last_run": last_run,
            "period_hours": period_h,
        }
        if last_success is None:
            installed = _installed_age(ctx)
            details["schema_age_seconds"] = installed
            hint = None
            if installed is not None and installed <= limit_s:
                status, message = Status.OK, f"not run yet; schema created {human_duration(installed)} ago"
                if last_run and last_run["status"] == "failed":
                    status = Status.WARN
                    message += f", the only run failed: {(last_run.get('error') or '')[:200]}"
            else:
                age_text = (
                    f" (schema created {human_duration(installed)} ago)" if installed is not None else ""
                )
                status, message = Status.FAIL, f"never succeeded{age_text}"
                hint = f"schedule it: memcli schedule (cron runs memcli maintain {job})"
            return CheckResult(
                status, threshold=threshold, unit="seconds", message=message, hint=hint, details=details
            )
        age = (now - last_success).total_seconds()
        details["age_seconds"] = age
        message = f"last success {human_duration(age)} ago"
        status = Status.OK
        hint = None
        if age > limit_s:
            status = Status.FAIL
            hint = f"run memcli maintain {job} and check its cron entry (memcli schedule)"
        if last_run and last_run["status"] == "failed":
            status = max(status, Status.WARN, key=lambda s: s.severity)
            message += f"; the latest run failed: {(last_run.get('error') or 'no error recorded')[:200]}"
            hint = hint or f"see system_maintenance_log; rerun: memcli maintain {job}"
        elif last_run and last_run["status"] == "running":
            started = datetime.fromisoformat(str(last_run["started_at"]))
            running_for = (now - started).total_seconds()
            if running_for > period_h * 3600:
                status = max(status, Status.WARN, key=lambda s: s.severity)
                message += f"; a run has been 'running' for {human_duration(running_for)}"
                hint = hint or "the run may hang: check pg_stat_activity for application_name memcli"
        return CheckResult(
            status,
            value=round(age, 1),
            unit="seconds",
            threshold=threshold,
            message=message,
            hint=hint,
            details=details,
        )

    return check


maintenance_checks = tuple(
    health_check(
        "operations",
        name=f"maintenance_{job}",
        title=f"{title} maintenance succeeded recently",
        hint=f"run: memcli maintain {job}; schedule it with memcli schedule",
        reads=(LOG, "memory_settings"),
    )(_job_check(job))
    for job, title in (("daily", "Daily"), ("weekly", "Weekly"), ("monthly", "Monthly"))
)


@health_check("operations", reads=(LOG,))
def maintenance_failures(ctx: Context) -> CheckResult:
    """No failed maintenance runs recently.

    Fix: read the error in system_maintenance_log and rerun the job.
    """
    from psycopg import sql

    window_h = ctx.thresholds["failed_runs_window_hours"]
    rows = ctx.rows(
        sql.SQL(
            """
            SELECT maintenance_type AS job, step, started_at, left(error, 200) AS error FROM {t}
            WHERE status = 'failed' AND started_at > now() - make_interval(secs => %s)
            ORDER BY started_at DESC LIMIT 50
            """
        ).format(t=ctx.table(LOG)),
        (window_h * 3600,),
    )
    runs = [r for r in rows if r["step"] is None]
    steps = [r for r in rows if r["step"] is not None]
    # A run whose summary row is missing (killed before writing it) still shows through its failed steps.
    count = len(runs) or len(steps)
    threshold = f"0 failed in the last {window_h:g} h"
    if count:
        latest = (runs or steps)[0]
        jobs = sorted({r["job"] for r in rows})
        message = (
            f"{count} failed in the last {window_h:g} h ({', '.join(jobs)}); latest: {latest['job']}"
            + (f"/{latest['step']}" if latest["step"] else "")
            + f": {latest['error'] or 'no error recorded'}"
        )
    else:
        message = f"no failed run in the last {window_h:g} h"
    return counted(count, threshold=threshold, message=message, details={"failed": rows} if count else {})


@health_check("operations", reads=(LOG,))
def maintenance_stuck(ctx: Context) -> CheckResult:
    """No run left 'running' by a process that is gone.

    Fix: nothing to undo (every batch committed or rolled back whole); the next run of the job closes the rows
    as interrupted: run it, or find what kills it (OOM killer, a timeout that sends SIGKILL).
    """
    from psycopg import sql

    from memcli.jobs.locks import lock_key
    from memcli.jobs.maintain import JOB_LOCKS

    runs = ctx.rows(
        sql.SQL(
            """
            SELECT maintenance_type AS job, started_at, details ->> 'run_id' AS run_id FROM {t}
            WHERE status = 'running' AND step IS NULL ORDER BY started_at
            """
        ).format(t=ctx.table(LOG))
    )
    # A live run holds every lock of its job (taken before its rows are written, released after they are
    # closed), so a 'running' row whose job's locks nobody holds belongs to a run that is gone.
    jobs = sorted({r["job"] for r in runs})
    keys = {job: [lock_key(name) for name in JOB_LOCKS.get(job, (job,))] for job in jobs}
    held = {
        int(r["key"])
        for r in ctx.rows(
            """
            SELECT (classid::bigint << 32 | objid::bigint) AS key FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """
        )
    }
    dead = [r for r in runs if not any(key in held for key in keys[r["job"]])]
    threshold = "0 runs 'running' without a live lock holder"
    details = {"stuck": dead, "running": len(runs)}
    if dead:
        listing = ", ".join(f"{r['job']} started {r['started_at']:%Y-%m-%d %H:%M}" for r in dead[:5])
        message = f"{len(dead)} run(s) left 'running' by a process that is gone: {listing}"
    elif runs:
        message = f"{len(runs)} run(s) in progress, each holding its lock"
    else:
        message = "no run in progress"
    return counted(len(dead), threshold=threshold, message=message, details=details)
