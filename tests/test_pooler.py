"""memcli behind a real PgBouncer, in transaction and in session mode.

Maintenance holds a session-level advisory lock, which a transaction-mode pool cannot keep: the jobs must
refuse such a connection (exit 2, saying why); everything that works transaction by transaction (search,
remember, health) works through it. In session mode everything works.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from memcli.dsn import parse_conninfo

pytestmark = pytest.mark.slow
BINARY = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.access(p, os.X_OK)), None
)
REFUSAL = "maintenance needs a direct connection"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """PgBouncer refuses to run as root: run it as the server's own user when there is one."""
    if os.geteuid() != 0:
        return None
    for name in ("pgserver", "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    pytest.skip("pgbouncer refuses to run as root and there is no other user to run it as")


@pytest.fixture(scope="module")
def pooler(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """``pooler(mode)``: a DSN template (``{dbname}``) through a PgBouncer on loopback in that pool mode."""
    if BINARY is None:
        pytest.skip("pgbouncer is not installed (Debian/Ubuntu: apt-get install pgbouncer; .ci/run does)")
    server = parse_conninfo(pg_server)
    user = _run_as()
    started: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}

    def start(mode: str) -> str:
        if mode not in ports:
            folder = tmp_path_factory.mktemp(f"pgbouncer-{mode}")
            port = _free_port()
            (folder / "users.txt").write_text(f'"{server.get("user", "postgres")}" ""\n')
            (folder / "pgbouncer.ini").write_text(
                "[databases]\n"
                f"* = host={server.get('host', '127.0.0.1')} port={server.get('port', '5432')}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
                f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
                f"pool_mode = {mode}\ndefault_pool_size = 4\nmax_client_conn = 100\n"
                f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
                "ignore_startup_parameters = extra_float_digits,options\n"
            )
            if user:
                uid = pwd.getpwnam(user).pw_uid
                for path in (folder, *folder.iterdir()):
                    os.chown(path, uid, -1)
                os.chmod(folder.parent, 0o755)
            proc = subprocess.Popen([BINARY, str(folder / "pgbouncer.ini")], user=user)
            started.append(proc)
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log = folder / "pgbouncer.log"
                        raise RuntimeError(
                            f"pgbouncer did not start: {log.read_text() if log.exists() else proc.returncode}"
                        ) from None
                    time.sleep(0.05)
            ports[mode] = port
        user_name = server.get("user", "postgres")
        return f"host=127.0.0.1 port={ports[mode]} user={user_name} dbname={{dbname}}"

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def through(pooler: Callable[[str], str], mode: str, dsn: str) -> str:
    return pooler(mode).format(dbname=parse_conninfo(dsn)["dbname"])


def seed(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO conversation_memory "
            "(session_id, memory_type, context_key, context_value, expires_at) "
            "SELECT 's', 'short_term', 'k' || g, %s, now() - interval '1 day' FROM generate_series(1, 20) g",
            (Jsonb({"x": 1}),),
        )


def memories(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return int(conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0])  # type: ignore[index]


@pytest.mark.parametrize(
    "job",
    [("cleanup", "--expired"), ("consolidate",), ("maintain", "daily"), ("maintain", "weekly")],
    ids=lambda job: " ".join(job),
)
def test_jobs_refuse_a_transaction_pool(
    pooler: Any, migrated_db: str, cli: Any, job: tuple[str, ...]
) -> None:
    seed(migrated_db)
    result = cli(*job, dsn=through(pooler, "transaction", migrated_db))
    assert result.exit_code == 2, result.stdout + result.stderr
    assert REFUSAL in result.stderr and "session-mode pool" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert memories(migrated_db) == 20  # nothing was touched
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM system_maintenance_log").fetchone() == (0,)


def test_search_remember_and_health_work_through_a_transaction_pool(
    pooler: Any, migrated_db: str, cli: Any
) -> None:
    dsn = through(pooler, "transaction", migrated_db)
    for text in ("vegetarian pizza please", "a window seat", "no nuts at all"):
        assert cli("remember", text, "--session", "s1", dsn=dsn).exit_code == 0
    found = cli("search", "vegetarian pizza", "--json", dsn=dsn)
    assert found.exit_code == 0, found.stderr
    assert "vegetarian pizza please" in found.stdout
    health = cli("health", "--json", dsn=dsn)
    doc = json.loads(health.stdout)
    assert health.exit_code == 0, [c for c in doc["checks"] if c["status"] != "ok"]
    assert doc["complete"] is True


def test_migrate_through_a_transaction_pool(pooler: Any, empty_db: str, cli: Any) -> None:
    result = cli("migrate", dsn=through(pooler, "transaction", empty_db))
    assert result.exit_code == 0, result.stderr
    assert cli("migrate", "status", dsn=empty_db).exit_code == 0
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT to_regclass('conversation_memory') IS NOT NULL").fetchone() == (True,)


def test_everything_works_through_a_session_pool(pooler: Any, migrated_db: str, cli: Any) -> None:
    seed(migrated_db)
    dsn = through(pooler, "session", migrated_db)
    cleanup = cli("cleanup", "--expired", "--json", dsn=dsn)
    assert cleanup.exit_code == 0, cleanup.stderr
    assert memories(migrated_db) == 0
    for job in (("consolidate",), ("maintain", "daily"), ("maintain", "weekly"), ("maintain", "monthly")):
        result = cli(*job, dsn=dsn)
        assert result.exit_code == 0, (job, result.stderr)
    assert cli("remember", "vegetarian pizza please", "--session", "s1", dsn=dsn).exit_code == 0
    found = cli("search", "vegetarian pizza", "--json", dsn=dsn)
    assert found.exit_code == 0 and "vegetarian pizza please" in found.stdout
    health = cli("health", "--json", dsn=dsn)
    assert health.exit_code == 0, health.stdout


def test_migrate_through_a_session_pool(pooler: Any, empty_db: str, cli: Any) -> None:
    assert cli("migrate", dsn=through(pooler, "session", empty_db)).exit_code == 0
