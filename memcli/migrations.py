"""Schema migrations: Alembic driven from code, serialised, fail-fast, offline-capable.

- ``upgrade`` / ``downgrade`` run the scripts in ``alembic/`` (a checkout) or ``memcli/_migrations`` (an
  installed wheel), each revision in its own transaction: a failure leaves the database at the last good
  revision and raises MigrationError naming the revision and the reason.
- Concurrent runs are serialised by a session-level advisory lock: a second run waits (up to
  ``lock_wait_seconds``, then LockedError) and then finds the work done.
- After the lock, ``lock_timeout`` is set so DDL that would queue behind the application's transactions
  fails fast instead of blocking the application behind it.
- ``sql=True`` renders the SQL without a database (for DBAs and the Supabase SQL editor).
- pgvector missing (not installed on the server, or not allowed): NotReadyError (exit 4) saying how to get it.

This module imports Alembic and SQLAlchemy only inside its functions.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError, LockedError, MemcliError, NotReadyError
from memcli.schema import names

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.engine import Connection, Engine

# pg_advisory_lock key of schema migrations: b"memcli:m" as a big-endian bigint.
MIGRATION_LOCK_KEY = int.from_bytes(b"memcli:m", "big", signed=True)
DEFAULT_DIMENSION = names.DEFAULT_EMBEDDING_DIMENSION
MAX_DIMENSION = names.MAX_EMBEDDING_DIMENSION
DEFAULT_LOCK_TIMEOUT_MS = 10_000
DEFAULT_LOCK_WAIT_SECONDS = 300.0

PGVECTOR_SQLSTATES = {"0A000", "58P01", "42501"}  # not available, control file missing, permission denied
PGVECTOR_INSTALL_HINT = (
    "install pgvector on the server (Debian/Ubuntu: apt install postgresql-<major>-pgvector; RHEL: dnf "
    "install pgvector_<major>; macOS: brew install pgvector; Docker: image pgvector/pgvector), or on a "
    "hosted Postgres enable 'vector' on the provider's extensions page (Supabase: Dashboard > Database > "
    "Extensions); then re-run memcli migrate"
)


_IN_PROCESS = threading.Lock()


class MigrationError(MemcliError):
    """A migration failed; the database stays at the last revision that succeeded."""


@dataclass
class RevisionInfo:
    revision: str
    down_revision: str | None
    description: str
    is_head: bool = False


@dataclass
class MigrationResult:
    action: str  # "upgrade" | "downgrade"
    target: str
    from_revision: str | None = None
    to_revision: str | None = None
    applied: list[str] = field(default_factory=list)
    sql: str | None = None  # the rendered SQL in offline mode
    embedding_dimension: int | None = None
    duration_seconds: float = 0.0


@dataclass
class MigrationStatus:
    current: str | None
    head: str
    pending: list[RevisionInfo]
    up_to_date: bool
    embedding_dimension: int | None = None


def script_location() -> Path:
    """The migration scripts: the copy installed with the package, else ``alembic/`` of a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_migrations", package.parent / "alembic"):
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise ConfigError(
        f"migration scripts not found (looked in {package.parent / 'alembic'} and {package / '_migrations'})",
        hint="reinstall memcli",
    )


def load_revision(filename: str) -> ModuleType:
    """The revision module in ``versions/filename``: a later revision's downgrade puts back an earlier one's
    definitions from it rather than from a copy. (A revision's file name is not an importable module name.)"""
    import importlib.util

    path = script_location() / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"memcli_revision_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def alembic_config(
    dsn: str | None = None,
    *,
    connection: Connection | None = None,
    embedding_dim: int | None = None,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    output: io.StringIO | None = None,
    partitioned: bool = False,
    vector_type: str | None = None,
) -> AlembicConfig:
    """An Alembic Config built in code (no alembic.ini needed); env.py reads the ``memcli.*`` attributes."""
    from alembic.config import Config

    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", str(script_location()))
    cfg.attributes["memcli.dsn"] = dsn
    if connection is not None:
        cfg.attributes["connection"] = connection  # env.py migrates over it: no connection of its own
    cfg.attributes["memcli.embedding_dim"] = embedding_dim
    cfg.attributes["memcli.partitioned"] = partitioned
    cfg.attributes["memcli.vector_type"] = vector_type
    cfg.attributes["memcli.lock_timeout_ms"] = lock_timeout_ms
    cfg.attributes["memcli.lock_wait_seconds"] = lock_wait_seconds
    return cfg


