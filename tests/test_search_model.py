"""Semantic search with the real all-MiniLM-L6-v2 model (loaded once per test session)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from memcli import memories, search
from memcli.embeddings import get_embedder
from memcli.embeddings.local import DEFAULT_MODEL, LocalEmbedder, packaged_model_path

pytestmark = pytest.mark.model

MEMORIES = [
    ("Our kitchen prepares plenty of meat-free meals every day", "business_info"),
    ("The parking garage closes at midnight", "business_info"),
    ("Customer asked for the wifi password", "conversation"),
    ("We accept credit cards and cash", "business_info"),
    ("The guest wants a table near the window", "user_preference"),
]


@pytest.fixture(scope="session")
def minilm() -> LocalEmbedder:
    embedder = get_embedder(provider="local")
    assert isinstance(embedder, LocalEmbedder)
    return embedder.load()


def test_packaged_model_loads_offline_and_normalised(minilm: LocalEmbedder) -> None:
    assert packaged_model_path() is not None  # the test extra installs the packaged weights
    assert (minilm.name, minilm.dimension) == (DEFAULT_MODEL, 384)
    vectors = minilm.embed(["vegetarian dishes", "meat-free meals", "parking garage hours"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(minilm.embed(["vegetarian dishes"])[0], vectors[0], atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2


def test_vegetarian_dishes_finds_meat_free_meals(minilm: LocalEmbedder, migrated_db: str) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        ids = [memories.remember(conn, minilm, text, "s1", content_type=kind) for text, kind in MEMORIES]
        result = search.search(conn, minilm, "vegetarian dishes", min_similarity=-1, top_k=5)
        exact = search.search(conn, minilm, "vegetarian dishes", min_similarity=-1, top_k=5, exact=True)
        stored = conn.execute("SELECT value FROM memory_settings WHERE key = 'embedding.model'").fetchone()[0]
    assert stored == DEFAULT_MODEL
    assert result.hits[0].id == ids[0]
    assert result.hits[0].similarity > result.hits[1].similarity + 0.15
    assert [h.id for h in exact.hits] == [h.id for h in result.hits]
    # The lexical embedder cannot see it: no word in common.
    assert "vegetarian" not in MEMORIES[0][0].lower()


def test_cli_round_trip_with_the_local_model(minilm: LocalEmbedder, migrated_db: str, cli: Any) -> None:
    for text, kind in MEMORIES:
        out = cli("remember", text, "--session", "s1", "--type", kind, "--embedder", "local", dsn=migrated_db)
        assert out.exit_code == 0, out.stderr
    out = cli(
        "search",
        "vegetarian dishes",
        "--embedder",
        "local",
        "--min-similarity",
        "0.3",
        "--json",
        dsn=migrated_db,
    )
    assert out.exit_code == 0, out.stderr
    hits = json.loads(out.stdout)["hits"]
    assert [h["content_text"] for h in hits] == [MEMORIES[0][0]]  # the floor keeps the unrelated ones out
    assert hits[0]["similarity"] >= 0.3
    # Hybrid: "cash" matches a memory by keyword; the meaning side brings the paying-related one too.
    out = cli("search", "pay by cash", "--hybrid", "--embedder", "local", "--json", dsn=migrated_db)
    first = json.loads(out.stdout)["hits"][0]
    assert first["content_text"] == "We accept credit cards and cash" and first["text_rank"] == 1
    # The hashing embedder is refused on this database: its vectors were written by MiniLM.
    refused = cli("search", "vegetarian dishes", "--embedder", "hashing", dsn=migrated_db)
    assert refused.exit_code == 4
    assert "all-MiniLM-L6-v2" in refused.stderr and "hashing-v1" in refused.stderr


def test_embed_backfill_with_the_local_model(minilm: LocalEmbedder, migrated_db: str, cli: Any) -> None:
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for text, kind in MEMORIES:
            conn.execute(
                "INSERT INTO semantic_memory (session_id, content_type, content_text) VALUES ('s1', %s, %s)",
                (kind, text),
            )
    out = cli("embed", "--embedder", "local", "--batch-size", "2", "--json", dsn=migrated_db)
    assert out.exit_code == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["embedded"], result["batches"], result["remaining"]) == (5, 3, 0)
    out = cli(
        "search",
        "vegetarian dishes",
        "--embedder",
        "local",
        "-k",
        "1",
        "--min-similarity",
        "0.3",
        "--json",
        dsn=migrated_db,
    )
    assert json.loads(out.stdout)["hits"][0]["content_text"] == MEMORIES[0][0]


def test_the_readme_demo_finds_vegetarian_options_and_the_peanut_allergy(migrated_db: str, cli: Any) -> None:
    """The README's first command and the peanut example, with the default floor of all-MiniLM-L6-v2."""
    seeded = cli("seed", "--demo", "--yes", "--embedder", "local", "--json", dsn=migrated_db)
    assert seeded.exit_code == 0, seeded.stderr
    out = cli("search", "vegetarian options", "--embedder", "local", "--json", dsn=migrated_db)
    data = json.loads(out.stdout)
    assert data["min_similarity"] == 0.3 and data["floor_source"] == "model default"
    texts = [h["content_text"].lower() for h in data["hits"]]
    assert len(texts) == 10
    relevant = ("vegetarian", "vegan", "meat-free", "plant-based")
    assert all(any(word in text for word in relevant) for text in texts), texts

    remembered = cli(
        "remember",
        "The guest is allergic to peanuts and prefers window seats",
        "--session",
        "s1",
        "--type",
        "user_preference",
        "--embedder",
        "local",
        "--json",
        dsn=migrated_db,
    )
    memory_id = json.loads(remembered.stdout)["id"]
    found = cli(
        "search", "peanut allergy", "--session", "s1", "--embedder", "local", "--json", dsn=migrated_db
    )
    assert [h["id"] for h in json.loads(found.stdout)["hits"]] == [memory_id]
    # A floor above it says the memory is there rather than that there is none.
    held = cli(
        "search",
        "peanut allergy",
        "--session",
        "s1",
        "--min-similarity",
        "0.9",
        "--embedder",
        "local",
        dsn=migrated_db,
    )
    assert "No memories matched with similarity >= 0.90: 1 more below the similarity floor" in held.stdout


