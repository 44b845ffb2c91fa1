"""``memcli tune``, ``memcli index status|rebuild`` and ``memcli vectors convert``: the vector index's recall,
search breadth and builds, and the vectors' type.

They parse options, call memcli.vector_recall / memcli.vector_index, and render (a table or one JSON
document; a progress bar on a terminal while an index builds).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from memcli.cli.helptext import epilog
from memcli.cli.options import JsonOpt, PauseOpt
from memcli.cli.render import err, print_json, progress, to_jsonable
from memcli.cli.state import get_state
from memcli.schema.names import SHADOW_BATCH_SIZE

EXIT_CODES = (
    "Exit codes: 0 done; 1 the build failed (the old index is intact); 2 bad option or setting; 3 cannot "
    "connect; 4 not migrated; 75 another tune or rebuild holds the vector-index lock (nothing done)."
)

app = typer.Typer(
    name="index",
    help="The HNSW vector index: its parameters, size and state, and online rebuilds.",
    epilog=epilog(examples=("memcli index status", "memcli index rebuild --dry-run")),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _size_mb(value: str | None) -> int | None:
    """``4GB``, ``512MB``, ``2048`` (MB) → MB."""
    if value is None:
        return None
    from memcli.errors import ConfigError

    text = value.strip().upper().replace(" ", "")
    factor = 1
    for suffix, multiplier in (("GB", 1024), ("G", 1024), ("MB", 1), ("M", 1)):
        if text.endswith(suffix):
            text, factor = text[: -len(suffix)], multiplier
            break
    try:
        megabytes = int(float(text) * factor)
    except ValueError:
        raise ConfigError(f"cannot read the size {value!r}", hint="for example 4GB or 512MB") from None
    if megabytes < 64:
        raise ConfigError(f"--memory-cap must be at least 64MB, got {value!r}")
    return megabytes


def tune(
    ctx: typer.Context,
    target: Annotated[
        float | None,
        typer.Option(
            "--target",
            help="Recall@10 to reach, in (0, 1]; stored as search.recall_target (default: the stored one, "
            "0.95 unless changed).",
        ),
    ] = None,
    queries: Annotated[int, typer.Option("--queries", min=1, max=1000, help="Sampled query vectors.")] = 50,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Measure and say what would be set; change nothing.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Set the vector search breadth (hnsw.ef_search) to the least that meets the recall target.

    Samples stored vectors as queries, answers them exactly (full scans) and through the index at rising
    ef_search values, and stores the first that reaches the target as search.ef_search (memcli search
    widens it for larger top-k and for filters). When none does up to 1000, the graph itself is too
    sparse: it keeps the best value and recommends `memcli index rebuild` with larger m / ef_construction.
    The measurement is recorded; `memcli health` reports it. A table under 1,000 embedded rows is too small
    to sample: nothing changes.
    """
    from memcli.vector_index import check_recall_target
    from memcli.vector_recall import set_recall_target
    from memcli.vector_recall import tune as run_tune

    state = get_state(ctx, json_)
    if target is not None:
        check_recall_target(target)  # bad input fails before connecting (exit 2)
    with state.connect(autocommit=True) as conn:
        if target is not None and not dry_run:
            set_recall_target(conn, target)
        result = run_tune(conn, target=target, queries=queries, dry_run=dry_run)
    if state.json:
        print_json(to_jsonable(result))
        return
    if result.too_small:
        state.console.print(result.message)
        return
    from rich.table import Table

    table = Table(
        "ef_search", "recall@10", "p50 ms", box=None, title="Recall on a sample", title_justify="left"
    )
    for row in result.sweep:
        table.add_row(str(row["ef_search"]), f"{row['recall']:.3f}", f"{row['p50_ms']:.2f}")
    state.console.print(table)
    verb = "would set" if dry_run else "set"
    state.console.print(
        f"{result.message}. {verb.capitalize()} search.ef_search {result.ef_search_before} → "
        f"{result.ef_search} (target {result.target:g})."
    )
    if result.rebuild:
        plan = result.rebuild
        err(
            f"Warning: rebuild recommended: {plan['command']} (builds online; needs ~{plan['graph_mb']:,} MB "
            f"maintenance_work_mem{'' if plan['fits'] else ', more than the build memory cap'})"
        )


