"""What writing (:mod:`memcli.memories`) and reading (:mod:`memcli.search`) semantic memories share.

The content types a memory may have, reading a user or memory id from the command line, and pgvector's
psycopg adapter: once :func:`use_vectors` has run on a connection, numpy arrays go to Postgres as
``vector`` values and ``vector`` columns come back as numpy arrays, in pgvector's own binary or text format,
with no hand-made text in between.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from memcli.errors import ConfigError, NotReadyError
from memcli.schema.names import CONTENT_TYPES

if TYPE_CHECKING:
    import psycopg


def parse_uuid(value: str | uuid.UUID | None, what: str) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a UUID") from None


def check_content_type(content_type: str | None) -> None:
    if content_type is not None and content_type not in CONTENT_TYPES:
        raise ConfigError(f"unknown content type {content_type!r}", hint=f"one of {', '.join(CONTENT_TYPES)}")


def use_vectors(conn: psycopg.Connection) -> None:
    """Register pgvector's ``vector`` type on ``conn`` (one catalog query, the first time only).

    pgvector-python's ``register_vector`` also looks up ``bit``, ``halfvec`` and ``sparsevec`` (three more
    round trips) that memcli never uses, so only the ``vector`` type is registered here.
    """
    if conn.adapters.types.get("vector") is not None:
        return
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise NotReadyError(
            "the pgvector extension is not installed in this database", hint="run: memcli migrate"
        )
    register_vector_info(conn, info)
