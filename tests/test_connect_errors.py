"""Each way of failing to reach a database: one line on stderr, the documented exit code, no password."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest
from conftest import dsn_for

from memcli.dsn import parse_conninfo

SECRET = "hunter2-secret"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "hint:" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]
    assert SECRET not in result.stdout + result.stderr
    assert result.stdout == ""


def test_ping_reports_the_server(cli, empty_db: str) -> None:
    result = cli("db", "ping", dsn=empty_db)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("ok ")
    assert "PostgreSQL 1" in result.stdout


def test_unreachable_host(cli) -> None:
    result = cli("db", "ping", dsn=f"postgresql://app:{SECRET}@127.0.0.1:{closed_port()}/app")
    assert_one_line_error(result, 3, "connection refused", "127.0.0.1")


def test_unresolvable_host(cli) -> None:
    result = cli("db", "ping", dsn=f"postgresql://app:{SECRET}@no-such-host.invalid/app")
    assert_one_line_error(result, 3, "resolve")


def test_missing_database(cli, pg_server: str) -> None:
    result = cli("db", "ping", dsn=dsn_for(pg_server, "no_such_database"))
    assert_one_line_error(result, 3, 'database "no_such_database" does not exist')


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:{SECRET}@[unterminated/app",
        f"host=localhost nonsense_option=1 password={SECRET}",
        f"postgresql://app:{SECRET}@localhost:notaport/app",
    ],
)
def test_malformed_dsn(cli, dsn: str) -> None:
    assert_one_line_error(cli("db", "ping", dsn=dsn), 2, "malformed database URL")


def test_malformed_dsn_from_the_environment(cli) -> None:
    result = cli("db", "ping", env={"MEMCLI_DATABASE_URL": f"postgresql://a:{SECRET}@[x"})
    assert_one_line_error(result, 2, "malformed")


@pytest.fixture
def password_role(pg_server: str) -> tuple[str, str]:
    """A role that must authenticate with a password (scram) on the test server's Unix socket."""
    with psycopg.connect(pg_server, autocommit=True) as conn:
        hba_file = Path(conn.execute("SHOW hba_file").fetchone()[0])
        if not hba_file.exists() or not hba_file.is_file():
            pytest.skip("the test server's pg_hba.conf is not editable from here")
        rule = "local all memcli_pw_user scram-sha-256\nhost all memcli_pw_user 127.0.0.1/32 scram-sha-256\n"
        text = hba_file.read_text()
        if rule not in text:
            hba_file.write_text(rule + text)
        conn.execute("SELECT pg_reload_conf()")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'memcli_pw_user'").fetchone()
        if not exists:
            conn.execute("CREATE ROLE memcli_pw_user LOGIN PASSWORD 'right-password'")
    return pg_server, "memcli_pw_user"


def test_wrong_password(cli, password_role: tuple[str, str]) -> None:
    server, role = password_role
    params = parse_conninfo(server)
    params.update(user=role, password=SECRET)
    result = cli("db", "ping", dsn=psycopg.conninfo.make_conninfo(**params))
    assert_one_line_error(result, 3, "authentication failed", role)

    params["password"] = "right-password"
    assert cli("db", "ping", dsn=psycopg.conninfo.make_conninfo(**params)).exit_code == 0


def test_wrong_password_as_uri_is_not_echoed_even_verbose(cli, password_role: tuple[str, str]) -> None:
    server, role = password_role
    host = parse_conninfo(server)["host"]
    result = cli("-v", "db", "ping", dsn=f"postgresql://{role}:{SECRET}@/postgres?host={host}")
    assert result.exit_code == 3
    assert "authentication failed" in result.stderr
    assert SECRET not in result.stdout + result.stderr  # not even in the -v traceback


def test_tracebacks_only_with_verbose(cli) -> None:
    dsn = f"postgresql://app:{SECRET}@127.0.0.1:{closed_port()}/app"
    quiet = cli("db", "ping", dsn=dsn)
    assert "Traceback" not in quiet.stderr
    verbose = cli("-v", "db", "ping", dsn=dsn)
    assert verbose.exit_code == 3
    assert "Traceback" in verbose.stderr
    assert SECRET not in verbose.stderr


def test_output_is_plain_when_piped(cli, empty_db: str) -> None:
    result = cli("config", "show", dsn=empty_db)
    assert "\x1b[" not in result.stdout


def test_reconnect_opens_another_session_as_the_first_was_opened(empty_db: str) -> None:
    from memcli.db import reconnect

    with psycopg.connect(empty_db, application_name="first session") as conn:
        conn.execute("SET search_path TO pg_catalog")  # session state is not carried over: parameters are
        with reconnect(conn, autocommit=True) as second:
            assert second.autocommit and second.info.backend_pid != conn.info.backend_pid
            assert second.info.dbname == conn.info.dbname
            assert second.execute("SHOW application_name").fetchone()[0] == "first session"
            assert second.execute("SHOW search_path").fetchone()[0] != "pg_catalog"


def test_reconnect_failing_names_the_target_never_the_password(empty_db: str) -> None:
    import uuid

    from psycopg import sql

    from memcli.db import reconnect
    from memcli.errors import ConnectError

    role = f"doomed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(SECRET))
        )
        try:
            params = {**parse_conninfo(empty_db), "user": role, "password": SECRET}
            with psycopg.connect(**params) as as_role:
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))
                with pytest.raises(ConnectError) as caught:
                    reconnect(as_role)
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    message = f"{caught.value} {caught.value.hint}"
    assert SECRET not in message and role in message
