"""``memcli search``, ``memcli embed`` and ``memcli remember``: semantic memory from the terminal.

They parse options, call memcli.search / memcli.memories and render the result (a table on a terminal, one
JSON document with ``--json``). The embedding model loads only when a text must be embedded: ``--like`` and
``--sections`` never load it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from memcli.cli.choices import ContentType, SectionType, StoredTier
from memcli.cli.helptext import epilog, exit_codes
from memcli.cli.render import print_json, progress
from memcli.cli.state import State, get_state
from memcli.errors import ExitCode

if TYPE_CHECKING:
    from memcli.embeddings import Embedder

EMBEDDER_HELP = (
    "Embedding provider: local (all-MiniLM-L6-v2 on this machine, default), openai (any OpenAI-compatible "
    "endpoint) or "
    "hashing (lexical, for tests); optionally provider:model. Default: MEMCLI_EMBEDDER, else [embedding] "
    "provider in memcli.toml, else local."
)
CONNECT_MEANING = "cannot connect (or reach the embedding endpoint)"
MODEL_MEANING = "not migrated, or the embedder differs from the model that wrote the stored vectors"


DEFAULT_CONTENT_TYPE = ContentType("conversation")
DEFAULT_TIER = StoredTier("short_term")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (full texts, timings).")]
EmbedderOpt = Annotated[
    str | None, typer.Option("--embedder", metavar="PROVIDER[:MODEL]", help=EMBEDDER_HELP)
]


def _embedder(state: State, provider: str | None) -> Embedder:
    from memcli.embeddings import get_embedder

    return get_embedder(state.config(), provider)


# ------------------------------------------------------------------------------------------------- search


def search(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="What to look for, in plain words.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Only this session's memories.")] = None,
    user: Annotated[
        str | None, typer.Option("--user", metavar="UUID", help="Only this user's memories.")
    ] = None,
    content_type: Annotated[
        ContentType | None, typer.Option("--type", help="Only memories of this content type.")
    ] = None,
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", min=1, max=1000, help="How many results at most.")
    ] = 10,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            "--min-similarity",
            min=-1.0,
            max=1.0,
            help="Cosine similarity floor (default: the model's; settings embedding.min_similarity "
            "overrides it). Results below it are counted, not shown.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="WHEN", help="Created at or after: 2024-05-01, 2024-05-01T14:30, or 7d."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="WHEN", help="Created before (a bare date includes that day), or 2h."
        ),
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(
            "--like", metavar="MEMORY_ID", help="Neighbours of this stored memory (no model needed)."
        ),
    ] = None,
    hybrid: Annotated[
        bool, typer.Option("--hybrid", help="Fuse vector similarity with Postgres full-text search (RRF).")
    ] = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="Exact scan instead of the HNSW index (slow; the ground truth).")
    ] = False,
    sections: Annotated[
        bool,
        typer.Option("--sections", help="Search business context sections (by text) instead of memories."),
    ] = False,
    business: Annotated[
        str | None, typer.Option("--business", metavar="UUID", help="With --sections: only this business.")
    ] = None,
    section_type: Annotated[
        SectionType | None, typer.Option("--section-type", help="With --sections: only this section type.")
    ] = None,
    embedder: EmbedderOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Find the memories that mean what QUERY means (semantic search over semantic_memory).

    Filters narrow the search without losing results: the index keeps scanning until --top-k rows pass.
    Returned memories count as accessed (access_count, last_accessed_at).
    """
    state = get_state(ctx, json_)
    if sections:
        _search_sections(state, query, business, section_type, top_k)
        return
    if query is None and like is None:
        from memcli.errors import ConfigError

        raise ConfigError("nothing to search for", hint="give a QUERY, or --like MEMORY_ID")
    from memcli.search import parse_time_bound
    from memcli.search import search as run_search

    since_at = parse_time_bound(since) if since else None
    until_at = parse_time_bound(until, end=True) if until else None
    # --like searches with the stored vector (with --hybrid, the text feeds the full-text side only).
    needs_model = query is not None and like is None
    chosen = _embedder(state, embedder) if needs_model else None
    with state.connect() as conn:
        result = run_search(
            conn,
            chosen,
            query,
            session=session,
            user=user,
            content_type=content_type.value if content_type else None,
            top_k=top_k,
            min_similarity=min_similarity,
            since=since_at,
            until=until_at,
            like_id=like,
            hybrid=hybrid,
            exact=exact,
        )
    if state.json:
        print_json(result)
        return
    from memcli.cli.search_view import render_search

    render_search(state.console, result, quiet=state.quiet, lexical=bool(getattr(chosen, "lexical", False)))


