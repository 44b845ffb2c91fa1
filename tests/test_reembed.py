"""memcli reembed: another model and another dimension on the demo database while searches run; resume,
status, abort, locks; the old model keeps working until the swap."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from memcli.embeddings.hashing import HashingEmbedder
from memcli.errors import NotReadyError
from memcli.imports.engine import VECTORS_LOCK
from memcli.jobs.locks import lock_key
from memcli.jobs.priority import BACKGROUND_NICENESS, LOWEST_NICENESS, autogroup_niceness, autogroups_on
from memcli.reembed import reembed, reembed_abort, reembed_status
from memcli.search import search
from memcli.seed import seed_demo
from tests.importing import fetch, scalar, stored_vector

OLD = HashingEmbedder()


@pytest.fixture
def demo_db(migrated_db: str) -> str:
    with psycopg.connect(migrated_db) as conn:
        seed_demo(conn, OLD, businesses=3, sessions=40, random_seed=7)
    return migrated_db


def column_type(dsn: str) -> str:
    return scalar(
        dsn,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'semantic_memory'::regclass AND attname = 'embedding_vector' AND NOT attisdropped",
    )


def columns(dsn: str) -> set[str]:
    rows = psycopg.connect(dsn).execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'semantic_memory'::regclass AND attnum > 0 "
        "AND NOT attisdropped"
    )
    return {r[0] for r in rows}


class Searcher(threading.Thread):
    """Searches the whole time, with the database's model: the old one until the swap, then the new one."""

    def __init__(self, dsn: str, new) -> None:
        super().__init__(daemon=True)
        self.dsn, self.new = dsn, new
        self.stop = threading.Event()
        self.by_model: dict[tuple[str, int], int] = {}
        self.errors: list[BaseException] = []
        self.empty = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            embedder = OLD
            while not self.stop.is_set():
                try:
                    result = search(conn, embedder, "vegetarian dinner for two", min_similarity=-1.0, top_k=5)
                except NotReadyError:
                    embedder = self.new  # the swap happened: the old model is refused, rightly
                    continue
                except BaseException as exc:  # pragma: no cover - the test reports it
                    self.errors.append(exc)
                    return
                key = (embedder.name, embedder.dimension)
                self.by_model[key] = self.by_model.get(key, 0) + 1
                self.empty += not result.hits


@pytest.mark.slow
@pytest.mark.parametrize(
    ("new", "spec"),
    [(HashingEmbedder(variant="b"), "hashing:b"), (HashingEmbedder(dimension=256), "hashing")],
    ids=["other-model", "other-dimension"],
)
def test_reembed_while_searches_run(demo_db: str, new: HashingEmbedder, spec: str) -> None:
    rows = scalar(demo_db, "SELECT count(*) FROM semantic_memory")
    assert rows > 50
    searcher = Searcher(demo_db, new)
    searcher.start()
    time.sleep(0.3)
    with psycopg.connect(demo_db) as conn:
        result = reembed(conn, new, spec, batch_size=50, pause_seconds=0.01)
    time.sleep(0.3)
    searcher.stop.set()
    searcher.join(10)
    assert not searcher.errors and searcher.empty == 0
    # searches ran with the old model during the change and with the new one after it, none empty
    assert (
        searcher.by_model[(OLD.name, OLD.dimension)] > 0 and searcher.by_model[(new.name, new.dimension)] > 0
    )
    # rows the searches held locked (recording their access) were skipped, then caught up by the swap
    assert result.phase == "swapped" and result.filled + result.caught_up == rows
    assert column_type(demo_db) == f"vector({new.dimension})"
    assert scalar(demo_db, "SELECT value FROM memory_settings WHERE key = 'embedding.model'") == new.name
    assert (
        scalar(demo_db, "SELECT value FROM memory_settings WHERE key = 'embedding.dimension'")
        == new.dimension
    )
    assert scalar(demo_db, "SELECT count(*) FROM memory_settings WHERE key = 'reembed.target'") == 0
    assert (
        scalar(demo_db, "SELECT count(*) FROM semantic_memory WHERE embedding_model <> %s", (new.name,)) == 0
    )
    assert "embedding_vector_next" not in columns(demo_db) and "embedding_model_next" not in columns(demo_db)
    index = scalar(
        demo_db,
        "SELECT pg_get_indexdef(indexrelid) || ' ' || indisvalid FROM pg_index "
        "WHERE indexrelid = 'idx_semantic_memory_vector'::regclass",
    )
    assert "hnsw (embedding_vector vector_cosine_ops)" in index and index.endswith("true")
    memory_id, text = (
        psycopg.connect(demo_db).execute("SELECT id, content_text FROM semantic_memory").fetchone()
    )
    np.testing.assert_allclose(stored_vector(demo_db, memory_id), new.embed([text])[0], rtol=1e-5, atol=1e-7)
    with psycopg.connect(demo_db) as conn:
        assert search(conn, new, text, top_k=1).hits[0].id == memory_id
        with pytest.raises(NotReadyError):
            search(conn, OLD, text)


