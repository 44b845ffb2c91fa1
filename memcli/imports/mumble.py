"""Mumble: ``conversation_history`` with FLOAT8[] embeddings, its entity mentions and bot_config.

- Each ``conversation_history`` row becomes one ``semantic_memory`` row (content type ``conversation``):
  the message is the text, ``importance_score`` the relevance, ``timestamp`` the creation time, the
  FLOAT8[] embedding the vector (kept when bot_config's ``embedding_model`` is the database's model).
- Its ``entity_mentions`` rows become ``metadata.entities``; mentions of no message are dropped (counted).
- ``bot_config``: ``embedding_model`` names the source's model; ``semantic_similarity_threshold`` becomes
  ``search.min_similarity``. The other keys (circuit breakers, session timeouts, feature flags, memory
  limits counted in messages) have no memcli equivalent and are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memcli.imports.database import DatabaseSource, Layout
from memcli.imports.records import MemoryRecord, Rejection, as_utc, score, user_uuid
from memcli.imports.source import FLOAT, INTEGER, TEXT, TIMESTAMP, Column, SourceTable

if TYPE_CHECKING:
    pass

HISTORY = SourceTable(
    "conversation_history",
    "id",
    (
        Column("id", INTEGER),
        Column("user_name", TEXT),
        Column("user_session", INTEGER),
        Column("session_id", TEXT, required=False),
        Column("message_type", TEXT),
        Column("role", TEXT),
        Column("message", TEXT),
        Column("embedding", ("_float8", "_float4", "_numeric")),
        Column("importance_score", FLOAT),
        Column("summary", TEXT),
        Column("timestamp", TIMESTAMP),
        Column("created_at", TIMESTAMP, required=False),
        Column("consolidated_at", TIMESTAMP, required=False),
        Column("consolidated_summary_id", TEXT, required=False),
    ),
)
MENTIONS = SourceTable(
    "entity_mentions",
    "id",
    (
        Column("id", INTEGER),
        Column("message_id", INTEGER),
        Column("entity_text", TEXT),
        Column("canonical_id", TEXT),
        Column("entity_type", TEXT),
        Column("confidence", FLOAT),
        Column("context_info", TEXT),
        Column("created_at", TIMESTAMP),
    ),
)
BOT_CONFIG = SourceTable("bot_config", "key", (Column("key", TEXT), Column("value", TEXT)))

# bot_config keys with a memcli setting: key -> (memcli setting, converter)
SETTINGS = {"semantic_similarity_threshold": ("search.min_similarity", float)}


class Mumble(Layout):
    name = "mumble"
    title = "Mumble conversation_history"
    streams = (HISTORY,)
    related = (MENTIONS, BOT_CONFIG)
    mapping = {
        "conversation_history": "semantic_memory (conversation): message -> content_text, embedding -> "
        "embedding_vector, importance_score -> relevance_score, timestamp -> created_at; role, "
        "message_type, user_name, user_session, summary, consolidation -> metadata",
        "entity_mentions": "metadata.entities of the message they refer to",
        "bot_config": "embedding_model -> the source's model; semantic_similarity_threshold -> "
        "search.min_similarity; other keys dropped",
    }

    def _config(self, source: DatabaseSource) -> dict[str, str]:
        if not source.has("bot_config"):
            return {}
        from psycopg import sql

        rows = source.conn.execute(
            sql.SQL("SELECT key, value FROM {}.bot_config").format(sql.Identifier(source.schema))
        ).fetchall()
        return {str(k): v for k, v in rows}

    def source_model(self, source: DatabaseSource) -> str | None:
        return self._config(source).get("embedding_model") or None

    def settings(self, source: DatabaseSource) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self._config(source).items():
            if key in SETTINGS:
                setting, convert = SETTINGS[key]
                try:
                    out[setting] = convert(value)
                except (TypeError, ValueError):
                    continue  # an unreadable value is left out rather than stored wrong
        return out

    def dropped(self, source: DatabaseSource) -> dict[str, int]:
        out: dict[str, int] = {}
        if source.has("entity_mentions"):
            from psycopg import sql

            out["entity_mentions without a message"] = int(
                source.scalar(
                    sql.SQL("SELECT count(*) FROM {}.entity_mentions WHERE message_id IS NULL").format(
                        sql.Identifier(source.schema)
                    )
                )
            )
        config = self._config(source)
        out["bot_config keys without a memcli setting"] = len(
            [k for k in config if k not in SETTINGS and k != "embedding_model"]
        )
        return out

    def to_records(
        self, source: DatabaseSource, stream: str, rows: list[dict[str, Any]]
    ) -> list[MemoryRecord | Rejection]:
        mentions: dict[int, list[dict[str, Any]]] = {}
        for m in source.related_rows("entity_mentions", "message_id", [r["id"] for r in rows], "id"):
            mentions.setdefault(m["message_id"], []).append(
                {
                    "text": m.get("entity_text"),
                    "canonical_id": m.get("canonical_id"),
                    "type": m.get("entity_type"),
                    "confidence": m.get("confidence"),
                    "context": m.get("context_info"),
                    "created_at": _iso(m.get("created_at")),
                }
            )
        records: list[MemoryRecord | Rejection] = []
        for row in rows:
            key = f"conversation_history:{row['id']}"
            text = row.get("message")
            if text is None or not str(text).strip():
                records.append(Rejection(key, "empty message"))
                continue
            user = row["user_name"]
            metadata: dict[str, Any] = {
                "source": {"layout": self.name, "table": "conversation_history", "id": row["id"]},
                "user_name": user,
                "user_session": row.get("user_session"),
                "role": row.get("role"),
                "message_type": row.get("message_type"),
            }
            for optional in ("summary", "consolidated_summary_id"):
                if row.get(optional) is not None:
                    metadata[optional] = row[optional]
            if row.get("consolidated_at") is not None:
                metadata["consolidated_at"] = _iso(row["consolidated_at"])
            if row["id"] in mentions:
                metadata["entities"] = mentions[row["id"]]
            records.append(
                MemoryRecord(
                    source_key=key,
                    session_id=row.get("session_id") or f"mumble:{user}:{row.get('user_session')}",
                    user_id=user_uuid(self.name, user),
                    content_text=str(text),
                    content_type="conversation",
                    raw_vector=row.get("embedding"),
                    relevance=score(row.get("importance_score")),
                    created_at=as_utc(row.get("timestamp") or row.get("created_at")),
                    metadata=metadata,
                )
            )
        return records


def _iso(value: Any) -> str | None:
    moment = as_utc(value)
    return moment.isoformat() if moment else None
