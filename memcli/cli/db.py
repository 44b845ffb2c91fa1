"""``memcli db``: manage the embedded Postgres (start, stop, status, url)."""

from __future__ import annotations

from typing import Annotated

import typer

from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import print_json
from memcli.cli.state import get_state
from memcli.errors import ExitCode

app = typer.Typer(
    help="The embedded Postgres (start, stop, status, url) and a connection check for any database (ping).",
    no_args_is_help=True,
    epilog=epilog(
        examples=(
            "memcli db start",
            'psql "$(memcli db url)"',
            "memcli --dsn postgresql://app@db.internal/app db ping",
            "memcli db stop",
        )
    ),
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command(
    epilog=epilog(
        exit_codes({ExitCode.OK: "running", ExitCode.CONNECT: "the server could not start"}),
        examples=("memcli db start && memcli db status", "MEMCLI_HOME=/srv/memcli memcli db start --json"),
    )
)
def start(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Start the embedded server (created on first use). Idempotent."""
    from memcli import embedded

    state = get_state(ctx, json_)
    status = embedded.start(state.config().home.value)
    if state.json:
        print_json(status)
    elif not state.quiet:
        typer.echo(f"embedded Postgres running (pid {status.pid}, data {status.pgdata})")


@app.command(epilog=epilog(examples=("memcli db stop", "MEMCLI_HOME=/srv/memcli memcli db stop --json")))
def stop(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Stop the embedded server. Its data stays in the data folder."""
    from memcli import embedded

    state = get_state(ctx, json_)
    stopped = embedded.stop(state.config().home.value)
    if state.json:
        print_json({"stopped": stopped})
    elif not state.quiet:
        typer.echo("embedded Postgres stopped" if stopped else "embedded Postgres was not running")


@app.command(
    epilog=epilog(
        exit_codes({ExitCode.OK: "running", ExitCode.CONNECT: "stopped"}),
        examples=("memcli db status", "memcli db status --json", "memcli db status || memcli db start"),
    )
)
def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show whether the embedded server runs, its pid, data folder and URL."""
    from memcli import embedded

    state = get_state(ctx, json_)
    current = embedded.status(state.config().home.value)
    if state.json:
        print_json(current)
    else:
        if current.running:
            typer.echo(f"running   pid {current.pid}\ndata      {current.pgdata}\nurl       {current.dsn}")
        else:
            typer.echo(f"stopped   data {current.pgdata}\nstart it with: memcli db start")
    if not current.running:
        raise typer.Exit(ExitCode.CONNECT)


@app.command(epilog=epilog(examples=('psql "$(memcli db url)"', "export DATABASE_URL=$(memcli db url)")))
def url(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Print the database's DSN, for psql and the application: the embedded server's (started if needed),
    or the configured one with its password masked (the password never leaves the configuration)."""
    from memcli import embedded
    from memcli.dsn import mask_dsn

    state = get_state(ctx, json_)
    config = state.config()
    if config.dsn.value is not None:
        dsn = mask_dsn(state.resolve_dsn()) or ""
        source = f"configured ({config.dsn.source})"
    else:
        dsn = embedded.start(config.home.value).dsn
        source = "embedded"
    if state.json:
        print_json({"dsn": dsn, "source": source})
    else:
        typer.echo(dsn)


@app.command(
    epilog=epilog(
        exit_codes({ExitCode.OK: "connected", ExitCode.USAGE: "bad DSN", ExitCode.CONNECT: "cannot connect"}),
        examples=(
            "memcli db ping",
            "memcli --dsn postgresql://app@db.internal/app db ping",
            "MEMCLI_DATABASE_URL=postgresql://app@db.internal/app memcli db ping --json",
        ),
    )
)
def ping(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Connect to the resolved database and report latency, server and pgvector versions."""
    from memcli.db import ping as ping_db
    from memcli.dsn import describe_target

    state = get_state(ctx, json_)
    dsn = state.resolve_dsn()
    with state.connect() as conn:
        result = ping_db(conn)
    result["target"] = describe_target(dsn)
    if state.json:
        print_json(result)
    else:
        vector = result["pgvector"] or (
            f"not installed (available: {result['pgvector_available']})"
            if result["pgvector_available"]
            else "not available on this server"
        )
        typer.echo(
            f"ok  {result['target']}  PostgreSQL {result['server_version']}  pgvector {vector}  "
            f"{result['latency_ms']:.1f} ms"
        )
