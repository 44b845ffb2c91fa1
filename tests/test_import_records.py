"""What the import writes for a source row, checked against its plain definition: derived ids, tier values."""

from __future__ import annotations

import json
import uuid

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from memcli.imports.engine import _ENCODE, _tier_value
from memcli.imports.records import ID_NAMESPACE, TARGET_TABLES, MemoryRecord, target_id

# JSON texts as Postgres takes them (no NUL character in a jsonb string)
TEXTS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.sampled_from(TARGET_TABLES))
def test_target_id_is_uuid5_of_the_source_key(source_name: str, source_key: str, table: str) -> None:
    """Ids must never change: a resumed import relies on getting the ids it gave before."""
    expected = uuid.uuid5(ID_NAMESPACE, f"{source_name}\x00{source_key}\x00{table}")
    assert target_id(source_name, source_key, table) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=TEXTS,
    metadata=st.dictionaries(
        st.sampled_from(["source", "text", "semantic_memory_id", "kind", "role"]) | TEXTS,
        JSON_VALUES,
        max_size=5,
    ),
)
def test_tier_value_is_the_memory_its_id_and_its_metadata(
    migrated_db: str, text: str, metadata: dict[str, object]
) -> None:
    """The tier row's value, spliced from the memory's encoded metadata, is the jsonb of the plain dict."""
    memory_id = uuid.uuid4()
    record = MemoryRecord(source_key="k", session_id="s", content_text=text, metadata=metadata)
    plain = {
        "text": text,
        "semantic_memory_id": str(memory_id),
        **{k: v for k, v in metadata.items() if k != "source"},
        "source": metadata.get("source"),
    }
    spliced = _tier_value(record, memory_id, _ENCODE(metadata))
    with psycopg.connect(migrated_db) as conn:
        same = conn.execute("SELECT %s::jsonb = %s::jsonb", (spliced, Jsonb(plain))).fetchone()
    assert same == (True,), (spliced, json.dumps(plain))
