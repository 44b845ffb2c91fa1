"""Searches during a re-embed's backfill and concurrent index build log their access instead of updating
the rows; the log is folded into access_count / last_accessed_at afterwards, and no count is lost whether
the build ends, is cancelled, or its session is gone."""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from memcli import access
from memcli.embeddings.hashing import HashingEmbedder
from memcli.reembed import reembed, reembed_abort, reembed_status
from memcli.search import search
from memcli.seed import seed_demo
from memcli.settings import get_setting, set_setting
from tests.importing import scalar

OLD = HashingEmbedder()
NEW = HashingEmbedder(variant="b")
QUERY = "vegetarian dinner for two"


@pytest.fixture
def demo_db(migrated_db: str) -> str:
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, OLD, businesses=2, sessions=20, random_seed=3)
    return migrated_db


def counts(dsn: str) -> dict[uuid.UUID, int]:
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT id, access_count FROM semantic_memory").fetchall())


def build_phase(dsn: str) -> str | None:
    return scalar(
        dsn,
        "SELECT max(phase) FROM pg_stat_progress_create_index "
        "WHERE relid = 'semantic_memory'::regclass AND command = 'CREATE INDEX CONCURRENTLY'",
    )


class Reembed(threading.Thread):
    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.error: BaseException | None = None
        self.pid: int | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                self.pid = conn.info.backend_pid
                reembed(conn, NEW, "hashing:b")
        except BaseException as exc:  # the test looks at it
            self.error = exc


def held_build(dsn: str) -> tuple[psycopg.Connection, Reembed]:
    """A re-embed whose concurrent index build waits: a transaction holding an older snapshot keeps it in
    its last phase ("waiting for old snapshots") until the transaction ends."""
    blocker = psycopg.connect(dsn)
    blocker.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    blocker.execute("SELECT count(*) FROM memory_settings")  # the snapshot, no lock on semantic_memory
    job = Reembed(dsn)
    job.start()
    deadline = time.monotonic() + 60
    while "old snapshots" not in (build_phase(dsn) or ""):
        assert job.is_alive() and time.monotonic() < deadline, job.error
        time.sleep(0.05)
    return blocker, job


def searches(dsn: str, n: int) -> list[uuid.UUID]:
    hits: list[uuid.UUID] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(n):
            hits += [h.id for h in search(conn, OLD, QUERY, min_similarity=-1.0, top_k=5).hits]
    return hits


@pytest.mark.slow
def test_access_during_the_build_is_logged_then_counted(demo_db: str) -> None:
    before = counts(demo_db)
    blocker, job = held_build(demo_db)
    try:
        with psycopg.connect(demo_db) as conn:
            assert get_setting(conn, access.FLAG_KEY)["pid"] == job.pid
        hits = searches(demo_db, 6)
        # the rows were not updated during the build: the access went to the log
        assert counts(demo_db) == before
        assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == len(hits) == 30
        with psycopg.connect(demo_db) as conn:
            assert reembed_status(conn).access_pending == 30
    finally:
        blocker.rollback()
        blocker.close()
    job.join(60)
    assert job.error is None and not job.is_alive()
    after = counts(demo_db)
    for memory_id in set(hits):
        assert after[memory_id] == (before[memory_id] or 0) + hits.count(memory_id)
    assert {k: v for k, v in after.items() if k not in hits} == {
        k: v for k, v in before.items() if k not in hits
    }
    assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0
    assert scalar(demo_db, "SELECT count(*) FROM memory_settings WHERE key = %s", (access.FLAG_KEY,)) == 0
    assert scalar(
        demo_db,
        "SELECT bool_and(last_accessed_at IS NOT NULL) FROM semantic_memory WHERE id = ANY(%s)",
        (hits,),
    )
    # after the swap, searches update in place again
    with psycopg.connect(demo_db, autocommit=True) as conn:
        hit = search(conn, NEW, QUERY, min_similarity=-1.0, top_k=1).hits[0]
    assert counts(demo_db)[hit.id] == after[hit.id] + 1