def _search_sections(
    state: State, query: str | None, business: str | None, section_type: SectionType | None, limit: int
) -> None:
    from memcli.errors import ConfigError
    from memcli.search import search_sections

    if not query:
        raise ConfigError("--sections needs a QUERY text")
    with state.connect() as conn:
        result = search_sections(
            conn, query, business, section_type.value if section_type else None, limit=limit
        )
    if state.json:
        print_json(result)
        return
    from memcli.cli.search_view import render_sections

    render_sections(state.console, result, quiet=state.quiet)


# -------------------------------------------------------------------------------------------------- embed


def embed(
    ctx: typer.Context,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, max=10_000, help="Memories per batch (one transaction each)."),
    ] = 64,
    limit: Annotated[
        int | None, typer.Option("--limit", min=0, help="Embed at most this many memories in this run.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be embedded; change nothing.")
    ] = False,
    embedder: EmbedderOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Embed the semantic memories that have no embedding yet (backfill).

    Batches commit one by one, so an interrupted run keeps its work and the next run continues; rows the
    application holds locked are skipped and left for the next run.
    """
    from memcli.memories import embed_missing

    state = get_state(ctx, json_)
    chosen = _embedder(state, embedder)
    bar = progress(state.console, disable=state.quiet or state.json)
    with state.connect() as conn, bar:
        task = bar.add_task("embedding memories", total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        result = embed_missing(
            conn, chosen, batch_size=batch_size, max_rows=limit, progress=advance, dry_run=dry_run
        )
    if state.json:
        print_json(result)
        return
    console = state.console
    if result.dry_run:
        console.print(
            f"{result.pending:,} memories have no embedding; would embed {result.planned:,} "
            f"with {result.model} ({result.dimension} dimensions)."
        )
        return
    if result.pending == 0:
        console.print("Every memory has an embedding already; nothing to do.")
        return
    rate = f", {result.rows_per_second:,.0f}/s" if result.rows_per_second else ""
    console.print(
        f"Embedded {result.embedded:,} memories with {result.model} in {result.batches} batch(es) "
        f"({result.duration_seconds:.1f}s{rate}); {result.remaining:,} still without an embedding."
    )


# ----------------------------------------------------------------------------------------------- remember


def remember(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="The memory, in plain words.")] = None,
    session: Annotated[str, typer.Option("--session", help="The session the memory belongs to.")] = "",
    user: Annotated[str | None, typer.Option("--user", metavar="UUID", help="The user it is about.")] = None,
    content_type: Annotated[ContentType, typer.Option("--type", help="Content type.")] = DEFAULT_CONTENT_TYPE,
    metadata: Annotated[
        str | None, typer.Option("--metadata", metavar="JSON", help="A JSON object stored with the memory.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Store a conversation memory under this context key (value: --value, else TEXT).",
        ),
    ] = None,
    value: Annotated[
        str | None, typer.Option("--value", metavar="JSON", help="With --key: the value, as JSON.")
    ] = None,
    tier: Annotated[
        StoredTier, typer.Option("--tier", help="With --key: the tier (its retention sets the expiry).")
    ] = DEFAULT_TIER,
    importance: Annotated[
        float, typer.Option("--importance", min=0.0, max=1.0, help="With --key: importance, 0-1.")
    ] = 0.5,
    embedder: EmbedderOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Store TEXT as a semantic memory, with its embedding; with --key, a conversation memory.

    Examples: memcli remember "prefers window seats" --session S1 --user 3f2b...5f ·
    memcli remember --session S1 --key food --value '{"cuisine": "italian"}' --tier long_term
    """
    from memcli.errors import ConfigError
    from memcli.memories import remember as store

    state = get_state(ctx, json_)
    if not session:
        raise ConfigError("a memory needs a session id", hint="pass --session")
    if key is not None:
        _remember_conversation(state, session, user, key, text, value, tier.value, importance)
        return
    if text is None:
        raise ConfigError(
            "nothing to remember", hint="give TEXT, or --key and --value for a conversation memory"
        )
    extra = None
    if metadata is not None:
        try:
            extra = json.loads(metadata)
        except ValueError as exc:
            raise ConfigError(f"--metadata is not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise ConfigError(
                "--metadata must be a JSON object", hint='e.g. --metadata \'{"source": "chat"}\''
            )
    chosen = _embedder(state, embedder)
    with state.connect() as conn:
        memory_id = store(
            conn, chosen, text, session, user=user, content_type=content_type.value, metadata=extra
        )
    payload = {
        "id": memory_id,
        "session_id": session,
        "user_id": user,
        "content_type": content_type.value,
        "embedding_model": chosen.name,
        "dimension": chosen.dimension,
    }
    if state.json:
        print_json(payload)
        return
    if state.quiet:
        state.console.print(str(memory_id))
        return
    state.console.print(f"Remembered {memory_id} (session {session}, {content_type.value}, {chosen.name})")


