"""What a source row becomes, before it is written: a memory record, or a rejection saying why not.

A layout turns each source row into one :class:`MemoryRecord` (or a :class:`Rejection`). The engine writes a
record as one ``semantic_memory`` row (text, vector, metadata) and, when the source gave the memory a tier,
one ``conversation_memory`` row of that tier, plus a ``context_relevance`` row when it gave a decay rate.
Target ids are derived from the source row's key (uuid5), so every row an import writes can be named before
it is written, and references between imported rows (a segment to its messages) need no lookup.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from memcli.schema import names

if TYPE_CHECKING:
    import numpy

# Fixed forever: changing it would give a resumed import new ids for rows it already wrote.
ID_NAMESPACE = uuid.UUID("6f1c2a9e-3d4b-5c8e-9a7f-1b2c3d4e5f60")

SEMANTIC = names.SEMANTIC_MEMORY
CONVERSATION = names.CONVERSATION_MEMORY
RELEVANCE = names.CONTEXT_RELEVANCE
TARGET_TABLES = (SEMANTIC, CONVERSATION, RELEVANCE)


# uuid5 computed as uuid.uuid5 does (SHA-1 of the namespace's bytes and the name, version 5, RFC 4122
# variant), with the namespace's part of the hash done once: ids are derived for every row an import writes.
_NAMESPACE_HASH = hashlib.sha1(ID_NAMESPACE.bytes, usedforsecurity=False)
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_5 = (5 << 76) | (0x8000 << 48)


def target_id(source_name: str, source_key: str, table: str) -> uuid.UUID:
    """The id the import gives the ``table`` row written for one source row (stable across runs): equal to
    ``uuid.uuid5(ID_NAMESPACE, f"{source_name}\\x00{source_key}\\x00{table}")``."""
    digest = _NAMESPACE_HASH.copy()
    digest.update(f"{source_name}\x00{source_key}\x00{table}".encode())
    return uuid.UUID(int=(int.from_bytes(digest.digest()[:16]) & _VERSION_MASK) | _VERSION_5)


def context_key(source_name: str, source_key: str) -> str:
    """The conversation_memory / context_relevance key of an imported memory (unique per session)."""
    return f"import:{source_name}:{source_key}"


def user_uuid(layout: str, name: str | None) -> uuid.UUID | None:
    """memcli keys users by UUID: a source's user name becomes a stable UUID of its own (one per name, so
    two users never share one); a name that already is a UUID is kept."""
    if name is None or str(name).strip() == "":
        return None
    try:
        return uuid.UUID(str(name))
    except ValueError:
        return uuid.uuid5(ID_NAMESPACE, f"{layout}:user:{name}")


def as_utc(value: Any) -> datetime | None:
    """A source timestamp without time zone is read as UTC (the documented convention of every layout)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"not a timestamp: {value!r}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def score(value: Any) -> float | None:
    """A 0-1 score (memcli's CHECK constraints); out-of-range values are clamped, non-numbers dropped."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number):
        return None
    return min(1.0, max(0.0, number))


@dataclass
class MemoryRecord:
    source_key: str  # unique within the source: "<table>:<primary key>"
    session_id: str
    content_text: str
    user_id: uuid.UUID | None = None
    content_type: str = "conversation"
    raw_vector: Any = None  # as the source stores it; checked and converted by the engine
    vector_model: str | None = None  # the model a record names itself (JSON Lines); else the source's
    relevance: float | None = None
    created_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    tier: str | None = None  # short_term / long_term / archived / semantic: also a conversation_memory row
    importance: float | None = None
    expires_at: datetime | None = None
    decay_factor: float | None = None  # also a context_relevance row
    access_count: int = 0
    last_accessed_at: datetime | None = None


@dataclass(frozen=True)
class Rejection:
    source_key: str
    reason: str


class BadVector(ValueError):
    pass


def check_vector(raw: Any, dimension: int | None) -> numpy.ndarray:
    """The source's vector as float32, or BadVector saying what is wrong with it.

    Accepted: a list of numbers (FLOAT8[], a JSON array), pgvector's text form ``[1,2,3]``, a numpy array.
    Rejected: anything not a number (strings, null, booleans, nested arrays), NaN or infinity, and a length
    other than ``dimension`` (when known).
    """
    import numpy as np

    if isinstance(raw, str):
        text = raw.strip()
        if not (text.startswith("[") and text.endswith("]")):
            raise BadVector("not an array of numbers")
        try:
            values = np.array([float(x) for x in text[1:-1].split(",")] if text[1:-1].strip() else [])
        except ValueError:
            raise BadVector("non-numeric element") from None
    elif isinstance(raw, list | tuple):
        if bool in set(map(type, raw)):  # numpy would read True as 1
            raise BadVector("non-numeric element")
        try:
            values = np.array(raw)
        except (ValueError, TypeError):  # ragged nesting
            raise BadVector("nested array") from None
    elif isinstance(raw, np.ndarray):
        values = raw
    elif hasattr(raw, "to_numpy"):  # pgvector's Vector, as its psycopg loader returns it
        values = raw.to_numpy()
    else:
        raise BadVector(f"not an array but {type(raw).__name__}")
    # numpy infers the element type: ints and floats give a numeric array; strings, None, booleans,
    # nested lists or a mix give another kind, which is exactly what must be refused.
    if values.ndim != 1 or values.dtype.kind not in "iuf":
        raise BadVector("non-numeric element" if values.ndim <= 1 else "nested array")
    if values.size == 0:
        raise BadVector("empty array")
    array = values.astype(np.float32)
    if not np.isfinite(values.astype(np.float64)).all():
        raise BadVector("NaN or infinite element")
    if dimension is not None and array.size != dimension:
        raise BadVector(f"{array.size} dimensions, expected {dimension}")
    return array
