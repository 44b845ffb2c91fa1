"""memcli.schema.names is the one source of the schema's names: the models, health's expected objects and
the landed revisions (which keep their own frozen copies) all agree with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import psycopg

from memcli.health import expected
from memcli.schema import models, names

VERSIONS = Path(__file__).resolve().parent.parent / "alembic" / "versions"


def revision(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, VERSIONS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_are_named_from_the_names_module() -> None:
    tables = set(models.Base.metadata.tables)
    assert set(names.MEMORY_TABLES) | set(names.CORE_TABLES) <= tables
    assert tables == set(names.MEMCLI_TABLES) - {names.ALEMBIC_VERSION} | set(names.CORE_TABLES)
    column = models.SemanticMemory.__table__.c.embedding_vector
    assert column.type.dim == names.DEFAULT_EMBEDDING_DIMENSION


def test_health_expects_exactly_the_named_objects() -> None:
    assert tuple(expected.MEMCLI_TABLES) == names.MEMCLI_TABLES
    assert tuple(expected.CORE_TABLES) == names.CORE_TABLES
    assert (expected.VIEWS, expected.FUNCTIONS, expected.TRIGGERS) == (
        names.VIEWS,
        names.FUNCTIONS,
        names.TRIGGERS,
    )


def test_landed_revisions_agree_with_the_names() -> None:
    core = revision("0001_core_tables")
    assert sorted(name for name, _, _ in core.CORE_TABLES) == sorted(names.CORE_TABLES)
    security = revision("0003_operations_security")
    assert security.MEMORY_TABLES == names.MEMORY_TABLES
    assert security.POLICY == names.RLS_POLICY and security.MONITOR_POLICY == names.MONITOR_POLICY
    people = revision("0005_audit_erasure")
    assert (people.AUDIT, people.RECEIPTS, people.SCOPE, people.CLOSURES) == names.PEOPLE_TABLES


def test_migrated_database_has_every_named_object(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        present = {
            name
            for (name,) in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            )
        }
        assert set(names.MEMCLI_TABLES) | set(names.CORE_TABLES) | set(names.VIEWS) <= present
        for function in names.FUNCTIONS:
            assert conn.execute("SELECT to_regprocedure(%s)", (function,)).fetchone()[0], function
        dimension = conn.execute(
            "SELECT value FROM memory_settings WHERE key = 'embedding.dimension'"
        ).fetchone()[0]
        assert dimension == names.DEFAULT_EMBEDDING_DIMENSION
