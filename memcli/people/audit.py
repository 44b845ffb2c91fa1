"""The audit trail: every memcli operation that reads out, changes or erases a user's data leaves a row.

A row says what was done (``operation``), to what (``target``: a user, a session, single memories), by whom
(the database role, and the operating-system user running memcli), when, and how many rows per table —
never the content, and no session id. Call :func:`record` inside the transaction that does the work, so a
change is never committed without its audit row (and an audit row never claims a change rolled back).

When a user is forgotten their audit rows stay (the trail of what was done is kept) but lose the user id:
:func:`pseudonymise` replaces it with the erasure's salted digest, which someone who knows the id can
recompute to find them, and nobody else can reverse.
"""

from __future__ import annotations

import getpass
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from memcli.errors import ConfigError, NotReadyError
from memcli.people.scope import AUDIT_LOG

if TYPE_CHECKING:
    import psycopg

# What is audited. ``import`` is written by memcli's importer; the others by memcli.people.
OPERATIONS = ("export", "forget", "delete", "update", "import", "remember", "close")
TARGETS = ("user", "session", "memory")


@dataclass
class AuditEntry:
    id: uuid.UUID
    occurred_at: datetime
    operation: str
    target: str
    db_role: str
    os_user: str | None
    user_id: uuid.UUID | None
    subject_digest: str | None
    counts: dict[str, int] = field(default_factory=dict)


def os_user() -> str | None:
    """Who runs memcli on this machine (the database role alone is often a shared service account)."""
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without passwd entry)
        return None


def digest(salt: str, value: str) -> str:
    """A salted SHA-256 of a subject: recomputable from the id and the salt, not reversible without it."""
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def record(
    conn: psycopg.Connection,
    operation: str,
    *,
    target: str = "user",
    user_id: uuid.UUID | str | None = None,
    counts: dict[str, int] | None = None,
    subject_digest: str | None = None,
) -> uuid.UUID:
    """Append one audit row through ``conn`` (in the caller's transaction) and return its id.

    ``counts``: rows per table read, changed or erased. Raises NotReadyError when the audit table is
    missing (not migrated) and ConfigError when the role may not append to it: an operation on people's
    data that cannot be audited does not happen.
    """
    return record_many(conn, operation, [(target, user_id, counts)], subject_digest=subject_digest)[0]


def record_many(
    conn: psycopg.Connection,
    operation: str,
    rows: Sequence[tuple[str, uuid.UUID | str | None, dict[str, int] | None]],
    *,
    subject_digest: str | None = None,
) -> list[uuid.UUID]:
    """Append one audit row per ``(target, user_id, counts)`` in one round trip (a batch that wrote the
    memories of many users); otherwise as :func:`record`."""
    from psycopg import errors
    from psycopg.types.json import Jsonb

    if operation not in OPERATIONS:
        raise ValueError(f"unknown audit operation {operation!r}; one of {', '.join(OPERATIONS)}")
    who = os_user()
    params = []
    ids = []
    for target, user_id, counts in rows:
        if target not in TARGETS:
            raise ValueError(f"unknown audit target {target!r}; one of {', '.join(TARGETS)}")
        uid = uuid.UUID(str(user_id)) if user_id is not None else None
        clean = {str(k): int(v) for k, v in (counts or {}).items()}
        # the id is made here: INSERT ... RETURNING would need the row to be readable, and under row-level
        # security a role may append audit rows it may not read back
        entry_id = uuid.uuid4()
        ids.append(entry_id)
        params.append((entry_id, operation, target, who, uid, subject_digest, Jsonb(clean)))
    if not params:
        return ids
    try:
        # one round trip for the savepoint, the rows and its release (a batch job writes these per batch)
        with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                f"""
                INSERT INTO {AUDIT_LOG} (id, operation, target, os_user, user_id, subject_digest, counts)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                """,  # noqa: S608 - a constant table name
                params,
            )
    except errors.UndefinedTable:
        raise NotReadyError(f"the audit table {AUDIT_LOG} is missing", hint="run: memcli migrate") from None
    except errors.InsufficientPrivilege:
        raise ConfigError(
            f"this database role may not write the audit trail ({AUDIT_LOG}); nothing was changed",
            hint=f"GRANT INSERT ON {AUDIT_LOG} TO the role",
        ) from None
    return ids


def pseudonymise(conn: psycopg.Connection, user_id: uuid.UUID, subject_digest: str) -> int:
    """Replace ``user_id`` by ``subject_digest`` in the user's audit rows; returns how many."""
    cursor = conn.execute(
        f"UPDATE {AUDIT_LOG} SET user_id = NULL, subject_digest = %s WHERE user_id = %s",  # noqa: S608
        (subject_digest, user_id),
    )
    return cursor.rowcount


def entries(
    conn: psycopg.Connection,
    *,
    user_id: uuid.UUID | None = None,
    operation: str | None = None,
    limit: int = 100,
) -> list[AuditEntry]:
    """The newest audit rows (of one user, of one operation), newest first."""
    clauses, params = [], []
    if user_id is not None:
        clauses.append("user_id = %s")
        params.append(user_id)
    if operation is not None:
        clauses.append("operation = %s")
        params.append(operation)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"""
        SELECT id, occurred_at, operation, target, db_role, os_user, user_id, subject_digest, counts
        FROM {AUDIT_LOG} {where} ORDER BY occurred_at DESC LIMIT %s
        """,  # noqa: S608 - clauses are constants
        (*params, limit),
    ).fetchall()
    return [AuditEntry(*row[:8], counts=dict(row[8] or {})) for row in rows]
