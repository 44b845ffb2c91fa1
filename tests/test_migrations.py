"""Schema migrations: up, down, adoption of an application's database, concurrency, failures, offline SQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from memcli import migrations
from memcli.errors import ConfigError, ExitCode, LockedError, NotReadyError
from memcli.schema import names

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECURITY = "0003_operations_security"
PER_USER = "0004_consolidate_per_user"
AUDIT = "0005_audit_erasure"
HOT = "0006_semantic_memory_hot_access"
IMPORTS = "0007_imports"
VECTOR_INDEX = "0008_vector_index_parameters"
VECTOR_TYPE = "0009_vector_type"
PARTITIONED = "0010_partitioned_layout"
KEY_INDEX = "0011_memory_key_index"
KEYS_NO_FK = "0012_import_keys_no_foreign_key"
HEAD = "0013_semantic_memory_access_log"
ALL = [
    "0001_core_tables",
    "0002_memory_system",
    SECURITY,
    PER_USER,
    AUDIT,
    HOT,
    IMPORTS,
    VECTOR_INDEX,
    VECTOR_TYPE,
    PARTITIONED,
    KEY_INDEX,
    KEYS_NO_FK,
    HEAD,
]
MEMORY_TABLES = {*names.MEMORY_TABLES, names.SETTINGS_TABLE}
CORE_TABLES = set(names.CORE_TABLES)
APP_TABLES = CORE_TABLES | {"reservations"}  # tests/app_database.sql


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def rows(dsn: str, names: set[str]) -> dict[str, list[str]]:
    """Every row of the tables, as JSON text, sorted: equal snapshots mean no row was touched."""
    with psycopg.connect(dsn) as conn:
        return {
            name: [
                r[0]
                for r in conn.execute(
                    sql.SQL("SELECT to_jsonb(t)::text AS j FROM {} t ORDER BY 1").format(sql.Identifier(name))
                )
            ]
            for name in sorted(names)
        }


def structure(dsn: str, names: set[str] | None = None) -> dict[str, list[tuple]]:
    """Columns, indexes, constraints, triggers, policies, functions, views, extensions (of ``names``)."""
    only = sorted(names) if names is not None else None
    queries = {
        "columns": """SELECT table_name, column_name, ordinal_position, data_type, udt_name, is_nullable,
                             column_default, character_maximum_length, numeric_precision, numeric_scale,
                             is_generated, generation_expression
                        FROM information_schema.columns WHERE table_schema = 'public'
                         AND (%(only)s::text[] IS NULL OR table_name = ANY(%(only)s))""",
        "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
                         AND (%(only)s::text[] IS NULL OR tablename = ANY(%(only)s))""",
        "constraints": """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
                            FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
                           WHERE r.relnamespace = 'public'::regnamespace
                             AND (%(only)s::text[] IS NULL OR r.relname = ANY(%(only)s))""",
        "triggers": """SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
                         JOIN pg_class r ON r.oid = t.tgrelid
                        WHERE NOT tgisinternal AND r.relnamespace = 'public'::regnamespace
                          AND (%(only)s::text[] IS NULL OR r.relname = ANY(%(only)s))""",
        "rls": """SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class
                   WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'
                     AND (%(only)s::text[] IS NULL OR relname = ANY(%(only)s))""",
        "policies": """SELECT tablename, policyname, qual, with_check FROM pg_policies
                        WHERE schemaname = 'public'
                         AND (%(only)s::text[] IS NULL OR tablename = ANY(%(only)s))""",
        "functions": """SELECT p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid)) FROM pg_proc p
                         WHERE p.pronamespace = 'public'::regnamespace AND p.prokind = 'f'
                           AND %(only)s::text[] IS NULL""",
        "views": """SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'
                     AND %(only)s::text[] IS NULL""",
        "extensions": "SELECT extname, extversion FROM pg_extension WHERE %(only)s::text[] IS NULL",
    }
    with psycopg.connect(dsn) as conn:
        return {key: sorted(conn.execute(q, {"only": only}).fetchall()) for key, q in queries.items()}


