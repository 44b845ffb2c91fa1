"""Binary COPY of vectors: numpy arrays sent in pgvector's binary form, not printed as text.

Printing a 384-dimensional vector as pgvector text costs about as much as embedding it with a fast model;
pgvector's psycopg adapter sends the float32 bytes instead. The adapter is registered on a cursor only, so
the caller's connection keeps its own adapters (a search on it still reads vectors as text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pgvector import HalfVector
from pgvector.psycopg.halfvec import HalfVectorBinaryDumper

from memcli.errors import NotReadyError

if TYPE_CHECKING:
    import psycopg
    from psycopg.abc import Buffer


def vector_cursor(conn: psycopg.Connection) -> psycopg.Cursor:
    """A cursor of ``conn`` that dumps numpy arrays as ``vector`` / ``halfvec`` in binary COPY."""
    from pgvector.psycopg.halfvec import register_halfvec_info
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    cur = conn.cursor()
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise NotReadyError("the vector type is missing", hint="run: memcli migrate")
    register_vector_info(cur, info)
    half = TypeInfo.fetch(conn, "halfvec")
    if half is not None:
        register_halfvec_info(cur, half)
        # pgvector's binary halfvec dumper takes HalfVector objects only; a halfvec column (memcli vectors
        # convert) is written from the same numpy arrays as a vector one.
        cur.adapters.register_dumper(HalfVector, type("", (_HalfvecFromArrays,), {"oid": half.oid}))
    return cur


class _HalfvecFromArrays(HalfVectorBinaryDumper):
    def dump(self, obj: Any) -> Buffer | None:
        return (obj if isinstance(obj, HalfVector) else HalfVector(obj)).to_binary()
