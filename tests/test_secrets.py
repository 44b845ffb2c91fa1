"""No password reaches any output: property tests over passwords made of every printable character.

A generated password is a run of marker tokens (``Qj`` + letters and digits, found nowhere else in memcli's
output) joined by arbitrary printable characters, so a leak of the whole password or of any part libpq split
off (``u:p@ss@h`` -> host ``ss@h``) shows as a token in the output. Each password is tried in the forms an
operator writes: a percent-encoded URI, a raw URI (reserved characters unencoded, as pasted), key=value
with libpq quoting, and key=value unquoted.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo

from memcli.dsn import mask_dsn, parse_conninfo, without_password
from memcli.errors import ConfigError

TOKEN = re.compile(r"Qj[A-Z0-9]{4}")
tokens = st.from_regex(r"\AQj[A-Z0-9]{4}\Z")
separators = st.text(alphabet=string.printable.replace("\x0b", "").replace("\x0c", ""), max_size=3)
passwords = st.builds(
    lambda parts, tail: "".join(sep + tok for sep, tok in parts) + tail,
    st.lists(st.tuples(separators, tokens), min_size=1, max_size=4),
    separators,
)
FORMS = ("uri-encoded", "uri-raw", "kv-quoted", "kv-raw")

KNOWN_LEAKS = [
    "Sec?retQj0001",  # '?' in a raw URI password
    "Sec#retQj0002",  # '#'
    "Qj0003 Qj0004",  # a space: key=value needs quotes
    "Qj0005/Qj0006",  # '/': libpq reads 'Qj0005' as the port
    "Qj0007@Qj0008",  # '@': libpq reads 'Qj0008@host' as the host
    "Qj0009'\\\"Qj0010",
]


def dsn_in(
    form: str, password: str, host: str = "localhost", port: str = "1", user: str = "u", **extra: str
) -> str:
    """``password`` in a DSN of the given form (the raw forms may be malformed: that is the point)."""
    if form == "uri-encoded":
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in extra.items())
        netloc = f"{host}:{port}" if not host.startswith("/") else ""
        if host.startswith("/"):
            query = "&".join(filter(None, [f"host={host}", query]))
        return f"postgresql://{user}:{quote(password, safe='')}@{netloc}/db" + (f"?{query}" if query else "")
    if form == "uri-raw":
        return f"postgresql://{user}:{password}@{host}:{port}/db"
    if form == "kv-quoted":
        return make_conninfo(host=host, port=port, user=user, password=password, dbname="db", **extra)
    return f"host={host} port={port} user={user} password={password} dbname=db"


def assert_no_token(text: str, password: str, where: str) -> None:
    leaked = set(TOKEN.findall(text)) & set(TOKEN.findall(password))
    assert not leaked, f"{where} leaks {sorted(leaked)} of the password:\n{text}"


@settings(max_examples=200, deadline=None)
@given(password=passwords, form=st.sampled_from(FORMS))
@example(password=KNOWN_LEAKS[0], form="uri-raw")
@example(password=KNOWN_LEAKS[1], form="uri-raw")
@example(password=KNOWN_LEAKS[2], form="kv-quoted")
@example(password=KNOWN_LEAKS[3], form="uri-raw")
@example(password=KNOWN_LEAKS[4], form="uri-raw")
@example(password=KNOWN_LEAKS[5], form="kv-quoted")
def test_dsn_helpers_never_return_the_password(password: str, form: str) -> None:
    dsn = dsn_in(form, password)
    try:
        params = parse_conninfo(dsn)
    except ConfigError as exc:
        assert_no_token(str(exc), password, "the parse error")
        return
    assert_no_token(mask_dsn(dsn) or "", password, "mask_dsn")
    stripped, _ = without_password(dsn)
    assert_no_token(stripped, password, "without_password")
    if form in ("uri-encoded", "kv-quoted"):
        assert params["password"] == password  # the well-formed forms keep the password libpq reads


OFFLINE = (
    ("config", "show"),
    ("config", "show", "--json"),
    ("schedule",),
    ("schedule", "--json"),
    ("-v", "db", "ping"),  # a malformed DSN fails here, before any connection: the -v traceback
)
ONLINE = (
    ("db", "ping"),
    ("db", "ping", "--json"),
    ("migrate", "status", "--json"),
    ("-v", "migrate", "down", "no_such_revision", "--yes"),
    ("health", "--json", "--check", "connection"),
    ("--json", "search", "anything", "--exact"),
)


def outputs(
    cli: Callable[..., Any], dsn: str, commands: tuple[tuple[str, ...], ...]
) -> Iterator[tuple[str, str]]:
    for args in commands:
        result = cli("--dsn", dsn, *args)
        yield " ".join(args), result.stdout + result.stderr


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=passwords, form=st.sampled_from(FORMS))
@example(password=KNOWN_LEAKS[0], form="uri-raw")
@example(password=KNOWN_LEAKS[1], form="uri-raw")
@example(password=KNOWN_LEAKS[2], form="kv-quoted")
@example(password=KNOWN_LEAKS[3], form="uri-raw")
@example(password=KNOWN_LEAKS[4], form="uri-raw")
def test_config_show_schedule_and_errors_never_print_the_password(
    cli: Callable[..., Any], password: str, form: str
) -> None:
    for what, output in outputs(cli, dsn_in(form, password), OFFLINE):
        assert_no_token(output, password, f"memcli {what}")


@pytest.mark.slow
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(password=passwords, form=st.sampled_from(FORMS))
@example(password=KNOWN_LEAKS[1], form="uri-encoded")
@example(password=KNOWN_LEAKS[5], form="kv-quoted")
def test_commands_on_a_database_never_print_the_password(
    cli: Callable[..., Any], migrated_db: str, password: str, form: str
) -> None:
    """A working database reached with a password-carrying DSN (the test server ignores the password),
    and an unreachable one: every command's output, errors, -v tracebacks and the maintenance log."""
    server = parse_conninfo(migrated_db)
    working = dsn_in(
        form, password, host=server["host"], port=server.get("port", "5432"), user=server["user"]
    )
    if form.startswith("uri"):
        working = working.replace("/db", "/" + server["dbname"], 1)
    else:
        working = working.replace("dbname=db", f"dbname={server['dbname']}")
    for what, output in outputs(cli, working, ONLINE):
        assert_no_token(output, password, f"memcli {what}")
    reached = cli("--dsn", working, "db", "ping")
    if form in ("uri-encoded", "kv-quoted"):
        assert reached.exit_code == 0, reached.stderr  # the well-formed forms reach the database
    unreachable = dsn_in(form, password, host="127.0.0.1", port="9")
    for what, output in outputs(cli, unreachable, (("db", "ping"), ("-v", "maintain", "daily"))):
        assert_no_token(output, password, f"memcli {what} (unreachable)")
    daily = cli("--dsn", working, "maintain", "daily", "--json")
    assert_no_token(daily.stdout + daily.stderr, password, "maintain daily --json")
    with psycopg.connect(migrated_db) as conn:
        rows = conn.execute("SELECT error, details::text FROM system_maintenance_log").fetchall()
    assert rows or reached.exit_code != 0, daily.stdout + daily.stderr
    assert_no_token(json.dumps(rows), password, "system_maintenance_log")


def test_db_url_prints_the_configured_dsn_masked_never_its_password(cli: Callable[..., Any]) -> None:
    """With a DSN configured, ``db url`` names that database (not the embedded one), password masked; a DSN
    libpq would split inside the password is refused without being quoted."""
    for form in FORMS:
        for password in KNOWN_LEAKS[2:5]:
            for args in (("db", "url"), ("db", "url", "--json")):
                result = cli("--dsn", dsn_in(form, password), *args)
                assert result.exit_code in (0, 2), result.stderr
                if result.exit_code == 0:
                    assert "localhost" in result.stdout and "****" in result.stdout
                    assert "pgdata" not in result.stdout
                assert_no_token(result.stdout + result.stderr, password, "db url")
