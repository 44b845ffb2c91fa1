"""Sessions: when each was last active, and its state — active, idle or closed.

A session's activity is the newest of its memories' creation and access times (conversation and semantic).
Its state follows from the timeouts in settings: ``sessions.idle_minutes`` (30, the source document's
``session_timeout_minutes``) makes it idle, ``sessions.close_hours`` (24, the other document's session
timeout) closes it. A session closed by ``memcli sessions close`` (or by ``maintain daily`` once past its
timeout) is recorded in ``memcli_session_closures``; new activity after the closure reopens it.

Closing a session consolidates it at once: every short-term memory of the session is merged through the
consolidation job's code (``consolidate_session_memories``), whatever its age.

When the application's own ``session_states`` table is there with a ``session_id`` column, what it says
wins over the guess: its ``updated_at`` counts as activity, and a state it records (a text ``state`` /
``status`` column, or that key in a JSON ``state`` column) of active / idle / closed is taken as is.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, NotFoundError
from memcli.jobs import consolidate as consolidate_mod
from memcli.jobs.common import DEFAULT_TIMEOUTS, Timeouts, own_transactions
from memcli.people import audit
from memcli.people.scope import SESSION_CLOSURES
from memcli.settings import get_settings

if TYPE_CHECKING:
    import psycopg

STATES = ("active", "idle", "closed")
APP_SESSIONS = "session_states"


@dataclass(frozen=True)
class SessionTimeouts:
    idle: timedelta
    close: timedelta


def timeouts_of(conn: psycopg.Connection) -> SessionTimeouts:
    settings = get_settings(conn)
    try:
        idle = timedelta(minutes=float(settings["sessions.idle_minutes"]))
        close = timedelta(hours=float(settings["sessions.close_hours"]))
    except (TypeError, ValueError):
        raise ConfigError(
            "sessions.idle_minutes and sessions.close_hours must be numbers",
            hint="UPDATE memory_settings SET value = '30' WHERE key = 'sessions.idle_minutes'",
        ) from None
    return SessionTimeouts(idle=idle, close=close)


@dataclass
class SessionInfo:
    session_id: str
    state: str
    last_active: datetime | None
    first_seen: datetime | None
    memories: int  # conversation memories
    semantic: int  # semantic memories
    users: list[uuid.UUID] = field(default_factory=list)  # the users with memories in it (first 5)
    closed_at: datetime | None = None
    close_reason: str | None = None
    state_source: str = "memory"  # "memory": from activity and timeouts; "session_states": the app's table


NO_APP_SESSIONS = "SELECT NULL::text, NULL::timestamptz, NULL::text WHERE false"


def _app_sessions(conn: psycopg.Connection) -> str:
    """A query of (session_id, app_active, app_state) from the application's session_states, or one with
    no rows when that table is missing or has no session_id column."""
    rows = conn.execute(
        """
        SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
        WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped
        """,
        (APP_SESSIONS,),
    ).fetchall()
    columns = dict(rows)
    if "session_id" not in columns:
        return NO_APP_SESSIONS
    activity = "max(s.updated_at)" if "updated_at" in columns else "NULL::timestamptz"
    state = "NULL::text"
    for name in ("state", "status"):
        kind = columns.get(name)
        if kind is None:
            continue
        if kind in ("jsonb", "json"):
            state = f"max(coalesce(s.{name}->>'state', s.{name}->>'status'))"
        elif kind.startswith(("text", "character")):
            state = f"max(s.{name})"
        break
    # column names are constants chosen above; only their presence comes from the catalog
    return f"SELECT s.session_id::text, {activity}, {state} FROM {APP_SESSIONS} s GROUP BY 1"  # noqa: S608


def _query(conn: psycopg.Connection, where: str) -> str:
    app_cte = _app_sessions(conn)
    return f"""
    WITH m AS (
        SELECT session_id, user_id, created_at, last_accessed_at, 1 AS conv FROM conversation_memory
        UNION ALL
        SELECT session_id, user_id, created_at, last_accessed_at, 0 FROM semantic_memory
    ), activity AS (
        SELECT session_id, min(created_at) AS first_seen,
               max(greatest(created_at, last_accessed_at)) AS mem_active,
               sum(conv)::bigint AS memories, (count(*) - sum(conv))::bigint AS semantic,
               (array_agg(DISTINCT user_id) FILTER (WHERE user_id IS NOT NULL))[1:5] AS users
        FROM m GROUP BY session_id
    ), app(session_id, app_active, app_state) AS ({app_cte}
    ), joined AS (
        SELECT a.session_id, a.first_seen, greatest(a.mem_active, app.app_active) AS last_active,
               a.memories, a.semantic, coalesce(a.users, '{{}}') AS users, c.closed_at, c.reason,
               CASE WHEN lower(app.app_state) IN ('active', 'idle', 'closed') THEN lower(app.app_state) END
                   AS app_state
        FROM activity a
        LEFT JOIN app ON app.session_id = a.session_id
        LEFT JOIN {SESSION_CLOSURES} c ON c.session_id = a.session_id
    ), stated AS (
        SELECT *, coalesce(app_state, CASE
                WHEN closed_at IS NOT NULL AND closed_at >= last_active THEN 'closed'
                WHEN last_active < now() - %(close)s::interval THEN 'closed'
                WHEN last_active < now() - %(idle)s::interval THEN 'idle'
                ELSE 'active' END) AS state,
               CASE WHEN app_state IS NOT NULL THEN 'session_states' ELSE 'memory' END AS source
        FROM joined
    )
    SELECT session_id, state, last_active, first_seen, memories, semantic, users,
           CASE WHEN closed_at >= last_active THEN closed_at END,
           CASE WHEN closed_at >= last_active THEN reason END, source
    FROM stated {where}
    """  # noqa: S608 - built from constants and introspected column names


def list_sessions(
    conn: psycopg.Connection,
    *,
    state: str | None = None,
    user: uuid.UUID | None = None,
    limit: int | None = 50,
) -> list[SessionInfo]:
    """Sessions, most recently active first (``state``/``user`` filter them)."""
    if state is not None and state not in STATES:
        raise ConfigError(f"unknown session state {state!r}", hint=f"one of {', '.join(STATES)}")
    t = timeouts_of(conn)
    clauses = []
    params: dict[str, Any] = {"idle": t.idle, "close": t.close}
    if state is not None:
        clauses.append("state = %(state)s")
        params["state"] = state
    if user is not None:
        clauses.append("%(user)s = ANY(users)")
        params["user"] = user
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    query = _query(conn, where) + " ORDER BY last_active DESC NULLS LAST, session_id"
    if limit is not None:
        query += " LIMIT %(limit)s"
        params["limit"] = limit
    return [SessionInfo(*row) for row in conn.execute(query, params).fetchall()]


def show_session(conn: psycopg.Connection, session: str) -> SessionInfo:
    """One session; NotFoundError (exit 1) when it has no memories."""
    t = timeouts_of(conn)
    rows = conn.execute(
        _query(conn, "WHERE session_id = %(session)s"), {"idle": t.idle, "close": t.close, "session": session}
    ).fetchall()
    if not rows:
        raise NotFoundError(f"no session {session!r} (no memories in it)", hint="memcli sessions list")
    return SessionInfo(*rows[0])


@dataclass
class CloseResult:
    session_id: str
    dry_run: bool
    was: str  # the state before
    merged: int = 0  # short-term memories consolidated
    new_memory_id: str | None = None
    skipped: str | None = None  # why the consolidation was left for later (the application held the rows)


def close_session(
    conn: psycopg.Connection,
    session: str,
    *,
    reason: str = "manual",
    dry_run: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> CloseResult:
    """Consolidate the session's short-term memories at once and record it closed."""
    with own_transactions(conn):
        info = show_session(conn, session)
        result = CloseResult(session_id=session, dry_run=dry_run, was=info.state)
        merged = consolidate_mod.merge_sessions(
            conn,
            consolidate_mod.ConsolidateOptions(
                dry_run=dry_run, session=session, older_than=timedelta(0), timeouts=timeouts
            ),
        )
        result.merged = merged.memories_merged
        result.new_memory_id = merged.new_memory_ids[0] if merged.new_memory_ids else None
        if merged.skipped_sessions:
            result.skipped = merged.skipped_sessions[0]["reason"]
        if dry_run:
            return result
        with conn.transaction():
            conn.execute(
                f"""
                INSERT INTO {SESSION_CLOSURES} (session_id, closed_at, reason) VALUES (%s, now(), %s)
                ON CONFLICT (session_id)
                    DO UPDATE SET closed_at = EXCLUDED.closed_at, reason = EXCLUDED.reason
                """,  # noqa: S608 - a constant table name
                (session, reason),
            )
            for user_id in info.users or [None]:
                audit.record(
                    conn,
                    "close",
                    target="session",
                    user_id=user_id,
                    counts={"conversation_memory": result.merged},
                )
    return result


@dataclass
class CloseTimedOutResult:
    dry_run: bool
    close_after_hours: float = 0.0
    sessions: int = 0  # closed (dry run: would be)
    merged: int = 0
    skipped: list[str] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.sessions


def close_timed_out(
    conn: psycopg.Connection, *, dry_run: bool = False, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> CloseTimedOutResult:
    """Close every session past ``sessions.close_hours`` that is not recorded closed (``maintain daily``)."""
    started = time.perf_counter()
    with own_transactions(conn):
        t = timeouts_of(conn)
        result = CloseTimedOutResult(dry_run=dry_run, close_after_hours=t.close.total_seconds() / 3600)
        due = [
            row[0]
            for row in conn.execute(
                _query(
                    conn,
                    "WHERE source = 'memory' AND state = 'closed' "
                    "AND (closed_at IS NULL OR closed_at < last_active)",
                ),
                {"idle": t.idle, "close": t.close},
            ).fetchall()
        ]
        for session in due:
            closed = close_session(conn, session, reason="timeout", dry_run=dry_run, timeouts=timeouts)
            result.sessions += 1
            result.merged += closed.merged
            if closed.skipped:
                result.skipped.append(session)
    result.duration_seconds = time.perf_counter() - started
    return result
