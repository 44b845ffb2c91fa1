"""Maintenance commands: ``cleanup``, ``consolidate``, ``maintain daily|weekly|monthly`` and ``schedule``.

They parse options, call memcli.jobs, and render the result (a table on a terminal, one JSON document with
``--json``). Every job takes a Postgres advisory lock and records its steps in system_maintenance_log.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import err, print_json, progress, to_jsonable, wrap_comment
from memcli.cli.state import State, get_state
from memcli.errors import ExitCode
from memcli.jobs.interrupts import stop_on_signals

if TYPE_CHECKING:
    from memcli.jobs.common import Timeouts
    from memcli.jobs.maintain import JobReport

DIRECT_CONNECTION_NOTE = (
    "Maintenance needs a direct connection to Postgres (or a session-mode pool): its advisory lock does not "
    "hold through PgBouncer/Supavisor in transaction mode, and memcli refuses such a connection."
)
JOB_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "done",
        ExitCode.PROBLEMS: "a step failed (the others still ran)",
        ExitCode.USAGE: "bad option",
        ExitCode.CONNECT: "cannot connect",
        ExitCode.NOT_READY: "not migrated",
        ExitCode.LOCKED: "another run holds the lock (nothing done, retry later)",
        ExitCode.INTERRUPTED: "interrupted (what was committed so far is kept and logged)",
    }
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document with the counts.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Count what would change; change nothing (no lock, no log rows).")
]
LockTimeoutOpt = Annotated[
    str | None,
    typer.Option(
        "--lock-timeout",
        metavar="DURATION",
        help="Longest wait for a lock the application holds before a batch gives up and is retried "
        "(default 2s; 10s for VACUUM/REINDEX).",
    ),
]


class Job(StrEnum):
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


# ------------------------------------------------------------------------------------------------ helpers


def _duration(value: str | None, option: str) -> Any:
    if value is None:
        return None
    from memcli.durations import parse_duration

    return parse_duration(value, option)


def _timeouts(lock_timeout: str | None) -> Timeouts:
    from memcli.jobs.common import DEFAULT_TIMEOUTS, Timeouts

    if lock_timeout is None:
        return DEFAULT_TIMEOUTS
    ms = max(1, int(_duration(lock_timeout, "--lock-timeout").total_seconds() * 1000))
    return Timeouts(lock_timeout_ms=ms, ddl_lock_timeout_ms=ms)


def _factory(state: State) -> Any:
    from memcli.jobs.maintain import connection_factory

    return connection_factory(state.resolve_dsn())


def _document(report: JobReport, **extra: Any) -> dict[str, Any]:
    """The job's --json document: the report, ``extra`` (where the report has no field of that name: its
    duration and dry_run win), the exit code, and the steps with their results last."""
    document = to_jsonable(report)
    steps = document.pop("steps")
    document.update({k: v for k, v in to_jsonable(extra).items() if k not in document})
    return {**document, "exit_code": int(report.exit_code), "steps": steps}


def finish_job(state: State, report: JobReport, payload: dict[str, Any], render: Any) -> None:
    """Print the result (JSON or table), the warnings, and turn failed steps into exit 1."""
    for warning in report.warnings:
        err(f"Warning: {warning}")
    if report.interrupted_runs_closed and not state.json:
        err(f"Note: {report.interrupted_runs_closed} step(s) of an earlier interrupted run marked failed")
    if state.json:
        print_json(payload)
    else:
        render()
    failed = report.failed_steps
    if failed:
        from memcli.errors import JobFailedError

        detail = "; ".join(f"{s.step}: {s.error}" for s in failed)
        raise JobFailedError(f"{report.job}: {len(failed)} step(s) failed: {detail}")


def _steps_table(state: State, report: JobReport) -> None:
    from memcli.cli.render import Col, FitTable

    table = FitTable(
        Col("step"),
        Col("status"),
        Col("rows", justify="right"),
        Col("time", justify="right"),
        Col("error", text=True),
    )
    from memcli.durations import format_duration

    for s in report.steps:
        table.add_row(s.step, s.status, f"{s.rows:,}", format_duration(s.duration_seconds), s.error or "")
    state.console.print(table)


def _pairs_table(state: State, title: str, rows: dict[str, Any], header: tuple[str, str]) -> None:
    from memcli.cli.render import pairs_table

    state.console.print(pairs_table(title, rows, header))


# ------------------------------------------------------------------------------------------------ cleanup


def cleanup(
    ctx: typer.Context,
    expired: Annotated[
        bool, typer.Option("--expired", help="Delete memories whose expires_at has passed.")
    ] = False,
    dry_run: DryRunOpt = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only memories that expired at least this long ago (30d, 12h, 10m, 90s): a grace period "
            "in which an expired memory can still be recovered. Default: every expired memory.",
        ),
    ] = None,
    memory_type: Annotated[
        str | None,
        typer.Option(
            "--type", metavar="TIER", help="Only this tier: short_term, long_term, archived, semantic."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Rows per batch transaction (default: settings cleanup.batch_size)."
        ),
    ] = None,
    max_runtime: Annotated[
        str | None,
        typer.Option(
            "--max-runtime",
            metavar="DURATION",
            help="Stop between batches after this long (e.g. 10m); the next run continues.",
        ),
    ] = None,
    lock_timeout: LockTimeoutOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Delete expired memories in short batches that never block the application.

    Deletes conversation_memory rows whose expires_at has passed, a few thousand per transaction
    (lock_timeout set, rows the application holds are skipped with SKIP LOCKED and left for the next
    run), then the context_relevance rows of sessions that have no conversation_memory and no
    semantic_memory left. That is exactly what SELECT cleanup_expired_memory() deletes, without one long
    transaction. The set of expired rows is fixed when the run starts.
    """
    state = get_state(ctx, json_)
    if not expired:
        from memcli.errors import ConfigError

        raise ConfigError("say what to clean up: --expired", hint="memcli cleanup --expired --dry-run")
    from memcli.jobs.cleanup import CleanupOptions
    from memcli.jobs.common import check_memory_type
    from memcli.jobs.maintain import cleanup_steps, run_steps

    options = CleanupOptions(
        dry_run=dry_run,
        older_than=_duration(older_than, "--older-than"),
        memory_type=check_memory_type(memory_type),
        batch_size=batch_size,
        max_runtime=_duration(max_runtime, "--max-runtime"),
        timeouts=_timeouts(lock_timeout),
    )
    bar = progress(state.console, disable=state.quiet or state.json)
    with bar, stop_on_signals():
        task = bar.add_task("deleting expired memories", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        report = run_steps(_factory(state), "cleanup", cleanup_steps(options, advance), dry_run=dry_run)
    result = report.steps[0].result
    payload = _document(report, **(to_jsonable(result) if result is not None else {}))  # its counts on top

    def render() -> None:
        if result is None:
            _steps_table(state, report)
            return
        if dry_run:
            state.console.print(
                f"Dry run: would delete {sum(result.would_delete.values()):,} rows "
                f"(memories that expired before {result.cutoff:%Y-%m-%d %H:%M:%S %Z})"
            )
            _pairs_table(state, "per table", result.would_delete, ("table", "rows"))
            _pairs_table(state, "per tier", result.would_delete_by_tier, ("tier", "memories"))
            if result.would_drop_partitions:
                state.console.print(
                    f"whole partitions that would be dropped: {', '.join(result.would_drop_partitions)}"
                )
            if result.sample_sessions:
                _pairs_table(
                    state,
                    "most expired sessions",
                    {s["session_id"]: s["expired"] for s in result.sample_sessions},
                    ("session", "expired"),
                )
            return
        state.console.print(
            f"Deleted {sum(result.deleted.values()):,} rows in {result.batches} batches "
            f"(longest batch {result.longest_batch_ms:.0f} ms) in {report.duration_seconds:.1f}s"
            + (
                ""
                if result.complete
                else f" — stopped early: {result.stopped or 'failed'}; run again to continue"
            )
        )
        if result.partitions_dropped:
            state.console.print(f"whole partitions dropped: {', '.join(result.partitions_dropped)}")
        _pairs_table(state, "per table", result.deleted, ("table", "rows"))
        _pairs_table(state, "per tier", result.deleted_by_tier, ("tier", "memories"))

    finish_job(state, report, payload, render)


# -------------------------------------------------------------------------------------------- consolidate


def consolidate(
    ctx: typer.Context,
    session: Annotated[str | None, typer.Option("--session", metavar="ID", help="Only this session.")] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Merge short_term memories created more than this long ago "
            "(default: settings consolidation.min_age_days, 5d).",
        ),
    ] = None,
    decay: Annotated[
        bool,
        typer.Option(
            "--decay", help="Also decay relevance: score * decay_factor where not recalculated lately."
        ),
    ] = False,
    archive: Annotated[
        bool,
        typer.Option("--archive", help="Also archive long_term memories of low importance that are old."),
    ] = False,
    forget: Annotated[
        bool,
        typer.Option(
            "--forget", help="Also delete archived memories never accessed that are old (ids logged)."
        ),
    ] = False,
    decay_interval: Annotated[
        str | None,
        typer.Option(
            "--decay-interval",
            metavar="DURATION",
            help="Decay rows not recalculated for this long "
            "(default: settings relevance.decay_interval_hours, 24h).",
        ),
    ] = None,
    archive_below: Annotated[
        float | None,
        typer.Option(
            "--archive-below",
            min=0.0,
            max=1.0,
            help="Archive importance threshold (default: settings archive.max_importance, 0.3).",
        ),
    ] = None,
    archive_older_than: Annotated[
        str | None,
        typer.Option(
            "--archive-older-than",
            metavar="DURATION",
            help="Archive long_term memories created more than this long ago (default: settings "
            "archive.min_age_days, 30d).",
        ),
    ] = None,
    forget_older_than: Annotated[
        str | None,
        typer.Option(
            "--forget-older-than",
            metavar="DURATION",
            help="Forget archived memories created before this (default: settings forget.min_age_days, 90d).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Rows per batch for decay, archive and forget.")
    ] = None,
    dry_run: DryRunOpt = False,
    lock_timeout: LockTimeoutOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Merge each session's old short-term memories into one long-term memory; decay, archive, forget.

    One transaction per session calls the SQL function consolidate_session_memories(session, threshold),
    which inserts the merged memory (values combined in creation order, later values win, overwritten
    ones kept in the log), writes the 'merge' log row and deletes the originals — all or nothing.
    --archive and --forget write 'archive' / 'forget' rows to memory_consolidation_log with the ids.
    None of these updates counts as an access of the memories.
    """
    state = get_state(ctx, json_)
    from memcli.jobs.consolidate import ConsolidateOptions
    from memcli.jobs.maintain import consolidate_steps, run_steps

    options = ConsolidateOptions(
        dry_run=dry_run,
        session=session,
        older_than=_duration(older_than, "--older-than"),
        decay=decay,
        archive=archive,
        forget=forget,
        decay_interval=_duration(decay_interval, "--decay-interval"),
        archive_max_importance=archive_below,
        archive_min_age=_duration(archive_older_than, "--archive-older-than"),
        forget_min_age=_duration(forget_older_than, "--forget-older-than"),
        batch_size=batch_size,
        timeouts=_timeouts(lock_timeout),
    )
    bar = progress(state.console, disable=state.quiet or state.json)
    with bar, stop_on_signals():
        task = bar.add_task("consolidating sessions", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        steps = consolidate_steps(options, advance)
        report = run_steps(_factory(state), "consolidate", steps, dry_run=dry_run)

    def result_of(name: str) -> Any:
        step = report.step(name)
        return step.result if step else None

    merge, decayed, archived, forgotten = (
        result_of(n) for n in ("consolidate", "decay", "archive", "forget")
    )
    counts: dict[str, Any] = {
        "sessions_consolidated": merge.sessions if merge else 0,
        "memories_merged": merge.memories_merged if merge else 0,
        "sessions_skipped": len(merge.skipped_sessions) if merge else 0,
        "decayed": decayed.decayed if decayed else None,
        "archived": archived.archived if archived else None,
        "forgotten": forgotten.forgotten if forgotten else None,
    }
    payload = _document(report, session=session, **counts)

    def render() -> None:
        verb = "would be " if dry_run else ""
        rows = {
            f"sessions {verb}consolidated": counts["sessions_consolidated"],
            f"short-term memories {verb}merged": counts["memories_merged"],
        }
        if merge and merge.skipped_sessions:
            rows["sessions skipped (busy, next run)"] = len(merge.skipped_sessions)
        for key, label in (
            ("decayed", "relevance rows"),
            ("archived", "memories"),
            ("forgotten", "memories"),
        ):
            if counts[key] is not None:
                rows[f"{label} {verb}{key}"] = counts[key]
        _pairs_table(state, "Dry run" if dry_run else "Consolidation", rows, ("", "count"))
        if report.failed_steps:
            _steps_table(state, report)

    finish_job(state, report, payload, render)


# ----------------------------------------------------------------------------------------------- maintain


def maintain(
    ctx: typer.Context,
    job: Annotated[Job, typer.Argument(help="daily, weekly or monthly.", case_sensitive=False)],
    forget: Annotated[
        bool, typer.Option("--forget", help="weekly: also forget archived memories never accessed.")
    ] = False,
    dry_run: DryRunOpt = False,
    lock_timeout: LockTimeoutOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Run a scheduled maintenance job; each step is recorded in system_maintenance_log.

    daily: cleanup (expired memories, then relevance rows of sessions with no memories left), then
    stale_relevance (relevance rows decayed below settings relevance.min_score).
    weekly: consolidate (merge short-term memories older than consolidation.min_age_days per session),
    decay (relevance * decay_factor), archive (low-importance long-term memories); forget with --forget;
    partition_keys (partitioned layout: keys of rows gone with a dropped partition, swept).
    monthly: vacuum_analyze (ANALYZE each memory table, VACUUM (ANALYZE) where dead rows piled up) and
    reindex (REINDEX INDEX CONCURRENTLY of every memory-table index; leftovers of failed rebuilds dropped).

    A failed step does not stop the others (the job then exits 1). The job holds a Postgres advisory
    lock: a second run exits 75 at once. Print crontab lines with: memcli schedule.
    """
    state = get_state(ctx, json_)
    from memcli.jobs.maintain import MaintainOptions, run_job

    if forget and job is not Job.weekly:
        from memcli.errors import ConfigError

        raise ConfigError("--forget belongs to the weekly job", hint="memcli maintain weekly --forget")
    bar = progress(state.console, disable=state.quiet or state.json)
    with bar, stop_on_signals():
        task = bar.add_task(f"{job.value} maintenance", total=None)

        def on_step(name: str, index: int, total: int) -> None:
            bar.update(task, description=f"{job.value}: {name}", completed=index, total=total)

        options = MaintainOptions(dry_run=dry_run, forget=forget, timeouts=_timeouts(lock_timeout))
        report = run_job(_factory(state), job.value, options, on_step=on_step)
    payload = _document(report)

    def render() -> None:
        title = f"{job.value} maintenance" + (" (dry run: counts only)" if dry_run else "")
        state.console.print(f"{title}: {report.status} in {report.duration_seconds:.1f}s")
        _steps_table(state, report)

    finish_job(state, report, payload, render)