def current(dsn: str) -> str | None:
    return migrations.status(dsn).current


def run_memcli(
    *args: str, env: dict[str, str] | None = None, **kwargs: object
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "memcli"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        **kwargs,  # type: ignore[arg-type]
    )


# --- an empty database --------------------------------------------------------------------------------


def test_empty_database_up_down_up(empty_db: str) -> None:
    result = migrations.upgrade(empty_db)
    assert result.applied == ALL and result.to_revision == HEAD and result.embedding_dimension == 384
    assert MEMORY_TABLES | CORE_TABLES | {"system_maintenance_log"} <= tables(empty_db)
    migrated = structure(empty_db)

    down = migrations.downgrade(empty_db, "base")
    assert down.applied == list(reversed(ALL))
    assert tables(empty_db) == {"alembic_version"}  # memcli created the core tables here, so it drops them
    with psycopg.connect(empty_db) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'vector'").fetchone() == (0,)
        assert conn.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
        ).fetchone() == (0,)

    assert migrations.upgrade(empty_db).applied == ALL
    assert structure(empty_db) == migrated


def test_the_summaries_wrap_between_revision_names_on_a_narrow_terminal(empty_db: str, cli) -> None:
    def lines(*args: str, exit_code: int = 0) -> list[str]:
        result = cli(*args, dsn=empty_db, env={"COLUMNS": "60"})
        assert result.exit_code == exit_code, result.output
        return (result.stdout + result.stderr).splitlines()

    pending = lines("migrate", "status", exit_code=ExitCode.NOT_READY)  # not migrated yet
    migrated = lines("migrate")
    planned = lines("migrate", "down", "base", "--dry-run")
    reverted = lines("migrate", "down", "base", "--yes")
    for shown in (pending, migrated, planned, reverted):
        assert shown and all(len(line) <= 60 for line in shown), shown
        names_shown = [name.strip(",") for line in shown for name in line.split()]
        assert set(ALL) <= set(names_shown), shown


def test_memory_rows_survive_down_and_up_of_a_later_revision(migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO businesses (id, name) VALUES ('11111111-1111-1111-1111-000000000009', 'B');"
            "INSERT INTO conversation_memory (session_id, memory_type, context_key, context_value) "
            "VALUES ('s', 'short_term', 'k', '{\"a\": 1}');"
            "INSERT INTO semantic_memory (session_id, content_type, content_text, embedding_vector) "
            "VALUES ('s', 'conversation', 'text', array_fill(0.5, ARRAY[384])::vector);"
            "INSERT INTO business_context_sections (business_id, section_type, section_name) "
            "VALUES ('11111111-1111-1111-1111-000000000009', 'overview', 'About');"
            "INSERT INTO memory_consolidation_log (session_id, consolidation_type) VALUES ('s', 'merge');"
            "INSERT INTO context_relevance (session_id, context_type, context_key) VALUES ('s', 't', 'k');"
            "INSERT INTO user_context_profiles (user_id) VALUES (gen_random_uuid());"
            "UPDATE memory_settings SET value = '14' WHERE key = 'retention.short_term_days';"
        )
    kept = MEMORY_TABLES | {"businesses"}

    def kept_rows() -> dict[str, list[str]]:
        # embedding.vector_type is revision 0009's own row: gone below it, written again on the way up
        found = rows(migrated_db, kept)
        found["memory_settings"] = [r for r in found["memory_settings"] if '"embedding.vector_type"' not in r]
        return found

    before = kept_rows()
    assert all(before[name] for name in kept)

    assert migrations.downgrade(migrated_db, "0002_memory_system").applied == [
        HEAD,
        KEYS_NO_FK,
        KEY_INDEX,
        PARTITIONED,
        VECTOR_TYPE,
        VECTOR_INDEX,
        IMPORTS,
        HOT,
        AUDIT,
        PER_USER,
        SECURITY,
    ]
    assert "system_maintenance_log" not in tables(migrated_db)
    assert rows(migrated_db, kept) == before
    assert kept_rows() == before
    assert migrations.upgrade(migrated_db).applied == [
        SECURITY,
        PER_USER,
        AUDIT,
        HOT,
        IMPORTS,
        VECTOR_INDEX,
        VECTOR_TYPE,
        PARTITIONED,
        KEY_INDEX,
        KEYS_NO_FK,
        HEAD,
    ]
    assert kept_rows() == before
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute(
            "SELECT relrowsecurity FROM pg_class WHERE relname = 'conversation_memory'"
        ).fetchone() == (True,)