def _out_of_memory(notices: list[str]) -> list[str]:
    return [n for n in notices if "no longer fits" in n]  # pgvector's notice: the on-disk build begins


@pytest.mark.slow
def test_new_index_keeps_the_live_parameters_and_builds_in_memory(demo_db: str) -> None:
    """The shadow's index is built with the live index's m / ef_construction and its memory sized to the
    graph (the session's 1 MB would send pgvector to its slow on-disk build); a small table, no workers."""
    texts = [f"memory {i} about dinner number {i % 37}" for i in range(1500)]  # a graph 1 MB cannot hold
    with psycopg.connect(demo_db) as conn:
        register_vector(conn)
        with conn.cursor().copy(
            "COPY semantic_memory (session_id, content_type, content_text, embedding_vector, "
            "embedding_model) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["text", "text", "text", "vector", "text"])
            for text, vector in zip(texts, OLD.embed(texts), strict=True):
                copy.write_row(("s-big", "conversation", text, vector, OLD.name))
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("DROP INDEX idx_semantic_memory_vector")
        conn.execute(
            "CREATE INDEX idx_semantic_memory_vector ON semantic_memory "
            "USING hnsw (embedding_vector vector_cosine_ops) WITH (m = 12, ef_construction = 48)"
        )
    new = HashingEmbedder(variant="b")
    notices: list[str] = []
    with psycopg.connect(demo_db) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET maintenance_work_mem = '1MB'")
        conn.commit()
        result = reembed(conn, new, "hashing:b")
    assert result.phase == "swapped" and result.build_workers == 0 and result.build_memory_mb >= 64
    assert _out_of_memory(notices) == []
    index = scalar(demo_db, "SELECT pg_get_indexdef('idx_semantic_memory_vector'::regclass)")
    assert "m='12'" in index and "ef_construction='48'" in index
    # the control: the same build in the session's 1 MB does not fit the graph
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        conn.execute("SET maintenance_work_mem = '1MB'")
        conn.execute("SET max_parallel_maintenance_workers = 0")
        conn.execute(
            "CREATE INDEX control ON semantic_memory "
            "USING hnsw (embedding_vector vector_cosine_ops) WITH (m = 12, ef_construction = 48)"
        )
    assert _out_of_memory(notices)


def test_interrupted_reembed_leaves_the_old_model_working_then_resumes(cli, demo_db: str) -> None:
    new = HashingEmbedder(variant="b")
    rows = scalar(demo_db, "SELECT count(*) FROM semantic_memory")
    with psycopg.connect(demo_db) as conn:
        stopped = reembed(conn, new, "hashing:b", batch_size=40, max_rows=80)
    assert stopped.phase == "stopped" and stopped.filled == 80
    status = json.loads(cli("reembed", "status", "--json", dsn=demo_db).stdout)
    assert status["target"]["model"] == "hashing-v1:b" and status["progress"]["done"] == 80
    assert status["progress"]["total"] == rows and status["model"] == "hashing-v1"
    # the old model still serves search and writes; a memory written now is re-embedded too
    found = cli("search", "vegetarian", "--min-similarity", "0", "--json", dsn=demo_db)
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"]
    assert cli("remember", "written during the change", "--session", "s-new", dsn=demo_db).exit_code == 0
    # another model cannot start over it
    other = cli("reembed", "--embedder", "hashing:c", dsn=demo_db)
    assert other.exit_code == 2 and "under way" in other.stderr
    done = cli("reembed", "--embedder", "hashing:b", "--json", dsn=demo_db)
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] and report["already_filled"] == 80 and report["filled"] == rows + 1 - 80
    found = cli("search", "written during the change", "--embedder", "hashing:b", "--json", dsn=demo_db)
    assert json.loads(found.stdout)["hits"][0]["content_text"] == "written during the change"