def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the vector index: parameters, size, rows, last measured recall, and what a rebuild would use."""
    from memcli.vector_index import plan_rebuild, rebuild_reason, stored_ef_search
    from memcli.vector_recall import last_measurement, recall_target

    state = get_state(ctx, json_)
    with state.connect(autocommit=True) as conn:
        plan = plan_rebuild(conn)
        document: dict[str, Any] = {
            "index": plan.current,
            "ef_search": stored_ef_search(conn),
            "recall_target": recall_target(conn),
            "last_recall": last_measurement(conn),
            "rebuild_reason": rebuild_reason(conn),
            "rebuild_plan": plan.build,
        }
    if state.json:
        print_json(to_jsonable(document))
        return
    info, build, last = plan.current, plan.build, document["last_recall"]
    lines = []
    if info is None:
        lines.append("no vector index on semantic_memory.embedding_vector (memcli index rebuild builds it)")
    else:
        lines.append(
            f"{info.name}: hnsw on {info.column_type}({info.dimension}), m={info.m}, "
            f"ef_construction={info.ef_construction}, {info.bytes / 1048576:,.0f} MB, ~{info.rows:,} rows"
            + ("" if info.valid else " — INVALID")
        )
    lines.append(
        f"search.ef_search {document['ef_search']}, search.recall_target {document['recall_target']:g}"
    )
    lines.append(
        "last recall: never measured (memcli tune or memcli health --deep)"
        if last is None
        else f"last recall: {last.recall:.3f} at ef_search {last.ef_search} on {last.rows:,} rows "
        f"({last.measured_at})"
    )
    lines.append(
        f"a rebuild would use m={build.m}, ef_construction={build.ef_construction}, maintenance_work_mem "
        f"{build.maintenance_work_mem_mb:,} MB (graph ~{build.graph_mb:,} MB, cap {build.cap_mb:,} MB), "
        f"{build.workers} parallel workers"
    )
    if document["rebuild_reason"]:
        lines.append(f"rebuild needed: {document['rebuild_reason']}")
    for line in lines:
        state.console.print(line, highlight=False)
    for warning in build.warnings:
        err(f"Warning: {warning}")


def rebuild(
    ctx: typer.Context,
    m: Annotated[
        int | None, typer.Option("--m", help="Links per node (default: the current index's).")
    ] = None,
    ef_construction: Annotated[
        int | None,
        typer.Option("--ef-construction", help="Build candidate list (default: the current index's)."),
    ] = None,
    memory_cap: Annotated[
        str | None,
        typer.Option(
            "--memory-cap",
            metavar="SIZE",
            help="Most maintenance_work_mem the build may take, e.g. 8GB (default: setting "
            "index.build_memory_cap_mb, 4096).",
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; build nothing.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Rebuild the vector index online, with its build memory sized to the graph.

    Builds a new HNSW index next to the old one with CREATE INDEX CONCURRENTLY (the application keeps
    reading and writing), maintenance_work_mem sized to the graph pgvector keeps in memory (within the
    cap; it says when the graph will not fit and the build will be slow), parallel workers, and a progress
    bar from pg_stat_progress_create_index; then swaps it in. A failed or interrupted build leaves the old
    index in place. Search recall is measured again afterwards with `memcli tune`.
    """
    from memcli.jobs.interrupts import stop_on_signals
    from memcli.vector_index import plan_rebuild, run_rebuild

    state = get_state(ctx, json_)
    cap = _size_mb(memory_cap)
    with state.connect(autocommit=True) as conn, state.connect(autocommit=True) as monitor:
        plan = plan_rebuild(conn, m=m, ef_construction=ef_construction, cap_mb=cap)
        for warning in plan.build.warnings:
            err(f"Warning: {warning}")
        if not dry_run:
            with stop_on_signals(), progress(state.console, disable=state.quiet or state.json) as bar:
                task = bar.add_task("building the vector index", total=plan.build.rows or None)
                for step in run_rebuild(conn, monitor, plan):
                    bar.update(
                        task,
                        completed=step.tuples_done,
                        total=step.tuples_total or None,
                        description=step.phase,
                    )
    if state.json:
        print_json(to_jsonable({"dry_run": dry_run, **plan.__dict__}))
        return
    build = plan.build
    what = (
        f"m={build.m}, ef_construction={build.ef_construction}, maintenance_work_mem "
        f"{build.maintenance_work_mem_mb:,} MB (graph ~{build.graph_mb:,} MB), {build.workers} workers, "
        f"{build.rows:,} rows"
    )
    if dry_run:
        state.console.print(f"would rebuild {plan.index}: {what}", highlight=False)
        return
    state.console.print(
        f"rebuilt {plan.index} in {plan.seconds:,.1f} s: {what}; {(plan.bytes or 0) / 1048576:,.0f} MB. "
        "Measure recall now: memcli tune",
        highlight=False,
    )


