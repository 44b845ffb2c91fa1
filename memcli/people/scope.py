"""Which tables hold a person's data, and how each row links to a user or a session.

One list, read by the export, the erasure and its proof, so the three can never disagree about where a
user's data lives. A *subject* is a user (a UUID) or a session (a session id):

- a **user**'s rows are the rows whose ``user_id`` is theirs, plus the rows with no ``user_id`` in the
  user's sessions (anonymous turns of their own conversations); their sessions are the sessions where
  they have memories, and the session named by their id (the row-level security policies treat
  ``session_id = user id`` as the user's own);
- a **session**'s rows are all rows of that session, whoever they are about.

Rows keyed by session only (relevance scores, consolidation lineage, closures) go with the session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from memcli.errors import ConfigError
from memcli.schema import names
from memcli.schema.names import AUDIT_LOG, ERASURE_RECEIPTS, ERASURE_SCOPE, PEOPLE_TABLES, SESSION_CLOSURES

if TYPE_CHECKING:
    import psycopg

__all__ = ["AUDIT_LOG", "ERASURE_RECEIPTS", "ERASURE_SCOPE", "PEOPLE_TABLES", "SESSION_CLOSURES"]

Link = Literal["memories", "user", "session"]


@dataclass(frozen=True)
class DataTable:
    """A table that can hold a person's data.

    ``link``: ``memories`` — a ``user_id`` and a ``session_id`` column (a user's rows, or their sessions'
    rows without a user); ``user`` — a ``user_id`` column only; ``session`` — a ``session_id`` column only.
    """

    name: str
    link: Link
    key: str = "id"  # a column that orders the rows for batches and export


# In the order they are exported; erasure goes by ERASE_ORDER.
DATA_TABLES: tuple[DataTable, ...] = (
    DataTable(names.USER_CONTEXT_PROFILES, "user"),
    DataTable(names.CONVERSATION_MEMORY, "memories"),
    DataTable(names.SEMANTIC_MEMORY, "memories"),
    DataTable(names.CONTEXT_RELEVANCE, "session"),
    DataTable(names.CONSOLIDATION_LOG, "session"),
    DataTable(SESSION_CLOSURES, "session", key="session_id"),
)
# Session-keyed rows first, the memories after them: the scope is recorded, so any order resumes, but a
# half-done run then leaves memories (which the application can still use) rather than orphans.
ERASE_ORDER: tuple[str, ...] = (
    names.CONTEXT_RELEVANCE,
    names.CONSOLIDATION_LOG,
    SESSION_CLOSURES,
    names.SEMANTIC_MEMORY,
    names.CONVERSATION_MEMORY,
    names.USER_CONTEXT_PROFILES,
)
TABLES_BY_NAME = {t.name: t for t in DATA_TABLES}
# Columns never written out by an export unless asked for: derived from the text, large.
VECTOR_COLUMNS = {names.SEMANTIC_MEMORY: ("embedding_vector", "content_tsv")}


@dataclass(frozen=True)
class Subject:
    kind: Literal["user", "session"]
    value: str  # the user's UUID as text, or the session id

    @property
    def user_id(self) -> uuid.UUID | None:
        return uuid.UUID(self.value) if self.kind == "user" else None

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


def user_subject(value: str | uuid.UUID) -> Subject:
    """A user by id; ConfigError (exit 2) for something that is not a UUID."""
    try:
        return Subject("user", str(uuid.UUID(str(value))))
    except ValueError:
        raise ConfigError(
            f"user id {str(value)!r} is not a UUID", hint="e.g. 3f2b8c1e-4d5a-4b6c-9e7f-0a1b2c3d4e5f"
        ) from None


def session_subject(value: str) -> Subject:
    if not value or not value.strip():
        raise ConfigError("a session id must not be empty")
    return Subject("session", value)


def subject_sessions(conn: psycopg.Connection, subject: Subject) -> list[str]:
    """The sessions the subject's rows live in (for a session: itself)."""
    if subject.kind == "session":
        return [subject.value]
    rows = conn.execute(
        """
        SELECT session_id FROM conversation_memory WHERE user_id = %(u)s
        UNION SELECT session_id FROM semantic_memory WHERE user_id = %(u)s
        UNION SELECT %(t)s
        ORDER BY 1
        """,
        {"u": subject.user_id, "t": subject.value},
    ).fetchall()
    return [row[0] for row in rows]


def row_filters(table: DataTable, subject: Subject) -> list[str]:
    """WHERE clauses (parameters ``%(u)s`` user id, ``%(s)s`` array of sessions) that together select the
    subject's rows in ``table``, disjoint, each served by one index; none when the table cannot hold them
    (a profile is not a session's). A user's memories are two parts: theirs by ``user_id``, and the rows
    without a user in their sessions (one OR of both would be planned as a scan of the whole table)."""
    if table.link == "user":
        return ["user_id = %(u)s"] if subject.kind == "user" else []
    if table.link == "session" or subject.kind == "session":
        return ["session_id = ANY(%(s)s)"]
    return ["user_id = %(u)s", "session_id = ANY(%(s)s) AND user_id IS NULL"]


def filter_params(subject: Subject, sessions: list[str]) -> dict[str, object]:
    return {"u": subject.user_id, "s": sessions}