def make_engine(dsn: str) -> Engine:
    """A SQLAlchemy engine whose connections come from memcli.db.connect (same errors, same settings)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from memcli.db import connect

    return create_engine("postgresql+psycopg://", creator=lambda: connect(dsn), poolclass=NullPool)


@contextmanager
def session(dsn: str) -> Iterator[Connection]:
    """One database connection for a whole migration command: its checks, Alembic's run and its report.

    A migration used to open one for each question it asked; a pool of five where one suffices, and each a
    chance to meet ``max_connections`` half-way through.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    from memcli.db import connect

    raw = connect(dsn)
    engine = create_engine("postgresql+psycopg://", creator=lambda: raw, poolclass=StaticPool)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
        raw.close()


@contextmanager
def migration_lock(
    conn: Connection,
    *,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> Iterator[None]:
    """Hold the migration advisory lock (polled: a waiter queues no lock) and set lock_timeout."""
    from sqlalchemy import text

    deadline = time.monotonic() + wait_seconds
    while True:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}).scalar()
        conn.commit()
        if got:
            break
        if time.monotonic() >= deadline:
            raise LockedError(
                f"another migration has held the migration lock for more than {wait_seconds:g} s",
                hint="wait for it to finish (see pg_stat_activity, application_name memcli) and retry",
            )
        time.sleep(0.2)
    try:
        conn.execute(
            text("SELECT set_config('lock_timeout', :value, false)"), {"value": f"{lock_timeout_ms}ms"}
        )
        conn.commit()
        yield
    finally:
        try:
            conn.rollback()
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
        except Exception:
            pass  # the connection is gone, and the server released the session's lock with it


def _check_vector_type(conn: Connection, kind: str, source: str) -> None:
    """Refuse a vector type other than the column's on a table that holds memories (an empty one is
    retyped by the migration)."""
    from sqlalchemy import text

    try:
        row = conn.execute(
            text(
                "SELECT t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = to_regclass('semantic_memory') AND a.attname = 'embedding_vector' "
                "AND NOT a.attisdropped"
            )
        ).first()
        full = (
            row is not None and conn.execute(text("SELECT EXISTS (SELECT 1 FROM semantic_memory)")).scalar()
        )
    finally:
        conn.rollback()
    if row is not None and full and row[0] != kind:
        raise ConfigError(
            f"this database's vectors are of type {row[0]}, not {kind} ({source}), and it holds memories",
            hint=f"convert them online: memcli vectors convert {kind}",
        )


def _database_state(conn: Connection) -> tuple[str | None, int | None]:
    """The database's memcli revision and its embedding dimension.

    The dimension is read only past 0001_core_tables: before that, a memory_settings table would be the
    application's, not memcli's.
    """
    from sqlalchemy import text

    try:
        versions, settings = conn.execute(
            text("SELECT to_regclass('alembic_version'), to_regclass('memory_settings')")
        ).one()
        row = conn.execute(text("SELECT version_num FROM alembic_version")).first() if versions else None
        revision = str(row[0]) if row else None
        value = None
        if settings is not None and revision not in (None, "0001_core_tables"):
            row = conn.execute(
                text("SELECT value FROM memory_settings WHERE key = 'embedding.dimension'")
            ).first()
            value = row[0] if row else None
    finally:
        conn.rollback()  # read-only: end the transaction so no lock is held while Alembic runs
    try:
        dimension = int(float(value)) if isinstance(value, int | float | str) else None
    except ValueError:
        dimension = None
    return revision, dimension


PARTITIONED_LAYOUT_REVISION = "0010_partitioned_layout"


def _require_partitioned(conn: Connection) -> None:
    """``--partitioned`` on a database past the first migration: fine if it is partitioned already."""
    from sqlalchemy import text

    from memcli.partitions.layout import SPECS

    plain = [
        spec.table
        for spec in SPECS
        if conn.execute(
            text("SELECT relkind FROM pg_class WHERE oid = to_regclass(:t)"), {"t": spec.table}
        ).scalar()
        != "p"
    ]
    conn.rollback()
    if plain:
        raise ConfigError(
            f"this database is migrated with plain tables ({', '.join(plain)}); the layout is chosen at the "
            "first migration",
            hint="convert it online: memcli partition convert",
        )


