"""``memcli reembed``: switch the stored vectors to another embedding model online; ``status``, ``abort``."""

from __future__ import annotations

from typing import Annotated

import typer

from memcli.cli.options import JsonOpt, PauseOpt
from memcli.cli.render import print_json, progress
from memcli.cli.state import get_state
from memcli.jobs.interrupts import stop_on_signals
from memcli.schema.names import SHADOW_BATCH_SIZE

REEMBED_EXIT_CODES = (
    "Exit codes: 0 done (or planned, or nothing to do); 2 bad option, or a change to another model is under "
    "way; 3 cannot connect; 4 not migrated; 75 an import or another re-embed is running."
)
app = typer.Typer(
    help="Change the embedding model (and dimension) without downtime: search keeps using the old vectors "
    "until one short transaction swaps in the new ones.",
    invoke_without_command=True,
    no_args_is_help=False,
    epilog=REEMBED_EXIT_CODES
    + "\n\nExamples: memcli reembed --embedder openai:text-embedding-3-small --dry-run · "
    "memcli reembed --embedder local:all-mpnet-base-v2 · memcli reembed status · memcli reembed abort",
)


@app.callback()
def reembed(
    ctx: typer.Context,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            metavar="PROVIDER[:MODEL]",
            help="The new embedder: local, openai or hashing, optionally with a model.",
        ),
    ] = None,
    dimension: Annotated[
        int | None,
        typer.Option("--dimension", min=1, help="The new model's dimension, if not its default."),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=10_000, help="Memories per batch (one transaction each)."),
    ] = SHADOW_BATCH_SIZE,
    pause: PauseOpt = 0.0,
    build_workers: Annotated[
        int | None,
        typer.Option(
            "--build-workers",
            min=0,
            max=64,
            help="Parallel workers of the new index's build (default: the cores of a server on this "
            "machine less two, leaving one to searches; none for a remote server).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Estimate the time (a sample of texts embedded, a sample index built); change nothing.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Re-embed every memory with another model, then switch search to it in one short transaction.

    Resumable: run it again after an interruption and it continues where it stopped. Until the final swap
    the old model keeps serving every search and write.
    """
    if ctx.invoked_subcommand is not None:
        return
    from memcli.embeddings import get_embedder
    from memcli.errors import ConfigError
    from memcli.reembed import reembed as run_reembed

    state = get_state(ctx, json_)
    if not embedder:
        raise ConfigError("which model? pass --embedder PROVIDER[:MODEL]", hint="memcli reembed --help")
    chosen = get_embedder(state.config(), embedder, dimension=dimension)
    # a dry run only estimates: nothing to show progress of
    bar = progress(state.console, disable=state.quiet or state.json or dry_run)
    with state.connect() as conn, bar, stop_on_signals():
        task = bar.add_task(f"re-embedding with {chosen.name}", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = run_reembed(
            conn,
            chosen,
            embedder,
            batch_size=batch_size,
            dry_run=dry_run,
            progress=advance,
            pause_seconds=pause,
            build_workers=build_workers,
        )
    if state.json:
        print_json(result)
        return
    console = state.console
    target = f"{result.to_model} ({result.to_dimension} dimensions)"
    if result.phase == "nothing-to-do":
        console.print(f"The stored vectors are {target} already; nothing to do.")
    elif result.dry_run:
        console.print(
            f"Would re-embed {result.rows:,} memories from {result.from_model} ({result.from_dimension} "
            f"dimensions) to {target}: about {result.estimated_seconds:,.0f}s — "
            f"{result.estimated_backfill_seconds:,.0f}s embedding and writing (from {result.sample_rows} "
            f"stored texts), {result.estimated_index_seconds:,.0f}s building the index with "
            f"{result.build_workers} parallel workers (from a sample build). Nothing changed."
        )
    else:
        console.print(
            f"Switched to {target}: {result.filled + result.already_filled:,} memories re-embedded"
            f"{' (resumed)' if result.resumed else ''}, {result.caught_up:,} written meanwhile caught up "
            f"in the swap ({result.swap_seconds * 1000:.0f} ms); {result.duration_seconds:.1f}s in all."
        )


@app.command(epilog="Examples: memcli reembed status · memcli reembed status --json")
def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the stored model and a re-embed under way (rows done, index state)."""
    from memcli.reembed import reembed_status

    state = get_state(ctx, json_)
    with state.connect() as conn:
        result = reembed_status(conn)
    if state.json:
        print_json(result)
        return
    console = state.console
    console.print(f"Stored vectors: {result.model or '(no model recorded)'}, {result.dimension} dimensions.")
    if result.access_pending:
        console.print(
            f"{result.access_pending:,} search accesses logged during an index build are not in the access "
            "counts yet: the build adds them when it ends (a stopped one's: memcli reembed, or abort)."
        )
    if not result.target and not result.progress.exists:
        console.print("No re-embed under way.")
        return
    target = result.target or {}
    p = result.progress
    share = f" ({100 * p.done / p.total:.1f}%)" if p.total else ""
    console.print(
        f"Re-embed to {target.get('model')} ({target.get('dimension')} dimensions) under way since "
        f"{target.get('started_at', '?')[:19]}: {p.done:,} of {p.total:,} memories{share}; new index: "
        f"{p.index or 'not started'}. Resume with: memcli reembed --embedder {target.get('embedder')}"
    )


@app.command(epilog=REEMBED_EXIT_CODES + "\n\nExamples: memcli reembed abort · memcli reembed abort --json")
def abort(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Drop a re-embed under way; the stored model stays as it was."""
    from memcli.reembed import reembed_abort

    state = get_state(ctx, json_)
    with state.connect() as conn:
        result = reembed_abort(conn)
    if state.json:
        print_json(result)
        return
    if not result.aborted:
        state.console.print("No re-embed under way; nothing to abort.")
        return
    state.console.print(
        f"Aborted the re-embed to {(result.target or {}).get('model')}: {result.filled:,} new vectors "
        f"discarded; the stored model is unchanged."
    )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="reembed")