def test_migrating_twice_changes_nothing(migrated_app_db: str) -> None:
    before = structure(migrated_app_db)
    settings = rows(migrated_app_db, {"memory_settings", "memcli_created_objects"})
    result = migrations.upgrade(migrated_app_db)
    assert result.applied == [] and result.from_revision == result.to_revision == HEAD
    assert structure(migrated_app_db) == before
    assert rows(migrated_app_db, {"memory_settings", "memcli_created_objects"}) == settings


# --- an application's database ------------------------------------------------------------------------


def test_adopts_an_application_database_and_downgrade_leaves_it_intact(app_db: str) -> None:
    app_rows = rows(app_db, APP_TABLES)
    app_structure = structure(app_db, APP_TABLES)
    assert all(app_rows[name] for name in APP_TABLES)  # every app table holds rows

    assert migrations.upgrade(app_db).applied == ALL
    assert rows(app_db, APP_TABLES) == app_rows
    assert structure(app_db, APP_TABLES) == app_structure  # no column, index, constraint or trigger changed
    assert tables(app_db) >= MEMORY_TABLES
    with psycopg.connect(app_db) as conn:
        created = conn.execute("SELECT object_type, object_name FROM memcli_created_objects").fetchall()
    assert created == [("extension", "vector")]  # every business table was adopted

    migrations.downgrade(app_db, "base")
    assert tables(app_db) == APP_TABLES | {"alembic_version"}
    assert rows(app_db, APP_TABLES) == app_rows
    assert structure(app_db, APP_TABLES) == app_structure


