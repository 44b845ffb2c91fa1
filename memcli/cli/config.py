"""``memcli config``: show the resolved settings and where each came from."""

from __future__ import annotations

from typing import Annotated

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
            "MEMCLI_DATABASE_URL=postgresql://app@db/app memcli config show",
            "memcli --config prod.toml config show --json",
        )
    )
)
def show(
    ctx: typer.Context, json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False
) -> None:
    """Print the resolved settings and the source of each (password masked)."""
    from memcli.dsn import mask_dsn

    state = get_state(ctx, json_)
    config = state.config()
    rows = [
        (
            "database",
            mask_dsn(config.dsn.value) if config.dsn.value else "embedded server",
            config.dsn.source,
        ),
        ("home", str(config.home.value), config.home.source),
        (
            "config_file",
            str(config.config_file) if config.config_file else "(none)",
            "flag --config" if state.config_path else "search",
        ),
    ]
    embedding = config.section("embedding")
    for key in sorted(embedding):
        value = embedding[key]
        if "key" in key.lower() and "env" not in key.lower():
            value = "****"
        rows.append((f"embedding.{key}", str(value), f"config {config.config_file}"))
    if state.json:
        print_json({name: {"value": value, "source": source} for name, value, source in rows})
        return
    from rich.table import Table

    table = Table("setting", "value", "source", box=None)
    for row in rows:
        table.add_row(*row)
    state.console.print(table)
