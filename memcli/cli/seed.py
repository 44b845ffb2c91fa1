"""``memcli seed``: business context from the app's tables, default settings, and the demo dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import err, print_json
from memcli.cli.state import get_state
from memcli.errors import ExitCode

if TYPE_CHECKING:
    from memcli.cli.state import State
    from memcli.seed import DemoResult, SeedResult

DEFAULT_BUSINESSES = 5
DEFAULT_SESSIONS = 50
DEFAULT_RANDOM_SEED = 42


def seed(
    ctx: typer.Context,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Also rewrite sections whose source rows changed (only those).")
    ] = False,
    business: Annotated[
        str | None, typer.Option("--business", metavar="ID", help="Only this business (its businesses.id).")
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load the demo dataset (restaurants, guests, sessions, memories).")
    ] = False,
    businesses: Annotated[
        int | None,
        typer.Option(
            "--businesses", min=0, help=f"Demo: how many businesses [default: {DEFAULT_BUSINESSES}]."
        ),
    ] = None,
    sessions: Annotated[
        int | None,
        typer.Option("--sessions", min=0, help=f"Demo: how many sessions [default: {DEFAULT_SESSIONS}]."),
    ] = None,
    random_seed: Annotated[
        int | None,
        typer.Option(
            "--random-seed",
            help=f"Demo: the same seed gives the same data [default: {DEFAULT_RANDOM_SEED}].",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Demo: load even next to non-demo memories or businesses.")
    ] = False,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            metavar="PROVIDER[:MODEL]",
            help="Demo: embedding provider (local, openai, hashing); default MEMCLI_EMBEDDER or config.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; write nothing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Fill the memory tables from what the database holds, or load a demo dataset.

    Without --demo: builds business_context_sections (overview, menu, hours, location) for every active
    business from businesses, menu_categories/menu_items and working_hours, and inserts missing default
    settings. Idempotent: a second run changes nothing. --refresh rewrites the sections whose source rows
    changed since they were built, and deactivates those whose source is gone.

    With --demo: loads restaurants with menus and hours, guests, sessions and memories of every tier
    (some expired, some near expiry, some heavily accessed) with real embeddings. Demo session ids start
    with "demo-". It refuses (exit 2) if the database holds memories or businesses that are not demo
    data, unless --yes.
    """
    from memcli.errors import ConfigError

    state = get_state(ctx, json_)
    demo_only = {
        "--businesses": businesses,
        "--sessions": sessions,
        "--random-seed": random_seed,
        "--embedder": embedder,
    }
    if not demo:
        given = [name for name, value in demo_only.items() if value is not None] + (["--yes"] if yes else [])
        if given:
            raise ConfigError(f"{', '.join(given)} only apply with --demo", hint="add --demo")
    elif refresh or business:
        raise ConfigError("--refresh and --business do not apply with --demo", hint="run them without --demo")

    conn = state.connect()
    try:
        if demo:
            result = _demo(
                state,
                conn,
                businesses=DEFAULT_BUSINESSES if businesses is None else businesses,
                sessions=DEFAULT_SESSIONS if sessions is None else sessions,
                random_seed=DEFAULT_RANDOM_SEED if random_seed is None else random_seed,
                yes=yes,
                provider=embedder,
                dry_run=dry_run,
            )
            _render_demo(state, result)
        else:
            from memcli.seed import seed_business_context

            sections = seed_business_context(conn, business, refresh, dry_run=dry_run)
            _render_sections(state, sections)
    finally:
        conn.close()


def _demo(state: State, conn: Any, *, provider: str | None, **options: Any) -> DemoResult:
    from memcli.cli.render import progress
    from memcli.seed import seed_demo

    chosen = None
    if not options["dry_run"]:
        from memcli.embeddings import get_embedder

        chosen = get_embedder(state.config(), provider)
    with progress(state.console, disable=state.quiet or state.json) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total or None)
            bar.update(tasks[stage], completed=done, total=total or done)

        return seed_demo(conn, chosen, progress=report, **options)


def _warn(state: State, warnings: list[str]) -> None:
    if not state.json:
        for warning in warnings:
            err(f"warning: {warning}")


def _render_sections(state: State, result: SeedResult) -> None:
    if state.json:
        print_json(result)
        return
    _warn(state, result.warnings)
    if state.quiet:
        return
    from memcli.cli.render import Col, FitTable

    columns = ("created", "updated", "unchanged", "stale", "retired", "skipped")
    verb = "would be" if result.dry_run else "were"
    title = f"business context ({result.businesses} active businesses, {result.inactive_businesses} inactive)"
    table = FitTable(Col("section"), *(Col(c, justify="right") for c in columns), title=title)
    for name, counts in result.sections.items():
        table.add_row(name, *(f"{getattr(counts, column):,}" for column in columns))
    table.add_section()
    table.add_row("total", *(f"{getattr(result.totals, column):,}" for column in columns))
    state.console.print(table)
    if result.settings_added:
        state.console.print(f"default settings that {verb} added: {', '.join(result.settings_added)}")
    if result.dry_run:
        state.console.print("dry run: nothing was written")


def _render_demo(state: State, result: DemoResult) -> None:
    if state.json:
        print_json(result)
        return
    _warn(state, result.warnings)
    if state.quiet or result.already_loaded:
        return
    from memcli.cli.render import pairs_table

    state.console.print(
        pairs_table(f"demo data (random seed {result.random_seed})", result.counts, ("table", "rows"))
    )
    state.console.print(
        f"{result.sessions} sessions, {result.users} users; conversation memories: {result.expired} expired, "
        f"{result.near_expiry} expiring within two days, {result.heavily_accessed} heavily accessed"
    )
    if result.dry_run:
        state.console.print("dry run: nothing was written")
    else:
        state.console.print(
            f"embeddings: {result.embedding_model} in {result.embedding_seconds:.2f}s; "
            f"loading: {result.load_seconds:.2f}s"
        )


SEED_EPILOG = epilog(
    exit_codes(
        {
            ExitCode.OK: "done",
            ExitCode.USAGE: "bad option, or --demo next to data that is not demo data (without --yes)",
            ExitCode.CONNECT: "cannot connect",
            ExitCode.NOT_READY: "not migrated, or the embedder differs from the stored vectors' model",
        }
    ),
    examples=(
        "memcli seed",
        "memcli seed --refresh --dry-run",
        "memcli seed --business 0b6f4e2a-5d1c-4c1e-9a57-2a0f0e8b9c11 --refresh",
        "memcli seed --demo --businesses 8 --sessions 500 --random-seed 7",
        "memcli seed --demo --embedder hashing --json",
    ),
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(name="seed", epilog=SEED_EPILOG)(seed)
