"""``memcli memories list | show | update | delete``: single conversation and semantic memories.

They parse options, call memcli.people.memories and render: a table on a terminal, one JSON document with
``--json``, one JSON object per line with ``--jsonl`` (streamed, for large listings).
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from memcli.cli.choices import ContentType, MemoryType, StoredTier
from memcli.cli.options import JsonOpt, YesOpt
from memcli.cli.render import print_json, to_jsonable
from memcli.cli.state import State, get_state
from memcli.schema.names import DELETE_BATCH_SIZE

if TYPE_CHECKING:
    from memcli.people.memories import MemoryDetail, MemoryFilter

EXIT_CODES = (
    "Exit codes: 0 done; 1 no such memory (show, update); 2 bad option or malformed id, or delete "
    "without --yes off a terminal; 3 cannot connect; 4 not migrated."
)
LIST_EXAMPLES = (
    "Examples: memcli memories list --user 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f · "
    "memcli memories list --session S1 --tier short_term --expired · "
    "memcli memories list --kind semantic --type user_preference --older-than 90d --jsonl > old.jsonl"
)
SHOW_EXAMPLES = "Examples: memcli memories show 0b6a...e1 · memcli memories show 0b6a...e1 --json"
UPDATE_EXAMPLES = (
    "Examples: memcli memories update 0b6a...e1 --importance 0.9 · "
    "memcli memories update 0b6a...e1 --tier long_term"
)
DELETE_EXAMPLES = (
    "Examples: memcli memories delete 0b6a...e1 --yes · "
    "memcli memories delete --session S1 --tier short_term --dry-run · "
    "memcli memories delete --user 3f2b...5f --kind semantic --older-than 1y --yes"
)

app = typer.Typer(
    help="List, show, change and delete single memories (conversation and semantic).",
    no_args_is_help=True,
    epilog=f"{EXIT_CODES} {LIST_EXAMPLES}",
)


class Kind(StrEnum):
    conversation = "conversation"
    semantic = "semantic"


KindOpt = Annotated[Kind | None, typer.Option("--kind", help="Only conversation or only semantic memories.")]
SessionOpt = Annotated[str | None, typer.Option("--session", help="Only this session's memories.")]
UserOpt = Annotated[str | None, typer.Option("--user", metavar="UUID", help="Only this user's memories.")]
TierOpt = Annotated[
    MemoryType | None, typer.Option("--tier", help="Only conversation memories of this tier.")
]
TypeOpt = Annotated[
    ContentType | None, typer.Option("--type", help="Only semantic memories of this content type.")
]
ExpiredOpt = Annotated[
    bool | None,
    typer.Option("--expired/--unexpired", help="Only conversation memories past (or not past) expires_at."),
]
OlderOpt = Annotated[
    str | None, typer.Option("--older-than", metavar="AGE", help="Created more than AGE ago (30d, 12h).")
]
NewerOpt = Annotated[str | None, typer.Option("--newer-than", metavar="AGE", help="Created within AGE.")]


def _filter(
    kind: Kind | None,
    session: str | None,
    user: str | None,
    tier: MemoryType | None,
    content_type: ContentType | None,
    expired: bool | None,
    older_than: str | None,
    newer_than: str | None,
) -> MemoryFilter:
    from memcli.durations import parse_duration
    from memcli.people.memories import MemoryFilter, check_filter
    from memcli.people.scope import user_subject

    return check_filter(
        MemoryFilter(
            kind=kind.value if kind else None,  # type: ignore[arg-type]
            session=session,
            user=user_subject(user).user_id if user is not None else None,
            tier=tier.value if tier else None,
            content_type=content_type.value if content_type else None,
            expired=expired,
            older_than=parse_duration(older_than, "--older-than") if older_than else None,
            newer_than=parse_duration(newer_than, "--newer-than") if newer_than else None,
        )
    )


def _when(value: Any) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def _flat(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# --------------------------------------------------------------------------------------------------- list


@app.command("list", epilog=f"{EXIT_CODES} {LIST_EXAMPLES}")
def list_(
    ctx: typer.Context,
    kind: KindOpt = None,
    session: SessionOpt = None,
    user: UserOpt = None,
    tier: TierOpt = None,
    content_type: TypeOpt = None,
    expired: ExpiredOpt = None,
    older_than: OlderOpt = None,
    newer_than: NewerOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many (0: all).")] = 50,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object per line, streamed.")] = False,
    json_: JsonOpt = False,
) -> None:
    """List memories, newest first, with filters (all given filters must match)."""
    from memcli.people.memories import count_memories, list_memories

    state = get_state(ctx, json_)
    f = _filter(kind, session, user, tier, content_type, expired, older_than, newer_than)
    with state.connect() as conn:
        rows = list_memories(conn, f, limit=limit or None)
        if jsonl:
            out = sys.stdout
            for row in rows:
                out.write(json.dumps(to_jsonable(row)) + "\n")
            out.flush()
            return
        listed = list(rows)
        totals = count_memories(conn, f) if limit and len(listed) >= limit else None
    if state.json:
        print_json({"memories": listed, "shown": len(listed), "totals": totals})
        return
    _render_list(state, listed, totals)


def _render_list(state: State, rows: list[Any], totals: dict[str, int] | None) -> None:
    from memcli.cli.render import Col, FitTable

    console = state.console
    if not rows:
        console.print("No memories match.")
        return
    # The id and the content always show; the rest folds into the content on a narrow terminal.
    table = FitTable(
        Col("id"),
        Col("tier/type", drop=1),
        Col("score", justify="right", drop=2),
        Col("reads", justify="right", drop=3),
        Col("created", drop=4),
        Col("session", drop=5),
        Col("user", drop=6),
        Col("key", drop=7),
        Col("kind", drop=8),
        Col("content", text=True),
    )
    for r in rows:
        table.add_row(
            str(r.id),
            r.tier or r.content_type or "-",
            f"{r.score:.2f}" if r.score is not None else "-",
            str(r.access_count),
            _when(r.created_at),
            r.session_id,
            str(r.user_id) if r.user_id else "-",
            r.key or "-",
            r.kind,
            _flat(r.preview, 200),
        )
    console.print(table)
    if totals is not None:
        console.print(f"{len(rows)} shown of {sum(totals.values()):,}; --limit 0 lists all.")


# --------------------------------------------------------------------------------------------------- show


@app.command(epilog=f"{EXIT_CODES} {SHOW_EXAMPLES}")
def show(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(metavar="MEMORY_ID", help="The memory's id (a UUID).")],
    json_: JsonOpt = False,
) -> None:
    """Everything about one memory: its row, consolidation lineage, relevance rows and access history."""
    from memcli.people.memories import parse_memory_id, show_memory

    state = get_state(ctx, json_)
    mid = parse_memory_id(memory_id)
    with state.connect() as conn:
        detail = show_memory(conn, mid)
    if state.json:
        print_json(detail)
        return
    _render_detail(state, detail)


def _render_detail(state: State, d: MemoryDetail) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = state.console
    table = Table(box=None, show_header=False, title=f"{d.kind} memory ({d.table})", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in d.row.items():
        shown = json.dumps(to_jsonable(value)) if isinstance(value, dict | list) else str(value)
        table.add_row(key, escape(shown if value is not None else "-"))
    if d.kind == "semantic":
        table.add_row("embedding", f"{d.embedding_dimension} dimensions" if d.embedding_dimension else "none")
    console.print(table)
    console.print(
        f"Access: read {d.access['access_count']} time(s), last {_when(d.access['last_accessed_at'])}; "
        f"created {_when(d.access['created_at'])}"
        + (f", expires {_when(d.access['expires_at'])}" if d.access.get("expires_at") else "")
    )
    if d.lineage:
        lineage = Table(
            "relation", "type", "when", "memories", "reason", title="Lineage", title_justify="left"
        )
        for row in d.lineage:
            others = row["old_memory_ids"] or []
            lineage.add_row(
                row["relation"],
                row["consolidation_type"],
                _when(row["created_at"]),
                f"{len(others)} source(s) -> {row['new_memory_id'] or '-'}",
                escape(row["consolidation_reason"] or ""),
            )
        console.print(lineage)
    else:
        console.print("Lineage: none (never consolidated, archived or merged)")
    if d.relevance:
        rel = Table("type", "key", "score", "decay", "calculated", title="Relevance", title_justify="left")
        for row in d.relevance:
            rel.add_row(
                escape(row["context_type"]),
                escape(row["context_key"]),
                f"{row['relevance_score']:.3f}",
                f"{row['decay_factor']:.2f}",
                _when(row["last_calculated"]),
            )
        console.print(rel)
    else:
        console.print("Relevance: no rows")


# ------------------------------------------------------------------------------------------------- update


@app.command(epilog=f"{EXIT_CODES} {UPDATE_EXAMPLES}")
def update(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(metavar="MEMORY_ID", help="The memory's id (a UUID).")],
    importance: Annotated[
        float | None,
        typer.Option("--importance", min=0.0, max=1.0, help="New importance (semantic: relevance), 0-1."),
    ] = None,
    tier: Annotated[
        StoredTier | None,
        typer.Option("--tier", help="New tier (conversation memories); the expiry follows the tier."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Change a memory's importance or tier (audited)."""
    from memcli.people.memories import parse_memory_id, update_memory

    state = get_state(ctx, json_)
    mid = parse_memory_id(memory_id)
    with state.connect() as conn:
        result = update_memory(conn, mid, importance=importance, tier=tier.value if tier else None)
    if state.json:
        print_json(result)
        return
    changes = ", ".join(
        f"{key} {result.before.get(key)} -> {value}"
        for key, value in result.after.items()
        if key != "expires_at"
    )
    state.console.print(f"Updated {result.kind} memory {result.id}: {changes}")


