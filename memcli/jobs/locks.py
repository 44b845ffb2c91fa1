"""Advisory locks that keep two runs of a maintenance job apart.

A job takes ``pg_try_advisory_lock`` on a key derived from its name, so a second run (an overlapping cron
entry, an operator at the prompt) fails at once with LockedError (exit 75) instead of queueing behind the
first. The lock is session-level: it lives as long as the connection, so a killed run releases it when the
server notices the connection is gone.

Session-level locks do not survive a transaction-pooling proxy (PgBouncer ``pool_mode = transaction``,
Supavisor's transaction port): consecutive statements run on different server connections, so the lock is
taken on one backend and the work happens, unprotected, on others; and the lock stays with that backend
when the client goes, held for whoever gets it next. Maintenance therefore needs a direct connection (or
session pooling). :func:`check_direct_connection` refuses a connection that shares its backend with a second
client connection (a pool hands an idle backend to the next client; on a direct connection each has its
own) or whose backend changes between transactions, and warns when the dialled port differs from the
server's (a proxy in between).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memcli.errors import ConfigError, LockedError

if TYPE_CHECKING:
    import psycopg

LOCK_NAMESPACE = "memcli.job:"
DIRECT_CONNECTION_HINT = (
    "point memcli at Postgres itself (usually port 5432) or a session-mode pool, not PgBouncer/Supavisor "
    "in transaction mode"
)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a job name (the same in every process and every release)."""
    digest = hashlib.blake2b((LOCK_NAMESPACE + name).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_ids(name: str) -> tuple[int, int]:
    # pg_locks shows a bigint advisory key as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
    key = lock_key(name) & 0xFFFFFFFFFFFFFFFF
    return key >> 32, key & 0xFFFFFFFF


@dataclass(frozen=True)
class LockHolder:
    pid: int
    application_name: str | None
    client: str | None
    backend_start: object | None
    state: str | None


def lock_holder(conn: psycopg.Connection, name: str) -> LockHolder | None:
    """Who holds the job's lock in this database, if anybody."""
    classid, objid = _lock_ids(name)
    row = conn.execute(
        """
        SELECT l.pid, a.application_name, coalesce(host(a.client_addr), 'local'), a.backend_start, a.state
        FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid
        LIMIT 1
        """,
        (classid, objid),
    ).fetchone()
    return LockHolder(*row) if row else None


def try_lock(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),)).fetchone()
    return bool(row and row[0])


def unlock(conn: psycopg.Connection, name: str) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))


def holds_lock(conn: psycopg.Connection, name: str) -> bool:
    """Does this connection's own backend hold the lock? (False behind a transaction-pooling proxy.)"""
    classid, objid = _lock_ids(name)
    row = conn.execute(
        """
        SELECT count(*) FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = pg_backend_pid()
          AND classid = %s::bigint::oid AND objid = %s::bigint::oid
        """,
        (classid, objid),
    ).fetchone()
    return bool(row and row[0])


def check_direct_connection(
    conn: psycopg.Connection, probes: int = 3, other: psycopg.Connection | None = None
) -> list[str]:
    """Refuse a transaction-pooled connection; return warnings for a proxy that may be one.

    ``conn`` must be in autocommit mode so each probe is its own transaction: behind a transaction-mode
    pool the backend pid changes between them, or, with one client, ``other`` (a second autocommit
    connection to the same DSN) is handed the very backend ``conn`` just released.
    """
    warnings: list[str] = []
    if conn.autocommit:
        mine: set[int] = set()
        theirs: set[int] = set()
        for _ in range(probes):
            mine.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
            if other is not None:
                theirs.add(other.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        if len(mine) > 1 or len(theirs) > 1 or mine & theirs:
            raise ConfigError(
                "maintenance needs a direct connection: server connections are shared between clients or "
                "change between transactions (a transaction-pooling proxy), where advisory locks cannot "
                "keep runs apart",
                hint=DIRECT_CONNECTION_HINT,
            )
    row = conn.execute("SELECT inet_server_port()").fetchone()
    server_port = row[0] if row else None
    dialled = conn.info.port
    if server_port is not None and dialled and int(dialled) != int(server_port):
        warnings.append(
            f"connected through a proxy (dialled port {dialled}, server port {server_port}); maintenance "
            f"locks need a direct connection or a session-mode pool"
        )
    return warnings


@contextmanager
def job_lock(conn: psycopg.Connection, names: Sequence[str], job: str | None = None) -> Iterator[None]:
    """Hold every lock in ``names`` (in order) for the block; LockedError at once if one is taken.

    ``conn`` should be a dedicated autocommit connection that stays open for the whole run.
    """
    acquired: list[str] = []
    try:
        for name in names:
            if not try_lock(conn, name):
                holder = lock_holder(conn, name)
                who = ""
                if holder is not None:
                    since = getattr(holder.backend_start, "isoformat", lambda: None)()
                    who = f" (pid {holder.pid}, {holder.application_name or 'unknown client'}"
                    who += f", connected since {since[:19]})" if since else ")"
                raise LockedError(
                    f"another run holds the '{name}' maintenance lock{who}; {job or name} not started",
                    hint="wait for it to finish; exit code 75 lets a scheduler retry later",
                )
            acquired.append(name)
            if not holds_lock(conn, name):
                raise ConfigError(
                    "maintenance needs a direct connection: the advisory lock was taken on another server "
                    "connection than the one doing the work (a transaction-pooling proxy)",
                    hint=DIRECT_CONNECTION_HINT,
                )
        yield
    finally:
        for name in reversed(acquired):
            # a lost connection took its locks with it; nothing left to release then
            with contextlib.suppress(Exception):
                unlock(conn, name)