def require_pgvector_creatable(conn: Connection) -> None:
    """Fail before changing anything when this role cannot get pgvector into this database.

    The server's own rules decide (superuser, a trusted extension, a provider's allowlist hook): the
    extension is created in a transaction that is rolled back. Only the hint is chosen from what the
    catalogs say about the role and the extension.
    """
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    try:
        if conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).first():
            return
        if conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first() is None:
            raise NotReadyError(
                'pgvector is not installed on this Postgres server (extension "vector" is not available); '
                "nothing was changed",
                hint=PGVECTOR_INSTALL_HINT,
            )
        try:
            conn.execute(text("CREATE EXTENSION vector"))
        except DBAPIError as exc:
            conn.rollback()
            raise _pgvector_refused(conn, exc) from None
    finally:
        conn.rollback()


def _pgvector_refused(conn: Connection, exc: Exception) -> NotReadyError:
    from sqlalchemy import text

    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    reason = (getattr(diag, "message_primary", None) or str(orig or exc)).strip().splitlines()[0]
    role, database, superuser, trusted = conn.execute(
        text(
            """
            SELECT current_user, current_database(),
                   (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
                   (SELECT v.trusted FROM pg_available_extension_versions v
                    JOIN pg_available_extensions e ON e.name = v.name AND e.default_version = v.version
                    WHERE v.name = 'vector')
            """
        )
    ).one()
    conn.rollback()
    message = (
        f"role {role} cannot create extension vector in database {database} ({reason}); nothing was changed"
    )
    if trusted and not superuser:
        hint = (
            f"pgvector is a trusted extension here: grant the role CREATE on the database (GRANT CREATE ON "
            f"DATABASE {database} TO {role};) or migrate as the database owner"
        )
    else:
        hint = (
            "pgvector is not a trusted extension on this server, so owning the database is not enough: "
            f"have a superuser run CREATE EXTENSION vector; in database {database} and re-run memcli "
            "migrate. On a hosted Postgres, enable it where the provider allows extensions (Supabase: "
            "Dashboard > Database > Extensions; Azure: add VECTOR to the azure.extensions server parameter; "
            "RDS / Cloud SQL: a member of rds_superuser / cloudsqlsuperuser runs CREATE EXTENSION vector)"
        )
    return NotReadyError(message, hint=hint)


def _path(script: Any, start: str | None, end: str | None) -> list[str]:
    """Revisions strictly after ``start`` up to and including ``end``, oldest first."""
    if end is None or start == end:
        return []
    revs = [rev.revision for rev in script.iterate_revisions(end, start or "base")]
    return [r for r in reversed(revs) if r != start]


def _translate(
    exc: Exception, conn: Connection, dsn: str, script: Any, target: str, action: str
) -> MemcliError:
    """A failed Alembic run as a one-line MemcliError with the failing revision and the database's state."""
    from sqlalchemy.exc import DBAPIError

    from memcli.dsn import scrub, secrets_of

    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    sqlstate = getattr(orig, "sqlstate", None)
    diag = getattr(orig, "diag", None)
    primary = (getattr(diag, "message_primary", None) if diag else None) or str(orig or exc)
    reason = primary.strip().splitlines()[0] if primary.strip() else exc.__class__.__name__
    reason = scrub(reason, *secrets_of(dsn))
    try:
        now, _ = _database_state(conn)
        state = f"the database stays at revision {now or 'base (empty)'}"
    except Exception:  # the connection itself is gone: the server rolled the open revision back
        now = None
        state = "the database stays at its last committed revision (see memcli migrate status)"

    if sqlstate in PGVECTOR_SQLSTATES and ("vector" in reason or "pgvector" in reason):
        text = reason if reason.startswith("pgvector") else f"pgvector is not available: {reason}"
        return NotReadyError(f"{text}; {state}", hint=PGVECTOR_INSTALL_HINT)
    failed = None
    try:
        if action == "upgrade":
            remaining = _path(script, now, script.get_revision(target).revision if target else None)
            failed = remaining[0] if remaining else None
        else:
            failed = now
    except Exception:
        pass  # naming the revision is a courtesy; the reason is what matters
    where = f"migration {failed}" if failed else f"{action}"
    if sqlstate == "55P03":
        return MigrationError(
            f"{where} timed out waiting for a lock ({reason}); {state}",
            hint="the application holds locks on these tables: retry when it is quieter, or raise "
            "--lock-timeout",
        )
    hint = getattr(diag, "message_hint", None) if diag else None
    if sqlstate == "42P07" and not hint:  # duplicate table: something of that name exists already
        hint = (
            "memcli creates the memory and operating tables itself: rename the existing one (ALTER TABLE ... "
            "RENAME TO ...) and migrate again"
        )
    return MigrationError(f"{where} failed: {reason}; {state}", hint=hint or "run with -v for details")