def test_edited_text_is_embedded_again(demo_db: str) -> None:
    new = HashingEmbedder(variant="b")
    with psycopg.connect(demo_db) as conn:
        rows = scalar(demo_db, "SELECT count(*) FROM semantic_memory")
        assert reembed(conn, new, "hashing:b", batch_size=1000, max_rows=rows).phase == "stopped"
        memory_id = conn.execute("SELECT id FROM semantic_memory LIMIT 1").fetchone()[0]
        conn.execute(
            "UPDATE semantic_memory SET content_text = 'edited meanwhile' WHERE id = %s", (memory_id,)
        )
        conn.commit()
        reembed(conn, new, "hashing:b")
    np.testing.assert_allclose(
        stored_vector(demo_db, memory_id), new.embed(["edited meanwhile"])[0], rtol=1e-5
    )


class EditingEmbedder(HashingEmbedder):
    """Embeds like hashing:b; the first time, the application edits a memory of the batch meanwhile. What
    it did is in the database, not in the object: the backfill may embed in a process of its own."""

    EDITED = "edited while computed"

    def __init__(self, dsn: str) -> None:
        super().__init__(variant="b")
        self.dsn = dsn

    def edited(self) -> object:
        rows = fetch(self.dsn, "SELECT id FROM semantic_memory WHERE content_text = %s", (self.EDITED,))
        return rows[0][0] if rows else None

    def embed(self, texts):
        if self.edited() is None:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE semantic_memory SET content_text = %s "
                    "WHERE id = (SELECT id FROM semantic_memory ORDER BY id LIMIT 1)",
                    (self.EDITED,),
                )
        return super().embed(texts)


def test_text_edited_while_its_batch_is_embedded_is_never_swapped_in_stale(demo_db: str) -> None:
    new = EditingEmbedder(demo_db)
    with psycopg.connect(demo_db) as conn:
        result = reembed(conn, new, "hashing:b", batch_size=50)
    assert result.phase == "swapped" and result.caught_up == 0  # a second pass took the edited row
    np.testing.assert_allclose(stored_vector(demo_db, new.edited()), new.embed([new.EDITED])[0], rtol=1e-5)
    rows = psycopg.connect(demo_db).execute("SELECT content_text, embedding_vector FROM semantic_memory")
    for text, vector in rows:
        np.testing.assert_allclose(np.array(json.loads(vector)), new.embed([text])[0], rtol=1e-5, atol=1e-6)


def test_abort_and_dry_run(cli, demo_db: str) -> None:
    before = columns(demo_db)
    plan = cli("reembed", "--embedder", "hashing", "--dimension", "128", "--dry-run", "--json", dsn=demo_db)
    estimate = json.loads(plan.stdout)
    assert estimate["estimated_seconds"] is not None and estimate["sample_rows"] > 0
    assert estimate["estimated_index_seconds"] > 0
    assert estimate["estimated_seconds"] == pytest.approx(
        estimate["estimated_backfill_seconds"] + estimate["estimated_index_seconds"], abs=0.002
    )
    text = cli(
        "reembed",
        "--embedder",
        "hashing",
        "--dimension",
        "128",
        "--dry-run",
        "--build-workers",
        "1",
        dsn=demo_db,
    ).stdout
    assert "building the index" in " ".join(text.split())
    refused = cli("reembed", "--embedder", "hashing", "--build-workers", "-1", "--dry-run", dsn=demo_db)
    assert refused.exit_code == 2
    assert columns(demo_db) == before
    with psycopg.connect(demo_db) as conn:
        reembed(conn, HashingEmbedder(dimension=128), "hashing", max_rows=50)
    assert "embedding_vector_next" in columns(demo_db)
    aborted = cli("reembed", "abort", dsn=demo_db)
    assert aborted.exit_code == 0 and "50 new vectors discarded" in aborted.stdout
    assert columns(demo_db) == before and column_type(demo_db) == "vector(384)"
    with psycopg.connect(demo_db, autocommit=True) as conn:
        assert reembed_status(conn).target is None
        assert search(conn, OLD, "vegetarian", min_similarity=-1).hits
        assert not reembed_abort(conn).aborted
    same = cli("reembed", "--embedder", "hashing", dsn=demo_db)
    assert same.exit_code == 0 and "nothing to do" in same.stdout


