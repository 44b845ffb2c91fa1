"""ybryx: goals and beliefs whose vectors are JSONB arrays (the no-pgvector fallback), with
their ``memory_logs``.

- ``goal_assessments`` rows become ``semantic_memory`` rows of content type ``user_preference`` (a user's
  goal), ``belief_graphs`` rows of type ``conversation`` (what the agent came to believe in conversation);
  the JSONB vector is checked element by element (numbers only, no NaN, the source's dimension) and kept
  when the model matches (the source does not record its model: ``--source-model``).
- ``memory_logs`` rows of a goal or belief: ``read`` and ``recall`` operations become its ``access_count``
  and ``last_accessed_at``; every operation is counted in ``metadata.log`` by kind, with the last time.
  Log rows of no imported memory are dropped (counted).
"""

from __future__ import annotations

from typing import Any

from memcli.imports.database import DatabaseSource, Layout
from memcli.imports.records import MemoryRecord, Rejection, as_utc, score
from memcli.imports.source import FLOAT, JSON, TEXT, TIMESTAMP, UUID, Column, SourceTable

GOALS = SourceTable(
    "goal_assessments",
    "id",
    (
        Column("id", UUID),
        Column("user_id", UUID),
        Column("session_id", (*UUID, *TEXT), required=False),
        Column("agent_name", TEXT),
        Column("goal_text", TEXT),
        Column("goal_vector", JSON),
        Column("status", TEXT, required=False),
        Column("progress", FLOAT, required=False),
        Column("confidence", FLOAT, required=False),
        Column("created_at", TIMESTAMP),
    ),
)
BELIEFS = SourceTable(
    "belief_graphs",
    "id",
    (
        Column("id", UUID),
        Column("user_id", UUID),
        Column("agent_name", TEXT),
        Column("belief", TEXT),
        Column("belief_vector", JSON),
        Column("confidence", FLOAT),
        Column("evidence", JSON, required=False),
        Column("created_at", TIMESTAMP),
    ),
)
LOGS = SourceTable(
    "memory_logs",
    "id",
    (
        Column("id", UUID),
        Column("memory_id", UUID),
        Column("operation", TEXT),
        Column("created_at", TIMESTAMP),
    ),
)
ACCESS_OPERATIONS = ("read", "recall")


class Ybryx(Layout):
    name = "ybryx"
    title = "ybryx goals and beliefs with JSONB vectors, and memory_logs"
    streams = (GOALS, BELIEFS)
    related = (LOGS,)
    mapping = {
        "goal_assessments": "semantic_memory (user_preference): goal_text -> content_text, goal_vector -> "
        "embedding_vector, confidence -> relevance_score; agent, status, progress -> metadata",
        "belief_graphs": "semantic_memory (conversation): belief -> content_text, belief_vector -> "
        "embedding_vector, confidence -> relevance_score; agent, evidence -> metadata",
        "memory_logs": "read/recall -> access_count and last_accessed_at; all operations counted in "
        "metadata.log",
    }

    def dropped(self, source: DatabaseSource) -> dict[str, int]:
        if not source.has("memory_logs"):
            return {}
        from psycopg import sql

        schema = sql.Identifier(source.schema)
        return {
            "memory_logs of no goal or belief": int(
                source.scalar(
                    sql.SQL(
                        "SELECT count(*) FROM {s}.memory_logs l WHERE NOT EXISTS "
                        "(SELECT 1 FROM {s}.goal_assessments g WHERE g.id = l.memory_id) AND NOT EXISTS "
                        "(SELECT 1 FROM {s}.belief_graphs b WHERE b.id = l.memory_id)"
                    ).format(s=schema)
                )
            )
        }

    def to_records(
        self, source: DatabaseSource, stream: str, rows: list[dict[str, Any]]
    ) -> list[MemoryRecord | Rejection]:
        logs: dict[Any, dict[str, Any]] = {}
        for log in source.related_rows("memory_logs", "memory_id", [r["id"] for r in rows], "created_at"):
            entry = logs.setdefault(log["memory_id"], {"operations": {}, "accesses": 0, "last_access": None})
            op = str(log.get("operation"))
            counts = entry["operations"].setdefault(op, {"count": 0, "last": None})
            counts["count"] += 1
            counts["last"] = as_utc(log.get("created_at")).isoformat() if log.get("created_at") else None
            if op in ACCESS_OPERATIONS:
                entry["accesses"] += 1
                entry["last_access"] = as_utc(log.get("created_at"))
        out: list[MemoryRecord | Rejection] = []
        goal = stream == "goal_assessments"
        for row in rows:
            key = f"{stream}:{row['id']}"
            text = row.get("goal_text" if goal else "belief")
            if not text or not str(text).strip():
                out.append(Rejection(key, "empty text"))
                continue
            metadata: dict[str, Any] = {
                "source": {"layout": self.name, "table": stream, "id": str(row["id"])},
                "agent_name": row.get("agent_name"),
            }
            for extra in ("status", "progress", "evidence"):
                if row.get(extra) is not None:
                    metadata[extra] = row[extra]
            log = logs.get(row["id"])
            if log:
                metadata["log"] = log["operations"]
            session = row.get("session_id")
            out.append(
                MemoryRecord(
                    source_key=key,
                    session_id=str(session) if session else f"ybryx:{row['user_id']}",
                    user_id=row["user_id"],
                    content_text=str(text),
                    content_type="user_preference" if goal else "conversation",
                    raw_vector=row.get("goal_vector" if goal else "belief_vector"),
                    relevance=score(row.get("confidence")),
                    created_at=as_utc(row.get("created_at")),
                    metadata=metadata,
                    access_count=log["accesses"] if log else 0,
                    last_accessed_at=log["last_access"] if log else None,
                )
            )
        return out