@pytest.mark.slow
def test_a_cancelled_build_clears_the_flag_and_loses_no_count(demo_db: str) -> None:
    before = counts(demo_db)
    blocker, job = held_build(demo_db)
    try:
        hits = searches(demo_db, 3)
        assert scalar(demo_db, "SELECT pg_cancel_backend(%s)", (job.pid,))
        job.join(60)
    finally:
        blocker.rollback()
        blocker.close()
    assert isinstance(job.error, psycopg.errors.QueryCanceled)
    assert scalar(demo_db, "SELECT count(*) FROM memory_settings WHERE key = %s", (access.FLAG_KEY,)) == 0
    assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0
    after = counts(demo_db)
    assert sum(after.values()) - sum(before.values()) == len(hits) == 15
    # the old model works, in place; abort drops the rest
    with psycopg.connect(demo_db, autocommit=True) as conn:
        assert search(conn, OLD, QUERY, min_similarity=-1.0, top_k=2).hits
        assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0
        assert reembed_abort(conn).aborted
    assert sum(counts(demo_db).values()) == sum(after.values()) + 2


def test_a_flag_whose_session_is_gone_is_not_followed_and_abort_folds_the_log(cli, demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        seen = search(conn, OLD, QUERY, min_similarity=-1.0, top_k=1).hits[0].id
        before = counts(demo_db)
        # a build killed with its session: the flag stays, and names no live session
        set_setting(conn, access.FLAG_KEY, {"pid": 2**31 - 1})
        search(conn, OLD, QUERY, min_similarity=-1.0, top_k=1)
        assert counts(demo_db)[seen] == before[seen] + 1
        assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0
        # a live one (this session's): searches log
        set_setting(conn, access.FLAG_KEY, {"pid": conn.info.backend_pid})
        search(conn, OLD, QUERY, min_similarity=-1.0, top_k=1)
        search(conn, OLD, QUERY, min_similarity=-1.0, top_k=1)
        assert counts(demo_db)[seen] == before[seen] + 1
        assert reembed_status(conn).access_pending == 2
        shown = " ".join(cli("reembed", "status", dsn=demo_db).stdout.split())
        assert "2 search accesses logged during an index build are not in the access counts yet" in shown
        # a re-embed stopped after its backfill, then aborted: flag cleared, log folded
        assert reembed(conn, NEW, "hashing:b", max_rows=5).phase == "stopped"
        assert reembed_abort(conn).aborted
        assert get_setting(conn, access.FLAG_KEY) is None
    assert counts(demo_db)[seen] == before[seen] + 3
    assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0


def test_fold_counts_each_record_once_and_drops_those_of_deleted_memories(demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM semantic_memory ORDER BY id LIMIT 3")]
        before = counts(demo_db)
        gone = uuid.uuid4()
        access.record(conn, [ids[0], ids[1], ids[0], gone])
        access.record(conn, [ids[0]])
        result = access.fold(conn, batch_size=2)  # several batches
        assert (result.records, access.pending(conn)) == (5, 0)
        assert access.fold(conn).records == 0
    after = counts(demo_db)
    assert after[ids[0]] == (before[ids[0]] or 0) + 3
    assert after[ids[1]] == (before[ids[1]] or 0) + 1
    assert after[ids[2]] == before[ids[2]]


BUMP = "UPDATE semantic_memory SET access_count = access_count + 1 WHERE id = %s"


def test_a_fold_gives_way_to_a_search_holding_rows_in_the_other_order(demo_db: str) -> None:
    """A search's update locks the rows it returns in its plan's order; a fold that met it in a cycle
    must roll back before Postgres picks a victim (deadlock_timeout), so the search never fails."""
    with psycopg.connect(demo_db, autocommit=True) as conn:
        low, high = [r[0] for r in conn.execute("SELECT id FROM semantic_memory ORDER BY id LIMIT 2")]
        before = counts(demo_db)
        access.record(conn, [low, high])
    outcome: dict[str, object] = {}
    with psycopg.connect(demo_db) as search_conn:
        search_conn.execute("SET statement_timeout = '20s'")
        # the search has locked the higher id first ...
        search_conn.execute(BUMP, (high,))

        def run_fold() -> None:
            with psycopg.connect(demo_db, autocommit=True) as conn:
                try:
                    outcome["fold"] = access.fold(conn)
                except BaseException as exc:  # pragma: no cover - the assertion reports it
                    outcome["fold"] = exc

        folding = threading.Thread(target=run_fold)
        folding.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not scalar(  # the fold holds the lower id, waits for the higher
            demo_db,
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%UPDATE semantic_memory m%%'",
        ):
            time.sleep(0.01)
        # ... and now wants the lower one: a cycle, unless the fold gives way
        search_conn.execute(BUMP, (low,))
        search_conn.commit()
        folding.join(30)
    result = outcome["fold"]
    assert isinstance(result, access.FoldResult), result
    assert result.records == 2
    after = counts(demo_db)
    assert after[low] == (before[low] or 0) + 2 and after[high] == (before[high] or 0) + 2


def test_revision_0013_downgrade_folds_the_log_then_drops_it(demo_db: str) -> None:
    from memcli import migrations

    with psycopg.connect(demo_db, autocommit=True) as conn:
        memory_id = conn.execute("SELECT id FROM semantic_memory LIMIT 1").fetchone()[0]
        before = counts(demo_db)[memory_id] or 0
        access.record(conn, [memory_id, memory_id])
        set_setting(conn, access.FLAG_KEY, {"pid": conn.info.backend_pid})
    assert migrations.downgrade(demo_db, "0012_import_keys_no_foreign_key").applied == [
        "0013_semantic_memory_access_log"
    ]
    assert scalar(demo_db, "SELECT to_regclass('semantic_memory_access')") is None
    assert counts(demo_db)[memory_id] == before + 2
    with psycopg.connect(demo_db, autocommit=True) as conn:
        assert get_setting(conn, access.FLAG_KEY) is None
        # a schema without the log: searches update in place, a build sets no flag
        assert access.pending(conn) == 0 and access.fold(conn).records == 0
        searched = counts(demo_db)
        with access.deferring(conn):
            assert get_setting(conn, access.FLAG_KEY) is None
            hit = search(conn, OLD, QUERY, min_similarity=-1.0, top_k=1).hits[0]
            assert counts(demo_db)[hit.id] == (searched[hit.id] or 0) + 1
    assert migrations.upgrade(demo_db).applied == ["0013_semantic_memory_access_log"]


def test_access_during_the_backfill_is_logged_then_counted(demo_db: str, monkeypatch, tmp_path) -> None:
    """The backfill locks the rows it fills: searches meanwhile log their access rather than wait."""
    import json

    import memcli.reembed as reembed_module

    before = counts(demo_db)
    # written to a file: the hashing embedder's backfill computes in a process of its own
    seen = tmp_path / "seen.json"
    real_fill = reembed_module._fill

    def fill_and_search(embedder):
        fill = real_fill(embedder)

        def during(texts):
            if not seen.exists():  # once, while the backfill runs
                hits = searches(demo_db, 4)
                rows = counts(demo_db)
                logged = scalar(demo_db, "SELECT count(*) FROM semantic_memory_access")
                seen.write_text(
                    json.dumps(
                        {"hits": [str(h) for h in hits], "unchanged": rows == before, "logged": logged}
                    )
                )
            return fill(texts)

        return during

    monkeypatch.setattr(reembed_module, "_fill", fill_and_search)
    with psycopg.connect(demo_db) as conn:
        # stopped after the backfill (every row): no index build, whose searches log too
        result = reembed(conn, NEW, "hashing:b", max_rows=len(before))
    observed = json.loads(seen.read_text())
    hits = [uuid.UUID(h) for h in observed["hits"]]
    assert result.phase == "stopped" and len(hits) == 20
    assert observed["unchanged"] and observed["logged"] == len(hits)
    after = counts(demo_db)
    for memory_id in set(hits):
        assert after[memory_id] == (before[memory_id] or 0) + hits.count(memory_id)
    assert scalar(demo_db, "SELECT count(*) FROM semantic_memory_access") == 0
    assert scalar(demo_db, "SELECT count(*) FROM memory_settings WHERE key = %s", (access.FLAG_KEY,)) == 0
