"""``memcli sessions list | show | close | forget``: sessions of memory, their state, closing, erasure."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.options import JsonOpt, YesOpt
from memcli.cli.render import print_json
from memcli.cli.state import State, get_state
from memcli.cli.users import BatchOpt
from memcli.schema.names import ERASURE_BATCH_SIZE

if TYPE_CHECKING:
    from memcli.people.sessions import SessionInfo

EXIT_CODES = (
    "Exit codes: 0 done (forget of an unknown session: nothing to erase); 1 no such session (show, close), "
    "or the erasure proof found rows left; 2 bad option, or forget without --yes off a terminal; 3 cannot "
    "connect; 4 not migrated; 75 another erasure is running."
)
EXAMPLES = (
    "Examples: memcli sessions list --state idle · memcli sessions show session-123 · "
    "memcli sessions close session-123 · memcli sessions forget session-123 --dry-run"
)
TIMEOUT_NOTE = (
    "A session is idle after sessions.idle_minutes (30) without activity and closed after "
    "sessions.close_hours (24); the application's session_states table wins where it records a state."
)

app = typer.Typer(
    help="Sessions of memory: last activity and state (active / idle / closed), close, forget.",
    no_args_is_help=True,
    epilog=f"{TIMEOUT_NOTE} {EXIT_CODES} {EXAMPLES}",
)


class SessionState(StrEnum):
    active = "active"
    idle = "idle"
    closed = "closed"


SessionArg = Annotated[str, typer.Argument(metavar="SESSION", help="The session id.")]


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else "-"


@app.command("list", epilog=f"{TIMEOUT_NOTE} {EXIT_CODES} {EXAMPLES}")
def list_(
    ctx: typer.Context,
    state_: Annotated[
        SessionState | None, typer.Option("--state", help="Only sessions in this state.")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="UUID", help="Only sessions with this user's memories.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    json_: JsonOpt = False,
) -> None:
    """Sessions, most recently active first, with their state and memory counts."""
    from memcli.people.scope import user_subject
    from memcli.people.sessions import list_sessions

    state = get_state(ctx, json_)
    user_id = user_subject(user).user_id if user else None
    with state.connect() as conn:
        found = list_sessions(conn, state=state_.value if state_ else None, user=user_id, limit=limit or None)
    if state.json:
        print_json({"sessions": found})
        return
    _table(state, found)


def _table(state: State, sessions: list[SessionInfo]) -> None:
    from rich.text import Text

    from memcli.cli.render import Col, FitTable

    if not sessions:
        state.console.print("No sessions match.")
        return
    colour = {"active": "green", "idle": "yellow", "closed": "dim"}
    # The session id is the key and never shortened; users (long uuids) wrap as the free text.
    table = FitTable(
        Col("session"),
        Col("state"),
        Col("last active"),
        Col("since", drop=2),
        Col("memories", justify="right"),
        Col("semantic", justify="right", drop=1),
        Col("users", text=True),
    )
    for s in sessions:
        state_text = s.state + (" (app)" if s.state_source == "session_states" else "")
        table.add_row(
            s.session_id,
            Text(state_text, style=colour[s.state]),
            _when(s.last_active),
            _when(s.first_seen),
            f"{s.memories:,}",
            f"{s.semantic:,}",
            ", ".join(str(u) for u in s.users) if s.users else "-",
        )
    state.console.print(table)


@app.command(epilog=f"{EXIT_CODES} {EXAMPLES}")
def show(ctx: typer.Context, session: SessionArg, json_: JsonOpt = False) -> None:
    """One session: state, activity, memories, users, when and why it was closed."""
    from memcli.people.sessions import show_session

    state = get_state(ctx, json_)
    with state.connect() as conn:
        info = show_session(conn, session)
    if state.json:
        print_json(info)
        return
    _table(state, [info])
    if info.closed_at:
        state.console.print(f"Closed {_when(info.closed_at)} ({info.close_reason}).")


@app.command(epilog=f"{EXIT_CODES} {EXAMPLES}")
def close(
    ctx: typer.Context,
    session: SessionArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be consolidated; change nothing.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Close SESSION now: consolidate its short-term memories at once and record it closed."""
    from memcli.people.sessions import close_session

    state = get_state(ctx, json_)
    with state.connect(autocommit=True) as conn:
        result = close_session(conn, session, dry_run=dry_run)
    if state.json:
        print_json(result)
        return
    verb = "Would close" if dry_run else "Closed"
    merged = f"{result.merged} short-term memories merged" + (
        f" into {result.new_memory_id}" if result.new_memory_id else ""
    )
    state.console.print(f"{verb} session {session} (was {result.was}); {merged}.")
    if result.skipped:
        state.console.print(f"Consolidation left for later: {result.skipped}")


@app.command(epilog=f"{EXIT_CODES} {EXAMPLES}")
def forget(
    ctx: typer.Context,
    session: SessionArg,
    yes: YesOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be erased; change nothing.")
    ] = False,
    batch_size: BatchOpt = ERASURE_BATCH_SIZE,
    json_: JsonOpt = False,
) -> None:
    """Erase SESSION (every memory in it, whoever it is about; its relevance rows and lineage) in batches,
    prove zero rows are left, and leave a receipt."""
    from memcli.cli.users import run_forget
    from memcli.people.scope import session_subject

    state = get_state(ctx, json_)
    run_forget(state, session_subject(session), yes=yes, dry_run=dry_run, batch_size=batch_size)


def register(root: typer.Typer) -> None:
    """Add ``memcli sessions`` to the root app."""
    root.add_typer(app, name="sessions")
