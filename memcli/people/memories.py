"""Single memories: list them with filters, show everything about one, change importance or tier, delete,
and store a conversation memory the way the application's API does.

Both kinds are covered: *conversation* memories (``conversation_memory``: a context key and JSON value in a
tier) and *semantic* memories (``semantic_memory``: a text with its embedding, of a content type). Updates and
deletes run with ``memcli.maintenance = 'on'`` (an operator's change is not a read of the memory) under the
jobs' timeouts, and each leaves an audit row per user in the same transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from memcli.errors import ConfigError, NotFoundError
from memcli.jobs.common import DEFAULT_TIMEOUTS, TIERS, Timeouts, check_batch_size, in_batch, own_transactions
from memcli.people import audit
from memcli.schema.names import CONTENT_TYPES, DELETE_BATCH_SIZE, EXPIRING_TIERS

if TYPE_CHECKING:
    import psycopg

Kind = Literal["conversation", "semantic"]
KINDS: tuple[str, ...] = ("conversation", "semantic")
TABLE_OF: dict[str, str] = {"conversation": "conversation_memory", "semantic": "semantic_memory"}
STORABLE_TIERS = EXPIRING_TIERS  # a conversation memory is stored in a tier that expires
PREVIEW = 200  # characters of a memory's content in a listing (show has all of it)


@dataclass(frozen=True)
class MemoryFilter:
    """Which memories: every field that is set must match. ``expired``: conversation memories whose
    ``expires_at`` has passed (True) or not (False); semantic memories never expire by date."""

    kind: Kind | None = None
    session: str | None = None
    user: uuid.UUID | None = None
    tier: str | None = None  # conversation memories only
    content_type: str | None = None  # semantic memories only
    expired: bool | None = None
    older_than: timedelta | None = None
    newer_than: timedelta | None = None

    def kinds(self) -> tuple[str, ...]:
        if self.kind is not None:
            return (self.kind,)
        if self.tier is not None or self.expired:
            return ("conversation",)  # a tier or an expiry only conversation memories have
        if self.content_type is not None:
            return ("semantic",)
        return KINDS


def check_filter(f: MemoryFilter) -> MemoryFilter:
    if f.kind is not None and f.kind not in KINDS:
        raise ConfigError(f"unknown memory kind {f.kind!r}", hint=f"one of {', '.join(KINDS)}")
    if f.tier is not None and f.tier not in TIERS:
        raise ConfigError(f"unknown tier {f.tier!r}", hint=f"one of {', '.join(TIERS)}")
    if f.content_type is not None and f.content_type not in CONTENT_TYPES:
        raise ConfigError(
            f"unknown content type {f.content_type!r}", hint=f"one of {', '.join(CONTENT_TYPES)}"
        )
    if f.kind == "semantic" and f.tier is not None:
        raise ConfigError("semantic memories have no tier", hint="use --type for their content type")
    if f.kind == "conversation" and f.content_type is not None:
        raise ConfigError("conversation memories have no content type", hint="use --tier")
    return f


@dataclass
class MemoryRow:
    kind: str
    id: uuid.UUID
    session_id: str
    user_id: uuid.UUID | None
    tier: str | None  # conversation: memory_type
    content_type: str | None  # semantic
    key: str | None  # conversation: context_key
    preview: str  # the value (JSON text) or the text, shortened
    score: float | None  # importance (conversation) or relevance (semantic)
    access_count: int
    last_accessed_at: datetime | None
    created_at: datetime | None
    expires_at: datetime | None


# One SELECT per kind with the same columns, so a listing of both is a UNION ALL ordered once.
_SELECT = {
    "conversation": """
        SELECT 'conversation', id, session_id, user_id, memory_type, NULL::text, context_key,
               left(context_value::text, %(preview)s), importance_score, coalesce(access_count, 0),
               last_accessed_at, created_at, expires_at
        FROM conversation_memory""",
    "semantic": """
        SELECT 'semantic', id, session_id, user_id, NULL::text, content_type, NULL::text,
               left(content_text, %(preview)s), relevance_score, coalesce(access_count, 0),
               last_accessed_at, created_at, NULL::timestamptz
        FROM semantic_memory""",
}


def _where(kind: str, f: MemoryFilter) -> tuple[str, dict[str, Any]]:
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if f.session is not None:
        clauses.append("session_id = %(session)s")
        params["session"] = f.session
    if f.user is not None:
        clauses.append("user_id = %(user)s")
        params["user"] = f.user
    if kind == "conversation":
        if f.tier is not None:
            clauses.append("memory_type = %(tier)s")
            params["tier"] = f.tier
        if f.expired is True:
            clauses.append("expires_at < now()")
        elif f.expired is False:
            clauses.append("(expires_at IS NULL OR expires_at >= now())")
    elif f.content_type is not None:
        clauses.append("content_type = %(content_type)s")
        params["content_type"] = f.content_type
    if f.older_than is not None:
        clauses.append("created_at < now() - %(older_than)s::interval")
        params["older_than"] = f.older_than
    if f.newer_than is not None:
        clauses.append("created_at >= now() - %(newer_than)s::interval")
        params["newer_than"] = f.newer_than
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_memories(
    conn: psycopg.Connection, f: MemoryFilter, *, limit: int | None = 100, preview: int = PREVIEW
) -> Iterator[MemoryRow]:
    """The matching memories, newest first (``limit`` None: all, streamed through a server-side cursor)."""
    check_filter(f)
    parts, params = [], {"preview": preview}
    for kind in f.kinds():
        where, extra = _where(kind, f)
        parts.append(_SELECT[kind] + where)
        params.update(extra)
    query = " UNION ALL ".join(f"({p})" for p in parts) + " ORDER BY 12 DESC NULLS LAST, 2"
    if limit is not None:
        query += " LIMIT %(limit)s"
        params["limit"] = limit
    if limit is not None and limit <= 10_000:
        rows: Any = conn.execute(query, params).fetchall()
        yield from (MemoryRow(*row) for row in rows)
        return
    with conn.transaction(), conn.cursor(name=f"memcli_memories_{uuid.uuid4().hex[:8]}") as cursor:
        cursor.itersize = 2000
        cursor.execute(query, params)
        for row in cursor:
            yield MemoryRow(*row)


def count_memories(conn: psycopg.Connection, f: MemoryFilter) -> dict[str, int]:
    check_filter(f)
    counts: dict[str, int] = {}
    for kind in f.kinds():
        where, params = _where(kind, f)
        row = conn.execute(f"SELECT count(*) FROM {TABLE_OF[kind]}{where}", params).fetchone()  # noqa: S608
        counts[TABLE_OF[kind]] = int(row[0]) if row else 0
    return counts


# ---------------------------------------------------------------------------------------------------- show


@dataclass
class MemoryDetail:
    kind: str
    table: str
    row: dict[str, Any]  # every column but the vector
    embedding_dimension: int | None  # semantic: the stored vector's dimension (None: not embedded yet)
    lineage: list[dict[str, Any]] = field(default_factory=list)  # consolidation log rows naming it
    relevance: list[dict[str, Any]] = field(default_factory=list)  # context_relevance rows of its key
    access: dict[str, Any] = field(default_factory=dict)  # count, last access, age


def parse_memory_id(value: str | uuid.UUID) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ConfigError(f"memory id {str(value)!r} is not a UUID") from None


def _find(conn: psycopg.Connection, memory_id: uuid.UUID) -> tuple[str, dict[str, Any]]:
    for kind, table in TABLE_OF.items():
        cursor = conn.execute(f"SELECT * FROM {table} WHERE id = %s", (memory_id,))  # noqa: S608
        row = cursor.fetchone()
        if row is not None:
            names = [c.name for c in cursor.description or ()]
            return kind, dict(zip(names, row, strict=True))
    raise NotFoundError(
        f"no memory {memory_id} (or this role may not see it)", hint="memcli memories list finds ids"
    )


def show_memory(conn: psycopg.Connection, memory_id: str | uuid.UUID) -> MemoryDetail:
    """Everything about one memory: its row, consolidation lineage, relevance rows and access history.

    NotFoundError (exit 1) when no memory has the id.
    """
    mid = parse_memory_id(memory_id)
    kind, row = _find(conn, mid)
    dimension = None
    if kind == "semantic":
        vector = row.pop("embedding_vector", None)
        row.pop("content_tsv", None)
        dimension = len(vector) if vector is not None and hasattr(vector, "__len__") else None
        if vector is not None and dimension is None:
            dimension = int(
                conn.execute(
                    "SELECT vector_dims(embedding_vector) FROM semantic_memory WHERE id = %s", (mid,)
                ).fetchone()[0]
            )  # type: ignore[index]
    lineage_cursor = conn.execute(
        """
        SELECT id, consolidation_type, old_memory_ids, new_memory_id, consolidation_reason, created_at,
               CASE WHEN new_memory_id = %(id)s THEN 'created by' ELSE 'source of' END AS relation
        FROM memory_consolidation_log
        WHERE session_id = %(session)s AND (new_memory_id = %(id)s OR %(id)s = ANY(old_memory_ids))
        ORDER BY created_at
        """,
        {"id": mid, "session": row["session_id"]},
    )
    names = [c.name for c in lineage_cursor.description or ()]
    lineage = [dict(zip(names, r, strict=True)) for r in lineage_cursor.fetchall()]
    key = row.get("context_key") if kind == "conversation" else str(mid)
    relevance_cursor = conn.execute(
        """
        SELECT id, context_type, context_key, relevance_score, decay_factor, last_calculated, created_at
        FROM context_relevance WHERE session_id = %s AND context_key = %s ORDER BY context_type
        """,
        (row["session_id"], key),
    )
    names = [c.name for c in relevance_cursor.description or ()]
    relevance = [dict(zip(names, r, strict=True)) for r in relevance_cursor.fetchall()]
    access = {
        "access_count": int(row.get("access_count") or 0),
        "last_accessed_at": row.get("last_accessed_at"),
        "created_at": row.get("created_at"),
        "expires_at": row.get("expires_at"),
    }
    return MemoryDetail(
        kind=kind,
        table=TABLE_OF[kind],
        row=row,
        embedding_dimension=dimension,
        lineage=lineage,
        relevance=relevance,
        access=access,
    )


# -------------------------------------------------------------------------------------------------- update


@dataclass
class UpdateResult:
    id: uuid.UUID
    kind: str
    before: dict[str, Any]
    after: dict[str, Any]


def update_memory(
    conn: psycopg.Connection,
    memory_id: str | uuid.UUID,
    *,
    importance: float | None = None,
    tier: str | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> UpdateResult:
    """Change a memory's importance (semantic: its relevance score) and/or tier (conversation only).

    A new tier also gets that tier's expiry (``memory_retention``) counted from now. Audited as ``update``.
    """
    mid = parse_memory_id(memory_id)
    if importance is None and tier is None:
        raise ConfigError("nothing to change", hint="pass --importance and/or --tier")
    if importance is not None and not 0.0 <= importance <= 1.0:
        raise ConfigError(f"importance must be between 0 and 1, not {importance}")
    if tier is not None and tier not in STORABLE_TIERS:
        raise ConfigError(f"unknown tier {tier!r}", hint=f"one of {', '.join(STORABLE_TIERS)}")
    with own_transactions(conn):

        def work() -> UpdateResult:
            kind, row = _find(conn, mid)
            if kind == "semantic":
                if tier is not None:
                    raise ConfigError("semantic memories have no tier", hint="change --importance only")
                before = {"importance": row["relevance_score"]}
                after_row = conn.execute(
                    "UPDATE semantic_memory SET relevance_score = %s WHERE id = %s RETURNING relevance_score",
                    (importance, mid),
                ).fetchone()
                after = {"importance": after_row[0] if after_row else None}
            else:
                before = {
                    "importance": row["importance_score"],
                    "tier": row["memory_type"],
                    "expires_at": row["expires_at"],
                }
                after_row = conn.execute(
                    """
                    UPDATE conversation_memory
                    SET importance_score = coalesce(%(importance)s, importance_score),
                        memory_type = coalesce(%(tier)s, memory_type),
                        expires_at = CASE
                            WHEN %(tier)s::text IS NULL OR %(tier)s = memory_type THEN expires_at
                            ELSE now() + memory_retention(%(tier)s) END
                    WHERE id = %(id)s
                    RETURNING importance_score, memory_type, expires_at
                    """,
                    {"importance": importance, "tier": tier, "id": mid},
                ).fetchone()
                assert after_row is not None
                after = {"importance": after_row[0], "tier": after_row[1], "expires_at": after_row[2]}
            audit.record(
                conn, "update", target="memory", user_id=row.get("user_id"), counts={TABLE_OF[kind]: 1}
            )
            return UpdateResult(id=mid, kind=kind, before=before, after=after)

        return in_batch(conn, timeouts, work)


# -------------------------------------------------------------------------------------------------- delete


@dataclass
class DeleteResult:
    dry_run: bool
    deleted: dict[str, int] = field(default_factory=dict)  # dry run: would delete
    users: int = 0  # distinct users whose memories went (audit rows written per user and batch)
    batches: int = 0
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


_DELETE_BATCH = """
WITH gone AS (
    DELETE FROM {table} WHERE id = ANY(ARRAY(
        SELECT id FROM {table}{where} ORDER BY id LIMIT %(limit)s FOR UPDATE
    ))
    RETURNING user_id
)
SELECT user_id, count(*) FROM gone GROUP BY user_id
"""


def delete_memories(
    conn: psycopg.Connection,
    *,
    ids: list[str | uuid.UUID] | None = None,
    where: MemoryFilter | None = None,
    dry_run: bool = False,
    batch_size: int = DELETE_BATCH_SIZE,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> DeleteResult:
    """Delete memories by id, or all that match a filter, in bounded batches (each its own transaction
    with the jobs' timeouts and an audit row per user). Unknown ids are simply not there: nothing fails.
    """
    from psycopg import sql

    if (ids is None) == (where is None):
        raise ConfigError("delete needs memory ids or a filter, not both", hint="memcli memories delete ID")
    if where is not None and where == MemoryFilter(kind=where.kind):
        raise ConfigError(
            "refusing to delete every memory: give at least one filter",
            hint="e.g. --session S, --user U, --tier short_term, --expired, --older-than 90d",
        )
    size = check_batch_size(batch_size)
    id_list = [parse_memory_id(i) for i in ids] if ids is not None else None
    started = time.perf_counter()
    result = DeleteResult(dry_run=dry_run)
    users: set[uuid.UUID | None] = set()
    with own_transactions(conn):
        kinds = where.kinds() if where is not None else KINDS
        for kind in kinds:
            table = TABLE_OF[kind]
            if id_list is not None:
                clause, params = " WHERE id = ANY(%(ids)s)", {"ids": id_list}
            else:
                assert where is not None
                clause, params = _where(kind, check_filter(where))
            if dry_run:
                row = conn.execute(f"SELECT count(*) FROM {table}{clause}", params).fetchone()  # noqa: S608
                result.deleted[table] = int(row[0]) if row else 0
                continue
            result.deleted[table] = 0
            statement = sql.SQL(_DELETE_BATCH).format(table=sql.Identifier(table), where=sql.SQL(clause))

            def batch(statement: Any = statement, params: dict[str, Any] = params, table: str = table) -> int:
                per_user = conn.execute(statement, {**params, "limit": size}).fetchall()
                for user_id, n in per_user:
                    audit.record(conn, "delete", target="memory", user_id=user_id, counts={table: int(n)})
                    users.add(user_id)
                return sum(int(n) for _, n in per_user)

            def book(n: int, table: str = table) -> None:
                result.deleted[table] += n
                result.batches += 1 if n else 0

            while in_batch(conn, timeouts, batch, book) == size:
                pass
    result.users = len({u for u in users if u is not None})
    result.duration_seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------------- store


@dataclass
class StoredMemory:
    id: uuid.UUID
    created: bool  # False: the session's memory of that key was replaced
    session_id: str
    user_id: uuid.UUID | None
    tier: str
    key: str
    expires_at: datetime | None


# Not INSERT ... ON CONFLICT (session_id, context_key): on the partitioned layout that key has no unique
# index (a trigger keeps it unique), so there is no arbiter. Both layouts instead take the key's transaction
# lock, the one the partitioned layout's unique-key trigger takes, then update the row or insert it.
_REPLACE_CONVERSATION = """
UPDATE conversation_memory
   SET context_value = %(value)s,
       importance_score = %(importance)s,
       memory_type = %(tier)s,
       expires_at = now() + memory_retention(%(tier)s)
 WHERE session_id = %(session)s AND context_key = %(key)s
RETURNING id, user_id, expires_at
"""
_INSERT_CONVERSATION = """
INSERT INTO conversation_memory
    (session_id, user_id, memory_type, context_key, context_value, importance_score)
VALUES (%(session)s, %(user)s, %(tier)s, %(key)s, %(value)s, %(importance)s)
RETURNING id, expires_at
"""


def _upsert_conversation(conn: psycopg.Connection, params: dict[str, Any]) -> tuple[Any, bool, Any] | None:
    """(id, created, expires_at) of the session's memory of that key, replaced or inserted; None when the
    key belongs to another user's row (left untouched)."""
    from psycopg import errors

    for attempt in (1, 2):
        try:
            with conn.transaction():  # a savepoint: a lost race is retried as a replace
                conn.execute("SELECT memcli_lock_memory_key(%(session)s, %(key)s)", params)
                owner = conn.execute(
                    "SELECT user_id FROM conversation_memory "
                    "WHERE session_id = %(session)s AND context_key = %(key)s FOR UPDATE",
                    params,
                ).fetchone()
                if owner is not None:
                    if owner[0] != params["user"]:
                        return None
                    replaced = conn.execute(_REPLACE_CONVERSATION, params).fetchone()
                    assert replaced is not None  # locked FOR UPDATE above
                    return replaced[0], False, replaced[2]
                inserted = conn.execute(_INSERT_CONVERSATION, params).fetchone()
                assert inserted is not None
                return inserted[0], True, inserted[1]
        except errors.UniqueViolation:
            # a writer that does not take the key's lock (an application's own INSERT on the plain
            # layout) stored the key between the look-up and the insert: replace its row instead
            if attempt == 2:
                raise
    return None  # pragma: no cover


def store_conversation(
    conn: psycopg.Connection,
    session: str,
    key: str,
    value: Any,
    *,
    user: uuid.UUID | None = None,
    tier: str = "short_term",
    importance: float = 0.5,
) -> StoredMemory:
    """Store a conversation memory (``store_conversation_memory`` of the application's API): one value per
    session and context key, replaced when the key is stored again — but never another user's row.

    The tier's retention sets the expiry (the insert trigger). Audited as ``remember``.
    """
    from psycopg.types.json import Jsonb

    if not session or not session.strip():
        raise ConfigError("a memory needs a session id", hint="pass --session")
    if not key or not key.strip():
        raise ConfigError("a conversation memory needs a context key", hint="pass --key")
    if tier not in STORABLE_TIERS:
        raise ConfigError(f"unknown tier {tier!r}", hint=f"one of {', '.join(STORABLE_TIERS)}")
    if not 0.0 <= importance <= 1.0:
        raise ConfigError(f"importance must be between 0 and 1, not {importance}")
    params = {
        "session": session,
        "user": user,
        "tier": tier,
        "key": key,
        "value": Jsonb(value),
        "importance": importance,
    }
    with conn.transaction():
        row = _upsert_conversation(conn, params)
        if row is None:
            raise ConfigError(
                f"session {session!r} already holds key {key!r} for another user; not overwritten",
                hint="use another --key, or the --user the memory belongs to",
            )
        audit.record(conn, "remember", target="memory", user_id=user, counts={"conversation_memory": 1})
    return StoredMemory(
        id=row[0],
        created=row[1],
        session_id=session,
        user_id=user,
        tier=tier,
        key=key,
        expires_at=row[2],
    )
