"""memcli health on healthy databases: all OK, its outputs, its exit codes, and that it never writes."""

from __future__ import annotations

import json
import math
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import dsn_for

from memcli.db import connect
from memcli.dsn import parse_conninfo
from memcli.health import REGISTRY, Check, Status, resolve_names, run_checks
from memcli.schema import names

STATUSES = {"ok", "warn", "fail", "skip"}
CHECK_KEYS = {
    "name", "group", "status", "value", "unit", "estimate", "threshold", "message", "hint", "elapsed_ms",
    "details",
}  # fmt: skip
METRIC = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABELS = re.compile(
    r'^\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*\}$'
)
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def report_for(dsn: str, **kwargs):
    conn = connect(dsn)
    try:
        return run_checks(conn, **kwargs)
    finally:
        conn.close()


def test_freshly_migrated_database_is_all_ok(migrated_db: str) -> None:
    report = report_for(migrated_db)
    problems = [(r.name, r.status.value, r.message) for r in report.results if r.status is not Status.OK]
    assert problems == []
    assert report.status is Status.OK
    assert report.exit_code(strict=True) == 0
    assert report.read_only
    assert [r.name for r in report.results] == resolve_names(None)
    assert "vector_recall" not in {r.name for r in report.results}  # deep only
    for result in report.results:
        assert result.threshold, result.name
        assert result.message, result.name
        assert result.group in {"server", "schema", "hygiene", "operations", "internals", "vector"}


def test_runs_on_an_autocommit_connection_and_leaves_it_as_it_was(migrated_db: str) -> None:
    conn = connect(migrated_db, autocommit=True)
    try:
        report = run_checks(conn, ["schema", "hygiene"])
        assert report.status is Status.OK and report.read_only
        assert conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "off"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
    finally:
        conn.close()


def test_a_crashing_check_is_reported_and_the_others_still_run(migrated_db: str, monkeypatch) -> None:
    from memcli.health import registry

    def broken(ctx):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(
        registry.REGISTRY,
        "connection",
        Check("connection", "server", "broken", "hint", broken),
    )
    report = report_for(migrated_db, names=["connection", "schema_revision"])
    crashed, revision = report.results
    assert crashed.status is Status.WARN and "check crashed: ZeroDivisionError" in crashed.message
    assert "Traceback" in crashed.details["traceback"]
    assert revision.status is Status.OK


def test_a_check_is_declared_by_its_function_name_and_docstring() -> None:
    from memcli.health import health_check

    @health_check("internals", deep=True, reads=("semantic_memory",))
    def some_check(ctx):
        """Something measured, with (parentheses).

        Why it matters, in a paragraph
        of its own.

        Fix: run this, then
        that (see the docs).
        """

    assert (some_check.name, some_check.group, some_check.title, some_check.hint) == (
        "some_check",
        "internals",
        "Something measured, with (parentheses)",
        "run this, then that (see the docs)",
    )
    assert some_check.deep and some_check.reads == ("semantic_memory",)
    built = health_check("server", name="built", title="Built title", hint="built hint")(lambda ctx: None)
    assert (built.name, built.title, built.hint) == ("built", "Built title", "built hint")


@pytest.mark.parametrize("doc", [None, "A title only.", "Fix: a hint only."])
def test_a_check_without_a_title_or_a_hint_is_refused(doc: str | None) -> None:
    from memcli.health import health_check

    def check(ctx):
        return None

    check.__doc__ = doc
    with pytest.raises(ValueError, match="title line and a 'Fix:' paragraph"):
        health_check("server")(check)
    with pytest.raises(ValueError, match="unknown group"):
        health_check("nowhere")(check)


def test_every_declared_check_has_a_title_and_a_hint_in_one_line() -> None:
    for check in REGISTRY.values():
        assert check.title and not check.title.endswith(".") and "\n" not in check.title, check.name
        assert check.hint and not check.hint.endswith(".") and "\n" not in check.hint, check.name


