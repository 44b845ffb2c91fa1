"""Connections: open one from a resolved config, and turn libpq's failures into one-line errors.

Every memcli connection sets ``application_name`` so a DBA can see it in ``pg_stat_activity``, and jobs set
``lock_timeout`` / ``statement_timeout`` so they never queue behind (or stall) the application.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from memcli.dsn import describe_target, parse_conninfo, scrub, secrets_of, to_libpq
from memcli.errors import ConfigError, ConnectError, MemcliError, NotReadyError

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


def reconnect(conn: psycopg.Connection, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection to the server and database of ``conn``, opened with the same parameters.

    For work that must not share ``conn`` (another process). libpq hands back every parameter the
    connection was opened with, the password included: it goes into the new connection only.
    """
    import psycopg
    from psycopg.conninfo import make_conninfo

    dsn = make_conninfo(**{o.keyword.decode(): o.val.decode() for o in conn.pgconn.info if o.val is not None})
    try:
        return psycopg.connect(dsn, autocommit=autocommit)
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


# SQLSTATEs after which the session is gone (the server ended it or cannot serve it).
_SESSION_GONE = {"57P01", "57P02", "57P03", "53300"}


def describe_database_error(exc: Exception) -> MemcliError:
    """A psycopg error as a one-line MemcliError named for what happened, by its SQLSTATE class.

    psycopg files several server-side refusals (class 53 resources, 54 program limits, 57 operator
    intervention) under OperationalError, the same class as a dropped connection: the SQLSTATE, not the
    exception class, tells a rejected statement over a healthy connection from a lost one.
    """
    sqlstate = getattr(exc, "sqlstate", None) or ""
    diag = getattr(exc, "diag", None)
    text = (getattr(diag, "message_primary", None) or str(exc)).strip()
    text = text.splitlines()[0] if text else exc.__class__.__name__
    server_hint = getattr(diag, "message_hint", None)
    klass = sqlstate[:2]
    if not sqlstate or klass == "08" or sqlstate in _SESSION_GONE:
        return ConnectError(f"lost the database connection: {text}", hint="check the server and retry")
    if klass == "28":
        return ConnectError(f"not authorised: {text}", hint="check the user and password")
    if sqlstate == "57014":
        return MemcliError(
            f"the server cancelled the statement ({text})",
            hint="statement_timeout or a cancel request stopped it; retry with more time or less work",
        )
    if sqlstate == "55P03":
        return MemcliError(
            f"timed out waiting for a lock ({text})", hint="retry when the database is quieter"
        )
    if klass == "40":
        return MemcliError(f"the transaction was rolled back ({text})", hint="retry: nothing was half-done")
    if klass == "54":
        return ConfigError(
            f"the server rejected the statement as too large or too deep: {text}", hint="give shorter input"
        )
    if klass == "22":
        return ConfigError(f"the server rejected a value: {text}", hint=server_hint or "check the input")
    if sqlstate in ("42P01", "42703", "42883"):
        return NotReadyError(f"the schema is not as memcli expects: {text}", hint="run: memcli migrate")
    if sqlstate == "42501":
        return MemcliError(f"permission denied: {text}", hint=server_hint or "grant the role what it needs")
    if klass == "42":
        return ConfigError(
            f"the server rejected the statement: {text}", hint=server_hint or "check the input"
        )
    if klass == "53":
        return MemcliError(f"the server ran out of resources: {text}", hint="free disk or memory and retry")
    return MemcliError(f"database error {sqlstate}: {text}", hint=server_hint or "run with -v for details")