def test_a_reembed_to_the_local_model_encodes_in_a_forked_process_quietly_and_exactly(
    minilm: LocalEmbedder, migrated_db: str, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The numpy model is forkable: the backfill computes in a process of its own, with the model this
    process has already used. The vectors are the ones this process computes, and nothing is printed."""
    from memcli.embeddings.hashing import HashingEmbedder
    from memcli.reembed import reembed

    seen = tmp_path / "pids"  # a file: the process's embedder is a copy of this one

    class Recording(LocalEmbedder):
        def embed(self, texts: Any) -> Any:
            with seen.open("a") as out:
                out.write(f"{os.getpid()}\n")
            return super().embed(texts)

    recording = Recording()
    assert recording.forkable
    texts = [text for text, _ in MEMORIES]
    expected = minilm.embed(texts)  # the model in use here before the fork
    with psycopg.connect(migrated_db, autocommit=True) as conn:
        for text, kind in MEMORIES:
            conn.execute(
                "INSERT INTO semantic_memory (session_id, content_type, content_text) VALUES ('s1', %s, %s)",
                (kind, text),
            )
        memories.embed_missing(conn, HashingEmbedder())
    with psycopg.connect(migrated_db) as conn:
        result = reembed(conn, recording, "local", batch_size=2)
        assert result.filled == len(MEMORIES)
        stored = dict(
            conn.execute("SELECT content_text, embedding_vector::real[] FROM semantic_memory").fetchall()
        )
    got = np.array([stored[text] for text in texts], dtype=np.float32)
    assert np.allclose(got, expected, atol=1e-6)
    assert seen.read_text().split() and str(os.getpid()) not in seen.read_text().split()
    assert "tokenizers" not in capfd.readouterr().err