def upgrade(
    dsn: str | None,
    revision: str = "head",
    sql: bool = False,
    embedding_dim: int | None = None,
    *,
    dimension_source: str = "--embedding-dim",
    partitioned: bool = False,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
    vector_type: str | None = None,
    vector_type_source: str = "--vector-type",
) -> MigrationResult:
    """Upgrade the database at ``dsn`` to ``revision`` (or render the SQL with ``sql=True``, no database).

    ``partitioned`` chooses the partitioned layout of the growing tables; it takes effect at the revision
    that introduces it, on tables still empty (a database migrated plain is converted with ``memcli
    partition convert``).

    ``embedding_dim`` is the dimension a first migration gives the vectors (None: the default); on a
    database that has one already, a different one is refused, naming ``dimension_source``. Likewise
    ``vector_type`` (vector or halfvec; None: the default, vector): a database holding memories of another
    type is refused with the command that converts it online. The whole run uses one connection.
    """
    from alembic.script import ScriptDirectory

    from alembic import command

    started = time.perf_counter()
    from memcli.config import checked

    dim = (
        DEFAULT_DIMENSION
        if embedding_dim is None
        else checked("embedding.dimension", embedding_dim, dimension_source)
    )
    kind = None if vector_type is None else checked("embedding.vector_type", vector_type, vector_type_source)
    if sql:
        out = io.StringIO()
        cfg = alembic_config(None, embedding_dim=dim, output=out, vector_type=kind)
        _run(command.upgrade, cfg, revision, sql=True)
        return MigrationResult(
            "upgrade", revision, sql=out.getvalue(), embedding_dimension=dim, duration_seconds=_since(started)
        )
    if dsn is None:
        raise ConfigError("no database to migrate", hint="give --dsn or configure a database")

    with session(dsn) as conn:
        before, stored = _database_state(conn)
        if embedding_dim is not None and stored is not None and stored != dim:
            raise ConfigError(
                f"this database's embedding dimension is {stored}, not {dim} ({dimension_source}); it is "
                "chosen at the first migration",
                hint="drop the setting for this database, or migrate a new database for another dimension",
            )
        if kind is not None:
            _check_vector_type(conn, kind, vector_type_source)
        if before in (None, "0001_core_tables"):
            require_pgvector_creatable(conn)
        cfg = alembic_config(
            dsn,
            connection=conn,
            embedding_dim=dim,
            vector_type=kind,
            lock_timeout_ms=lock_timeout_ms,
            lock_wait_seconds=lock_wait_seconds,
            partitioned=partitioned,
        )
        script = ScriptDirectory.from_config(cfg)
        if partitioned and before is not None and PARTITIONED_LAYOUT_REVISION in _path(script, None, before):
            _require_partitioned(conn)
        try:
            _run(command.upgrade, cfg, revision)
        except MemcliError:
            raise
        except Exception as exc:
            raise _translate(exc, conn, dsn, script, revision, "upgrade") from exc
        after, dimension = _database_state(conn)
    start = cfg.attributes.get("memcli.start_revision", before)
    return MigrationResult(
        "upgrade",
        revision,
        from_revision=start,
        to_revision=after,
        applied=_path(script, start, after),
        embedding_dimension=dimension,
        duration_seconds=_since(started),
    )


