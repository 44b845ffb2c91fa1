"""Errors are named for what happened: bad input is exit 2 in one line, a rejected statement is not a lost
connection, an interrupted run exits 130 (SIGINT and SIGTERM alike)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from memcli import migrations
from memcli.db import describe_database_error
from memcli.errors import ExitCode

MEMCLI = Path(sys.executable).parent / "memcli"


def one_line(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert not lines[0].startswith("Error: unexpected"), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("search", "anything", "--since", "99999999999d"),
        ("search", "anything", "--since", "999999999d"),
        ("cleanup", "--expired", "--older-than", "999999999d"),
        ("cleanup", "--expired", "--older-than", "99999999999d"),
        ("search", "anything", "--session", "caf\udce9"),
        ("remember", "caf\udce9 au lait", "--session", "s1"),
        ("search", "x" * 20_000, "--hybrid"),
    ],
    ids=[
        "since-huge",
        "since-max",
        "older-than-max",
        "older-than-huge",
        "session-bytes",
        "text-bytes",
        "long-query",
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: Any, migrated_db: str, args: tuple[str, ...]) -> None:
    result = cli(*args, dsn=migrated_db)
    assert result.exit_code == ExitCode.USAGE, result.stderr
    one_line(result)


def test_a_host_label_longer_than_63_characters_is_bad_input(cli: Any) -> None:
    result = cli("db", "ping", dsn=f"postgresql://u@{'h' * 64}.example.com/db")
    assert result.exit_code == ExitCode.USAGE
    assert "longer than 63 characters" in one_line(result)


def test_the_long_hybrid_query_is_refused_with_its_length(cli: Any, migrated_db: str) -> None:
    result = cli("search", "word " * 24_000, "--hybrid", dsn=migrated_db)
    line = one_line(result)
    assert "120000 characters" in line and "lost the database connection" not in line


def server_error(dsn: str, statement: str) -> psycopg.Error:
    with psycopg.connect(dsn) as conn:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            return exc
    raise AssertionError(f"{statement} did not fail")


@pytest.mark.parametrize(
    ("statement", "code", "words"),
    [
        (
            "SELECT repeat('(', 200000)::tsquery",
            ExitCode.USAGE,
            "rejected",
        ),  # 54001 or 42601, a bad statement
        ("SET statement_timeout = '10ms'; SELECT pg_sleep(1)", ExitCode.PROBLEMS, "cancelled"),  # 57014
        ("SELECT 1/0", ExitCode.USAGE, "rejected a value"),  # 22012
        ("SELECT * FROM no_such_table", ExitCode.NOT_READY, "does not exist"),  # 42P01
        ("SELECT pg_terminate_backend(pg_backend_pid())", ExitCode.CONNECT, "lost the database connection"),
    ],
)
def test_server_errors_are_classified_by_sqlstate(
    migrated_db: str, statement: str, code: int, words: str
) -> None:
    error = describe_database_error(server_error(migrated_db, statement))
    assert error.exit_code == code, error.message
    assert words in error.message


def test_a_statement_the_server_rejects_over_a_healthy_connection_is_not_a_lost_connection(
    migrated_db: str,
) -> None:
    deep = "SELECT " + "(" * 100_000 + "1" + ")" * 100_000  # stack depth limit exceeded (54001)
    error = describe_database_error(server_error(migrated_db, deep))
    assert "lost the database connection" not in error.message
    assert error.exit_code != ExitCode.CONNECT


def wait_for_lock_holder(dsn: str) -> None:
    """Wait until a memcli migrate is polling for the migration lock."""
    deadline = time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'memcli' AND pid <> pg_backend_pid()"
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.1)
    raise AssertionError("memcli never connected")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_exits_130(migrated_db: str, signum: int) -> None:
    """A migration waiting for another one's lock is stopped by Ctrl-C or a service manager alike."""
    with psycopg.connect(migrated_db, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrations.MIGRATION_LOCK_KEY,))
        env = {**os.environ, "MEMCLI_DATABASE_URL": migrated_db}
        proc = subprocess.Popen(
            [str(MEMCLI), "migrate", "--lock-wait", "60"], env=env, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for_lock_holder(migrated_db)
            time.sleep(0.5)
            proc.send_signal(signum)
            _, stderr = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == ExitCode.INTERRUPTED, stderr
    assert stderr.strip().splitlines() == ["Error: interrupted"]
