"""memcli import jsonl: the format, bad lines, resume after a kill (SIGKILL and a signal), locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcli.imports.engine import IMPORT_LOCK, VECTORS_LOCK, ImportOptions, run_import
from memcli.imports.jsonl import JsonLinesSource
from memcli.imports.records import BadVector, check_vector, context_key
from memcli.jobs.locks import lock_key
from tests.importing import counts, fetch, scalar, vec


def write_lines(path: Path, items: list[object]) -> Path:
    path.write_text("".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items), "utf-8")
    return path


def memory(n: int, **extra: object) -> dict[str, object]:
    return {"id": f"m-{n}", "text": f"memory number {n}", "session_id": f"s-{n % 7}", **extra}


def test_every_field_of_the_format(cli, migrated_db: str, tmp_path: Path) -> None:
    text = "Prefers a window table"
    path = write_lines(
        tmp_path / "in.jsonl",
        [
            {
                "id": "pref-1",
                "text": text,
                "session_id": "s-42",
                "user_id": "alice",
                "content_type": "user_preference",
                "embedding": vec(text),
                "embedding_model": "hashing-v1",
                "created_at": "2024-05-01T12:00:00Z",
                "importance": 0.8,
                "tier": "long_term",
                "decay": 0.05,
                "expires_at": "2030-01-01T00:00:00Z",
                "metadata": {"channel": "sms"},
                "color": "blue",
            }
        ],
    )
    result = cli("import", "jsonl", str(path), "--json", dsn=migrated_db)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["vectors_kept"] == 1
    assert report["rows_written"] == {"semantic_memory": 1, "conversation_memory": 1, "context_relevance": 1}
    sm = fetch(
        migrated_db,
        "SELECT id, session_id, content_type, content_text, relevance_score, created_at, metadata, "
        "embedding_model, user_id FROM semantic_memory",
    )[0]
    assert sm[1:4] == ("s-42", "user_preference", text) and sm[4] == pytest.approx(0.8)
    assert sm[5].isoformat() == "2024-05-01T12:00:00+00:00" and sm[7] == "hashing-v1"
    assert (
        sm[6]["channel"] == "sms" and sm[6]["extra"] == {"color": "blue"} and sm[6]["source_user"] == "alice"
    )
    cm = fetch(
        migrated_db,
        "SELECT memory_type, context_key, context_value, importance_score, expires_at, user_id "
        "FROM conversation_memory",
    )[0]
    assert cm[0] == "long_term" and cm[1] == context_key("jsonl:in.jsonl", "id:pref-1")
    assert cm[2]["text"] == text and cm[2]["semantic_memory_id"] == str(sm[0])
    assert cm[3] == pytest.approx(0.8) and cm[4].year == 2030 and cm[5] == sm[8]
    cr = fetch(migrated_db, "SELECT context_key, relevance_score, decay_factor FROM context_relevance")[0]
    assert cr[0] == cm[1] and cr[1] == pytest.approx(0.8) and cr[2] == pytest.approx(0.95)


def test_bad_lines_are_rejected_by_line_and_the_rest_import(cli, migrated_db: str, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "in.jsonl",
        [
            memory(1),
            "{not json",
            {"id": "no-text", "session_id": "s"},
            memory(4, embedding=[0.1, "x", 0.3]),
            memory(5, embedding={"a": 1}),
            memory(6, tier="forever"),
            memory(7, embedding=[1.0, 2.0, 3.0]),
            memory(8, embedding=[1.0, 2.0]),  # the source's dimension (3, most common) differs
            memory(9, embedding=[1.0, 2.0, 4.0]),
        ],
    )
    result = cli("import", "jsonl", str(path), "--json", dsn=migrated_db)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    reasons = {r["source_key"]: r["reason"] for r in report["rejected"]}
    assert len(reasons) == 6 and report["imported"] == 3
    assert any(r.startswith("line 2: not JSON") for r in reasons.values())
    assert reasons["id:no-text"] == "line 3: missing 'text'"
    assert reasons["id:m-4"] == "bad vector: non-numeric element"
    assert reasons["id:m-5"] == "bad vector: not an array but dict"
    assert reasons["id:m-6"].startswith("line 6: tier 'forever'")
    assert reasons["id:m-8"] == "bad vector: 2 dimensions, expected 3"
    # vectors of no named model are not the database's: left for memcli embed
    assert scalar(migrated_db, "SELECT count(*) FROM semantic_memory WHERE embedding_vector IS NULL") == 3


def test_dry_run_changes_nothing(cli, migrated_db: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [memory(n) for n in range(5)])
    result = cli("import", "jsonl", str(path), "--dry-run", dsn=migrated_db)
    assert result.exit_code == 0 and "lines" in result.stdout and "5" in result.stdout
    assert counts(migrated_db)["semantic_memory"] == 0
    assert scalar(migrated_db, "SELECT count(*) FROM memory_imports") == 0


def test_interrupted_import_resumes_without_duplicates(migrated_db: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [memory(n) for n in range(100)])

    def stop_after_three_batches(done: int, total: int | None) -> None:
        if done >= 30:
            raise KeyboardInterrupt

    with psycopg.connect(migrated_db) as conn, pytest.raises(KeyboardInterrupt):
        run_import(conn, JsonLinesSource(path), None, ImportOptions(batch_size=10), stop_after_three_batches)
    assert counts(migrated_db)["semantic_memory"] == 30
    assert scalar(migrated_db, "SELECT status FROM memory_imports") == "failed"
    with psycopg.connect(migrated_db) as conn:
        result = run_import(conn, JsonLinesSource(path), None, ImportOptions(batch_size=10))
    assert result.resumed and result.skipped == 30 and result.imported == 70
    assert scalar(migrated_db, "SELECT count(DISTINCT id) FROM memory_imports") == 1
    assert counts(migrated_db)["semantic_memory"] == 100
    assert scalar(migrated_db, "SELECT count(DISTINCT content_text) FROM semantic_memory") == 100
    # a completed import run again imports nothing
    with psycopg.connect(migrated_db) as conn:
        again = run_import(conn, JsonLinesSource(path), None, ImportOptions(batch_size=10))
    assert again.imported == 0 and again.skipped == 100 and not again.resumed


@pytest.mark.slow
def test_killed_import_resumes(migrated_db: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "in.jsonl", [memory(n, embedding=vec(f"m{n}")) for n in range(3000)])
    env = {**os.environ, "MEMCLI_DATABASE_URL": migrated_db, "MEMCLI_EMBEDDER": "hashing"}
    command = [sys.executable, "-m", "memcli", "import", "jsonl", str(path), "--batch-size", "20"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while scalar(migrated_db, "SELECT count(*) FROM memory_import_keys") < 100:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = counts(migrated_db)["semantic_memory"]
    assert 100 <= partial < 3000 and partial % 20 == 0  # whole batches only
    assert counts(migrated_db)["memory_import_keys"] == partial
    assert scalar(migrated_db, "SELECT status FROM memory_imports") == "running"
    finished = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert report["resumed"] and report["skipped"] == partial and report["imported"] == 3000 - partial
    assert counts(migrated_db)["semantic_memory"] == 3000
    assert scalar(migrated_db, "SELECT count(DISTINCT content_text) FROM semantic_memory") == 3000


@pytest.mark.parametrize("held", [IMPORT_LOCK, VECTORS_LOCK])
def test_a_second_import_or_a_reembed_running_exits_75(
    cli, migrated_db: str, tmp_path: Path, held: str
) -> None:
    path = write_lines(tmp_path / "in.jsonl", [memory(1)])
    with psycopg.connect(migrated_db, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key(held),))
        result = cli("import", "jsonl", str(path), dsn=migrated_db)
    assert result.exit_code == 75 and f"'{held}'" in result.stderr
    assert counts(migrated_db)["semantic_memory"] == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.integers(-5, 5),
            st.text(max_size=3),
            st.none(),
            st.booleans(),
        ),
        max_size=8,
    )
)
def test_check_vector_accepts_exactly_finite_numbers(values: list[object]) -> None:
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    finite = numeric and all(float(v) == float(v) and abs(float(v)) != float("inf") for v in values)
    try:
        out = check_vector(values, None)
    except BadVector:
        assert not (values and finite)
    else:
        assert values and finite and out.tolist() == pytest.approx([float(v) for v in values])