def test_creates_only_the_missing_business_tables_and_drops_only_those(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE businesses (id uuid PRIMARY KEY, name text NOT NULL, extra int)")
        conn.execute("INSERT INTO businesses VALUES ('11111111-1111-1111-1111-000000000001', 'Own', 7)")
        conn.execute("CREATE TABLE messages (id serial PRIMARY KEY, session_id text, body text)")
    migrations.upgrade(empty_db)
    with psycopg.connect(empty_db) as conn:
        created = {
            r[0]
            for r in conn.execute(
                "SELECT object_name FROM memcli_created_objects WHERE object_type = 'table'"
            )
        }
    assert created == CORE_TABLES - {"businesses", "messages"}
    migrations.downgrade(empty_db, "base")
    assert tables(empty_db) == {"businesses", "messages", "alembic_version"}
    assert rows(empty_db, {"businesses"})["businesses"] == [
        '{"id": "11111111-1111-1111-1111-000000000001", "name": "Own", "extra": 7}'
    ]


def test_an_application_table_named_like_a_memory_table_fails_with_a_hint_every_time(empty_db: str) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE memory_settings (id serial PRIMARY KEY, note text)")
    for _ in range(2):  # the second run starts at 0001_core_tables, next to the application's table
        with pytest.raises(migrations.MigrationError, match="0002_memory_system failed") as info:
            migrations.upgrade(empty_db)
        assert "RENAME" in (info.value.hint or "")
        assert current(empty_db) == "0001_core_tables"


# --- concurrency, locks, failures ---------------------------------------------------------------------


@pytest.fixture
def lock_holder(empty_db: str) -> Iterator[psycopg.Connection]:
    """A connection holding the migration advisory lock, as a running migration would."""
    conn = psycopg.connect(empty_db, autocommit=True)
    conn.execute("SELECT pg_advisory_lock(%s)", (migrations.MIGRATION_LOCK_KEY,))
    yield conn
    conn.close()


def test_two_concurrent_migrates_are_serialised(empty_db: str, lock_holder: psycopg.Connection) -> None:
    runs = [
        subprocess.Popen(
            [str(BIN / "memcli"), "--dsn", empty_db, "migrate", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    # both are connected and waiting for the lock before it is released, so they really race
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        waiting = lock_holder.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'memcli'"
        ).fetchone()
        if waiting and waiting[0] >= 2:
            break
        time.sleep(0.1)
    lock_holder.execute("SELECT pg_advisory_unlock(%s)", (migrations.MIGRATION_LOCK_KEY,))
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    applied = sorted(json.loads(out)["applied"] for out, _ in outputs)
    assert applied == [[], ALL]
    assert [err for _, err in outputs] == ["", ""]  # Alembic's progress logging stays off without -v
    assert current(empty_db) == HEAD
    assert tables(empty_db) >= MEMORY_TABLES | CORE_TABLES


def test_a_waiting_migrate_gives_up_with_exit_75(empty_db: str, lock_holder: psycopg.Connection) -> None:
    with pytest.raises(LockedError) as info:
        migrations.upgrade(empty_db, lock_wait_seconds=0.5)
    assert info.value.exit_code == 75
    assert tables(empty_db) == set()


def test_a_failed_migration_stays_at_the_last_good_revision(empty_db: str, cli) -> None:
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE system_maintenance_log (id int)")  # in the way of the third revision
    result = cli("migrate", dsn=empty_db)
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert f"migration {SECURITY} failed" in message and "already exists" in message
    assert "stays at revision 0002_memory_system" in message
    assert current(empty_db) == "0002_memory_system"
    assert tables(empty_db) >= MEMORY_TABLES


def test_ddl_fails_fast_behind_application_locks(app_db: str) -> None:
    app = psycopg.connect(app_db)
    try:
        app.execute("UPDATE businesses SET description = description")  # an open app transaction
        started = time.monotonic()
        with pytest.raises(migrations.MigrationError, match="timed out waiting for a lock") as info:
            migrations.upgrade(app_db, lock_timeout_ms=300)
        assert time.monotonic() - started < 10
        assert "0002_memory_system" in str(info.value) and "--lock-timeout" in (info.value.hint or "")
    finally:
        app.rollback()
        app.close()
    assert current(app_db) == "0001_core_tables"
    assert migrations.upgrade(app_db).applied == [
        "0002_memory_system",
        SECURITY,
        PER_USER,
        AUDIT,
        HOT,
        IMPORTS,
        VECTOR_INDEX,
        VECTOR_TYPE,
        PARTITIONED,
        KEY_INDEX,
        KEYS_NO_FK,
        HEAD,
    ]


# --- pgvector -----------------------------------------------------------------------------------------


@pytest.fixture
def empty_extension_dir() -> Iterator[str]:
    """A folder without extensions that the server's user can read."""
    path = tempfile.mkdtemp(prefix="memcli-noext-")
    os.chmod(path, 0o755)
    yield path
    os.rmdir(path)


def test_pgvector_missing_on_the_server_exits_4_and_changes_nothing(
    empty_db: str, empty_extension_dir: str, cli
) -> None:
    # Postgres 18 looks for extensions along extension_control_path: an empty folder hides pgvector.
    nowhere = empty_extension_dir
    hidden = f"{empty_db} options='-c extension_control_path={nowhere}'"
    with psycopg.connect(hidden) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone() == (0,)
    with pytest.raises(NotReadyError) as info:
        migrations.upgrade(hidden)
    assert info.value.exit_code == 4 and "pgvector" in info.value.message
    assert "apt install" in (info.value.hint or "") and "Supabase" in (info.value.hint or "")
    assert tables(empty_db) == set()

    result = cli("migrate", dsn=hidden)
    assert result.exit_code == 4
    assert (
        "pgvector" in result.stderr
        and "hint" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


@pytest.fixture
def plain_role(pg_server: str, empty_db: str) -> Iterator[str]:
    """A login role that may create tables but not extensions (like an application's role)."""
    name = f"app_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier(name)
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(ident))
    yield name
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def test_pgvector_not_allowed_exits_4_with_a_hint(empty_db: str, plain_role: str) -> None:
    dsn = f"{empty_db} user={plain_role}"
    with pytest.raises(NotReadyError) as info:
        migrations.upgrade(dsn)
    assert "permission denied" in info.value.message and "superuser" in (info.value.hint or "")
    assert current(empty_db) is None and tables(empty_db) == set()  # checked before changing anything


def test_the_database_owner_without_superuser_gets_the_true_hint_and_an_untouched_database(
    pg_server: str, databases: Any, cli: Any
) -> None:
    """pgvector is not a trusted extension: owning the database is not enough, and the hint says so."""
    role = f"owner_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        dsn = databases.create()
        with psycopg.connect(dsn, autocommit=True) as conn:
            name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(name), sql.Identifier(role))
            )
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(role)))
        result = cli("migrate", dsn=f"{dsn} user={role}")
        assert result.exit_code == 4, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert f"role {role} cannot create extension vector" in lines[0] and "nothing was changed" in lines[0]
        assert "not a trusted extension" in lines[0] and "superuser run CREATE EXTENSION vector" in lines[0]
        assert "owner" not in lines[0].split("hint:")[1].replace("owning the database is not enough", "")
        assert current(dsn) is None and tables(dsn) == set()
    finally:
        databases.drop_all()
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# --- embedding dimension ------------------------------------------------------------------------------


