"""Graive: ``memory_segments`` with tiers, summaries and compression levels, and their messages.

- Each ``messages`` row becomes one ``semantic_memory`` row (content type ``conversation``; role and
  importance in metadata, importance the relevance score). Graive keeps its vectors in ChromaDB, not in
  Postgres: there are no vectors to carry over, so messages are re-embedded on the way or left for
  ``memcli embed``. ``vector_embeddings.model_name`` only says which model that was.
- Each ``memory_segments`` row becomes one ``semantic_memory`` row whose text is the summary, and one
  ``conversation_memory`` row in its tier (short_term / long_term; Graive's "working" is the uncompressed
  recent messages and maps to short_term). ``compression_level``, the source message ids and the ids of the
  memories those messages became are kept in metadata.
- User and session come from the segment's or message's conversation (``conversations.user_id``,
  ``conversations.session_id``).
"""

from __future__ import annotations

from typing import Any

from memcli.imports.database import DatabaseSource, Layout
from memcli.imports.records import SEMANTIC, MemoryRecord, Rejection, as_utc, score, target_id
from memcli.imports.source import FLOAT, INTEGER, JSON, TEXT, TIMESTAMP, UUID, Column, SourceTable

TIERS = {
    "short_term": "short_term",
    "long_term": "long_term",
    "working": "short_term",
    "archived": "archived",
}

MESSAGES = SourceTable(
    "messages",
    "id",
    (
        Column("id", UUID),
        Column("conversation_id", UUID),
        Column("role", TEXT),
        Column("content", TEXT),
        Column("embedding_id", TEXT, required=False),
        Column("importance_score", FLOAT, required=False),
        Column("created_at", TIMESTAMP),
    ),
)
SEGMENTS = SourceTable(
    "memory_segments",
    "id",
    (
        Column("id", UUID),
        Column("conversation_id", UUID),
        Column("summary", TEXT),
        Column("message_ids", (*JSON, "_uuid")),
        Column("tier", TEXT),
        Column("importance_score", FLOAT),
        Column("compression_level", (*INTEGER, *FLOAT)),
        Column("created_at", TIMESTAMP),
    ),
)
CONVERSATIONS = SourceTable(
    "conversations",
    "id",
    (
        Column("id", UUID),
        Column("user_id", UUID),
        Column("session_id", TEXT, required=False),
        Column("title", TEXT, required=False),
    ),
)
EMBEDDINGS = SourceTable(
    "vector_embeddings",
    "id",
    (
        Column("id", UUID),
        Column("source_type", TEXT),
        Column("source_id", (*UUID, *TEXT)),
        Column("model_name", TEXT),
    ),
)


class Graive(Layout):
    name = "graive"
    title = "Graive memory_segments and messages"
    streams = (MESSAGES, SEGMENTS)
    related = (CONVERSATIONS, EMBEDDINGS)
    mapping = {
        "messages": "semantic_memory (conversation): content -> content_text, importance_score -> "
        "relevance_score; role, conversation -> metadata; no vectors in Postgres (ChromaDB)",
        "memory_segments": "semantic_memory (summary as text) + conversation_memory in its tier (working -> "
        "short_term); compression_level, message_ids and the messages' memory ids -> metadata",
        "conversations": "user_id and session_id of their messages and segments; title -> metadata",
        "vector_embeddings": "model_name names the source's model; nothing imported",
    }

    def source_model(self, source: DatabaseSource) -> str | None:
        if not source.has("vector_embeddings"):
            return None
        from psycopg import sql

        return source.scalar(
            sql.SQL(
                "SELECT model_name FROM {}.vector_embeddings "
                "GROUP BY model_name ORDER BY count(*) DESC LIMIT 1"
            ).format(sql.Identifier(source.schema))
        )

    def to_records(
        self, source: DatabaseSource, stream: str, rows: list[dict[str, Any]]
    ) -> list[MemoryRecord | Rejection]:
        conversations = {
            c["id"]: c
            for c in source.related_rows("conversations", "id", list({r["conversation_id"] for r in rows}))
        }
        out: list[MemoryRecord | Rejection] = []
        # per conversation, made once per batch: its session, user and the metadata its rows share
        known: dict[Any, tuple[str, Any, dict[str, Any]]] = {}
        for row in rows:
            found = known.get(row["conversation_id"])
            if found is None:
                conv = conversations.get(row["conversation_id"], {})
                session = conv.get("session_id") or f"graive:{row['conversation_id']}"
                common = {"conversation_id": str(row["conversation_id"])}
                if conv.get("title"):
                    common["conversation_title"] = conv["title"]
                found = known[row["conversation_id"]] = (session, conv.get("user_id"), common)
            session, user, common = found
            if stream == "messages":
                out.append(self._message(row, session, user, common))
            else:
                out.append(self._segment(source, row, session, user, common))
        return out

    def _message(self, row: dict[str, Any], session: str, user: Any, common: dict[str, Any]) -> Any:
        row_id = str(row["id"])
        key = "messages:" + row_id
        if not row.get("content") or not row["content"].strip():
            return Rejection(key, "empty content")
        importance = score(row.get("importance_score"))
        metadata = {
            "source": {"layout": self.name, "table": "messages", "id": row_id},
            "role": row.get("role"),
            **common,
        }
        if row.get("embedding_id"):
            metadata["embedding_id"] = row["embedding_id"]
        return MemoryRecord(
            source_key=key,
            session_id=session,
            user_id=user,
            content_text=row["content"],
            relevance=importance,
            created_at=as_utc(row.get("created_at")),
            metadata=metadata,
            importance=importance,
        )

    def _segment(
        self, source: DatabaseSource, row: dict[str, Any], session: str, user: Any, common: dict[str, Any]
    ) -> Any:
        key = f"memory_segments:{row['id']}"
        tier = TIERS.get(str(row.get("tier") or "").lower())
        if tier is None:
            return Rejection(key, f"unknown tier {row.get('tier')!r}")
        if not row.get("summary") or not row["summary"].strip():
            return Rejection(key, "empty summary")
        ids = row.get("message_ids") or []
        if not isinstance(ids, list):
            return Rejection(key, "message_ids is not an array")
        message_ids = [str(i) for i in ids]
        importance = score(row.get("importance_score"))
        metadata = {
            "source": {"layout": self.name, "table": "memory_segments", "id": str(row["id"])},
            "tier": row.get("tier"),
            "compression_level": row.get("compression_level"),
            "message_ids": message_ids,
            # the memories the referenced messages became (ids are derived, so known before they exist)
            "message_memory_ids": [
                str(target_id(source.name, f"messages:{m}", SEMANTIC)) for m in message_ids
            ],
            **common,
        }
        return MemoryRecord(
            source_key=key,
            session_id=session,
            user_id=user,
            content_text=row["summary"],
            relevance=importance,
            created_at=as_utc(row.get("created_at")),
            metadata=metadata,
            tier=tier,
            importance=importance,
        )
