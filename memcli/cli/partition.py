"""``memcli partition list | upkeep | convert``: the partitioned layout of the growing tables."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from memcli.cli import helptext
from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.jobs import finish_job
from memcli.cli.render import print_json
from memcli.cli.state import State, get_state
from memcli.errors import ExitCode
from memcli.jsonable import to_jsonable

EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "done",
        ExitCode.PROBLEMS: "a step failed",
        ExitCode.USAGE: helptext.USAGE,
        ExitCode.CONNECT: helptext.CONNECT,
        ExitCode.NOT_READY: helptext.NOT_MIGRATED,
        ExitCode.LOCKED: "another upkeep or conversion holds the lock (nothing done, retry later)",
    }
)
LIST_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "done",
        ExitCode.USAGE: helptext.USAGE,
        ExitCode.CONNECT: helptext.CONNECT,
        ExitCode.NOT_READY: helptext.NOT_MIGRATED,
    }
)
app = typer.Typer(
    no_args_is_help=True,
    help="Partitioned layout: list, upkeep, online convert.",
    epilog=epilog(
        EXIT_CODES,
        examples=(
            "memcli partition list",
            "memcli partition upkeep --dry-run",
            "memcli partition convert --dry-run",
        ),
    ),
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Say what would change; change nothing.")]
TableOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--table",
        metavar="TABLE",
        help="Only this table (conversation_memory, memory_consolidation_log, system_maintenance_log); "
        "repeatable.",
    ),
]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


@app.command(
    "list",
    epilog=epilog(
        LIST_EXIT_CODES,
        examples=("memcli partition list", "memcli partition list --table conversation_memory --json"),
    ),
)
def list_(ctx: typer.Context, table: TableOpt = None, json_: JsonOpt = False) -> None:
    """The partitions of the partitioned tables: bounds, estimated rows, size, and whether they are due
    to be dropped. On the plain layout there are none.
    """
    from memcli.db import connect
    from memcli.partitions.layout import spec_for
    from memcli.partitions.upkeep import list_partitions
    from memcli.readiness import require_migrated

    state = get_state(ctx, json_)
    tables = [spec_for(t).table for t in table] if table else None
    with connect(state.resolve_dsn()) as conn:
        require_migrated(conn)
        partitions = list_partitions(conn, tables)
    if state.json:
        print_json({"partitions": to_jsonable(partitions)})
        return
    if not partitions:
        state.console.print("No partitioned table (plain layout); see: memcli partition convert --help")
        return
    from memcli.cli.render import Col, FitTable

    # a partition's name begins with its table's, so the table needs no column of its own
    out = FitTable(
        Col("partition"),
        Col("from"),
        Col("to"),
        Col("rows", justify="right"),  # the planner's estimate: "~"
        Col("size", justify="right", drop=1),
        Col("note", text=True),
    )
    for p in partitions:
        note = "due to drop" if p.droppable else ""
        if p.is_default and p.keyed_rows_in_default:
            note = f"{p.keyed_rows_in_default:,} row(s) outside every month"
        out.add_row(
            p.name,
            "DEFAULT" if p.is_default else f"{p.lower:%Y-%m-%d}",
            "" if p.is_default else f"{p.upper:%Y-%m-%d}",
            f"~{p.rows_estimate:,}",
            _size(p.bytes),
            note,
        )
    state.console.print(out)


def _run(state: State, steps: list[Any], dry_run: bool) -> Any:
    from memcli.jobs.maintain import connection_factory, run_steps

    return run_steps(connection_factory(state.resolve_dsn()), "partitions", steps, dry_run=dry_run)


@app.command(
    epilog=epilog(
        EXIT_CODES,
        examples=(
            "memcli partition upkeep",
            "memcli partition upkeep --dry-run --json",
            "memcli partition upkeep --table system_maintenance_log",
        ),
    )
)
def upkeep(
    ctx: typer.Context, table: TableOpt = None, dry_run: DryRunOpt = False, json_: JsonOpt = False
) -> None:
    """Create the months ahead and drop partitions whose rows have all expired (memories) or passed the
    log's retention. `memcli maintain daily` runs this too; conversation memory partitions are dropped by
    `memcli cleanup`, which this also does.
    """
    from memcli.jobs.maintain import Step
    from memcli.partitions import upkeep as upkeep_mod
    from memcli.partitions.layout import spec_for

    state = get_state(ctx, json_)
    tables = [spec_for(t).table for t in table] if table else None
    report = _run(
        state,
        [Step("partitions", lambda conn: upkeep_mod.upkeep(conn, dry_run=dry_run, tables=tables))],
        dry_run,
    )
    result = report.steps[0].result if report.steps else None
    payload = {"status": report.status, "dry_run": dry_run, "result": to_jsonable(result)}

    def render() -> None:
        if result is None:
            return
        verb = ("would create", "would drop") if dry_run else ("created", "dropped")
        state.console.print(f"{verb[0]}: {', '.join(result.created) or 'nothing'}")
        state.console.print(
            f"{verb[1]}: "
            + (", ".join(f"{n} ({result.dropped_rows[n]:,} rows)" for n in result.dropped) or "nothing")
        )

    finish_job(state, report, payload, render)


@app.command(
    epilog=epilog(
        EXIT_CODES,
        examples=(
            "memcli partition convert --dry-run",
            "memcli partition convert --table conversation_memory",
            "memcli partition convert --abandon",
        ),
    )
)
def convert(
    ctx: typer.Context,
    table: TableOpt = None,
    dry_run: DryRunOpt = False,
    abandon: Annotated[
        bool,
        typer.Option(
            "--abandon",
            help="Remove an unfinished conversion (twin, triggers, change log); keep the original.",
        ),
    ] = False,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Rows per copy transaction (default: settings).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Convert plain tables to the partitioned layout online: copy in batches into a partitioned twin,
    catch up with the writes made meanwhile, swap under a lock held for the final catch-up only.

    The original serves the application until the swap. An interrupted run leaves it serving: run the
    command again to resume, or with --abandon to remove the unfinished twin. Rows outside every planned
    month land in the default partition (`memcli health` reports them).
    """
    from memcli.jobs.maintain import Step
    from memcli.partitions import convert as convert_mod
    from memcli.partitions.layout import spec_for

    state = get_state(ctx, json_)
    tables = [spec_for(t).table for t in table] if table else None
    bar: dict[str, Any] = {}

    def advance(name: str, done: int, total: int | None) -> None:
        if state.json or not state.console.is_terminal:
            return
        bar.setdefault(name, None)
        state.console.print(f"\r{name}: {done:,} / {total or 0:,} rows copied", end="")

    report = _run(
        state,
        [
            Step(
                "convert",
                lambda conn: convert_mod.convert(
                    conn, tables, dry_run=dry_run, abandon=abandon, batch_size=batch_size, progress=advance
                ),
            )
        ],
        dry_run,
    )
    result = report.steps[0].result if report.steps else None
    payload = {"status": report.status, "dry_run": dry_run, "result": to_jsonable(result)}

    def render() -> None:
        if result is None:
            return
        if bar:
            state.console.print()
        from memcli.cli.render import Col, FitTable

        out = FitTable(
            Col("table"),
            Col("status", text=True),
            Col("rows copied", justify="right"),
            Col("caught up", justify="right", drop=2),
            Col("lock held", justify="right", drop=1),
            Col("outside months", justify="right", drop=3),
        )
        # counts of 0 stay blank: a blank cell is not folded into the status when the column is dropped
        for t in result.tables:
            out.add_row(
                t.table,
                t.status + (" (resumed)" if t.resumed else ""),
                f"{t.rows_copied:,}",
                f"{t.rows_caught_up:,}" if t.rows_caught_up else "",
                (f"{t.lock_ms:.0f} ms" if t.lock_ms else "")
                + (f" ({t.swap_attempts} tries)" if t.swap_attempts > 1 else ""),
                f"{t.rows_outside_months:,}" if t.rows_outside_months else "",
            )
        state.console.print(out)

    finish_job(state, report, payload, render)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="partition")
