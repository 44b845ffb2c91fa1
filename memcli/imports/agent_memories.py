"""``agent_memories``: kinds episodic / semantic / procedural / working, with importance and decay.

- Each memory becomes one ``semantic_memory`` row (content type ``conversation``; the kind, agent and related
  memories in metadata; its ``vector(1536)`` embedding kept when the model matches) and one
  ``conversation_memory`` row in the tier its kind lives in: working -> short_term, episodic and procedural ->
  long_term, semantic -> semantic. ``importance`` is the importance score (and the relevance score).
- ``decay_rate`` becomes a ``context_relevance`` row with ``decay_factor = 1 - decay_rate``, so memcli's
  weekly decay ages the memory as the source did.
- The owning user comes from ``agents.user_id`` when the ``agents`` table exists; the session is the
  memory's ``session_id``, else ``agent:<agent_id>``.
"""

from __future__ import annotations

from typing import Any

from memcli.imports.database import DatabaseSource, Layout
from memcli.imports.records import MemoryRecord, Rejection, as_utc, score
from memcli.imports.source import FLOAT, INTEGER, JSON, TEXT, TIMESTAMP, UUID, Column, SourceTable

KIND_TIERS = {
    "working": "short_term",
    "episodic": "long_term",
    "procedural": "long_term",
    "semantic": "semantic",
}

MEMORIES = SourceTable(
    "agent_memories",
    "id",
    (
        Column("id", UUID),
        Column("agent_id", UUID),
        Column("session_id", (*UUID, *TEXT), required=False),
        Column("memory_type", TEXT),
        Column("content", (*TEXT, *JSON)),
        Column("embeddings", ("vector", "_float8", "_float4", *JSON)),
        Column("importance", FLOAT),
        Column("decay_rate", FLOAT, required=False),
        Column("access_count", INTEGER, required=False),
        Column("last_accessed_at", TIMESTAMP, required=False),
        Column("related_memories", ("_uuid",), required=False),
        Column("metadata", JSON, required=False),
        Column("created_at", TIMESTAMP),
        Column("expires_at", TIMESTAMP, required=False),
    ),
)
AGENTS = SourceTable(
    "agents", "id", (Column("id", UUID), Column("user_id", UUID), Column("name", TEXT, False))
)


class AgentMemories(Layout):
    name = "agent-memories"
    title = "agent_memories: episodic, semantic, procedural, working"
    streams = (MEMORIES,)
    related = (AGENTS,)
    mapping = {
        "agent_memories": "semantic_memory (conversation) + conversation_memory in the kind's tier (working "
        "-> short_term, episodic/procedural -> long_term, semantic -> semantic) + context_relevance "
        "(decay_factor = 1 - decay_rate); importance -> importance_score and relevance_score",
        "agents": "user_id of the agent's memories; name -> metadata",
    }

    def to_records(
        self, source: DatabaseSource, stream: str, rows: list[dict[str, Any]]
    ) -> list[MemoryRecord | Rejection]:
        agents = {
            a["id"]: a for a in source.related_rows("agents", "id", list({r["agent_id"] for r in rows}))
        }
        records: list[MemoryRecord | Rejection] = []
        agent_texts: dict[Any, str] = {}  # an agent's id as text, made once per batch
        for row in rows:
            row_id = str(row["id"])
            key = "agent_memories:" + row_id
            kind = row.get("memory_type")
            if kind not in KIND_TIERS:
                records.append(Rejection(key, f"unknown memory_type {kind!r}"))
                continue
            content = row.get("content")
            text = content if isinstance(content, str) else _content_text(content)
            if not text or not text.strip():
                records.append(Rejection(key, "empty content"))
                continue
            agent = agents.get(row["agent_id"], {})
            agent_id = agent_texts.get(row["agent_id"])
            if agent_id is None:
                agent_id = agent_texts[row["agent_id"]] = str(row["agent_id"])
            importance = score(row.get("importance"))
            decay = score(row.get("decay_rate"))
            metadata: dict[str, Any] = {
                "source": {"layout": self.name, "table": "agent_memories", "id": row_id},
                "kind": kind,
                "agent_id": agent_id,
            }
            if agent.get("name"):
                metadata["agent_name"] = agent["name"]
            if not isinstance(content, str) and content is not None:
                metadata["content"] = content
            if row.get("related_memories"):
                metadata["related_memories"] = [str(m) for m in row["related_memories"]]
            if row.get("decay_rate") is not None:
                metadata["decay_rate"] = row["decay_rate"]
            if isinstance(row.get("metadata"), dict):
                metadata["source_metadata"] = row["metadata"]
            session = row.get("session_id")
            records.append(
                MemoryRecord(
                    source_key=key,
                    session_id=str(session) if session else "agent:" + agent_id,
                    user_id=agent.get("user_id"),
                    content_text=text,
                    raw_vector=row.get("embeddings"),
                    relevance=importance,
                    created_at=as_utc(row.get("created_at")),
                    metadata=metadata,
                    tier=KIND_TIERS[kind],
                    importance=importance,
                    expires_at=as_utc(row.get("expires_at")),
                    decay_factor=None if decay is None else 1.0 - decay,
                    access_count=max(0, int(row.get("access_count") or 0)),
                    last_accessed_at=as_utc(row.get("last_accessed_at")),
                )
            )
        return records


def _content_text(content: Any) -> str | None:
    """A JSON content's text: its "text" field, else the JSON itself."""
    import json

    if content is None:
        return None
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return json.dumps(content, sort_keys=True)
