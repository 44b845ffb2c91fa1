"""Running maintenance jobs: the lock, the run log, and one step after another.

A job run uses two kinds of connection:
- a *control* connection, open for the whole run: it holds the job's advisory locks and writes the run log
  (a ``running`` row per step, committed before the step starts);
- a fresh *work* connection per step, closed after it. A step that fails (an error, a cancelled statement,
  a terminated connection) is recorded as ``failed`` and the next step still runs on a new connection.

Jobs and their steps:
- ``daily``: ``partitions`` (on the partitioned layout: the months ahead created, log partitions past
  retention dropped), ``cleanup`` (expired memories, whole partitions first; then relevance rows of
  sessions without memories),
  ``stale_relevance`` (relevance decayed below ``relevance.min_score``), ``close_sessions`` (sessions
  past ``sessions.close_hours``, consolidated and recorded closed) and ``retention`` (semantic memories,
  the logs and relevance rows older than their ``retention.*`` setting);
- ``weekly``: ``consolidate`` (merge old short-term memories per session), ``decay``, ``archive``,
  ``forget`` when asked, and ``partition_keys`` (on the partitioned layout: the keys of rows gone with a
  dropped partition, swept from the key table);
- ``monthly``: ``vacuum_analyze`` and ``reindex`` of the memory tables;
- ``cleanup`` and ``consolidate``: what the commands of those names run.

Locks: a job holds its own lock plus the lock of the work it shares with a stand-alone command (``daily``
also takes ``cleanup``, ``weekly`` also ``consolidate``), so ``memcli cleanup`` and ``memcli maintain daily``
never run at the same time either. A dry run takes no lock and writes no log: it changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, ConnectError, ExitCode, MemcliError
from memcli.jobs import cleanup as cleanup_mod
from memcli.jobs import consolidate as consolidate_mod
from memcli.jobs import interrupts, optimize
from memcli.jobs.cleanup import CleanupOptions
from memcli.jobs.common import DEFAULT_TIMEOUTS, ProgressCallback, Timeouts, partial_result
from memcli.jobs.consolidate import ConsolidateOptions
from memcli.jobs.locks import check_direct_connection, job_lock
from memcli.jobs.runlog import FAILED, SUCCEEDED, RunLog, counting_into
from memcli.jsonable import to_jsonable
from memcli.partitions import upkeep

if TYPE_CHECKING:
    import psycopg

JOBS = ("daily", "weekly", "monthly")
JOB_LOCKS: dict[str, tuple[str, ...]] = {
    "daily": ("daily", "cleanup", "partitions"),
    "weekly": ("weekly", "consolidate"),
    "monthly": ("monthly",),
    "cleanup": ("cleanup",),
    "consolidate": ("consolidate",),
    "partitions": ("partitions",),
}

ConnectFactory = Callable[[], "psycopg.Connection"]
StepCallback = Callable[[str, int, int], None]


@dataclass
class Step:
    name: str
    run: Callable[[psycopg.Connection], Any]  # returns a result dataclass with a ``rows`` count


@dataclass
class StepReport:
    step: str
    status: str
    rows: int = 0
    duration_seconds: float = 0.0
    error: str | None = None
    result: Any = None


@dataclass
class JobReport:
    job: str
    dry_run: bool
    status: str = SUCCEEDED
    run_id: str | None = None
    started_at: datetime | None = None
    duration_seconds: float = 0.0
    rows: int = 0
    steps: list[StepReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted_runs_closed: int = 0  # log rows of killed runs (of any job sharing a lock) closed as failed

    @property
    def failed_steps(self) -> list[StepReport]:
        return [s for s in self.steps if s.status == FAILED]

    @property
    def exit_code(self) -> int:
        return ExitCode.PROBLEMS if self.failed_steps else ExitCode.OK

    def step(self, name: str) -> StepReport | None:
        return next((s for s in self.steps if s.step == name), None)


def jobs_sharing_locks(lock_names: Sequence[str]) -> list[str]:
    """The jobs that take any of these locks: while they are held, no run of those jobs is alive."""
    held = set(lock_names)
    return [job for job, locks in JOB_LOCKS.items() if held & set(locks)]


def connection_factory(connect: ConnectFactory | str) -> ConnectFactory:
    """A DSN becomes a factory of autocommit connections."""
    if callable(connect):
        return connect
    dsn = connect

    def factory() -> psycopg.Connection:
        from memcli.db import connect as db_connect

        return db_connect(dsn, autocommit=True)

    return factory


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, MemcliError):
        return str(exc)
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


def _rows(result: Any) -> int:
    return int(getattr(result, "rows", 0) or 0)


def run_steps(
    connect: ConnectFactory | str,
    job: str,
    steps: Sequence[Step],
    *,
    dry_run: bool = False,
    on_step: StepCallback | None = None,
) -> JobReport:
    """Run ``steps`` in order under the job's locks, logging each; a failed step does not stop the rest.

    Raises LockedError (exit 75) at once when another run holds a lock, ConfigError behind a
    transaction-pooling proxy, NotReadyError when the schema is not migrated.
    """
    from memcli.readiness import require_migrated

    factory = connection_factory(connect)
    report = JobReport(job=job, dry_run=dry_run)
    started = time.perf_counter()
    control = factory()
    try:
        if not control.autocommit:
            control.autocommit = True
        require_migrated(control)
        probe = factory()  # a second client: behind a transaction pool it gets the control's backend
        try:
            report.warnings.extend(check_direct_connection(control, other=probe))
        finally:
            probe.close()
        report.started_at = control.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        lock_names = () if dry_run else JOB_LOCKS.get(job, (job,))
        with job_lock(control, lock_names, job):
            log = None if dry_run else RunLog(control, job)
            if log is not None:
                report.run_id = log.run_id
                report.interrupted_runs_closed = log.close_interrupted(jobs_sharing_locks(lock_names))
            job_entry = log.start(None, {"steps": [s.name for s in steps]}) if log else None
            try:
                for index, step in enumerate(steps):
                    if on_step:
                        on_step(step.name, index, len(steps))
                    _run_step(factory, step, log, report.steps)
            except BaseException as exc:
                # the run's row counts what its steps committed, the interrupted one included
                report.rows = _total(report)
                if log is not None and job_entry is not None and not control.broken:
                    with interrupts.deferred():
                        log.finish(job_entry, FAILED, rows=report.rows, error=_one_line(exc))
                raise
            report.rows = _total(report)
            report.status = FAILED if report.failed_steps else SUCCEEDED
            if log is not None and job_entry is not None:
                failed = report.failed_steps
                log.finish(
                    job_entry,
                    report.status,
                    rows=report.rows,
                    error="; ".join(f"{s.step}: {s.error}" for s in failed) if failed else None,
                    details={"steps": {s.step: s.status for s in report.steps}},
                )
    finally:
        control.close()
    report.duration_seconds = time.perf_counter() - started
    return report


def _total(report: JobReport) -> int:
    return sum(s.rows for s in report.steps)


def _run_step(factory: ConnectFactory, step: Step, log: RunLog | None, reports: list[StepReport]) -> None:
    """Run one step, log it and append its report (also when a signal interrupts it, then re-raised)."""
    import psycopg

    entry = log.start(step.name) if log else None
    started = time.perf_counter()
    status, error, result = SUCCEEDED, None, None
    try:
        conn = factory()
        try:
            with counting_into(entry):
                result = step.run(conn)
        finally:
            conn.close()
    except (KeyboardInterrupt, SystemExit) as exc:
        partial = partial_result(exc)
        interrupted = StepReport(
            step=step.name,
            status=FAILED,
            rows=_rows(partial),
            duration_seconds=time.perf_counter() - started,
            error="interrupted by a signal",
            result=partial,
        )
        reports.append(interrupted)
        if log is not None and entry is not None:
            with interrupts.deferred():  # a second Ctrl-C must not leave the step unrecorded
                log.finish(entry, FAILED, rows=interrupted.rows, error=interrupted.error)
        raise
    except Exception as exc:
        status, error, result = FAILED, _one_line(exc), partial_result(exc)
    report = StepReport(
        step=step.name,
        status=status,
        rows=_rows(result),
        duration_seconds=time.perf_counter() - started,
        error=error,
        result=result,
    )
    reports.append(report)
    if log is not None and entry is not None:
        try:
            with interrupts.deferred():  # the step is done: record it before stopping
                log.finish(
                    entry,
                    status,
                    rows=report.rows,
                    error=error,
                    details={"result": to_jsonable(result)} if result is not None else None,
                )
        except psycopg.OperationalError as exc:
            raise ConnectError(
                f"lost the connection that holds the maintenance lock after step {step.name}",
                hint="check the server; the next run marks this one as interrupted",
            ) from exc


# ---------------------------------------------------------------------------------------------- job plans


@dataclass(frozen=True)
class MaintainOptions:
    """What ``memcli maintain daily|weekly|monthly`` passes to its steps."""

    dry_run: bool = False
    forget: bool = False  # weekly: also forget archived memories never accessed
    timeouts: Timeouts = DEFAULT_TIMEOUTS


def cleanup_steps(options: CleanupOptions, progress: ProgressCallback | None = None) -> list[Step]:
    return [Step("cleanup", lambda conn: cleanup_mod.cleanup_expired(conn, options, progress=progress))]


def consolidate_steps(options: ConsolidateOptions, progress: ProgressCallback | None = None) -> list[Step]:
    """The merge, then the parts ``options`` asks for, each given the same options."""
    parts = (
        ("decay", options.decay, consolidate_mod.decay_relevance),
        ("archive", options.archive, consolidate_mod.archive_memories),
        ("forget", options.forget, consolidate_mod.forget_memories),
    )
    return [
        Step("consolidate", lambda conn: consolidate_mod.merge_sessions(conn, options, progress=progress)),
        *(Step(name, lambda conn, part=part: part(conn, options)) for name, wanted, part in parts if wanted),
    ]


def people_steps(*, dry_run: bool = False, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> list[Step]:
    """The daily steps of people's data: close sessions past their timeout (consolidating them), then
    retention of semantic memories, the logs and relevance rows."""
    from memcli.people import retention, sessions

    return [
        Step(
            "close_sessions", lambda conn: sessions.close_timed_out(conn, dry_run=dry_run, timeouts=timeouts)
        ),
        Step("retention", lambda conn: retention.apply_retention(conn, dry_run=dry_run, timeouts=timeouts)),
    ]


def job_steps(job: str, options: MaintainOptions, progress: ProgressCallback | None = None) -> list[Step]:
    """The steps of ``daily``, ``weekly`` or ``monthly``."""
    dry_run, timeouts = options.dry_run, options.timeouts
    if job == "daily":
        return [
            Step("partitions", lambda conn: upkeep.upkeep(conn, dry_run=dry_run, timeouts=timeouts)),
            *cleanup_steps(CleanupOptions(dry_run=dry_run, timeouts=timeouts), progress),
            Step(
                "stale_relevance",
                lambda conn: cleanup_mod.cleanup_stale_relevance(conn, dry_run=dry_run, timeouts=timeouts),
            ),
            *people_steps(dry_run=dry_run, timeouts=timeouts),
        ]
    if job == "weekly":
        weekly = ConsolidateOptions(
            dry_run=dry_run, decay=True, archive=True, forget=options.forget, timeouts=timeouts
        )
        return [
            *consolidate_steps(weekly, progress),
            Step(
                "partition_keys",
                lambda conn: upkeep.release_stale_keys(conn, dry_run=dry_run, timeouts=timeouts),
            ),
        ]
    if job == "monthly":
        lock_ms = timeouts.ddl_lock_timeout_ms
        return [
            Step(
                "vacuum_analyze",
                lambda conn: optimize.vacuum_analyze(conn, dry_run=dry_run, lock_timeout_ms=lock_ms),
            ),
            Step("reindex", lambda conn: optimize.reindex(conn, dry_run=dry_run, lock_timeout_ms=lock_ms)),
        ]
    raise ConfigError(f"unknown job {job!r}", hint=f"use one of: {', '.join(JOBS)}")


def run_job(
    connect: ConnectFactory | str,
    job: str,
    options: MaintainOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    on_step: StepCallback | None = None,
) -> JobReport:
    """Run ``daily``, ``weekly`` or ``monthly``; the report's ``exit_code`` is 1 when a step failed."""
    options = options or MaintainOptions()
    steps = job_steps(job, options, progress)
    return run_steps(connect, job, steps, dry_run=options.dry_run, on_step=on_step)