def downgrade(
    dsn: str | None,
    revision: str,
    sql: bool = False,
    *,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    lock_wait_seconds: float = DEFAULT_LOCK_WAIT_SECONDS,
) -> MigrationResult:
    """Downgrade to ``revision`` ("base" removes everything memcli created, never the application's tables).

    Offline (``sql=True``) needs the starting revision: give ``FROM:TO``, or a DSN to read it from.
    """
    from alembic.script import ScriptDirectory

    from alembic import command

    started = time.perf_counter()
    if sql:
        target = revision
        if ":" not in revision:
            if dsn is None:
                raise ConfigError(
                    "offline downgrade needs the starting revision", hint="give FROM:TO, e.g. head:base"
                )
            with session(dsn) as conn:
                current, _ = _database_state(conn)
            if current is None:
                raise ConfigError("the database has no memcli revision to downgrade from")
            target = f"{current}:{revision}"
        out = io.StringIO()
        _run(command.downgrade, alembic_config(None, output=out), target, sql=True)
        return MigrationResult("downgrade", revision, sql=out.getvalue(), duration_seconds=_since(started))
    if dsn is None:
        raise ConfigError("no database to migrate", hint="give --dsn or configure a database")

    with session(dsn) as conn:
        before, _ = _database_state(conn)
        cfg = alembic_config(
            dsn, connection=conn, lock_timeout_ms=lock_timeout_ms, lock_wait_seconds=lock_wait_seconds
        )
        script = ScriptDirectory.from_config(cfg)
        _check_revision(script, revision)
        try:
            _run(command.downgrade, cfg, revision)
        except MemcliError:
            raise
        except Exception as exc:
            raise _translate(exc, conn, dsn, script, revision, "downgrade") from exc
        after, _ = _database_state(conn)
    start = cfg.attributes.get("memcli.start_revision", before)
    return MigrationResult(
        "downgrade",
        revision,
        from_revision=start,
        to_revision=after,
        applied=list(reversed(_path(script, after, start))),
        duration_seconds=_since(started),
    )


# What reverting each revision removes (the core tables: only those memcli created, read from the database).
REVISION_DROPS: dict[str, list[str]] = {
    "0013_semantic_memory_access_log": [
        "table semantic_memory_access (access recorded during a vector index build is folded into "
        "semantic_memory first)",
    ],
    "0012_import_keys_no_foreign_key": [
        "nothing: the import key map's foreign key to memory_imports comes back (key rows of an import whose "
        "record was deleted by hand are removed first, as its cascade would have)",
    ],
    "0011_memory_key_index": [
        "table conversation_memory_keys and function memcli_conversation_memory_release(); the partitioned "
        "layout's unique-key trigger goes back to looking the key up in every partition",
    ],
    "0010_partitioned_layout": [
        "functions create_memory_partition(date), memcli_create_partition(regclass, date), "
        "memcli_memory_expiry(...), memcli_lock_memory_key(text, text), memcli_conversation_memory_unique()",
        "the partitioned layout, if chosen: its rows are copied back into plain tables",
    ],
    "0008_vector_index_parameters": [
        "nothing: a small table's vector index is rebuilt with pgvector's default parameters",
    ],
    "0007_imports": [
        "tables memory_imports, memory_import_keys (the import records; imported memories stay)"
    ],
    "0006_semantic_memory_hot_access": ["semantic_memory's fillfactor 75 (back to Postgres' default, 100)"],
    "0005_audit_erasure": [
        "tables memcli_audit_log, memcli_erasure_receipts, memcli_erasure_scope, memcli_session_closures "
        "(the audit trail, erasure receipts and session closures, with all their rows)",
    ],
    "0004_consolidate_per_user": [
        "consolidate_session_memories(text[, interval]) merging per owner (back to one memory per session)",
    ],
    "0003_operations_security": [
        "table system_maintenance_log (the maintenance-run log)",
        "row-level security policies on the memory tables",
    ],
    "0002_memory_system": [
        "tables conversation_memory, business_context_sections, semantic_memory, memory_consolidation_log, "
        "context_relevance, user_context_profiles, memory_settings (and all their rows)",
        "views, functions and triggers of the memory system",
        "extension vector, if memcli created it and nothing else uses it",
    ],
    "0001_core_tables": ["table memcli_created_objects"],
}


@dataclass
class DowngradePlan:
    from_revision: str | None
    to_revision: str | None
    revisions: list[str]
    drops: list[str]


