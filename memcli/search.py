"""Semantic search over ``semantic_memory``, and text search over ``business_context_sections``.

A search embeds the query with the same model that wrote the stored vectors (checked first: a different
model or dimension is refused with exit 4), then asks the HNSW index for the nearest rows:

- ``hnsw.ef_search`` comes from :func:`memcli.vector_index.ef_search_for`: the tuned base
  (``search.ef_search``, set by ``memcli tune``), widened with ``top_k`` (the candidate list must be well
  beyond the answer for the approximate top-k to match the exact one) and for filtered searches;
- with pgvector >= 0.8 the scan is iterative (``hnsw.iterative_scan = relaxed_order``): when filters
  (session, user, type, dates) discard candidates, the index keeps scanning, up to ``hnsw.max_scan_tuples``,
  until ``top_k`` rows pass, instead of returning fewer rows than asked. ``relaxed_order`` may return rows
  slightly out of order, so the top-k are re-sorted by exact distance outside the index scan;
- the similarity floor is applied to the ``top_k`` nearest rows the index returns, never inside its
  ``ORDER BY ... LIMIT`` scan (where it would become a filter); the nearest rows below the floor are
  counted (``hidden``, ``best_hidden``) so a caller can say that results were held back.

``exact`` sorts by an expression the index cannot serve (a full scan with an exact top-k sort): the ground
truth for recall. ``like_id`` searches with a stored memory's vector (no model needed). ``hybrid`` fuses the
vector ranking with Postgres full text (``content_tsv @@ websearch_to_tsquery``, ranked by ``ts_rank``) by
reciprocal rank fusion; the similarity floor applies to the vector side only, so a keyword match can still
come through. The words of a hybrid query match when any of them occurs (websearch syntax — "a phrase",
-word, or — keeps its own meaning).

Returned rows count as read: their ``access_count`` goes up by one and ``last_accessed_at`` is set, in
place (see :func:`_record_access` for why that costs a fraction of the query) — or, while memcli builds a
vector index concurrently, appended to a log folded in afterwards (:mod:`memcli.access`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcli.durations import DurationTooLongError, parse_duration
from memcli.errors import ConfigError, NotReadyError
from memcli.schema import names
from memcli.semantic import check_content_type, parse_uuid, use_vectors

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

    from memcli.embeddings import Embedder

RRF_K = 60  # the usual reciprocal-rank-fusion constant: damps the weight of the very first ranks
MAX_SCAN_TUPLES = 20_000  # iterative scans stop after this many index tuples (pgvector's default)
MAX_TOP_K = 1000
# pgvector's default candidate list (40) gave recall@10 of about 0.91 at 100k clustered vectors, 100 about
# 0.95, 200 about 0.97 for under a millisecond more (benchmarks/search_bench.py prints the sweep).
EF_SEARCH_FLOOR = 200


@dataclass
class SearchHit:
    rank: int
    id: uuid.UUID
    similarity: float
    content_type: str | None
    session_id: str
    user_id: uuid.UUID | None
    created_at: datetime
    content_text: str
    score: float | None = None  # hybrid: the fused score the hits are ordered by
    vector_rank: int | None = None  # hybrid: rank among the vector candidates (None: not among them)
    text_rank: int | None = None  # hybrid: rank among the full-text matches (None: no match)


@dataclass
class SearchResult:
    query: str | None
    mode: str  # "indexed", "exact" or "hybrid"
    exact: bool
    embedder: str | None  # None for --like (the stored vector is used)
    like_id: uuid.UUID | None
    top_k: int
    min_similarity: float
    filters: dict[str, Any]
    hits: list[SearchHit] = field(default_factory=list)
    floor_source: str = "argument"  # where min_similarity came from: argument, a setting, a model default
    hidden: int = 0  # nearest candidates the similarity floor held back (not counted for --hybrid)
    best_hidden: float | None = None  # the highest similarity among them
    empty_database: bool = False  # no semantic memories at all
    unembedded: bool = False  # some memories have no embedding yet (memcli embed)
    timing: dict[str, float] = field(default_factory=dict)  # embed_ms, query_ms, total_ms


@dataclass
class SectionHit:
    rank: int
    id: uuid.UUID
    business_id: uuid.UUID | None
    business_name: str | None
    section_type: str
    section_name: str
    section_content: Any
    score: float
    matched_by: str  # "fulltext" or "substring"


@dataclass
class SectionSearchResult:
    query: str
    business_id: uuid.UUID | None
    section_type: str | None
    hits: list[SectionHit] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)


# A query is a question, not a document: embedding models read a few hundred words, and Postgres's full-text
# parser runs out of stack on very long websearch queries (a 120 KB one fails with "stack depth limit").
MAX_QUERY_CHARS = 10_000


def check_query_length(query: str | None) -> None:
    if query and len(query) > MAX_QUERY_CHARS:
        raise ConfigError(
            f"the query is {len(query)} characters; a search takes at most {MAX_QUERY_CHARS}",
            hint="search with the words that matter (or --like MEMORY_ID for a stored memory's neighbours)",
        )


def parse_time_bound(text: str, *, end: bool = False, now: datetime | None = None) -> datetime:
    """``--since``/``--until`` values: an ISO date or date-time, or an age such as ``7d``, ``12h``, ``30m``.

    An age means that long before now. A date without a time zone is local time; a bare date given as an
    upper bound (``end``) means the end of that day, so ``--until 2024-05-01`` includes May 1st.
    """
    value = (text or "").strip()
    try:
        return (now or datetime.now().astimezone()) - parse_duration(value)
    except DurationTooLongError:
        raise
    except ConfigError:
        pass  # not an age: a date
    try:
        if len(value) == 10:  # a bare date: 2024-05-01
            day = date.fromisoformat(value)
            start = datetime.combine(day + timedelta(days=1) if end else day, datetime.min.time())
            return start.astimezone()
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"cannot read the date {text!r}",
            hint="use an ISO date (2024-05-01), a date-time (2024-05-01T14:30) or an age (7d, 12h, 30m)",
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _filters(
    session: str | None,
    user: uuid.UUID | None,
    content_type: str | None,
    since: datetime | None,
    until: datetime | None,
    exclude: uuid.UUID | None,
) -> tuple[str, dict[str, Any]]:
    """`` AND ...`` clauses (fixed text, named parameters) for the filters that are set."""
    clauses, params = [], {}
    for name, sql_text, value in (
        ("f_session", "session_id = %(f_session)s", session),
        ("f_user", "user_id = %(f_user)s", user),
        ("f_type", "content_type = %(f_type)s", content_type),
        ("f_since", "created_at >= %(f_since)s", since),
        ("f_until", "created_at < %(f_until)s", until),
        ("f_exclude", "id <> %(f_exclude)s", exclude),
    ):
        if value is not None:
            clauses.append(sql_text)
            params[name] = value
    return "".join(f" AND {clause}" for clause in clauses), params


def default_ef_search(top_k: int) -> int:
    """HNSW candidate list length for a top-k search (pgvector's default is 40)."""
    return min(1000, max(EF_SEARCH_FLOOR, 4 * top_k))


def _tune_index_scan(
    conn: psycopg.Connection,
    top_k: int,
    ef_search: int | None = None,
    *,
    iterative: bool | None = None,
    async_commit: bool = False,
) -> None:
    """Per-transaction settings (``set_config(..., true)`` is SET LOCAL) in one statement.

    A candidate list well beyond the answer keeps recall high (see ``EF_SEARCH_FLOOR``). Iterative
    scans exist from pgvector 0.8 on (older versions would warn about an unknown hnsw.* parameter):
    ``iterative`` says whether this server has them (None: ask pg_extension in the same statement).
    Custom plans always: psycopg prepares a statement run five times, and a generic plan (made without
    the query's values) could take the HNSW index for a filter so selective that the session's btree index
    is the right path, or keep a plan made for another case. ``async_commit``: see :func:`_record_access`.
    """
    if iterative is None:
        iterative_sql = (
            "(SELECT string_to_array(v.extversion, '.')::int[] >= '{0,8}' FROM pg_extension v"
            " WHERE v.extname = 'vector')"
        )
    else:
        iterative_sql = "true" if iterative else "false"
    conn.execute(
        _compose(
            """
            SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
                   set_config('hnsw.ef_search', %(ef)s, true),
                   CASE WHEN {iterative} THEN
                       set_config('hnsw.iterative_scan', 'relaxed_order', true)
                       || set_config('hnsw.max_scan_tuples', %(max_scan)s, true)
                   END,
                   CASE WHEN %(async_commit)s THEN set_config('synchronous_commit', 'off', true) END
            """,
            iterative=iterative_sql,
        ),
        {
            "ef": str(ef_search or default_ef_search(top_k)),
            "max_scan": str(MAX_SCAN_TUPLES),
            "async_commit": async_commit,
        },
    )


def _cast(vector_type: str) -> str:
    """The query vector's cast: the column's own type, so the index's operator class applies."""
    if vector_type not in names.VECTOR_TYPES:
        raise NotReadyError(
            f"semantic_memory.embedding_vector is of type {vector_type}, which memcli does not search",
            hint=f"memcli stores {' or '.join(names.VECTOR_TYPES)}",
        )
    return vector_type


def _order(exact: bool, cast: str = names.DEFAULT_VECTOR_TYPE) -> str:
    # "+ 0" makes the sort key an expression the HNSW index cannot serve, so an exact search is a full scan
    # whatever the planner settings or a cached plan say.
    distance = f"embedding_vector <=> %(q)s::{cast}"
    return f"({distance}) + 0" if exact else distance


@contextmanager
def _search_transaction(conn: psycopg.Connection) -> Iterator[bool]:
    """One transaction for a search; yields whether the search owns it.

    Under load every round trip waits for the server's (and the client's) turn on a CPU, so a search makes
    four: the context read with BEGIN (:func:`_read_context`), the index scan's settings, the query, and the
    access update with COMMIT (:func:`_finish`). The first and the last go out as pipelines, so psycopg,
    which waits for BEGIN on its own and syncs before COMMIT, does not manage this transaction: the
    connection is in autocommit while the search sends BEGIN and COMMIT itself. The settings and the query
    are not pipelined: measured on 2 loaded cores, a pipelined query took 2 to 4 ms where the same two
    statements sent one after the other took 1 to 1.5 ms. In a caller's transaction the search is a
    savepoint, as any other call.
    """
    from psycopg.pq import TransactionStatus

    if conn.info.transaction_status != TransactionStatus.IDLE:
        with conn.transaction():
            yield False
        return
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        try:
            yield True
        except BaseException:
            if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
                conn.execute("ROLLBACK")
            raise
    finally:
        if not conn.closed:
            conn.autocommit = autocommit


def _finish(conn: psycopg.Connection, ids: list[uuid.UUID], *, commit: bool, defer: bool = False) -> None:
    """Record access to ``ids`` (:func:`_record_access`, or appended to the access log while a vector index
    is built: ``defer``, see :mod:`memcli.access`) and COMMIT the search's own transaction, in one round
    trip."""
    from memcli import access

    if not ids and not commit:
        return
    with conn.pipeline():
        if ids and defer:
            access.record(conn, ids)
        elif ids:
            _record_access(conn, ids)
        if commit:
            conn.execute("COMMIT")


@dataclass
class _Context:
    """What a search reads before it runs, in one round trip (see :func:`_read_context`)."""

    model: Any  # embedding.model
    settings_dimension: Any  # embedding.dimension
    column_dimension: int | None
    vector_type: str  # the column's type: vector or halfvec
    floor: Any  # embedding.min_similarity
    generic_floor: Any  # search.min_similarity
    ef_search: Any  # search.ef_search
    iterative: bool  # pgvector >= 0.8: iterative index scans
    defer_access: bool = False  # a vector index is being built: log access (memcli.access)

    @property
    def expected_dimension(self) -> int | None:
        return self.column_dimension or (int(self.settings_dimension) if self.settings_dimension else None)


_CONTEXT_SQL = """
SELECT (SELECT value FROM memory_settings WHERE key = 'embedding.model'),
       (SELECT value FROM memory_settings WHERE key = 'embedding.dimension'),
       c.typmod, c.typname,
       (SELECT value FROM memory_settings WHERE key = %(floor)s),
       (SELECT value FROM memory_settings WHERE key = %(generic)s),
       (SELECT value FROM memory_settings WHERE key = %(ef)s),
       coalesce((SELECT string_to_array(v.extversion, '.')::int[] >= '{{0,8}}'
                 FROM pg_extension v WHERE v.extname = 'vector'), false),
       coalesce({deferred}, false)
FROM (SELECT 1) AS one LEFT JOIN (
    SELECT nullif(a.atttypmod, -1) AS typmod, t.typname
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
    WHERE a.attrelid = to_regclass('public.semantic_memory') AND a.attname = 'embedding_vector'
      AND NOT a.attisdropped
) AS c ON true
"""


def _read_context(conn: psycopg.Connection, *, begin: bool) -> _Context:
    """Check the schema, hold the table, read the model, floor and ef_search settings: one round trip.

    The statements (after BEGIN when ``begin``: see :func:`_search_transaction`) go together in a
    pipeline. The table is held (ACCESS SHARE) before the model and dimension are read: a re-embed's or a
    type conversion's swap then either committed before this check or waits for this search to end.
    """
    import psycopg as pg

    from memcli import access
    from memcli.embeddings.floors import GENERIC_SETTING, SETTING
    from memcli.readiness import MISSING_TABLES_SQL, REQUIRED_TABLES, check_missing
    from memcli.vector_index import EF_SEARCH_KEY

    try:
        with conn.pipeline():
            if begin:
                conn.execute("BEGIN")
            missing = conn.execute(MISSING_TABLES_SQL, (list(REQUIRED_TABLES),))
            conn.execute("LOCK TABLE semantic_memory IN ACCESS SHARE MODE")
            context = conn.execute(
                _compose(_CONTEXT_SQL, deferred=access.DEFERRED_SQL),
                {
                    "floor": SETTING,
                    "generic": GENERIC_SETTING,
                    "ef": EF_SEARCH_KEY,
                    **access.DEFERRED_PARAMS,
                },
            )
        row = missing.fetchone()
        check_missing(list(row[0]) if row else [])
        values = context.fetchone()
    except pg.errors.UndefinedTable as exc:  # a table the lock or the settings read needs
        raise NotReadyError(
            f"the memory schema is not migrated ({exc.diag.message_primary})", hint="run: memcli migrate"
        ) from None
    assert values is not None
    return _Context(
        model=values[0],
        settings_dimension=values[1],
        column_dimension=int(values[2]) if values[2] is not None else None,
        vector_type=values[3] or names.DEFAULT_VECTOR_TYPE,
        floor=values[4],
        generic_floor=values[5],
        ef_search=values[6],
        iterative=bool(values[7]),
        defer_access=bool(values[8]),
    )


def _stored_vector(conn: psycopg.Connection, memory_id: uuid.UUID) -> Any:
    # As a vector whatever the column's type: the adapter reads it as a numpy array.
    row = conn.execute(
        "SELECT embedding_vector::vector FROM semantic_memory WHERE id = %s", (memory_id,)
    ).fetchone()
    if row is None:
        raise ConfigError(
            f"no semantic memory with id {memory_id}", hint="take an id from memcli search --json"
        )
    if row[0] is None:
        raise NotReadyError(f"memory {memory_id} has no embedding yet", hint="run: memcli embed")
    return row[0]


_HIT_COLUMNS = "id, similarity, content_type, session_id, user_id, created_at, content_text"


def _compose(template: str, **parts: str) -> sql.Composed:
    """Fill ``{name}`` slots of a query template with fixed SQL fragments (never with values)."""
    from psycopg import sql

    return sql.SQL(template).format(**{name: sql.SQL(text) for name, text in parts.items()})  # type: ignore[arg-type]


def _vector_query(where: str, exact: bool = False, cast: str = names.DEFAULT_VECTOR_TYPE) -> sql.Composed:
    # The inner query is the one the HNSW index serves (ORDER BY distance LIMIT k); the outer ORDER BY
    # re-sorts relaxed_order output. The floor is applied by the caller, which counts what it holds back.
    return _compose(
        """
        WITH nearest AS MATERIALIZED (
            SELECT id, content_type, session_id, user_id, created_at, content_text,
                   embedding_vector <=> %(q)s::{cast} AS distance
            FROM semantic_memory
            WHERE embedding_vector IS NOT NULL{where}
            ORDER BY {order}
            LIMIT %(k)s
        )
        SELECT id, 1 - distance AS similarity, content_type, session_id, user_id, created_at, content_text
        FROM nearest
        ORDER BY distance, id
        """,
        where=where,
        order=_order(exact, cast),
        cast=cast,
    )


def _hybrid_query(where: str, exact: bool = False, cast: str = names.DEFAULT_VECTOR_TYPE) -> sql.Composed:
    # Both sides apply the filters, so every fused id passes them: the final join only fetches columns.
    return _compose(
        """
        WITH vec AS MATERIALIZED (
            SELECT id, embedding_vector <=> %(q)s::{cast} AS distance
            FROM semantic_memory
            WHERE embedding_vector IS NOT NULL{where}
            ORDER BY {order}
            LIMIT %(n)s
        ),
        vec_ranked AS (
            SELECT id, row_number() OVER (ORDER BY distance, id) AS r
            FROM vec WHERE 1 - distance >= %(min)s
        ),
        txt AS (
            SELECT id, row_number() OVER (ORDER BY ts_rank(content_tsv, query) DESC, id) AS r
            FROM semantic_memory, (
                -- Plain words match any of them (ranked by how many and how often): the vector side
                -- carries the meaning, this side adds keyword hits. Quotes, "-word" and "or" keep
                -- websearch_to_tsquery's own meaning.
                SELECT CASE WHEN w::text ~ '[!<|]' THEN w ELSE replace(w::text, ' & ', ' | ')::tsquery END
                FROM websearch_to_tsquery('english', %(text)s) AS w
            ) AS q(query)
            WHERE content_tsv @@ query{where}
            ORDER BY ts_rank(content_tsv, query) DESC, id
            LIMIT %(n)s
        ),
        fused AS (
            SELECT id, v.r AS vector_rank, t.r AS text_rank,
                   coalesce(1.0 / (%(rrf)s + v.r), 0) + coalesce(1.0 / (%(rrf)s + t.r), 0) AS score
            FROM vec_ranked v FULL JOIN txt t USING (id)
        )
        SELECT m.id,
               CASE WHEN m.embedding_vector IS NULL THEN NULL
                    ELSE 1 - (m.embedding_vector <=> %(q)s::{cast}) END AS similarity,
               m.content_type, m.session_id, m.user_id, m.created_at, m.content_text,
               f.score, f.vector_rank, f.text_rank
        FROM fused f JOIN semantic_memory m ON m.id = f.id
        ORDER BY f.score DESC, f.vector_rank NULLS LAST, m.id
        LIMIT %(k)s
        """,
        where=where,
        order=_order(exact, cast),
        cast=cast,
    )


def _record_access(conn: psycopg.Connection, ids: list[uuid.UUID]) -> None:
    """Count the returned rows as read, at a fraction of the query's cost.

    The update stays HOT (heap-only: no index entry written, the HNSW graph untouched) because no index
    covers the two columns and revision 0006 keeps room on each page. A transaction that only records
    access commits without waiting for the WAL flush (``synchronous_commit = off``, which would otherwise
    cost more than the search): a crash may lose the counts of the last fraction of a second of searches,
    never anything else, and never leaves them half-written. A caller's own transaction keeps its
    durability: the setting is only changed when the search owns the transaction (it is set with the
    index scan's settings, :func:`_tune_index_scan`). The update goes out with the COMMIT (:func:`_finish`).
    """
    conn.execute(
        "UPDATE semantic_memory SET access_count = access_count + 1, last_accessed_at = now()"
        " WHERE id = ANY(%s)",
        (ids,),
    )


def search(
    conn: psycopg.Connection,
    embedder: Embedder | None,
    query: str | None,
    *,
    session: str | None = None,
    user: str | uuid.UUID | None = None,
    content_type: str | None = None,
    top_k: int = 10,
    min_similarity: float | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    like_id: str | uuid.UUID | None = None,
    hybrid: bool = False,
    exact: bool = False,
    record_access: bool = True,
    ef_search: int | None = None,
) -> SearchResult:
    """The ``top_k`` memories nearest to ``query`` (or to memory ``like_id``) that pass the filters.

    Runs in one transaction (a savepoint if the caller has one open) and commits it when it owns it.
    ``ef_search`` overrides the HNSW candidate list length (default: the tuned ``search.ef_search``
    through :func:`memcli.vector_index.ef_search_for`).
    """
    from memcli.embeddings import _compare
    from memcli.embeddings.floors import floor_from
    from memcli.vector_index import base_ef_search, ef_search_for

    started = time.perf_counter()
    if not 1 <= top_k <= MAX_TOP_K:
        raise ConfigError(f"top-k must be between 1 and {MAX_TOP_K}, got {top_k}")
    if ef_search is not None and not 1 <= ef_search <= 1000:
        raise ConfigError(f"ef_search must be between 1 and 1000, got {ef_search}")
    check_content_type(content_type)
    if since is not None and until is not None and since >= until:
        raise ConfigError("--since must be before --until")
    user_id = parse_uuid(user, "user id")
    like = parse_uuid(like_id, "memory id")
    check_query_length(query)
    if like is None and not (query and query.strip()):
        raise ConfigError("nothing to search for", hint="give a query text or --like MEMORY_ID")
    if hybrid and not (query and query.strip()):
        raise ConfigError("--hybrid needs a query text for the full-text side")
    if like is not None and query and query.strip() and not hybrid:
        raise ConfigError("give a query text or --like MEMORY_ID, not both", hint="or add --hybrid")
    if like is None and embedder is None:
        raise ConfigError("a query text needs an embedder")

    use_vectors(conn)  # the first time on this connection: one catalog query
    with _search_transaction(conn) as owns_transaction:
        context = _read_context(conn, begin=owns_transaction)
        cast = _cast(context.vector_type)
        floor_source = "argument"
        if min_similarity is None:
            model = embedder.name if like is None and embedder is not None else None
            model = model or (context.model if isinstance(context.model, str) else None)
            min_similarity, floor_source = floor_from(context.floor, context.generic_floor, model)
        if not -1.0 <= min_similarity <= 1.0:
            raise ConfigError(f"min-similarity must be between -1 and 1, got {min_similarity}")

        timing: dict[str, float] = {}
        result = SearchResult(
            query=query,
            mode="hybrid" if hybrid else "exact" if exact else "indexed",
            exact=exact,
            embedder=None if like is not None else (embedder.name if embedder else None),
            like_id=like,
            top_k=top_k,
            min_similarity=min_similarity,
            floor_source=floor_source,
            filters={
                "session": session,
                "user": user_id,
                "content_type": content_type,
                "since": since,
                "until": until,
            },
        )

        if like is not None:
            vector = _stored_vector(conn, like)
        else:
            assert embedder is not None and query is not None
            # Compare before embedding: a mismatch must not cost a model load.
            _compare(context.model, context.expected_dimension, embedder)
            t0 = time.perf_counter()
            vector = embedder.embed([query])[0]
            timing["embed_ms"] = _ms(time.perf_counter() - t0)

        t0 = time.perf_counter()
        where, params = _filters(session, user_id, content_type, since, until, like)
        if ef_search is None:
            # The tuned base (memcli tune), widened for top-k and for filters that discard candidates.
            ef_search = ef_search_for(
                base_ef_search(context.ef_search), top_k, filtered=bool(set(params) - {"f_exclude"})
            )
        _tune_index_scan(
            conn,
            top_k,
            ef_search,
            iterative=context.iterative,
            async_commit=owns_transaction and record_access,
        )
        if hybrid:
            sql_text = _hybrid_query(where, exact, cast)
            args = {
                "q": vector,
                "min": min_similarity,
                "n": max(4 * top_k, 40),
                "k": top_k,
                "text": query,
                "rrf": RRF_K,
                **params,
            }
        else:
            sql_text = _vector_query(where, exact, cast)
            args = {"q": vector, "k": top_k, **params}
        rows = conn.execute(sql_text, args).fetchall()
        timing["query_ms"] = _ms(time.perf_counter() - t0)

        if not hybrid:
            below = [float(row[1]) for row in rows if float(row[1]) < min_similarity]
            rows = [row for row in rows if float(row[1]) >= min_similarity]
            result.hidden = len(below)
            result.best_hidden = round(max(below), 6) if below else None
        for rank, row in enumerate(rows, start=1):
            hit = SearchHit(
                rank=rank,
                id=row[0],
                similarity=round(float(row[1]), 6) if row[1] is not None else 0.0,
                content_type=row[2],
                session_id=row[3],
                user_id=row[4],
                created_at=row[5],
                content_text=row[6],
            )
            if hybrid:
                hit.score, hit.vector_rank, hit.text_rank = round(float(row[7]), 6), row[8], row[9]
            result.hits.append(hit)

        if not result.hits:
            empty, unembedded = conn.execute(
                """
                SELECT NOT EXISTS (SELECT 1 FROM semantic_memory),
                       EXISTS (SELECT 1 FROM semantic_memory WHERE embedding_vector IS NULL)
                """
            ).fetchone()  # type: ignore[misc]
            result.empty_database, result.unembedded = bool(empty), bool(unembedded)
        _finish(
            conn,
            [hit.id for hit in result.hits] if record_access else [],
            commit=owns_transaction,
            defer=context.defer_access,
        )

    timing["total_ms"] = _ms(time.perf_counter() - started)
    result.timing = timing
    return result


# -- business_context_sections ---------------------------------------------------------------------------

_SECTION_DOC = "to_tsvector('english', s.section_name || ' ' || coalesce(s.section_content::text, ''))"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_sections(
    conn: psycopg.Connection,
    query: str,
    business_id: str | uuid.UUID | None = None,
    section_type: str | None = None,
    limit: int = 10,
) -> SectionSearchResult:
    """Active business sections matching ``query``: full text first, a substring match when that finds none.

    Full text (English stemming over the section name and content) finds "vegetarian options" in a menu
    section that says "Vegetarian option"; the substring fallback finds what stemming cannot (a phone
    number fragment, a dish name in another language).
    """
    from memcli.readiness import require_migrated

    started = time.perf_counter()
    check_query_length(query)
    if not query or not query.strip():
        raise ConfigError("nothing to search for", hint="give a query text")
    if section_type is not None and section_type not in names.SECTION_TYPES:
        raise ConfigError(
            f"unknown section type {section_type!r}", hint=f"one of {', '.join(names.SECTION_TYPES)}"
        )
    if not 1 <= limit <= MAX_TOP_K:
        raise ConfigError(f"limit must be between 1 and {MAX_TOP_K}, got {limit}")
    business = parse_uuid(business_id, "business id")
    result = SectionSearchResult(query=query, business_id=business, section_type=section_type)

    with conn.transaction():
        require_migrated(conn)
        where = ["s.is_active"]
        params: dict[str, Any] = {"text": query, "limit": limit, "like": f"%{_escape_like(query.strip())}%"}
        if business is not None:
            where.append("s.business_id = %(business)s")
            params["business"] = business
        if section_type is not None:
            where.append("s.section_type = %(type)s")
            params["type"] = section_type
        filters = " AND ".join(where)
        # The migration refuses a businesses table without a name column, so b.name is always there.
        columns = "s.id, s.business_id, b.name, s.section_type, s.section_name, s.section_content"
        fulltext = _compose(
            """
            SELECT {columns}, ts_rank({doc}, query) AS score, 'fulltext'
            FROM business_context_sections s
            LEFT JOIN businesses b ON b.id = s.business_id,
            websearch_to_tsquery('english', %(text)s) AS query
            WHERE {filters} AND {doc} @@ query
            ORDER BY score DESC, s.section_order, s.section_name
            LIMIT %(limit)s
            """,
            columns=columns,
            doc=_SECTION_DOC,
            filters=filters,
        )
        substring = _compose(
            """
            SELECT {columns}, 0.0::real AS score, 'substring'
            FROM business_context_sections s
            LEFT JOIN businesses b ON b.id = s.business_id
            WHERE {filters}
              AND (s.section_name ILIKE %(like)s OR s.section_content::text ILIKE %(like)s)
            ORDER BY s.section_order, s.section_name
            LIMIT %(limit)s
            """,
            columns=columns,
            filters=filters,
        )
        rows = conn.execute(fulltext, params).fetchall()
        if not rows:
            rows = conn.execute(substring, params).fetchall()
    for rank, row in enumerate(rows, start=1):
        result.hits.append(
            SectionHit(
                rank=rank,
                id=row[0],
                business_id=row[1],
                business_name=row[2],
                section_type=row[3],
                section_name=row[4],
                section_content=row[5],
                score=round(float(row[6]), 6),
                matched_by=row[7],
            )
        )
    result.timing = {"total_ms": _ms(time.perf_counter() - started)}
    return result