# ------------------------------------------------------------------------------------------------- delete


@app.command(epilog=f"{EXIT_CODES} {DELETE_EXAMPLES}")
def delete(
    ctx: typer.Context,
    memory_ids: Annotated[
        list[str] | None, typer.Argument(metavar="[MEMORY_ID]...", help="Ids of the memories to delete.")
    ] = None,
    kind: KindOpt = None,
    session: SessionOpt = None,
    user: UserOpt = None,
    tier: TierOpt = None,
    content_type: TypeOpt = None,
    expired: ExpiredOpt = None,
    older_than: OlderOpt = None,
    newer_than: NewerOpt = None,
    yes: YesOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per transaction.")
    ] = DELETE_BATCH_SIZE,
    json_: JsonOpt = False,
) -> None:
    """Delete memories by id, or every memory matching the filters, in batches (audited per user)."""
    from memcli.cli.confirm import confirm_destructive
    from memcli.errors import ConfigError
    from memcli.people.memories import count_memories, delete_memories, parse_memory_id

    state = get_state(ctx, json_)
    filters = (kind, session, user, tier, content_type, expired, older_than, newer_than)
    if memory_ids and any(v is not None for v in filters):
        raise ConfigError("give memory ids or filters, not both")
    if not memory_ids and all(v is None for v in filters):
        raise ConfigError("nothing to delete", hint="give MEMORY_ID(s) or filters such as --session S")
    ids = [parse_memory_id(i) for i in memory_ids] if memory_ids else None
    where = None if ids else _filter(*filters)
    with state.connect(autocommit=True) as conn:
        if not dry_run:
            if ids is None:
                assert where is not None
                planned = sum(count_memories(conn, where).values())
                question = f"Delete {planned:,} memories matching the filters?"
            else:
                question = f"Delete {len(ids)} memor{'y' if len(ids) == 1 else 'ies'}?"
            confirm_destructive(question, yes=yes, what="memcli memories delete ...")
        result = delete_memories(conn, ids=ids, where=where, dry_run=dry_run, batch_size=batch_size)  # type: ignore[arg-type]
    if state.json:
        print_json({**to_jsonable(result), "rows": result.rows})
        return
    verb = "Would delete" if dry_run else "Deleted"
    parts = ", ".join(f"{n:,} from {table}" for table, n in result.deleted.items())
    state.console.print(f"{verb} {result.rows:,} memories ({parts}).")


def register(root: typer.Typer) -> None:
    """Add ``memcli memories`` to the root app."""
    root.add_typer(app, name="memories")