def test_embedding_dimension_is_chosen_at_the_first_migration(empty_db: str) -> None:
    assert migrations.upgrade(empty_db, embedding_dim=1536).embedding_dimension == 1536
    with psycopg.connect(empty_db) as conn:
        column = conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'semantic_memory'::regclass AND attname = 'embedding_vector'"
        ).fetchone()
        setting = conn.execute(
            "SELECT value FROM memory_settings WHERE key = 'embedding.dimension'"
        ).fetchone()
    assert column == ("vector(1536)",) and setting == (1536,)
    with pytest.raises(ConfigError, match="chosen at the first migration"):
        migrations.upgrade(empty_db, embedding_dim=384)
    with pytest.raises(ConfigError, match="must be from 1 to 2000"):
        migrations.upgrade(empty_db, embedding_dim=4096)


# --- offline SQL --------------------------------------------------------------------------------------


def test_offline_sql_builds_the_same_schema(empty_db: str, plain_db: str) -> None:
    # the offline SQL is the plain layout's (the partitioned one is built from the live catalog)
    script = migrations.upgrade(None, sql=True).sql
    assert script is not None
    assert "CREATE TABLE conversation_memory" in script and "CREATE EXTENSION vector" in script
    assert (
        "vector(384)" in script
        and "INSERT INTO alembic_version (version_num) VALUES ('0001_core_tables')" in script
    )
    assert "vector(1536)" in (migrations.upgrade(None, sql=True, embedding_dim=1536).sql or "")
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(script)  # as a DBA would run it in psql or the Supabase SQL editor
    assert current(empty_db) == HEAD
    assert structure(empty_db) == structure(plain_db)

    down = migrations.downgrade(None, f"{HEAD}:base", sql=True).sql
    with psycopg.connect(empty_db, autocommit=True) as conn:
        conn.execute(down or "")
    assert tables(empty_db) == {"alembic_version"}


