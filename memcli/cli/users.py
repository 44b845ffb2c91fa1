"""``memcli users export | forget | receipts``: a user's data read out, erased with proof, and the receipts.

``memcli sessions forget`` shares the erasure rendering below.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.render import err, print_json, progress
from memcli.cli.state import State, get_state
from memcli.jobs.interrupts import stop_on_signals

if TYPE_CHECKING:
    from memcli.people.erasure import ErasureResult
    from memcli.people.scope import Subject

EXIT_CODES = (
    "Exit codes: 0 done (also for an unknown user: nothing to erase, zero counts); 1 the proof found rows "
    "left (run again to resume); 2 bad option, malformed UUID, or forget without --yes off a terminal; "
    "3 cannot connect; 4 not migrated; 75 another erasure is running."
)
EXPORT_EXAMPLES = (
    "Examples: memcli users export 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f > alice.jsonl · "
    "memcli users export 3f2b...5f --output alice.jsonl --with-vectors"
)
FORGET_EXAMPLES = (
    "Examples: memcli users forget 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f --dry-run · "
    "memcli users forget 3f2b...5f --yes --json · memcli users receipts --user 3f2b...5f"
)
RECEIPT_EXAMPLES = "Examples: memcli users receipts · memcli users receipts --user 3f2b...5f --json"

app = typer.Typer(
    help="A user's data: export it (JSON Lines), forget it with proof, show erasure receipts.",
    no_args_is_help=True,
    epilog=f"{EXIT_CODES} {FORGET_EXAMPLES}",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed off a terminal).")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Count what would be erased; change nothing (no lock, no receipt).")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction.")]


@app.command(epilog=f"{EXIT_CODES} {EXPORT_EXAMPLES}")
def export(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's id (a UUID).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")
    ] = None,
    with_vectors: Annotated[
        bool, typer.Option("--with-vectors", help="Include the embedding vectors of semantic memories.")
    ] = False,
) -> None:
    """Write every row about USER in every memory table as JSON Lines (audited).

    Lines: a header, one {"table": ..., "row": ...} per row, a summary. Counts go to stderr.
    """
    from memcli.people.scope import user_subject

    state = get_state(ctx)
    _export(state, user_subject(user), output, with_vectors)


def _export(state: State, subject: Subject, output: Path | None, with_vectors: bool) -> None:
    from memcli.people.export import export as run_export

    console = state.console
    with state.connect() as conn, stop_on_signals():
        target = output.open("wb") if output else sys.stdout.buffer
        try:
            with progress(console, disable=state.quiet) as bar:
                task = bar.add_task(f"exporting {subject.kind}", total=None)

                def advance(done: int, total: int | None) -> None:
                    bar.update(task, completed=done, total=total)

                result = run_export(conn, subject, target, with_vectors=with_vectors, progress=advance)
        finally:
            if output:
                target.close()
    if not state.quiet:
        tables = ", ".join(f"{name} {n:,}" for name, n in result.tables.items())
        err(
            f"Exported {result.rows:,} rows ({tables}) in {result.duration_seconds:.2f} s"
            + (f" to {output}" if output else "")
        )
        if result.visibility == "rls":
            err("Warning: row-level security applies to this role; only the rows it may see were exported")


@app.command(epilog=f"{EXIT_CODES} {FORGET_EXAMPLES}")
def forget(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's id (a UUID).")],
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    batch_size: BatchOpt = 2000,
    json_: JsonOpt = False,
) -> None:
    """Erase USER from every memory table in batches, prove zero rows are left, and leave a receipt.

    Their memories (and anonymous memories in their sessions), profile, relevance rows and consolidation
    lineage of their sessions go; audit rows keep their counts but lose the user id. An interrupted erasure
    resumes when run again. The receipt names no one: `memcli users receipts --user USER` finds it.
    """
    from memcli.people.scope import user_subject

    state = get_state(ctx, json_)
    run_forget(state, user_subject(user), yes=yes, dry_run=dry_run, batch_size=batch_size)


def run_forget(state: State, subject: Subject, *, yes: bool, dry_run: bool, batch_size: int) -> None:
    """Shared by ``users forget`` and ``sessions forget``."""
    from memcli.cli.confirm import confirm_destructive
    from memcli.people.erasure import forget as run

    with state.connect(autocommit=True) as conn, stop_on_signals():
        if not dry_run:
            preview = run(conn, subject, dry_run=True)
            if preview.found:
                confirm_destructive(
                    f"Erase {preview.rows:,} rows of {subject.kind} {subject.value} for good?",
                    yes=yes,
                    what=f"memcli {subject.kind}s forget {subject.value}",
                )
        with progress(state.console, disable=state.quiet or state.json) as bar:
            task = bar.add_task(f"erasing {subject.kind}", total=None)

            def advance(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            result = run(conn, subject, dry_run=dry_run, batch_size=batch_size, progress=advance)
    render_erasure(state, subject, result)


def render_erasure(state: State, subject: Subject, result: ErasureResult) -> None:
    from rich.table import Table

    from memcli.cli.render import to_jsonable

    for warning in result.warnings:
        err(f"Warning: {warning}")
    if state.json:
        print_json({**to_jsonable(result), "rows": result.rows})
        return
    console = state.console
    if not result.found and not result.resumed:
        console.print(f"No data of {subject.kind} {subject.value}: nothing to erase (0 rows).")
        if not result.dry_run:
            console.print(f"Proven: 0 rows in every table. Receipt {result.receipt_id}.")
        return
    title = "Would erase" if result.dry_run else "Erased"
    table = Table("table", "rows", *(() if result.dry_run else ("left",)), title=title, title_justify="left")
    for name, n in result.erased.items():
        table.add_row(name, f"{n:,}", *(() if result.dry_run else (str(result.remaining.get(name, 0)),)))
    console.print(table)
    if result.dry_run:
        console.print(f"{result.rows:,} rows in {result.sessions} session(s); nothing changed.")
        return
    resumed = " (resumed an interrupted erasure)" if result.resumed else ""
    console.print(
        f"Proven: 0 rows of {subject.kind} {subject.value} left in {len(result.remaining)} tables{resumed}. "
        f"Receipt {result.receipt_id}; {result.audit_rows_pseudonymised} audit row(s) pseudonymised."
    )


@app.command(epilog=RECEIPT_EXAMPLES)
def receipts(
    ctx: typer.Context,
    user: Annotated[
        str | None, typer.Option("--user", metavar="UUID", help="Only receipts of this user's erasure.")
    ] = None,
    session: Annotated[str | None, typer.Option("--session", help="Only receipts of this session.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many, newest first.")] = 50,
    json_: JsonOpt = False,
) -> None:
    """Erasure receipts: when, by whom, rows per table and the proof; no personal data."""
    from rich.table import Table

    from memcli.people.erasure import receipts as load
    from memcli.people.scope import session_subject, user_subject

    state = get_state(ctx, json_)
    subject = user_subject(user) if user else session_subject(session) if session else None
    with state.connect() as conn:
        found = load(conn, subject=subject, limit=limit)
    if state.json:
        print_json({"receipts": [_receipt_json(r) for r in found]})
        return
    if not found:
        state.console.print("No erasure receipts" + (" for that subject." if subject else "."))
        return
    table = Table("receipt", "subject", "status", "started", "by", "rows", "proof", box=None)
    for r in found:
        proof = r.proof or {}
        proven = "zero rows" if r.status == "completed" else "-"
        if proof.get("visibility") == "rls":
            proven += " (rls)"
        table.add_row(
            str(r.id),
            r.subject_kind,
            r.status,
            r.started_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            f"{r.db_role}/{r.os_user or '?'}",
            f"{sum(int(n) for n in r.erased.values()):,}",
            proven,
        )
    state.console.print(table)


def _receipt_json(r: Any) -> dict[str, Any]:
    from memcli.cli.render import to_jsonable

    data = to_jsonable(r)
    data.pop("salt", None)  # with the salt, a guessed id could be confirmed: keep it in the database
    return data


def register(root: typer.Typer) -> None:
    """Add ``memcli users`` to the root app."""
    root.add_typer(app, name="users")
