"""``memcli migrate``: bring the database to the memory schema (Alembic); status, history, downgrade."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.options import JsonOpt
from memcli.cli.render import print_json, wrap_text
from memcli.cli.state import get_state
from memcli.errors import ExitCode

if TYPE_CHECKING:
    from memcli.cli.state import State

MIGRATE_EXIT_CODES = exit_codes(
    {
        ExitCode.OK: "done (also when there was nothing to do)",
        ExitCode.USAGE: "bad option or revision",
        ExitCode.CONNECT: "cannot connect",
        ExitCode.NOT_READY: "pgvector is not available",
        ExitCode.LOCKED: "another migration held the lock for longer than --lock-wait",
    }
)
app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    epilog=epilog(
        MIGRATE_EXIT_CODES,
        examples=(
            "memcli migrate",
            "memcli migrate --embedding-dim 1536    # the first migration only",
            "memcli migrate --partitioned           # the first migration only",
            "memcli migrate --vector-type halfvec   # a new database; else: memcli vectors convert",
            "memcli migrate --sql > memory_schema.sql",
            "memcli migrate status",
            "memcli migrate down base --dry-run",
        ),
    ),
)

SqlOpt = Annotated[
    bool,
    typer.Option(
        "--sql",
        help="Print the SQL instead of running it (offline: no database needed; for DBAs and the Supabase "
        "SQL editor).",
    ),
]
LockTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        metavar="SECONDS",
        min=0.001,
        help="Give up a DDL statement that waits longer than this for a lock held by the application "
        "(default 10; also MEMCLI_LOCK_TIMEOUT or [migrate] lock_timeout).",
    ),
]
LockWaitOpt = Annotated[
    float | None,
    typer.Option(
        "--lock-wait",
        metavar="SECONDS",
        min=0,
        help="How long to wait for another running migration before exiting 75 (default 300; also "
        "[migrate] lock_wait).",
    ),
]


def _locks(state: State, lock_timeout: float | None, lock_wait: float | None) -> dict[str, Any]:
    config = state.config({"migrate.lock_timeout": lock_timeout, "migrate.lock_wait": lock_wait})
    return {
        "lock_timeout_ms": int(config.value("migrate.lock_timeout") * 1000),
        "lock_wait_seconds": config.value("migrate.lock_wait"),
    }


@app.callback()
def migrate(
    ctx: typer.Context,
    revision: Annotated[
        str, typer.Option("--to", metavar="REV", help="Upgrade to this revision instead of head.")
    ] = "head",
    sql: SqlOpt = False,
    embedding_dim: Annotated[
        int | None,
        typer.Option(
            "--embedding-dim",
            metavar="N",
            min=1,
            help="Vector dimension, chosen at the first migration (default 384; 1536 for OpenAI's models). "
            "Also MEMCLI_EMBEDDING_DIM or [embedding] dimension in memcli.toml.",
        ),
    ] = None,
    vector_type: Annotated[
        str | None,
        typer.Option(
            "--vector-type",
            metavar="TYPE",
            help="vector or halfvec (half the size; docs/vector-index.md says when), chosen at the first "
            "migration; a database with memories converts online: memcli vectors convert. Also "
            "MEMCLI_VECTOR_TYPE or [embedding] vector_type in memcli.toml.",
        ),
    ] = None,
    lock_timeout: LockTimeoutOpt = None,
    lock_wait: LockWaitOpt = None,
    partitioned: Annotated[
        bool,
        typer.Option(
            "--partitioned",
            envvar="MEMCLI_PARTITIONED",
            help="Partition the growing tables (conversation_memory and the two logs) by month, so expired "
            "rows leave by dropping partitions; chosen at the first migration (later: memcli partition "
            "convert). Also MEMCLI_PARTITIONED=1.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Migrate the database to memcli's memory schema (Alembic). Without a subcommand: upgrade to head.

    Idempotent: a migrated database is left as it is. An application's existing business tables are adopted
    as they are (no column altered, no row touched). Runs are serialised by an advisory lock; each revision
    commits on its own, so a failure leaves the last good revision.
    """
    if ctx.invoked_subcommand is not None:
        return
    from memcli import migrations

    state = get_state(ctx, json_)
    configured = state.config({"embedding.dimension": embedding_dim, "embedding.vector_type": vector_type})
    dimension = configured.values["embedding.dimension"]
    kind = configured.values["embedding.vector_type"]
    dsn = None if sql else state.resolve_dsn()
    result = migrations.upgrade(
        dsn,
        revision,
        sql=sql,
        # the default only applies to a first migration; a configured dimension must match the database's
        embedding_dim=None if dimension.source == "default" else dimension.value,
        dimension_source=dimension.source,
        partitioned=partitioned,
        # likewise: the default type is vector; a configured one must match a database with memories
        vector_type=None if kind.source == "default" else kind.value,
        vector_type_source=kind.source,
        **_locks(state, lock_timeout, lock_wait),
    )
    if sql:
        _print_sql(state, result)
        return
    if state.json:
        print_json(result)
        return
    if state.quiet:
        return
    if result.applied:
        start = result.from_revision or "base"
        typer.echo(wrap_text(f"migrated {start} -> {result.to_revision} in {result.duration_seconds:.2f} s"))
        typer.echo(wrap_text(f"applied {', '.join(result.applied)}"))
        typer.echo(f"embedding dimension {result.embedding_dimension}")
    else:
        typer.echo(f"already at {result.to_revision}: nothing to do")