def test_migrate_sql_prints_sql_without_a_database(cli) -> None:
    result = cli("migrate", "--sql", dsn="postgresql://nobody@127.0.0.1:1/nothing")
    assert result.exit_code == 0
    assert "CREATE TABLE conversation_memory" in result.stdout and result.stderr == ""
    result = cli("migrate", "down", "head:0002_memory_system", "--sql")
    assert result.exit_code == 0 and "DROP TABLE system_maintenance_log" in result.stdout


# --- the command line ---------------------------------------------------------------------------------


def test_cli_migrate_status_history_and_down(empty_db: str, cli) -> None:
    status = cli("migrate", "status", "--json", dsn=empty_db)
    assert status.exit_code == 4 and json.loads(status.stdout)["pending"][0]["revision"] == "0001_core_tables"

    first = cli("migrate", "--json", dsn=empty_db)
    assert first.exit_code == 0 and json.loads(first.stdout)["applied"] == ALL
    again = cli("migrate", dsn=empty_db)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    status = cli("migrate", "status", dsn=empty_db)
    assert status.exit_code == 0 and "up to date" in status.stdout

    history = cli("migrate", "history", "--json")
    assert [rev["revision"] for rev in json.loads(history.stdout)["revisions"]] == ALL

    dry = cli("migrate", "down", "base", "--dry-run", "--json", dsn=empty_db)
    plan = json.loads(dry.stdout)
    assert dry.exit_code == 0 and plan["revisions"] == list(reversed(ALL))
    assert any("table businesses" in item for item in plan["drops"])
    assert current(empty_db) == HEAD

    refused = cli("migrate", "down", "0002_memory_system", dsn=empty_db, input="n\n")
    assert refused.exit_code == 1 and current(empty_db) == HEAD
    accepted = cli("migrate", "down", "0002_memory_system", dsn=empty_db, input="y\n")
    assert accepted.exit_code == 0 and current(empty_db) == "0002_memory_system"
    assert "system_maintenance_log" in accepted.stderr  # the confirmation said what it drops

    unknown = cli("migrate", "down", "nope", "--yes", dsn=empty_db)
    assert unknown.exit_code == 2 and "unknown revision" in unknown.stderr


def test_verbose_migrate_shows_alembics_progress(empty_db: str) -> None:
    result = run_memcli("-v", "--dsn", empty_db, "migrate")
    assert result.returncode == 0, result.stderr
    assert "Running upgrade  -> 0001_core_tables" in result.stderr


