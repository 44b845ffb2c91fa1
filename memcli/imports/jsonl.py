"""JSON Lines: one memory per line, for any store (docs/imports.md documents the format).

Each line is an object::

    {"id": "m-1", "text": "Prefers a window table", "session_id": "s-42", "user_id": "alice",
     "content_type": "user_preference", "embedding": [0.01, ...], "embedding_model": "all-MiniLM-L6-v2",
     "created_at": "2024-05-01T12:00:00Z", "importance": 0.8, "tier": "long_term", "decay": 0.05,
     "expires_at": null, "metadata": {"anything": "kept"}}

``text`` and ``session_id`` are required. ``id`` names the line in the key map (without it, a hash of the
line does, so an unchanged line is still recognised on resume). A line that is not JSON, lacks a required
field or has a field of the wrong type is rejected with its line number; the other lines import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from memcli.errors import ConfigError
from memcli.imports.records import MemoryRecord, Rejection, as_utc, score, user_uuid
from memcli.schema.names import CONTENT_TYPES, MEMORY_TYPES

TIERS = MEMORY_TYPES
FIELDS = {
    "id",
    "text",
    "session_id",
    "user_id",
    "content_type",
    "embedding",
    "embedding_model",
    "created_at",
    "importance",
    "relevance",
    "tier",
    "decay",
    "expires_at",
    "metadata",
}
STREAM = "lines"


class JsonLinesSource:
    layout = "jsonl"

    def __init__(self, path: Path, label: str = "") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"cannot read {self.path}: no such file", hint="name a JSON Lines file")
        self.name = f"jsonl:{label or self.path.resolve().name}"
        self._model: str | None = None

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def _lines(self) -> Iterator[tuple[int, str]]:
        try:
            with self.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        yield number, line
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{self.path} is not UTF-8 text: {exc.reason}") from None

    def own_connection(self) -> None:
        """Nothing to do: the file is opened by each reading."""

    def count(self, stream: str) -> int:
        return sum(1 for _ in self._lines())

    def batches(self, stream: str, batch_size: int) -> Iterator[list[Any]]:
        batch: list[tuple[int, str]] = []
        for item in self._lines():
            batch.append(item)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def to_records(self, stream: str, rows: list[Any]) -> list[MemoryRecord | Rejection]:
        return [self._record(number, line) for number, line in rows]

    def _record(self, number: int, line: str) -> MemoryRecord | Rejection:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            return Rejection(_key(None, line, number), f"line {number}: not JSON ({exc.msg})")
        if not isinstance(item, dict):
            return Rejection(_key(None, line, number), f"line {number}: not a JSON object")
        key = _key(item.get("id"), line, number)
        try:
            return _to_record(key, item, number)
        except (TypeError, ValueError) as exc:
            return Rejection(key, f"line {number}: {exc}")

    def source_model(self) -> str | None:
        return None  # each line names its own model

    def settings(self) -> dict[str, Any]:
        return {}

    def mapping(self) -> dict[str, str]:
        return {
            STREAM: "semantic_memory (text, embedding, content_type, importance -> relevance_score, "
            "metadata); with tier: also conversation_memory; with decay: also context_relevance"
        }

    def dropped(self) -> dict[str, int]:
        return {}


def _key(given: Any, line: str, number: int) -> str:
    if isinstance(given, str | int) and not isinstance(given, bool) and str(given).strip():
        return f"id:{given}"
    return "sha256:" + hashlib.sha256(line.strip().encode("utf-8")).hexdigest()


def _text(item: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise ValueError(f"missing {name!r}")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name!r} must be a non-empty string")
    return value


def _to_record(key: str, item: dict[str, Any], number: int) -> MemoryRecord:
    text = _text(item, "text", required=True)
    session = _text(item, "session_id", required=True)
    content_type = _text(item, "content_type") or "conversation"
    if content_type not in CONTENT_TYPES:
        raise ValueError(f"content_type {content_type!r} is not one of {', '.join(CONTENT_TYPES)}")
    tier = _text(item, "tier")
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier {tier!r} is not one of {', '.join(TIERS)}")
    metadata = item.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' must be an object")
    user = item.get("user_id")
    if user is not None and not isinstance(user, str):
        raise ValueError("'user_id' must be a string")
    extra = {k: v for k, v in item.items() if k not in FIELDS}
    metadata = {**metadata, "source": {"layout": "jsonl", "line": number, "id": item.get("id")}}
    if extra:
        metadata["extra"] = extra
    if user is not None:
        metadata.setdefault("source_user", user)
    importance = score(item.get("importance"))
    decay = item.get("decay")
    decay_factor = None
    if decay is not None:
        rate = score(decay)
        if rate is None:
            raise ValueError("'decay' must be a number between 0 and 1")
        decay_factor = 1.0 - rate
    return MemoryRecord(
        source_key=key,
        session_id=str(session),
        content_text=str(text),
        user_id=user_uuid("jsonl", user),
        content_type=content_type,
        raw_vector=item.get("embedding"),
        vector_model=_text(item, "embedding_model"),
        relevance=score(item.get("relevance")) if item.get("relevance") is not None else importance,
        created_at=as_utc(item.get("created_at")),
        metadata=metadata,
        tier=tier,
        importance=importance,
        expires_at=as_utc(item.get("expires_at")),
        decay_factor=decay_factor,
    )
