"""``memcli users list | show | export | forget | receipts``: who memory knows, a user's data read out, erased
with proof, and the receipts.

``memcli sessions forget`` shares the erasure rendering below.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.options import JsonOpt, YesOpt
from memcli.cli.render import err, print_json, progress
from memcli.cli.state import State, get_state
from memcli.jobs.interrupts import stop_on_signals
from memcli.schema.names import ERASURE_BATCH_SIZE

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
LIST_EXAMPLES = (
    "Examples: memcli users list · memcli users list --order memories --limit 10 · "
    "memcli users show 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f"
)
SHOW_EXIT_CODES = (
    "Exit codes: 0 shown; 1 nothing about that user (never known, or erased); 2 malformed UUID; "
    "3 cannot connect; 4 not migrated."
)

app = typer.Typer(
    help="Users in memory: list them, show one, export their data (JSON Lines), forget it with proof, "
    "show erasure receipts.",
    no_args_is_help=True,
    epilog=(
        "Exit codes: 0 done (forget of an unknown user too: nothing to erase); 1 no such user (show), or the "
        "erasure proof found rows left; 2 bad option or malformed UUID; 3 cannot connect; 4 not migrated; "
        "75 another erasure is running. Examples: memcli users list --order memories · "
        "memcli users show 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f · memcli users forget 3f2b...5f --dry-run"
    ),
)

DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Count what would be erased; change nothing (no lock, no receipt).")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per transaction.")]


class UserOrder(StrEnum):
    last_active = "last-active"
    memories = "memories"


@app.command("list", epilog=f"{SHOW_EXIT_CODES} {LIST_EXAMPLES}")
def list_(
    ctx: typer.Context,
    order: Annotated[
        UserOrder, typer.Option("--order", help="Most recently active first, or most memories first.")
    ] = UserOrder.last_active,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    json_: JsonOpt = False,
) -> None:
    """Users with memories or a profile: counts, sessions, first and last seen (no content)."""
    from memcli.people.users import list_users

    state = get_state(ctx, json_)
    with state.connect() as conn:
        found = list_users(conn, order=order.value, limit=limit or None)
    if state.json:
        print_json({"users": [_user_json(u) for u in found]})
        return
    if not found:
        state.console.print("No users: no memory or profile carries a user id.")
        return
    _users_table(state, found)


@app.command(epilog=f"{SHOW_EXIT_CODES} {LIST_EXAMPLES}")
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(metavar="USER", help="The user's id (a UUID).")],
    json_: JsonOpt = False,
) -> None:
    """One user: rows per table (their sessions' anonymous rows included), tiers, sessions, receipts."""
    from memcli.people.scope import user_subject
    from memcli.people.users import show_user

    state = get_state(ctx, json_)
    with state.connect() as conn:
        info = show_user(conn, user_subject(user))
    if state.json:
        print_json(info)
        return
    _users_table(state, [info])
    console = state.console
    rows = ", ".join(f"{name} {n:,}" for name, n in info.tables.items())
    console.print(f"Rows about the user (export / forget scope): {rows}.")
    if info.tiers:
        console.print("Tiers: " + ", ".join(f"{tier} {n:,}" for tier, n in info.tiers.items()) + ".")
    if info.session_ids:
        more = f" (newest {len(info.session_ids)})" if info.sessions > len(info.session_ids) else ""
        console.print(f"Sessions{more}: " + ", ".join(info.session_ids) + ".")
    if info.receipts:
        console.print(
            f"Erasure receipts naming the user: {info.receipts} (memcli users receipts --user {user})."
        )


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _users_table(state: State, users: list[Any]) -> None:
    from memcli.cli.render import Col, FitTable

    table = FitTable(
        Col("user"),
        Col("memories", justify="right"),
        Col("semantic", justify="right", drop=2),
        Col("sessions", justify="right", drop=1),
        Col("first seen", drop=3),
        Col("last active"),
        Col("profile", drop=4),
    )
    for u in users:
        table.add_row(
            str(u.user_id),
            f"{u.memories:,}",
            f"{u.semantic:,}",
            f"{u.sessions:,}",
            _when(u.first_seen),
            _when(u.last_active),
            "yes" if u.profile else "no",
        )
    state.console.print(table)


def _user_json(u: Any) -> dict[str, Any]:
    from memcli.cli.render import to_jsonable

    data = to_jsonable(u)
    for key in ("tables", "tiers", "session_ids", "receipts"):  # filled by show only
        data.pop(key, None)
    return data


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
    batch_size: BatchOpt = ERASURE_BATCH_SIZE,
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
    from memcli.cli.render import Col, FitTable
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
    # The receipt id is the key and stays whole; at 80 columns the rest folds into the proof text.
    table = FitTable(
        Col("receipt"),
        Col("rows", justify="right"),
        Col("status", drop=3),
        Col("started", drop=1),
        Col("subject", drop=2),
        Col("by", drop=4),
        Col("proof", text=True),
    )
    for r in found:
        proof = r.proof or {}
        proven = "zero rows" if r.status == "completed" else "-"
        if proof.get("visibility") == "rls":
            proven += " (rls)"
        table.add_row(
            str(r.id),
            f"{sum(int(n) for n in r.erased.values()):,}",
            r.status,
            _when(r.started_at),
            r.subject_kind,
            f"{r.db_role}/{r.os_user or '?'}",
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