def test_reembed_while_an_import_runs_exits_75(cli, demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(VECTORS_LOCK),))
        result = cli("reembed", "--embedder", "hashing:b", dsn=demo_db)
    assert result.exit_code == 75
    assert "embedding_vector_next" not in columns(demo_db)


def test_a_dimension_hnsw_cannot_index_is_refused_before_any_work(cli, demo_db: str) -> None:
    result = cli("reembed", "--embedder", "hashing", "--dimension", "3072", dsn=demo_db)
    assert result.exit_code == 2 and "at most 2000" in result.stderr
    assert "embedding_vector_next" not in columns(demo_db)


def test_build_estimate_indexes_a_sample_of_random_vectors_and_leaves_nothing(demo_db: str) -> None:
    from memcli.vector_index import estimate_build, plan_online_build

    with psycopg.connect(demo_db, autocommit=True) as conn:
        plan = plan_online_build(conn, 1_000_000, 768, "vector", 24, 128, workers=0)
        sample = estimate_build(conn, plan, sample_rows=50)
        assert sample.sample_rows == 50 and sample.sample_seconds > 0
        # a million rows of twice the dimension: far more than the 50-row sample took
        assert sample.seconds > 1000 * sample.sample_seconds
        assert estimate_build(conn, plan).sample_rows == 2000
        assert conn.execute("SELECT to_regclass('pg_temp.memcli_build_sample')").fetchone()[0] is None


def test_the_online_build_leaves_a_core_to_the_searches(demo_db: str) -> None:
    import os
    from types import SimpleNamespace

    from memcli.vector_index import online_build_workers, plan_online_build, server_cores

    cores = len(os.sched_getaffinity(0))
    with psycopg.connect(demo_db) as conn:  # the embedded server: this machine's cores
        assert server_cores(conn) == cores
        assert online_build_workers(conn) == max(0, cores - 2)
        assert plan_online_build(conn, 200_000, 384, "vector", 24, 128).workers == max(0, cores - 2)
        assert plan_online_build(conn, 200_000, 384, "vector", 24, 128, workers=3).workers == 3
    remote = SimpleNamespace(info=SimpleNamespace(host="db.example.com"))
    assert server_cores(remote) is None  # a remote server's cores are unknown: no workers unless told
    local = SimpleNamespace(info=SimpleNamespace(host="127.0.0.1"))
    assert server_cores(local) == cores


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own nice value is Linux's")
@pytest.mark.parametrize("forkable", [False, True], ids=["thread", "process"])
def test_the_backfill_embeds_at_a_lower_cpu_priority_and_the_caller_keeps_its_own(
    demo_db: str, tmp_path, forkable: bool
) -> None:
    """In a worker thread, or (an embedder that a forked process can run) in a process of its own, in a
    session of its own whose CPU weight is the lowest (Linux shares the cores between sessions first)."""
    own = _nice()
    if own + BACKGROUND_NICENESS > 19:
        pytest.skip("the test already runs at the lowest priority")
    seen = tmp_path / "seen"  # a file: the process's embedder is a copy of this one
    caller = (os.getpid(), threading.get_ident())
    session = os.getsid(0)
    group = autogroup_niceness()

    class Recording(HashingEmbedder):
        def embed(self, texts: Any) -> Any:
            where = "process" if os.getpid() != caller[0] else "thread"
            if (os.getpid(), threading.get_ident()) != caller:
                started: list[int] = []  # a thread the embedder starts (as the local encoder does)
                child = threading.Thread(target=lambda: started.append(_nice()))
                child.start()
                child.join()
                own_session = os.getsid(0) != session
                with seen.open("a") as out:
                    out.write(f"{where} {_nice()} {started[0]} {own_session} {autogroup_niceness()}\n")
            return super().embed(texts)

    Recording.forkable = forkable
    with psycopg.connect(demo_db) as conn:
        reembed(conn, Recording(variant="b"), "hashing:b", batch_size=50)
    lines = set(seen.read_text().splitlines())
    low = own + BACKGROUND_NICENESS
    if forkable:
        # The caller's own session may have no autogroup of its own (init's session shows none), the
        # worker's new session always does where autogroups are on.
        weight = LOWEST_NICENESS if autogroups_on() else None
        assert lines == {f"process {low} {low} True {weight}"}
    else:
        assert lines == {f"thread {low} {low} False {group}"}
    assert _nice() == own
    assert os.getsid(0) == session and autogroup_niceness() == group
