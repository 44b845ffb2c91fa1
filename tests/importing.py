"""Helpers for the import tests: legacy layouts built from tests/legacy/*.sql, row counts, vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from memcli.embeddings.hashing import HashingEmbedder
from memcli.imports.records import TARGET_TABLES
from memcli.schema import names

LEGACY = Path(__file__).parent / "legacy"


def build_layout(dsn: str, layout: str, schema: str = "legacy") -> None:
    """Create ``schema`` and run the layout's DDL in it (pgvector's types stay visible through public)."""
    ddl = (LEGACY / f"{layout}.sql").read_text(encoding="utf-8")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute(ddl)


def execute(dsn: str, query: str, params: Any = None, schema: str = "legacy") -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path = {}, public").format(sql.Identifier(schema)))
        conn.execute(query, params)


def fetch(dsn: str, query: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def scalar(dsn: str, query: str, params: Any = None) -> Any:
    return fetch(dsn, query, params)[0][0]


def counts(dsn: str) -> dict[str, int]:
    """Rows in each table an import writes."""
    return {t: scalar(dsn, f"SELECT count(*) FROM {t}") for t in (*TARGET_TABLES, names.IMPORT_KEYS)}


def vec(text: str, dim: int = 384) -> list[float]:
    """The hashing embedder's vector for ``text`` (the model the test databases use)."""
    return [float(x) for x in HashingEmbedder(dim).embed([text])[0]]


def stored_vector(dsn: str, memory_id: Any) -> np.ndarray | None:
    value = scalar(dsn, "SELECT embedding_vector::text FROM semantic_memory WHERE id = %s", (memory_id,))
    return None if value is None else np.array([float(x) for x in value.strip("[]").split(",")])
