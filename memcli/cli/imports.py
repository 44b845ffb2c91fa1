"""``memcli import``: memories from other stores (a command per source layout), ``list``, ``rollback``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.options import JsonOpt
from memcli.cli.render import print_json, progress
from memcli.cli.state import State, get_state
from memcli.jobs.interrupts import stop_on_signals
from memcli.schema import names

if TYPE_CHECKING:
    from memcli.imports.engine import ImportResult, RollbackResult

IMPORT_EXIT_CODES = (
    "Exit codes: 0 imported (or planned); 1 some rows were rejected (listed), or rollback of an unknown "
    "import; 2 the source does not match its layout (the column is named) or a bad option; 3 cannot "
    "connect; 4 not migrated, or the embedder differs from the database's model; 75 another import or a "
    "re-embed is running."
)
app = typer.Typer(
    help="Bring memories in from another store: Mumble, ybryx, agent_memories, Graive or JSON Lines.",
    no_args_is_help=True,
    epilog=IMPORT_EXIT_CODES
    + "\n\nExamples: memcli import mumble --from postgresql://old-host/mumble --dry-run · "
    "memcli import jsonl memories.jsonl --mismatched reembed · memcli import list · "
    "memcli import rollback 5b0c...",
)


class Mismatched(StrEnum):
    leave = "leave"
    reembed = "reembed"


FromOpt = Annotated[
    str | None,
    typer.Option("--from", metavar="DSN", help="The source database (default: the target database itself)."),
]
SchemaOpt = Annotated[str, typer.Option("--schema", help="Schema of the source tables.")]
LabelOpt = Annotated[
    str,
    typer.Option(
        "--label", help="Names the source in the key map (default: its database/schema or file name)."
    ),
]
MismatchedOpt = Annotated[
    Mismatched,
    typer.Option(
        "--mismatched",
        help="Vectors of another model or dimension: leave (NULL, for memcli embed) or reembed on the way.",
    ),
]
SourceModelOpt = Annotated[
    str | None,
    typer.Option("--source-model", help="The model that wrote the source's vectors, if it does not say."),
]
SourceDimOpt = Annotated[
    int | None,
    typer.Option(
        "--source-dim", min=1, help="The source's vector dimension (default: learnt from a sample)."
    ),
]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch-size",
        min=1,
        max=names.MAX_IMPORT_BATCH_SIZE,
        help="Source rows per batch (one transaction each).",
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the mapping and counts; change nothing.")]
EmbedderOpt = Annotated[
    str | None,
    typer.Option("--embedder", metavar="PROVIDER[:MODEL]", help="Embedder for --mismatched reembed."),
]


def _run(
    ctx: typer.Context,
    layout: str,
    *,
    path: Path | None = None,
    from_dsn: str | None,
    schema: str,
    label: str,
    mismatched: Mismatched,
    source_model: str | None,
    source_dim: int | None,
    batch_size: int,
    dry_run: bool,
    no_settings: bool,
    embedder: str | None,
    json_: bool,
) -> None:
    from memcli.db import connect
    from memcli.embeddings import get_embedder
    from memcli.imports import JSONL, open_source
    from memcli.imports.engine import ImportOptions, plan_import, run_import

    state = get_state(ctx, json_)
    options = ImportOptions(
        batch_size=batch_size,
        mismatched=mismatched.value,
        source_model=source_model,
        source_dimension=source_dim,
        apply_settings=not no_settings,
    )
    options.check()
    # Building the embedder is cheap (the model loads on first use): it names the model to compare with.
    chosen = get_embedder(state.config(), embedder)
    with state.connect() as conn:
        source_conn = None
        if layout != JSONL:
            from memcli.dsn import to_libpq

            source_conn = connect(to_libpq(from_dsn) if from_dsn else state.resolve_dsn(), autocommit=True)
        try:
            source = open_source(layout, conn=source_conn, schema=schema, path=path, label=label)
            if dry_run:
                result = plan_import(conn, source, chosen, options)
            else:
                bar = progress(state.console, disable=state.quiet or state.json)
                with bar, stop_on_signals():
                    task = bar.add_task(f"importing {layout}", total=None)

                    def advance(done: int, total: int | None) -> None:
                        bar.update(task, completed=done, total=total)

                    result = run_import(conn, source, chosen, options, advance)
        finally:
            if source_conn is not None:
                source_conn.close()
    if state.json:
        print_json(result)
    else:
        _render(state, result)
    if result.rejected:
        raise typer.Exit(1)


def _render(state: State, result: ImportResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = state.console
    plan = result.vectors
    if result.dry_run:
        console.print(f"Import plan for {escape(result.source_name)} (nothing changed):")
        table = Table("source", "rows", "becomes", box=None, header_style="bold")
        for stream, becomes in result.mapping.items():
            rows = result.source_rows.get(stream)
            table.add_row(stream, f"{rows:,}" if rows is not None else "(read with)", escape(becomes))
        console.print(table)
        console.print(f"Already imported from this source: {result.already_imported:,} row(s).")
        if plan:
            fate = (
                "kept"
                if plan.keep
                else ("re-embedded" if plan.action == "reembed" else "left for memcli embed")
            )
            console.print(f"Vectors: {fate} ({escape(plan.reason)}).")
        for change in result.settings:
            console.print(f"Setting {change.key}: {change.old!r} -> {change.new!r}")
        for what, count in result.dropped.items():
            console.print(f"Dropped: {count:,} {escape(what)}")
        return
    written = ", ".join(f"{n:,} {t}" for t, n in result.rows_written.items() if n) or "nothing"
    verb = "Resumed" if result.resumed else "Imported"
    console.print(
        f"{verb} import {result.import_id} from {escape(result.source_name)}: {result.imported:,} memories "
        f"({written}); {result.skipped:,} already imported, {len(result.rejected):,} rejected "
        f"({result.duration_seconds:.1f}s)."
    )
    console.print(
        f"Vectors: {result.vectors_kept:,} kept, {result.vectors_reembedded:,} re-embedded, "
        f"{result.vectors_missing:,} without one" + (" (run: memcli embed)" if result.vectors_missing else "")
    )
    for change in result.settings:
        console.print(f"Setting {change.key}: {change.old!r} -> {change.new!r}")
    for rejection in result.rejected:
        console.print(f"rejected {escape(rejection.source_key)}: {escape(rejection.reason)}")
    if not state.quiet:
        console.print(f"[dim]undo with: memcli import rollback {result.import_id}[/dim]")


def _layout_command(layout: str, title: str) -> Any:
    def command(
        ctx: typer.Context,
        from_dsn: FromOpt = None,
        schema: SchemaOpt = "public",
        label: LabelOpt = "",
        mismatched: MismatchedOpt = Mismatched.leave,
        source_model: SourceModelOpt = None,
        source_dim: SourceDimOpt = None,
        batch_size: BatchOpt = names.IMPORT_BATCH_SIZE,
        no_settings: Annotated[
            bool, typer.Option("--no-settings", help="Do not carry the source's settings over.")
        ] = False,
        dry_run: DryRunOpt = False,
        embedder: EmbedderOpt = None,
        json_: JsonOpt = False,
    ) -> None:
        _run(
            ctx,
            layout,
            from_dsn=from_dsn,
            schema=schema,
            label=label,
            mismatched=mismatched,
            source_model=source_model,
            source_dim=source_dim,
            batch_size=batch_size,
            dry_run=dry_run,
            no_settings=no_settings,
            embedder=embedder,
            json_=json_,
        )

    command.__doc__ = (
        f"Import {title}.\n\nResumable: run it again after an interruption and it continues; a source row "
        f"is never imported twice. docs/imports.md lists what each column becomes."
    )
    return command


def jsonl(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A JSON Lines file: one memory per line.")],
    label: LabelOpt = "",
    mismatched: MismatchedOpt = Mismatched.leave,
    source_model: SourceModelOpt = None,
    source_dim: SourceDimOpt = None,
    batch_size: BatchOpt = names.IMPORT_BATCH_SIZE,
    dry_run: DryRunOpt = False,
    embedder: EmbedderOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Import memories from a JSON Lines file (one memory per line; docs/imports.md has the format).

    Lines that are not JSON or lack text/session_id are rejected by line number; the rest import.
    """
    _run(
        ctx,
        "jsonl",
        path=file,
        from_dsn=None,
        schema="public",
        label=label,
        mismatched=mismatched,
        source_model=source_model,
        source_dim=source_dim,
        batch_size=batch_size,
        dry_run=dry_run,
        no_settings=True,
        embedder=embedder,
        json_=json_,
    )


