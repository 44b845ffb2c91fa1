"""Connections: open one from a resolved config, and turn libpq's failures into one-line errors.

Every memcli connection sets ``application_name`` so a DBA can see it in ``pg_stat_activity``, and jobs set
``lock_timeout`` / ``statement_timeout`` so they never queue behind (or stall) the application.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memcli.dsn import describe_target, parse_conninfo, scrub, secrets_of, to_libpq
from memcli.errors import ConnectError, NotReadyError

if TYPE_CHECKING:
    import psycopg

    from memcli.config import Config

APPLICATION_NAME = "memcli"


def resolve_dsn(config: Config, *, start_embedded: bool = True) -> str:
    """The DSN to use: the configured one, or the embedded server's (started on demand)."""
    if config.dsn.value is not None:
        dsn = to_libpq(str(config.dsn.value))
        parse_conninfo(dsn)  # malformed -> ConfigError, before any network traffic
        return dsn
    from memcli import embedded

    state = embedded.start(config.home.value) if start_embedded else embedded.status(config.home.value)
    if not state.running or state.dsn is None:
        raise ConnectError("the embedded Postgres is not running", hint="run: memcli db start")
    return state.dsn


def connect(
    dsn: str, *, autocommit: bool = False, connect_timeout: int = 10, **kwargs: Any
) -> psycopg.Connection:
    """Open a psycopg connection, mapping every failure to a ConnectError with a hint."""
    import psycopg

    params = parse_conninfo(dsn)
    params.setdefault("application_name", APPLICATION_NAME)
    params.setdefault("connect_timeout", str(connect_timeout))
    try:
        return psycopg.connect(autocommit=autocommit, **params, **kwargs)
    except psycopg.OperationalError as exc:
        raise explain_connect_failure(exc, dsn) from None


def explain_connect_failure(exc: Exception, dsn: str) -> ConnectError:
    """One line saying what failed and what to do, never echoing the password."""
    target = describe_target(dsn)
    text = scrub(str(exc), *secrets_of(dsn))
    lowered = text.lower()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "connection failed")
    first = first.split("FATAL:")[-1].strip()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        return ConnectError(
            f"authentication failed for {target}: {first}",
            hint="check the user and password in the DSN or PGPASSWORD / ~/.pgpass",
        )
    if "database" in lowered and "does not exist" in lowered:
        return ConnectError(
            f"cannot connect to {target}: {first}",
            hint="create it (createdb) or fix the database name in the DSN",
        )
    if "role" in lowered and "does not exist" in lowered:
        return ConnectError(f"cannot connect to {target}: {first}", hint="check the user name in the DSN")
    if "could not translate host name" in lowered or "name or service not known" in lowered:
        return ConnectError(f"cannot resolve the host of {target}", hint="check the host name in the DSN")
    if "timeout expired" in lowered:
        return ConnectError(
            f"timed out connecting to {target}",
            hint="check that the server is up and reachable (firewall, host, port)",
        )
    if "connection refused" in lowered or "no such file or directory" in lowered:
        return ConnectError(
            f"cannot reach {target}: connection refused",
            hint="is Postgres running there? check host and port (memcli db start for the embedded one)",
        )
    return ConnectError(
        f"cannot connect to {target}: {first}", hint="check the DSN and that the server is up"
    )


@contextmanager
def connection(config: Config, **kwargs: Any) -> Iterator[psycopg.Connection]:
    conn = connect(resolve_dsn(config), **kwargs)
    try:
        yield conn
    finally:
        conn.close()


def set_timeouts(conn: psycopg.Connection, *, lock_timeout_ms: int, statement_timeout_ms: int) -> None:
    """Session-level timeouts for maintenance work, so it fails fast instead of stalling the app."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{lock_timeout_ms}ms",))
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{statement_timeout_ms}ms",))


def require_pgvector(conn: psycopg.Connection) -> str:
    """pgvector's installed version; NotReadyError if the extension is not installed in this database."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    if row is None:
        raise NotReadyError(
            "pgvector is not installed in this database",
            hint="run: memcli migrate (it creates the extension)",
        )
    return str(row[0])


def ping(conn: psycopg.Connection) -> dict[str, Any]:
    """Round-trip latency, server version and pgvector's version (None when not installed)."""
    import time

    started = time.perf_counter()
    conn.execute("SELECT 1").fetchone()
    latency_ms = (time.perf_counter() - started) * 1000
    version = conn.execute("SHOW server_version").fetchone()
    vector = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    available = conn.execute(
        "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    return {
        "latency_ms": round(latency_ms, 3),
        "server_version": version[0] if version else None,
        "pgvector": vector[0] if vector else None,
        "pgvector_available": available[0] if available else None,
    }