def plan_downgrade(dsn: str, revision: str) -> DowngradePlan:
    """What ``downgrade(dsn, revision)`` would revert and drop, changing nothing."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    _check_revision(script, revision)
    target = None if revision == "base" else script.get_revision(revision).revision
    with session(dsn) as conn:
        current, _ = _database_state(conn)
        if current is None:
            return DowngradePlan(None, target, [], [])
        remaining = set(_path(script, None, target)) if target else set()
        revisions = [r for r in reversed(_path(script, None, current)) if r not in remaining]
        drops: list[str] = []
        for rev in revisions:
            if rev == "0001_core_tables":
                drops.extend(f"table {name} (created by memcli)" for name in _created_tables(conn))
            drops.extend(REVISION_DROPS.get(rev, []))
    return DowngradePlan(current, target, revisions, drops)


def _created_tables(conn: Connection) -> list[str]:
    from sqlalchemy import text

    try:
        if conn.execute(text("SELECT to_regclass('memcli_created_objects')")).scalar() is None:
            return []
        rows = conn.execute(
            text(
                "SELECT object_name FROM memcli_created_objects WHERE object_type = 'table' "
                "ORDER BY created_at"
            )
        ).all()
    finally:
        conn.rollback()
    return [str(r[0]) for r in rows]


def status(dsn: str) -> MigrationStatus:
    """Current revision, head and the revisions an upgrade would apply."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    assert head is not None
    with session(dsn) as conn:
        current, dimension = _database_state(conn)
    pending_ids = _path(script, current, head)
    pending = [_info(script.get_revision(rev), head) for rev in pending_ids]
    return MigrationStatus(
        current=current,
        head=head,
        pending=pending,
        up_to_date=current == head,
        embedding_dimension=dimension,
    )


def history() -> list[RevisionInfo]:
    """All revisions, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    return [_info(rev, head) for rev in reversed(list(script.walk_revisions()))]


def _info(rev: Any, head: str | None) -> RevisionInfo:
    down = rev.down_revision
    return RevisionInfo(
        revision=rev.revision,
        down_revision=down if isinstance(down, str) or down is None else ",".join(down),
        description=(rev.doc or "").strip().splitlines()[0] if rev.doc else "",
        is_head=rev.revision == head,
    )


def _check_revision(script: Any, revision: str) -> None:
    from alembic.util import CommandError

    if revision in ("base", "head") or revision.startswith(("-", "+")):
        return
    try:
        if script.get_revision(revision) is None:
            raise CommandError(revision)
    except CommandError:
        known = ", ".join(r.revision for r in reversed(list(script.walk_revisions())))
        raise ConfigError(f"unknown revision {revision!r}", hint=f"one of: base, {known}") from None


def _run(fn: Any, cfg: AlembicConfig, revision: str, **kwargs: Any) -> None:
    from alembic.util import CommandError

    try:
        # Alembic keeps the running migration in module globals (alembic.context, alembic.op): one at a time
        # per process. Other processes are serialised by the advisory lock.
        with _IN_PROCESS:
            fn(cfg, revision, **kwargs)
    except CommandError as exc:
        raise ConfigError(f"alembic: {exc}", hint="see memcli migrate history for the revisions") from None


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def env_settings(attributes: dict[str, Any], x_args: dict[str, str], main_url: str | None) -> dict[str, Any]:
    """What env.py needs: DSN, embedding dimension, lock settings.

    ``memcli migrate`` hands in its resolved configuration (and its connection); plain ``alembic`` resolves
    memcli's configuration the same way, with ``-x dsn=... -x embedding_dim=...`` as the flags.
    """
    if "memcli.embedding_dim" in attributes:
        return {
            "dsn": attributes.get("memcli.dsn"),
            "config": None,
            "embedding_dim": attributes["memcli.embedding_dim"],
            "partitioned": bool(attributes.get("memcli.partitioned")),
            "vector_type": attributes.get("memcli.vector_type"),
            "lock_timeout_ms": attributes["memcli.lock_timeout_ms"],
            "lock_wait_seconds": attributes["memcli.lock_wait_seconds"],
        }
    from memcli.config import load_config

    dsn = x_args.get("dsn") or (main_url or None)
    if dsn and dsn.startswith("postgresql+"):
        dsn = "postgresql" + dsn[dsn.index(":") :]
    config = load_config(
        dsn=dsn,
        flags={
            "embedding.dimension": x_args.get("embedding_dim"),
            "embedding.vector_type": x_args.get("vector_type"),
            "migrate.lock_timeout": x_args.get("lock_timeout"),
            "migrate.lock_wait": x_args.get("lock_wait"),
        },
    )
    return {
        "dsn": None,  # resolved (maybe starting the embedded server) only when going online
        "config": config,
        "embedding_dim": config.value("embedding.dimension"),
        "partitioned": x_args.get("partitioned", "").strip().lower() in ("1", "true", "yes", "on"),
        "vector_type": config.value("embedding.vector_type"),
        "lock_timeout_ms": int(config.value("migrate.lock_timeout") * 1000),
        "lock_wait_seconds": config.value("migrate.lock_wait"),
    }