CONVERT_EXIT_CODES = (
    "Exit codes: 0 done (or planned, or nothing to do); 2 bad type or option, or another change is under "
    "way; 3 cannot connect; 4 not migrated; 75 an import, a re-embed or another conversion is running."
)
vectors_app = typer.Typer(
    name="vectors",
    help="The stored vectors' type: vector (4-byte floats) or halfvec (2-byte floats, half the size).",
    epilog=epilog(examples=("memcli vectors convert halfvec --dry-run", "memcli vectors convert halfvec")),
    no_args_is_help=True,
    rich_markup_mode=None,
)


def convert(
    ctx: typer.Context,
    to_type: Annotated[
        str | None, typer.Argument(metavar="TYPE", help="vector or halfvec.", show_default=False)
    ] = None,
    abort: Annotated[
        bool, typer.Option("--abort", help="Drop a conversion under way; the vectors stay as they were.")
    ] = False,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=100_000, help="Memories per batch (one transaction each)."),
    ] = SHADOW_BATCH_SIZE,
    pause: PauseOpt = 0.0,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Say what would change and the new index's size; change nothing."),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Convert the stored vectors to another type online, casting them (no model needed).

    The new column is filled beside the live one in resumable batches and indexed concurrently while
    search and writes go on; one short transaction swaps it in. Run it again after an interruption to
    continue. docs/vector-index.md says when halfvec serves.
    """
    from memcli.errors import ConfigError
    from memcli.jobs.interrupts import stop_on_signals
    from memcli.vector_convert import convert as run_convert
    from memcli.vector_convert import convert_abort

    state = get_state(ctx, json_)
    if abort:
        with state.connect() as conn:
            aborted = convert_abort(conn)
        if state.json:
            print_json(to_jsonable(aborted))
        elif aborted.aborted:
            state.console.print(
                f"Dropped the conversion to {aborted.target.get('to') if aborted.target else '?'} "
                f"({aborted.filled:,} rows had been converted); the vectors are as they were."
            )
        else:
            state.console.print("No conversion under way.")
        return
    if not to_type:
        raise ConfigError("convert to which type? vector or halfvec", hint="memcli vectors convert halfvec")
    bar = progress(state.console, disable=state.quiet or state.json or dry_run)
    with state.connect() as conn, bar, stop_on_signals():
        task = bar.add_task(f"converting to {to_type}", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = run_convert(
            conn, to_type, batch_size=batch_size, dry_run=dry_run, progress=advance, pause_seconds=pause
        )
    if state.json:
        print_json(to_jsonable(result))
        return
    console = state.console
    if result.phase == "nothing-to-do":
        console.print(f"The stored vectors are {result.to_type} already; nothing to do.")
    elif result.dry_run:
        before = (result.index_bytes_before or 0) / 1048576
        after = (result.estimated_index_bytes or 0) / 1048576
        console.print(
            f"Would convert {result.rows:,} vectors from {result.from_type} to {result.to_type}: index "
            f"{before:,.0f} MB now, ~{after:,.0f} MB fresh. Nothing changed."
        )
    else:
        before = (result.index_bytes_before or 0) / 1048576
        after = (result.index_bytes_after or 0) / 1048576
        console.print(
            f"Converted to {result.to_type}: {result.filled + result.already_filled:,} vectors"
            f"{' (resumed)' if result.resumed else ''}, {result.caught_up:,} written meanwhile caught up in "
            f"the swap ({result.swap_seconds * 1000:.0f} ms); index {before:,.0f} -> {after:,.0f} MB; "
            f"{result.duration_seconds:.1f}s in all.",
            highlight=False,
        )


def register(root: typer.Typer) -> None:
    root.command(
        epilog=epilog(
            EXIT_CODES, examples=("memcli tune", "memcli tune --target 0.97", "memcli tune --dry-run --json")
        )
    )(tune)
    app.command(epilog=epilog(EXIT_CODES, examples=("memcli index status", "memcli index status --json")))(
        status
    )
    app.command(
        epilog=epilog(
            EXIT_CODES,
            examples=(
                "memcli index rebuild --dry-run",
                "memcli index rebuild --m 24 --ef-construction 128",
                "memcli index rebuild --memory-cap 8GB --json",
            ),
        )
    )(rebuild)
    root.add_typer(app, name="index")
    vectors_app.command(
        epilog=epilog(
            CONVERT_EXIT_CODES,
            examples=(
                "memcli vectors convert halfvec --dry-run",
                "memcli vectors convert halfvec",
                "memcli vectors convert vector --json",
                "memcli vectors convert --abort",
            ),
        )
    )(convert)
    root.add_typer(vectors_app, name="vectors")