def list_(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """List the imports recorded in this database, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from memcli.imports.engine import list_imports

    state = get_state(ctx, json_)
    with state.connect() as conn:
        imports = list_imports(conn)
    if state.json:
        print_json(imports)
        return
    if not imports:
        state.console.print("No imports yet.")
        return
    table = Table("import id", "source", "status", "started", "memories", box=None, header_style="bold")
    for item in imports:
        table.add_row(
            str(item.import_id),
            escape(item.source_name),
            item.status,
            item.started_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            f"{item.rows:,}",
        )
    state.console.print(table)


def rollback(
    ctx: typer.Context,
    import_id: Annotated[str, typer.Argument(help="The import to undo (memcli import list).")],
    dry_run: DryRunOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Remove exactly what one import added (its rows in every table), and restore settings it changed."""
    from memcli.imports.engine import rollback_import

    state = get_state(ctx, json_)
    bar = progress(state.console, disable=state.quiet or state.json)
    with state.connect() as conn, bar, stop_on_signals():
        task = bar.add_task("rolling back", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = rollback_import(conn, import_id, dry_run=dry_run, progress=advance)
    if state.json:
        print_json(result)
        return
    _render_rollback(state, result)


def _render_rollback(state: State, result: RollbackResult) -> None:
    rows = ", ".join(f"{n:,} {t}" for t, n in result.rows.items() if n) or "no rows"
    if result.dry_run:
        state.console.print(f"Would remove {rows} written by import {result.import_id}; nothing changed.")
        return
    deleted = ", ".join(f"{n:,} {t}" for t, n in result.deleted.items() if n) or "no rows"
    state.console.print(f"Rolled back import {result.import_id}: removed {deleted}.")
    if result.already_gone:
        state.console.print(
            f"{result.already_gone:,} memory(ies) it imported were already gone (consolidated, cleaned)."
        )
    if result.settings_restored:
        state.console.print(f"Settings restored: {', '.join(result.settings_restored)}")
    if result.settings_kept:
        state.console.print(f"Settings changed since, left as they are: {', '.join(result.settings_kept)}")


def register(root: typer.Typer) -> None:
    from memcli.imports import LAYOUTS, layout

    for name in LAYOUTS:
        examples = (
            f"Examples: memcli import {name} --from postgresql://old-host/app --dry-run · "
            f"memcli import {name} --schema legacy --mismatched reembed"
        )
        app.command(name, epilog=IMPORT_EXIT_CODES + "\n\n" + examples)(
            _layout_command(name, layout(name).title)
        )
    app.command(
        "jsonl",
        epilog=IMPORT_EXIT_CODES + "\n\nExamples: memcli import jsonl memories.jsonl --dry-run · "
        "memcli import jsonl memories.jsonl --mismatched reembed --embedder local",
    )(jsonl)
    app.command("list", epilog="Examples: memcli import list · memcli import list --json")(list_)
    app.command(
        "rollback",
        epilog=IMPORT_EXIT_CODES + "\n\nExamples: memcli import rollback 5b0c... --dry-run · "
        "memcli import rollback 5b0c...",
    )(rollback)
    root.add_typer(app, name="import")