def test_plain_alembic_from_a_checkout_resolves_the_dsn_like_memcli(empty_db: str) -> None:
    env = {**os.environ, "MEMCLI_DATABASE_URL": empty_db}
    env.pop("DATABASE_URL", None)
    up = subprocess.run(
        [str(BIN / "alembic"), "upgrade", "head"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    assert "Running upgrade" in up.stderr  # the ini file's logging: alembic's own CLI stays talkative
    assert current(empty_db) == HEAD
    down = subprocess.run(
        [str(BIN / "alembic"), "-x", f"dsn={empty_db}", "downgrade", "0002_memory_system"],
        cwd=REPO,
        env={k: v for k, v in env.items() if k != "MEMCLI_DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 0, down.stderr
    assert current(empty_db) == "0002_memory_system"


def test_an_installed_wheel_migrates(empty_db: str, tmp_path: Path) -> None:
    """The wheel carries its migration scripts: an installed memcli migrates from any directory."""
    dist = tmp_path / "dist"
    subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True,
        timeout=300,
    )
    wheel = next(dist.glob("memcli-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # pip of the dev environment installs the wheel into the fresh venv (console script included); the
    # dependencies are not installed again but found in the dev environment, which a .pth file appends
    # after the venv's own site-packages (its editable memcli hook is not processed from there).
    subprocess.run(
        [
            str(BIN / "pip"),
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    site = next(venv.glob("lib/python*/site-packages"))
    deps = next(Path(sys.executable).parent.parent.glob("lib/python*/site-packages"))
    (site / "memcli-deps.pth").write_text(f"{deps}\n")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MEMCLI_DATABASE_URL", "DATABASE_URL")
    }
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = "import memcli, memcli.migrations as m; print(memcli.__file__); print(m.script_location())"
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "memcli" / "_migrations")
    migrate = subprocess.run(
        [str(venv / "bin" / "memcli"), "--dsn", empty_db, "migrate", "--json"],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert json.loads(migrate.stdout)["applied"] == ALL
    assert current(empty_db) == HEAD


# --- connections --------------------------------------------------------------------------------------


@pytest.fixture
def connection_opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every connection psycopg opens from now on (the real connect runs; it is only counted)."""
    opened: list[str] = []
    real = psycopg.connect

    def counting(conninfo: str = "", **kwargs: Any) -> Any:
        opened.append(kwargs.get("dbname") or conninfo)
        return real(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting)
    return opened


def test_one_migrate_opens_one_connection(
    cli: Any, empty_db: str, migrated_db: str, connection_opens: list[str]
) -> None:
    assert cli("migrate", dsn=empty_db).exit_code == 0  # a first migration: state, pgvector check, Alembic
    assert len(connection_opens) == 1
    connection_opens.clear()
    assert cli("migrate", dsn=migrated_db).exit_code == 0  # nothing to do
    assert len(connection_opens) == 1
    connection_opens.clear()
    assert cli("migrate", "--to", "no_such_revision", dsn=migrated_db).exit_code == 2
    assert len(connection_opens) <= 1
    connection_opens.clear()
    assert cli("migrate", "status", dsn=migrated_db).exit_code == 0
    assert len(connection_opens) == 1


def test_semantic_memory_fillfactor_comes_and_goes_with_its_revision(migrated_db: str) -> None:
    def reloptions() -> list[str]:
        with psycopg.connect(migrated_db) as conn:
            row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'semantic_memory'").fetchone()
        return row[0] or []

    assert reloptions() == ["fillfactor=75"]
    assert migrations.downgrade(migrated_db, AUDIT).applied == [
        HEAD,
        KEYS_NO_FK,
        KEY_INDEX,
        PARTITIONED,
        VECTOR_TYPE,
        VECTOR_INDEX,
        IMPORTS,
        HOT,
    ]
    assert reloptions() == []
    assert migrations.upgrade(migrated_db).applied == [
        HOT,
        IMPORTS,
        VECTOR_INDEX,
        VECTOR_TYPE,
        PARTITIONED,
        KEY_INDEX,
        KEYS_NO_FK,
        HEAD,
    ]
    assert reloptions() == ["fillfactor=75"]


def test_import_key_map_foreign_key_goes_and_comes_back_with_its_revision(migrated_db: str) -> None:
    def foreign_keys() -> list[str]:
        with psycopg.connect(migrated_db) as conn:
            rows = conn.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = 'memory_import_keys'::regclass "
                "AND contype = 'f'"
            ).fetchall()
        return [r[0] for r in rows]

    assert foreign_keys() == []
    with psycopg.connect(migrated_db) as conn:
        kept = conn.execute(
            "INSERT INTO memory_imports (layout, source_name, status) VALUES ('jsonl', 'a', 'completed') "
            "RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO memory_import_keys (source_name, source_key, target_table, target_id, import_id) "
            "VALUES ('a', 'k1', 'semantic_memory', gen_random_uuid(), %s), "
            "('b', 'k2', 'semantic_memory', gen_random_uuid(), gen_random_uuid())",
            (kept,),
        )
    assert migrations.downgrade(migrated_db, KEY_INDEX).applied == [HEAD, KEYS_NO_FK]
    assert foreign_keys() == ["memory_import_keys_import_id_fkey"]
    # the row of an import with no record went, as the cascade would have taken it
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT source_key FROM memory_import_keys").fetchall() == [("k1",)]
    assert migrations.upgrade(migrated_db).applied == [KEYS_NO_FK, HEAD]
    assert foreign_keys() == []