# ----------------------------------------------------------------------------------------------- schedule


def schedule(
    ctx: typer.Context,
    log_dir: Annotated[
        Path | None,
        typer.Option("--log-dir", help="Folder for the jobs' logs (default: the user log folder)."),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print one JSON document: the crontab lines, units and notes.")
    ] = False,
) -> None:
    """Print crontab lines and systemd units that run the daily, weekly and monthly jobs.

    The lines use the absolute path of this memcli and the current configuration (--config file, or the
    database URL without its password, or MEMCLI_HOME for the embedded server). No flock is needed: an
    overlapping run exits 75 because of the job's advisory lock. Paste them with: crontab -e.
    """
    state = get_state(ctx, json_)
    from memcli.jobs.schedule import build_schedule

    plan = build_schedule(state.config(), log_dir=log_dir, explicit_config=state.config_path is not None)
    if state.json:
        print_json(plan)
        return
    # plain text, not Rich: this is meant to be pasted as is
    lines = ["# --- crontab (crontab -e) ---"]
    for note in plan.notes:  # notes wrap (as comments); the command lines never do: they are pasted
        lines += wrap_comment(f"note: {note}")
    lines += plan.crontab
    lines += [
        "",
        "# --- systemd: user units in ~/.config/systemd/user/, then",
        "#   systemctl --user daemon-reload",
        "#   systemctl --user enable --now memcli-daily.timer memcli-weekly.timer memcli-monthly.timer",
        "#   loginctl enable-linger $USER   (so they run while you are logged out)",
    ]
    for name, text in plan.systemd.items():
        lines += ["", f"# {name}", text.rstrip("\n")]
    typer.echo("\n".join(lines))