@app.command(
    epilog=epilog(
        exit_codes(
            {
                ExitCode.OK: "up to date",
                ExitCode.CONNECT: "cannot connect",
                ExitCode.NOT_READY: "revisions are pending (or the database is not migrated at all)",
            }
        ),
        examples=("memcli migrate status", "memcli -q migrate status || memcli migrate"),
    )
)
def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the database's revision, the newest one and the revisions an upgrade would apply."""
    from memcli import migrations

    state = get_state(ctx, json_)
    result = migrations.status(state.resolve_dsn())
    if state.json:
        print_json(result)
    elif not state.quiet:
        typer.echo(f"current   {result.current or 'base (not migrated)'}")
        typer.echo(f"head      {result.head}")
        if result.embedding_dimension is not None:
            typer.echo(f"dimension {result.embedding_dimension}")
        if result.pending:
            pending = ", ".join(rev.revision for rev in result.pending)
            typer.echo(wrap_text(f"pending   {pending}", hang=" " * 10))
            typer.echo("run: memcli migrate")
        else:
            typer.echo("up to date")
    if not result.up_to_date:
        raise typer.Exit(ExitCode.NOT_READY)


@app.command(epilog=epilog(examples=("memcli migrate history", "memcli migrate history --json")))
def history(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the schema's revisions, oldest first (no database needed)."""
    from memcli import migrations

    state = get_state(ctx, json_)
    revisions = migrations.history()
    if state.json:
        print_json({"revisions": revisions})
        return
    from memcli.cli.render import Col, FitTable

    table = FitTable(Col("revision"), Col("after", drop=1), Col("description", text=True))
    for rev in revisions:
        head = " (head)" if rev.is_head else ""
        table.add_row(rev.revision + head, rev.down_revision or "base", rev.description, fold=False)
    state.console.print(table)


@app.command(
    epilog=epilog(
        exit_codes(
            {
                ExitCode.OK: "done (also when there was nothing to revert)",
                ExitCode.USAGE: "bad option or revision",
                ExitCode.CONNECT: "cannot connect",
                ExitCode.LOCKED: "another migration held the lock for longer than --lock-wait",
            }
        ),
        examples=(
            "memcli migrate down 0002_memory_system --dry-run",
            "memcli migrate down base --yes",
            "memcli migrate down base --sql > drop_memory_schema.sql",
        ),
    )
)
def down(
    ctx: typer.Context,
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REV",
            help="Revision to go back to: one of `memcli migrate history`, or base (removes all memcli "
            "created; never the application's tables). With --sql also FROM:TO.",
        ),
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be reverted and dropped; change nothing.")
    ] = False,
    sql: SqlOpt = False,
    lock_timeout: LockTimeoutOpt = None,
    lock_wait: LockWaitOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Downgrade to REV. Drops the tables (and rows) of the reverted revisions; asks first unless --yes."""
    from memcli import migrations

    state = get_state(ctx, json_)
    if sql:
        dsn = None if ":" in revision else state.resolve_dsn()
        _print_sql(state, migrations.downgrade(dsn, revision, sql=True))
        return
    dsn = state.resolve_dsn()
    plan = migrations.plan_downgrade(dsn, revision)
    if dry_run:
        if state.json:
            print_json({"dry_run": True, **_plain(plan)})
        else:
            _echo_plan(plan)
        return
    if not plan.revisions:
        if state.json:
            print_json({"dry_run": False, **_plain(plan), "applied": []})
        elif not state.quiet:
            typer.echo(f"already at {plan.from_revision or 'base'}: nothing to do")
        return
    if not yes:
        _echo_plan(plan, err=True)
        typer.confirm("Downgrade and drop these?", abort=True, err=True)
    result = migrations.downgrade(dsn, revision, **_locks(state, lock_timeout, lock_wait))
    if state.json:
        print_json({"dry_run": False, **_plain(result), "drops": plan.drops})
    elif not state.quiet:
        target = result.to_revision or "base"
        took = f"{result.duration_seconds:.2f} s"
        typer.echo(wrap_text(f"downgraded {result.from_revision} -> {target} in {took}"))
        typer.echo(wrap_text(f"reverted {', '.join(result.applied)}"))


def _plain(value: Any) -> dict[str, Any]:
    from memcli.cli.render import to_jsonable

    data = to_jsonable(value)
    assert isinstance(data, dict)
    return data


def _echo_plan(plan: Any, err: bool = False) -> None:
    if not plan.revisions:
        typer.echo(f"already at {plan.from_revision or 'base'}: nothing to revert", err=err)
        return
    target = plan.to_revision or "base"
    reverts = f"downgrade {plan.from_revision} -> {target} reverts: {', '.join(plan.revisions)}"
    typer.echo(wrap_text(reverts, stderr=err), err=err)
    for item in plan.drops:
        typer.echo(wrap_text(f"drops {item}", stderr=err, indent="  "), err=err)


def _print_sql(state: State, result: Any) -> None:
    if state.json:
        print_json({"sql": result.sql, "embedding_dimension": result.embedding_dimension})
    else:
        typer.echo(result.sql, nl=False)


def register(root: typer.Typer) -> None:
    """Add ``memcli migrate`` to the root app."""
    root.add_typer(app, name="migrate")
