"""Alembic environment of memcli's schema.

``memcli migrate`` passes in its resolved configuration and the one connection it migrates over. Plain
``alembic upgrade head`` in a checkout resolves memcli's configuration as memcli does (``-x dsn=...``
and ``-x embedding_dim=...`` act as the flags, then MEMCLI_DATABASE_URL, DATABASE_URL, memcli.toml, else
the embedded server), so it migrates the same database with the same dimension.

Online runs hold memcli's migration advisory lock, set ``lock_timeout`` and commit each revision in its own
transaction. ``--sql`` (offline) renders the SQL without connecting.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from memcli import migrations
from memcli.schema.models import Base, include_object

config = context.config

# Only the alembic CLI (which has an ini file) configures logging; memcli leaves it to its -v option.
if config.config_file_name is not None and not config.attributes.get("memcli.dsn"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

settings = migrations.env_settings(
    config.attributes, context.get_x_argument(as_dictionary=True), config.get_main_option("sqlalchemy.url")
)
# The migration scripts read the dimension from here.
config.attributes["memcli.embedding_dim"] = settings["embedding_dim"]
config.attributes["memcli.partitioned"] = settings["partitioned"]
config.attributes["memcli.vector_type"] = settings["vector_type"]

target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url="postgresql+psycopg://",
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from memcli.db import resolve_dsn

    engine = migrations.make_engine(settings["dsn"] or resolve_dsn(settings["config"]))
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    with migrations.migration_lock(
        connection, lock_timeout_ms=settings["lock_timeout_ms"], wait_seconds=settings["lock_wait_seconds"]
    ):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            transaction_per_migration=True,
            include_object=include_object,
            compare_type=True,
            compare_server_default=True,
        )
        # Read under the lock: a run that waited for another one starts where that one ended.
        config.attributes["memcli.start_revision"] = context.get_context().get_current_revision()
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