SCHEDULE_EXIT_CODES = exit_codes(
    {ExitCode.OK: "printed", ExitCode.USAGE: "bad option or configuration (nothing printed)"}
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    notes = (DIRECT_CONNECTION_NOTE, JOB_EXIT_CODES)
    app.command(
        epilog=epilog(
            *notes,
            examples=(
                "memcli cleanup --expired --dry-run",
                "memcli cleanup --expired --older-than 30d --type short_term --max-runtime 10m --json",
            ),
        )
    )(cleanup)
    app.command(
        epilog=epilog(
            *notes,
            examples=(
                "memcli consolidate --dry-run",
                "memcli consolidate --session abc --older-than 1d",
                "memcli consolidate --decay --archive --forget --json",
            ),
        )
    )(consolidate)
    app.command(
        epilog=epilog(
            *notes,
            examples=(
                "memcli maintain daily",
                "memcli maintain weekly --forget --dry-run",
                "memcli -q maintain monthly --json >> ~/.local/state/memcli/monthly.log 2>&1",
            ),
        )
    )(maintain)
    app.command(
        epilog=epilog(
            DIRECT_CONNECTION_NOTE,
            SCHEDULE_EXIT_CODES,
            examples=(
                "memcli schedule",
                "memcli --config /etc/memcli.toml schedule --log-dir /var/log/memcli",
                "memcli schedule --json",
            ),
        )
    )(schedule)
