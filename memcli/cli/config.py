"""``memcli config``: show every resolved setting and where each came from."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from memcli.cli.helptext import epilog
from memcli.cli.render import print_json
from memcli.cli.state import get_state

app = typer.Typer(
    help="Inspect memcli's configuration.",
    no_args_is_help=True,
    epilog=epilog(examples=("memcli config show", "memcli --config prod.toml config show --json")),
)


@app.command(
    epilog=epilog(
        examples=(
            "memcli config show",
            "MEMCLI_EMBEDDING_DIM=768 memcli config show --json",
            "memcli --config prod.toml config show --no-database",
        )
    )
)
def show(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    no_database: Annotated[
        bool,
        typer.Option(
            "--no-database", help="Do not read the database's memory_settings (no connection is made)."
        ),
    ] = False,
) -> None:
    """Print every setting, its value and its source: flag, env, file, database or default.

    Settings come from flags, then the environment, then the config file, then defaults; the jobs' and
    search's own settings (retention, thresholds, the stored embedding model) come from the database's
    memory_settings table, read when the database is reachable (an embedded server is not started for
    it). Passwords are masked.
    """
    from memcli.config import describe

    state = get_state(ctx, json_)
    config = state.config()
    rows = describe(config, config_path_given=state.config_path is not None)
    stored, problem = ({}, "not read (--no-database)") if no_database else _database_settings(state)
    if state.json:
        names = {"database.dsn": "database", "embedded.home": "home"}  # the names scripts already read
        document: dict[str, Any] = {
            names.get(row.name, row.name): {"value": row.value, "source": row.source} for row in rows
        }
        for key, (value, source) in stored.items():
            document[f"memory_settings.{key}"] = {"value": value, "source": source}
        if problem:
            document["memory_settings"] = {"value": None, "source": problem}
        print_json(document)
        return
    _print_table(state, [(r.name, r.value, r.source) for r in rows], stored, problem)


def _database_settings(state: Any) -> tuple[dict[str, tuple[Any, str]], str | None]:
    """The database's memory_settings with their sources, or why they could not be read."""
    from memcli.db import connect, resolve_dsn
    from memcli.errors import MemcliError, first_line
    from memcli.settings import settings_with_sources

    try:
        dsn = resolve_dsn(state.config(), start_embedded=False)
        with connect(dsn, connect_timeout=3) as conn:
            if conn.execute("SELECT to_regclass('memory_settings')").fetchone() == (None,):
                return {}, "not read: the database is not migrated"
            return settings_with_sources(conn), None
    except MemcliError as exc:
        return {}, f"not read: {exc.message}"
    except Exception as exc:  # a role without access to the table: say so, the rest still shows
        return {}, f"not read: {first_line(exc)}"


def _print_table(
    state: Any, rows: list[tuple[str, Any, str]], stored: dict[str, tuple[Any, str]], problem: str | None
) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    # Sized to the terminal, else to COLUMNS, else 80: this table is read by people, not grep.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else _columns())
    table = Table("setting", "value", "source", box=None, pad_edge=False)
    table.columns[0].no_wrap = True
    table.columns[1].overflow = table.columns[2].overflow = "fold"
    for name, value, source in rows:
        table.add_row(name, "-" if value is None else str(value), _short(source))
    if stored or problem:
        table.add_section()
        table.add_row("memory_settings:", problem or "", "")
        for key, (value, source) in stored.items():
            table.add_row(f" {key}", "-" if value is None else str(value), source)
    console.print(table)


def _columns() -> int:
    import os

    try:
        return max(40, int(os.environ.get("COLUMNS", "80")))
    except ValueError:
        return 80


def _short(source: str) -> str:
    """``config /long/path/memcli.toml`` as ``file`` (the config_file row names it once)."""
    if source.startswith("config "):
        return "file"
    return "default" if source == "embedded" else source
