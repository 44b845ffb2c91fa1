"""The ``memory_settings`` table: retention per tier, embedding model and dimension, job thresholds.

Values are JSONB. The migration seeds the defaults below; operators change them with SQL or memcli, and
jobs read them as their option defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

DEFAULTS: dict[str, tuple[Any, str]] = {
    "retention.short_term_days": (7, "days a short_term memory lives when inserted without expires_at"),
    "retention.long_term_days": (90, "days a long_term memory lives when inserted without expires_at"),
    "retention.archived_days": (365, "days an archived memory lives"),
    "embedding.model": (None, "embedding model of the stored vectors; recorded at the first write"),
    "embedding.dimension": (
        names.DEFAULT_EMBEDDING_DIMENSION,
        "dimension of semantic_memory.embedding_vector",
    ),
    "embedding.vector_type": (
        names.DEFAULT_VECTOR_TYPE,
        "type of semantic_memory.embedding_vector: vector or halfvec (memcli vectors convert)",
    ),
    "embedding.min_similarity": (
        None,
        "memcli search's cosine similarity floor for the recorded model; null: its calibrated default",
    ),
    "search.min_similarity": (
        0.7,
        "generic cosine similarity floor (SQL examples; models memcli does not know)",
    ),
    "search.recall_target": (0.95, "recall@10 the vector index must reach (memcli tune, health); in (0, 1]"),
    "search.ef_search": (
        100,
        "HNSW candidate list of a top-10 search, before top-k and filters (memcli tune)",
    ),
    "index.build_memory_cap_mb": (4096, "most maintenance_work_mem (MB) an HNSW build may use"),
    "consolidation.min_age_days": (5, "short_term memories older than this are consolidated"),
    "archive.max_importance": (0.3, "long_term memories below this importance may be archived"),
    "archive.min_age_days": (30, "long_term memories older than this may be archived"),
    "forget.min_age_days": (90, "archived memories never accessed and older than this are forgotten"),
    "relevance.decay_interval_hours": (24, "relevance rows not recalculated for this long decay"),
    "relevance.min_score": (0.01, "relevance rows decayed below this are stale and removed"),
    "cleanup.batch_size": (5000, "rows per batch (and per transaction) for cleanup"),
    "sessions.idle_minutes": (30, "a session without activity for this long is idle"),
    "sessions.close_hours": (24, "a session without activity for this long is closed (maintain daily)"),
    "retention.semantic.conversation_days": (365, "days a conversation semantic memory is kept, or never"),
    "retention.semantic.business_info_days": ("never", "days a business_info semantic memory is kept"),
    "retention.semantic.user_preference_days": ("never", "days a user_preference semantic memory is kept"),
    "retention.consolidation_log_days": (365, "days a consolidation log row is kept, or never"),
    "retention.maintenance_log_days": (180, "days a maintenance log row is kept, or never"),
    "retention.relevance_days": (180, "days a relevance row is kept after it was created, or never"),
    "partition.premake_months": (2, "months of partitions created ahead of the longest retention"),
    "cleanup.partition_drop_only": (
        False,
        "partitioned layout: expired memories leave with their month's partition only (no row deletes "
        "but in the default partition)",
    ),
}


def get_settings(conn: psycopg.Connection) -> dict[str, Any]:
    """All settings, the defaults filled in for keys the table does not have."""
    values = {key: default for key, (default, _) in DEFAULTS.items()}
    for key, value in conn.execute("SELECT key, value FROM memory_settings").fetchall():
        values[key] = value
    return values


def settings_with_sources(conn: psycopg.Connection) -> dict[str, tuple[Any, str]]:
    """Every setting with where its value comes from: ``database`` (the table) or ``default``."""
    stored = dict(conn.execute("SELECT key, value FROM memory_settings").fetchall())
    keys = [*DEFAULTS, *sorted(set(stored) - set(DEFAULTS))]
    return {
        key: (stored[key], "database") if key in stored else (DEFAULTS[key][0], "default") for key in keys
    }


def get_setting(conn: psycopg.Connection, key: str, default: Any = None) -> Any:
    row = conn.execute("SELECT value FROM memory_settings WHERE key = %s", (key,)).fetchone()
    if row is not None:
        return row[0]
    return DEFAULTS[key][0] if key in DEFAULTS else default


def set_setting(conn: psycopg.Connection, key: str, value: Any) -> None:
    from psycopg.types.json import Jsonb

    description = DEFAULTS.get(key, (None, None))[1]
    conn.execute(
        """
        INSERT INTO memory_settings (key, value, description) VALUES (%s, %s, %s)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
        """,
        (key, Jsonb(value), description),
    )
