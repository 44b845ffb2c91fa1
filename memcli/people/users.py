"""The users memory knows about: how much is kept about each, and when they were last seen.

Only counts and times leave this module, never content, so listing or showing a user is not an audited
read-out (``users export`` is). A user is anyone with a ``user_id`` on a conversation or semantic memory,
or a profile row. ``show_user`` counts the user's rows in every table that can hold them through the same
scope as the export and the erasure (``people.scope``), so the three always agree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, NotFoundError
from memcli.people.erasure import count_rows, receipts
from memcli.people.scope import Subject, subject_sessions
from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

ORDERS = ("last-active", "memories")


@dataclass
class UserInfo:
    user_id: uuid.UUID
    memories: int  # conversation memories with this user_id
    semantic: int  # semantic memories with this user_id
    sessions: int  # sessions where the user has memories
    first_seen: datetime | None
    last_active: datetime | None  # newest creation or access of any of their memories
    profile: bool  # a user_context_profiles row exists
    # show_user only: rows per table in the user's whole scope (their sessions' anonymous rows included),
    # conversation memories per tier, their sessions (newest first, at most 20), erasure receipts naming them
    tables: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    session_ids: list[str] = field(default_factory=list)
    receipts: int = 0


_SUMMARY = f"""
WITH m AS (
    SELECT user_id, session_id, created_at, last_accessed_at, 1 AS conv
    FROM {names.CONVERSATION_MEMORY} WHERE user_id IS NOT NULL {{filter}}
    UNION ALL
    SELECT user_id, session_id, created_at, last_accessed_at, 0
    FROM {names.SEMANTIC_MEMORY} WHERE user_id IS NOT NULL {{filter}}
    UNION ALL
    SELECT user_id, NULL, created_at, NULL, NULL
    FROM {names.USER_CONTEXT_PROFILES} WHERE user_id IS NOT NULL {{filter}}
)
SELECT * FROM (
    SELECT user_id, count(conv) FILTER (WHERE conv = 1) AS memories,
           count(conv) FILTER (WHERE conv = 0) AS semantic, count(DISTINCT session_id) AS sessions,
           min(created_at) AS first_seen,
           max(greatest(created_at, last_accessed_at)) FILTER (WHERE conv IS NOT NULL) AS last_active,
           bool_or(conv IS NULL) AS profile
    FROM m GROUP BY user_id
) u
"""  # noqa: S608 - table names are constants


def list_users(
    conn: psycopg.Connection, *, order: str = "last-active", limit: int | None = 50
) -> list[UserInfo]:
    """Users, most recently active first (``order="memories"``: most memories first)."""
    if order not in ORDERS:
        raise ConfigError(f"unknown order {order!r}", hint=f"one of {', '.join(ORDERS)}")
    by = "last_active DESC NULLS LAST" if order == "last-active" else "memories + semantic DESC"
    query = _SUMMARY.format(filter="") + f" ORDER BY {by}, user_id"
    params: dict[str, Any] = {}
    if limit is not None:
        query += " LIMIT %(limit)s"
        params["limit"] = limit
    return [UserInfo(*row) for row in conn.execute(query, params).fetchall()]


def show_user(conn: psycopg.Connection, subject: Subject) -> UserInfo:
    """Everything countable about one user; NotFoundError (exit 1) when memory holds nothing about them."""
    user_id = subject.user_id
    if user_id is None:
        raise ConfigError("show_user needs a user, not a session")
    row = conn.execute(_SUMMARY.format(filter="AND user_id = %(u)s"), {"u": user_id}).fetchone()
    sessions = subject_sessions(conn, subject)
    tables = count_rows(conn, subject, sessions, audit_rows=False)
    erased = receipts(conn, subject=subject)
    if row is None and not any(tables.values()):
        if erased:
            raise NotFoundError(
                f"nothing about user {user_id}: erased {erased[0].started_at:%Y-%m-%d %H:%M}",
                hint=f"memcli users receipts --user {user_id}",
            )
        raise NotFoundError(
            f"no memories, profile or session rows about user {user_id}", hint="memcli users list"
        )
    info = UserInfo(*row) if row else UserInfo(user_id, 0, 0, 0, None, None, False)
    info.tables = tables
    info.receipts = len(erased)
    info.tiers = dict(
        conn.execute(
            f"SELECT memory_type, count(*) FROM {names.CONVERSATION_MEMORY} WHERE user_id = %s "  # noqa: S608
            "GROUP BY 1 ORDER BY 1",
            (user_id,),
        ).fetchall()
    )
    info.session_ids = [
        r[0]
        for r in conn.execute(
            f"""
            SELECT session_id FROM (
                SELECT session_id, max(greatest(created_at, last_accessed_at)) AS active
                FROM {names.CONVERSATION_MEMORY} WHERE user_id = %(u)s GROUP BY 1
                UNION ALL
                SELECT session_id, max(greatest(created_at, last_accessed_at))
                FROM {names.SEMANTIC_MEMORY} WHERE user_id = %(u)s GROUP BY 1
            ) s GROUP BY session_id ORDER BY max(active) DESC NULLS LAST, 1 LIMIT 20
            """,  # noqa: S608 - table names are constants
            {"u": user_id},
        ).fetchall()
    ]
    return info