def _remember_conversation(
    state: State,
    session: str,
    user: str | None,
    key: str,
    text: str | None,
    value: str | None,
    tier: str,
    importance: float,
) -> None:
    from memcli.errors import ConfigError
    from memcli.people.memories import store_conversation
    from memcli.people.scope import user_subject

    if value is not None:
        try:
            stored_value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(
                f"--value is not valid JSON: {exc}", hint="quote strings: --value '\"text\"'"
            ) from None
    elif text is not None:
        stored_value = text
    else:
        raise ConfigError("a conversation memory needs a value", hint="pass --value JSON (or TEXT)")
    user_id = user_subject(user).user_id if user is not None else None
    with state.connect() as conn:
        stored = store_conversation(
            conn, session, key, stored_value, user=user_id, tier=tier, importance=importance
        )
    if state.json:
        print_json(stored)
        return
    if state.quiet:
        state.console.print(str(stored.id))
        return
    verb = "Remembered" if stored.created else "Replaced"
    state.console.print(f"{verb} {stored.id} (session {session}, key {key}, {tier})")


SEARCH_EPILOG = epilog(
    exit_codes(
        {
            ExitCode.OK: "done (also when nothing matched)",
            ExitCode.USAGE: "bad option",
            ExitCode.CONNECT: CONNECT_MEANING,
            ExitCode.NOT_READY: MODEL_MEANING,
        }
    ),
    examples=(
        'memcli search "vegetarian options"',
        'memcli search "peanut allergy" --session s1 --type user_preference --top-k 5',
        'memcli search "late checkout" --hybrid --since 7d --json',
        "memcli search --like 3f2b8c1e-0d4a-4b7e-9c2d-5a6e7f8091a2",
        'memcli search "opening hours" --sections',
    ),
)
EMBED_EPILOG = epilog(
    exit_codes(
        {
            ExitCode.OK: "done (also when every memory had an embedding already)",
            ExitCode.USAGE: "bad option",
            ExitCode.CONNECT: CONNECT_MEANING,
            ExitCode.NOT_READY: MODEL_MEANING,
            ExitCode.INTERRUPTED: "interrupted (the batches committed so far are kept)",
        }
    ),
    examples=(
        "memcli embed --dry-run",
        "memcli embed --batch-size 256 --limit 10000",
        "memcli embed --embedder hashing --json",
    ),
)
REMEMBER_EPILOG = epilog(
    exit_codes(
        {
            ExitCode.OK: "stored",
            ExitCode.USAGE: "bad option (e.g. --metadata that is not a JSON object)",
            ExitCode.CONNECT: CONNECT_MEANING,
            ExitCode.NOT_READY: MODEL_MEANING,
        }
    ),
    examples=(
        'memcli remember "The guest is allergic to peanuts" --session s1 --type user_preference',
        'memcli remember "prefers window seats" --session s1 --metadata \'{"source": "chat"}\' --json',
    ),
)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(epilog=SEARCH_EPILOG)(search)
    app.command(epilog=EMBED_EPILOG)(embed)
    app.command(epilog=REMEMBER_EPILOG)(remember)