def test_freshly_migrated_database_is_all_ok_deep_and_strict(cli, migrated_db: str) -> None:
    result = cli("health", "--strict", "--deep", dsn=migrated_db)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "OK" in result.stdout and "vector_recall" in result.stdout
    assert "WARN" not in result.stdout and "FAIL" not in result.stdout


def test_adopted_application_database_is_all_ok(migrated_app_db: str) -> None:
    report = report_for(migrated_app_db)
    assert [(r.name, r.message) for r in report.results if r.status is not Status.OK] == []


def test_json_document(cli, migrated_db: str) -> None:
    result = cli("health", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ok" and doc["exit_code"] == 0 and doc["read_only"] is True
    assert doc["strict"] is False and doc["deep"] is False
    assert isinstance(doc["elapsed_ms"], float) and doc["elapsed_ms"] > 0
    assert re.match(r"^\d{4}-\d\d-\d\dT", doc["checked_at"])
    assert doc["database"]["name"] == parse_conninfo(migrated_db)["dbname"]
    assert doc["database"]["schema"] == "public"
    assert set(doc["counts"]) == STATUSES and sum(doc["counts"].values()) == len(doc["checks"])
    names = [c["name"] for c in doc["checks"]]
    assert names == resolve_names(None) and len(set(names)) == len(names)
    for check in doc["checks"]:
        assert set(check) == CHECK_KEYS
        assert check["status"] in STATUSES
        assert check["group"] == REGISTRY[check["name"]].group
        assert isinstance(check["threshold"], str) and isinstance(check["message"], str)
        assert check["value"] is None or isinstance(check["value"], int | float | str)
        assert isinstance(check["estimate"], bool) and isinstance(check["details"], dict)
        assert check["elapsed_ms"] >= 0
    # --format json is the same document
    again = json.loads(cli("health", "--format", "json", dsn=migrated_db).stdout)
    assert [c["name"] for c in again["checks"]] == names


def parse_prometheus(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Parse a textfile line by line, asserting the exposition format; metric -> samples."""
    assert text.endswith("\n")
    helped: set[str] = set()
    typed: dict[str, str] = {}
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        assert line.strip() == line and line, repr(line)
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert METRIC.match(name) and help_text and name not in helped
            helped.add(name)
        elif line.startswith("# TYPE "):
            name, kind = line[7:].split(" ")
            assert METRIC.match(name) and kind in {"gauge", "counter", "untyped"} and name not in typed
            assert name in helped  # HELP first
            typed[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, line
            name, labels, value = match.groups()
            assert name in typed, f"sample before its TYPE: {line}"
            parsed: dict[str, str] = {}
            if labels:
                assert LABELS.match(labels), labels
                parsed = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
            number = float(value)
            assert not math.isnan(number)
            samples.setdefault(name, []).append((parsed, number))
    assert helped == set(typed) == set(samples)
    return samples


def test_prometheus_textfile(cli, migrated_db: str, tmp_path: Path) -> None:
    folder = tmp_path / "textfile"
    folder.mkdir()
    target = folder / "memcli.prom"
    target.write_text("stale\n")
    result = cli("health", "--format", "prometheus", "--output", str(target), dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    metrics = parse_prometheus(target.read_text())
    assert [f.name for f in folder.iterdir()] == ["memcli.prom"]  # no temporary file left behind
    assert metrics["memcli_health_up"] == [({}, 1.0)]
    assert metrics["memcli_health_exit_code"] == [({}, 0.0)]
    assert metrics["memcli_health_status"][0][1] == 0
    statuses = {labels["check"]: value for labels, value in metrics["memcli_health_check_status"]}
    assert set(statuses) == set(resolve_names(None)) and set(statuses.values()) == {0.0}
    values = {
        labels["check"]: (labels["unit"], value) for labels, value in metrics["memcli_health_check_value"]
    }
    assert values["connection"][0] == "ms" and values["connection"][1] >= 0
    assert values["table_sizes"][0] == "bytes" and values["table_sizes"][1] > 0
    assert "server_version" not in values  # not a number
    assert len(metrics["memcli_health_check_duration_seconds"]) == len(statuses)
    # to stdout without --output
    stdout = cli("health", "--format", "prometheus", "--check", "schema", dsn=migrated_db).stdout
    assert {s[0]["check"] for s in parse_prometheus(stdout)["memcli_health_check_status"]} == {
        "schema_revision", "schema_objects", "invalid_indexes",
    }  # fmt: skip


def test_json_and_table_to_a_file(cli, migrated_db: str, tmp_path: Path) -> None:
    result = cli("health", "--json", "-o", str(tmp_path / "h.json"), dsn=migrated_db)
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads((tmp_path / "h.json").read_text())["status"] == "ok"
    result = cli("health", "-c", "schema", "-o", str(tmp_path / "h.txt"), dsn=migrated_db)
    text = (tmp_path / "h.txt").read_text()
    assert result.exit_code == 0 and result.stdout == ""
    assert "schema_objects" in text and "OK — 3 checks" in text and "\x1b[" not in text


def test_table_output_and_check_selection(cli, migrated_db: str) -> None:
    result = cli("health", "--check", "connection", "-c", "schema_revision", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    assert "connection" in result.stdout and "schema_revision" in result.stdout
    assert "pgvector" not in result.stdout
    assert "2 checks: 2 ok" in result.stdout
    quiet = cli("-q", "health", dsn=migrated_db)
    assert quiet.exit_code == 0 and "schema_revision" not in quiet.stdout and "OK —" in quiet.stdout


def test_list_checks_and_thresholds_without_a_database(cli, isolated_env: Path) -> None:
    (isolated_env / "memcli.toml").write_text("[health.thresholds]\ncache_hit_ratio_warn = 0.95\n")
    result = cli("health", "--list", "--json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [c["name"] for c in doc["checks"]] == resolve_names(None, deep=True)
    limits = {t["key"]: t for t in doc["thresholds"]}
    assert (
        limits["cache_hit_ratio_warn"]["value"] == 0.95 and limits["cache_hit_ratio_warn"]["default"] == 0.99
    )
    assert "PgHero" in limits["cache_hit_ratio_warn"]["source"]
    text = cli("health", "--list").stdout
    assert "long_transaction_warn_seconds" in text and "0.95 (default 0.99)" in text


def test_unknown_check_and_bad_thresholds_are_usage_errors(cli, migrated_db: str, isolated_env: Path) -> None:
    result = cli("health", "--check", "nope", dsn=migrated_db)
    assert result.exit_code == 2
    assert "unknown health check nope" in result.stderr and "schema_objects" in result.stderr
    (isolated_env / "memcli.toml").write_text("[health.thresholds]\nlatency_warn_msec = 5\n")
    result = cli("health", dsn=migrated_db)
    assert result.exit_code == 2 and "latency_warn_msec" in result.stderr
    (isolated_env / "memcli.toml").write_text("[health.thresholds]\nlatency_warn_ms = 'fast'\n")
    result = cli("health", dsn=migrated_db)
    assert result.exit_code == 2 and "must be a non-negative number" in result.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cannot_connect_exits_3(cli, tmp_path: Path) -> None:
    dsn = f"postgresql://memcli@127.0.0.1:{closed_port()}/memcli?connect_timeout=2"
    result = cli("health", "--json", dsn=dsn)
    assert result.exit_code == 3
    assert result.stdout == "" and result.stderr.startswith("Error: ")
    target = tmp_path / "down.prom"
    result = cli("health", "--format", "prometheus", "-o", str(target), dsn=dsn)
    assert result.exit_code == 3
    metrics = parse_prometheus(target.read_text())
    assert metrics["memcli_health_up"] == [({}, 0.0)] and metrics["memcli_health_exit_code"] == [({}, 3.0)]


def test_not_migrated_exits_4(cli, empty_db: str, app_db: str) -> None:
    for dsn in (empty_db, app_db):
        result = cli("health", dsn=dsn)
        assert result.exit_code == 4, result.stdout + result.stderr
        assert "not migrated" in result.stderr and "memcli migrate" in result.stderr


def test_missing_output_folder_is_a_usage_error(cli, migrated_db: str, tmp_path: Path) -> None:
    result = cli("health", "--format", "prometheus", "-o", str(tmp_path / "nope" / "m.prom"), dsn=migrated_db)
    assert result.exit_code == 2 and "cannot write --output" in result.stderr


# --- read-only ---------------------------------------------------------------------------------------------

CHECKSUM_TABLES = names.MEMCLI_TABLES


def checksum(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        sums = {}
        for table in CHECKSUM_TABLES:
            # The one write of `health --deep`: the recall it measured, for the plain run to report.
            query = psycopg.sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t "
                "WHERE to_jsonb(t) ->> 'key' IS DISTINCT FROM 'index.last_recall'"
            )
            sums[table] = conn.execute(query.format(psycopg.sql.Identifier(table))).fetchone()[0]
        sums["catalog"] = conn.execute(
            "SELECT md5(string_agg(relname::text || relkind::text, ',' ORDER BY relname)) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace"
        ).fetchone()[0]
        return sums


def test_health_does_not_modify_the_database(cli, migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value, created_at,
                                             expires_at)
            SELECT 's' || g, 'short_term', 'k' || g, '{"a": 1}', now() - interval '9 days',
                   now() - interval '2 days' * (g % 2)
            FROM generate_series(1, 50) g
            """
        )
        conn.execute(
            """
            INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector)
            SELECT 's' || g, 'conversation', 'text ' || g,
                   (SELECT array_agg(random() + g * 0 + x * 0)::vector FROM generate_series(1, 384) x)
            FROM generate_series(1, 40) g
            """
        )
        conn.execute(
            "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES ('gone', 't', 'k')"
        )
    before = checksum(migrated_db)
    result = cli("health", "--deep", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr  # warnings only: no --strict
    doc = json.loads(result.stdout)
    assert doc["read_only"] is True and doc["status"] == "warn"
    assert checksum(migrated_db) == before
    with psycopg.connect(migrated_db) as conn:
        recorded = conn.execute(
            "SELECT value FROM memory_settings WHERE key = 'index.last_recall'"
        ).fetchone()
    assert recorded is not None and recorded[0]["queries"] > 0


# --- a role with read access only ---------------------------------------------------------------------------


@pytest.fixture
def readonly_dsn(migrated_db: str, pg_server: str) -> Iterator[str]:
    role = f"health_ro_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    dbname = parse_conninfo(migrated_db)["dbname"]
    ident = psycopg.sql.Identifier(role)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(ident, psycopg.sql.Literal(password))
        )
        conn.execute(
            psycopg.sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(dbname), ident
            )
        )
        conn.execute(psycopg.sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        conn.execute(psycopg.sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(ident))
    params = parse_conninfo(migrated_db)
    params.update(user=role, password=password)
    yield psycopg.conninfo.make_conninfo(**params)
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        conn.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident))
    with psycopg.connect(dsn_for(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP ROLE {}").format(ident))


def test_read_only_role_gets_skips_not_crashes(cli, readonly_dsn: str, migrated_db: str) -> None:
    # really read-only: it cannot write
    with psycopg.connect(readonly_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO memory_settings (key, value) VALUES ('x', '1')")
    result = cli("health", "--deep", "--json", "--allow-skip", dsn=readonly_dsn)
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    by_name = {c["name"]: c for c in doc["checks"]}
    skipped = {name for name, c in by_name.items() if c["status"] == "skip"}
    # Row-level security hides the memory and operating tables' rows from a role that is not their owner,
    # and sequences need their own grant: those checks say so instead of reporting made-up zeros.
    assert {"expired_backlog", "embedding_mismatch", "maintenance_daily", "sequences"} <= skipped
    for name in skipped:
        assert by_name[name]["message"] and by_name[name]["hint"], name
    assert "row-level security" in by_name["expired_backlog"]["message"]
    assert by_name["sequences"]["message"].startswith("cannot read")
    for name in (
        "schema_revision",
        "schema_objects",
        "invalid_indexes",
        "vector_index",
        "connection",
        "wraparound",
    ):
        assert by_name[name]["status"] == "ok", by_name[name]
    assert doc["database"]["user"] == parse_conninfo(readonly_dsn)["user"]


def test_a_run_that_could_not_look_does_not_look_healthy(cli, readonly_dsn: str) -> None:
    table = cli("health", dsn=readonly_dsn)
    assert table.exit_code == 1, table.stdout + table.stderr  # blind spots are not a pass
    assert "checks could not run: row-level security hides rows from this role (" in table.stdout
    assert "expired_backlog" in table.stdout.split("could not run:")[1]

    result = cli("health", "--json", dsn=readonly_dsn)
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["exit_code"] == 1 and doc["complete"] is False
    skipped = [c["name"] for c in doc["checks"] if c["status"] == "skip"]
    assert [c["name"] for c in doc["not_checked"]] == skipped and skipped
    assert all(c["reason"] and c["hint"] for c in doc["not_checked"])
    assert f"{len(skipped)} of {len(doc['checks'])} checks could not run" in result.stderr

    # a monitoring role that may not read the memories can accept that, and still sees the list
    allowed = cli("health", "--json", "--allow-skip", dsn=readonly_dsn)
    assert allowed.exit_code == 0 and json.loads(allowed.stdout)["not_checked"] == doc["not_checked"]
    metrics = cli("health", "--format", "prometheus", dsn=readonly_dsn)
    assert metrics.exit_code == 1
    assert f"memcli_health_checks_not_run {len(skipped)}" in metrics.stdout.splitlines()


def test_pg_monitor_member_reads_settings_and_maintenance_runs(
    cli, readonly_dsn: str, migrated_db: str
) -> None:
    role = parse_conninfo(readonly_dsn)["user"]
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("GRANT pg_monitor TO {}").format(psycopg.sql.Identifier(role)))
        conn.execute(
            "INSERT INTO system_maintenance_log (maintenance_type, step, status, started_at, finished_at) "
            "VALUES ('daily', 'cleanup', 'succeeded', now(), now())"
        )
    result = cli("health", "--json", dsn=readonly_dsn)
    doc = json.loads(result.stdout)
    by_name = {c["name"]: c for c in doc["checks"]}
    assert by_name["maintenance_daily"]["status"] == "ok", by_name["maintenance_daily"]
    # the memories themselves stay hidden from a monitoring role
    assert by_name["expired_backlog"]["status"] == "skip"
    with psycopg.connect(readonly_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM memory_settings").fetchone()[0] > 0
        assert conn.execute("SELECT count(*) FROM conversation_memory").fetchone()[0] == 0


def test_row_estimates_and_row_security_are_read_once_per_run(readonly_dsn: str, monkeypatch) -> None:
    from memcli.health import CheckSkipped, Context, load_thresholds

    statements: list[str] = []
    execute = psycopg.Cursor.execute

    def counting(self, query, params=None, **kwargs):
        statements.append(str(query))
        return execute(self, query, params, **kwargs)

    conn = connect(readonly_dsn)
    try:
        ctx = Context(conn, load_thresholds(None), False, "public")
        ctx.role()
        monkeypatch.setattr(psycopg.Cursor, "execute", counting)
        estimates = [
            ctx.row_estimate(t) for t in ("semantic_memory", "conversation_memory", "semantic_memory")
        ]
        assert estimates == [0.0, 0.0, 0.0] and len(statements) == 1
        for tables in (("conversation_memory",), ("semantic_memory", "conversation_memory")):
            with pytest.raises(
                CheckSkipped, match=r"row-level security may hide rows of .*conversation_memory"
            ):
                ctx.require_visible_rows(*tables)
        assert len(statements) == 2
        assert ctx.row_estimate("no_such_table") == 0.0 and len(statements) == 2
    finally:
        conn.close()
