"""Similarity floors that fit the model: below its floor, a match is more likely noise than meaning.

A cosine similarity means something only for the model that produced it. all-MiniLM-L6-v2 scores clearly
related sentences at 0.4-0.7 and unrelated ones mostly below 0.2; a lexical hashing vector scores shared
words, and a generic 0.7 (the source document's number, kept as ``search.min_similarity`` for the SQL
applications run) hides most of what such models find. memcli search therefore takes its floor from:

1. ``--min-similarity`` (or the library's ``min_similarity`` argument);
2. the ``embedding.min_similarity`` setting, recorded with ``embedding.model`` when the first embedding is
   written, so the floor travels with the model it belongs to (null: the model's calibrated default);
3. the calibrated default of the recorded model (:data:`CALIBRATED`);
4. ``search.min_similarity`` (0.7) for a model memcli knows nothing about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

# How each floor was chosen is in docs/search.md ("Similarity floors"): measured on the demo database with
# benchmarks/calibrate_floor.py, which prints the figures.
CALIBRATED: dict[str, float] = {
    names.DEFAULT_EMBEDDING_MODEL: 0.3,
    "hashing-v1": 0.2,
}
SETTING = "embedding.min_similarity"
GENERIC_SETTING = "search.min_similarity"


def calibrated_floor(model: str | None) -> float | None:
    return CALIBRATED.get(model) if model else None


def resolve_floor(conn: psycopg.Connection, model: str | None = None) -> tuple[float, str]:
    """The similarity floor for searches with ``model`` (default: the recorded model) and its source."""
    row = conn.execute(
        "SELECT (SELECT value FROM memory_settings WHERE key = %s), "
        "(SELECT value FROM memory_settings WHERE key = %s), "
        "(SELECT value FROM memory_settings WHERE key = 'embedding.model')",
        (SETTING, GENERIC_SETTING),
    ).fetchone()
    recorded, generic, stored_model = row if row is not None else (None, None, None)
    return floor_from(recorded, generic, model or (stored_model if isinstance(stored_model, str) else None))


def floor_from(recorded: Any, generic: Any, model: str | None) -> tuple[float, str]:
    """The floor from the two settings' stored values (None: unset) and the model (search reads the
    settings in the same round trip as the rest of its context)."""
    from memcli.settings import DEFAULTS

    if _number(recorded) is not None:
        return float(recorded), f"setting {SETTING}"
    calibrated = calibrated_floor(model)
    if calibrated is not None:
        return calibrated, "model default"
    value = _number(generic)
    if value is None:
        value = float(DEFAULTS[GENERIC_SETTING][0])
    return value, f"setting {GENERIC_SETTING}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
