"""health --deep embedding_drift: stored vectors re-embedded with the configured model must match them."""

from __future__ import annotations

import json

import psycopg

from memcli.embeddings.hashing import HashingEmbedder
from memcli.health import run_checks
from memcli.health.core import Status
from memcli.seed import seed_demo


class ChangedWeights(HashingEmbedder):
    """The same name as the model that wrote the vectors, other weights: what a silent model change is."""

    def __init__(self) -> None:
        super().__init__(variant="retrained")
        self.name = "hashing-v1"


def drift(dsn: str, embedder: object) -> object:
    with psycopg.connect(dsn) as conn:
        return run_checks(conn, ["embedding_drift"], deep=True, embedder=embedder).result("embedding_drift")


def test_drift_check_passes_for_the_model_that_wrote_the_vectors(cli, migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, HashingEmbedder(), businesses=2, sessions=10, random_seed=3)
    result = cli("health", "--deep", "--check", "embedding_drift", "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stdout
    check = json.loads(result.stdout)["checks"][0]
    assert check["status"] == "ok" and check["details"]["sampled"] == 20 and check["value"] > 0.999
    # not run without --deep
    assert "embedding_drift" not in cli("health", "--json", dsn=migrated_db).stdout


def test_a_changed_model_behind_the_same_name_fails(migrated_db: str) -> None:
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, HashingEmbedder(), businesses=2, sessions=10, random_seed=3)
    result = drift(migrated_db, ChangedWeights())
    assert result.status is Status.FAIL and "the model behind the name changed" in result.message
    assert len(result.details["drifted_ids"]) == 20 and result.value < 0.5
    # a different name is the mismatch check's business, not drift
    assert drift(migrated_db, HashingEmbedder(variant="other")).status is Status.SKIP
    assert drift(migrated_db, None).status is Status.SKIP
