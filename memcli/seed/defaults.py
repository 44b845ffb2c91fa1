"""Default settings: the memory_settings rows memcli starts from; added where missing, never overwritten."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg


def ensure_default_settings(conn: psycopg.Connection) -> list[str]:
    """Insert the default settings whose key is missing; never overwrite a value. Returns the keys added.

    A default of None (the embedding model, recorded at the first write of an embedding) is left absent;
    a missing embedding.dimension is restored from the vector column, not from the 384 default.
    """
    from psycopg.types.json import Jsonb

    from memcli.embeddings import stored_dimension
    from memcli.settings import DEFAULTS

    defaults = {key: value for key, (value, _) in DEFAULTS.items()}
    defaults["embedding.dimension"] = stored_dimension(conn) or defaults["embedding.dimension"]
    rows = [
        {"key": key, "value": Jsonb(defaults[key]), "description": description}
        for key, (_, description) in DEFAULTS.items()
        if defaults[key] is not None
    ]
    added = conn.execute(
        """
        INSERT INTO memory_settings (key, value, description)
        SELECT s.key, s.value, s.description
        FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS s(key, value, description)
        ON CONFLICT (key) DO NOTHING
        RETURNING key
        """,
        ([r["key"] for r in rows], [r["value"] for r in rows], [r["description"] for r in rows]),
    ).fetchall()
    return sorted(key for (key,) in added)
