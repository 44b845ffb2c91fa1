"""The vector index on semantic_memory.embedding_vector: present, valid, sized, and (``--deep``) accurate."""

from __future__ import annotations

import math
from typing import Any

from memcli.health.core import CheckResult, Context, Status, health_check

# Distance operator each pgvector operator class serves; memcli searches by cosine distance.
OPERATORS = {
    "vector_cosine_ops": "<=>",
    "vector_l2_ops": "<->",
    "vector_ip_ops": "<#>",
    "vector_l1_ops": "<+>",
    "halfvec_cosine_ops": "<=>",
    "halfvec_l2_ops": "<->",
    "halfvec_ip_ops": "<#>",
    "halfvec_l1_ops": "<+>",
}
SEARCH_OPCLASS = "vector_cosine_ops"
# Cosine search on either vector type (names.VECTOR_TYPES; memcli vectors convert switches them).
SEARCH_OPCLASSES = (SEARCH_OPCLASS, "halfvec_cosine_ops")
RECALL_K = 10
RECALL_MIN_ROWS = 20


def vector_indexes(ctx: Context) -> list[dict[str, Any]]:
    def compute() -> list[dict[str, Any]]:
        ctx.require_tables("semantic_memory")
        return ctx.rows(
            """
            SELECT c.relname AS index, am.amname AS method, i.indisvalid AS valid, i.indisready AS ready,
                   opc.opcname AS opclass, coalesce(c.reloptions, '{}') AS options,
                   pg_relation_size(c.oid) AS bytes, i.indpred IS NOT NULL AS partial
            FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_am am ON am.oid = c.relam
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
            JOIN pg_opclass opc ON opc.oid = i.indclass[0]
            WHERE i.indrelid = %s::regclass AND a.attname = 'embedding_vector'
              AND am.amname IN ('hnsw', 'ivfflat')
            ORDER BY i.indisvalid DESC, (opc.opcname = ANY(%s)) DESC, c.relname
            """,
            (ctx.qualified("semantic_memory"), list(SEARCH_OPCLASSES)),
        )

    return ctx.memo("vector_indexes", compute)


def _options(index: dict[str, Any]) -> dict[str, str]:
    return dict(option.split("=", 1) for option in index["options"] if "=" in option)


@health_check("vector")
def vector_index(ctx: Context) -> CheckResult:
    """Vector index on embedding_vector exists and is valid.

    Fix: CREATE INDEX CONCURRENTLY idx_semantic_memory_vector ON semantic_memory USING hnsw (embedding_vector
    vector_cosine_ops) (drop the invalid one first).
    """
    indexes = vector_indexes(ctx)
    threshold = f"a valid hnsw/ivfflat index with {SEARCH_OPCLASS}"
    details = {"indexes": indexes}
    valid = [i for i in indexes if i["valid"]]
    usable = [i for i in valid if i["opclass"] in SEARCH_OPCLASSES and not i["partial"]]
    hint = None
    if not indexes:
        status, value = Status.FAIL, 0
        message = "no vector index on semantic_memory.embedding_vector: every search scans the table"
    elif not valid:
        status, value = Status.FAIL, 0
        message = f"vector index {', '.join(i['index'] for i in indexes)} is invalid (failed build)"
    else:
        best = (usable or valid)[0]
        message = f"{best['index']} ({best['method']}, {best['opclass']}, {best['bytes'] / 1048576:.1f} MB)"
        if not usable:
            status, value = Status.WARN, len(valid)
            message += " does not serve cosine search (<=>), which memcli uses"
            hint = "create the index with vector_cosine_ops"
        elif len(valid) < len(indexes):
            status, value = Status.WARN, len(usable)
            message += f"; {len(indexes) - len(valid)} invalid"
            hint = "drop the invalid vector index: DROP INDEX CONCURRENTLY ..."
        else:
            status, value = Status.OK, len(usable)
    return CheckResult(
        status, value=value, unit="count", threshold=threshold, message=message, details=details, hint=hint
    )


@health_check("vector")
def ivfflat_lists(ctx: Context) -> CheckResult:
    """ivfflat lists fit the row count.

    Fix: rebuild the ivfflat index with lists = rows/1000 (sqrt(rows) above 1M rows), or switch to hnsw.
    """
    ivf = [i for i in vector_indexes(ctx) if i["method"] == "ivfflat" and i["valid"]]
    factor = ctx.thresholds["ivfflat_lists_factor"]
    threshold = f"lists within {factor:g}x of rows/1000 (sqrt(rows) over 1M)"
    if not ivf:
        return CheckResult(Status.OK, threshold=threshold, message="not applicable: no ivfflat index")
    rows = ctx.row_estimate("semantic_memory")
    recommended = rows / 1000 if rows <= 1_000_000 else math.sqrt(rows)
    results = []
    for index in ivf:
        lists = int(_options(index).get("lists", 100))
        ratio = lists / recommended if recommended >= 1 else None
        results.append(
            {"index": index["index"], "lists": lists, "recommended": round(recommended), "ratio": ratio}
        )
    details = {"rows_estimate": rows, "indexes": results}
    if rows < 10_000:
        first, status = results[0], Status.OK
        message = f"not judged: ~{rows:,.0f} rows (ivfflat recall suffers when built on few rows)"
    else:
        off = [
            r for r in results if r["ratio"] is not None and (r["ratio"] > factor or r["ratio"] < 1 / factor)
        ]
        first, status = (off or results)[0], Status.WARN if off else Status.OK
        message = (
            f"{first['index']}: lists {first['lists']}, recommended ~{first['recommended']} "
            f"for ~{rows:,.0f} rows"
        )
    return CheckResult(
        status,
        value=first["lists"],
        unit="count",
        threshold=threshold,
        estimate=True,
        message=message,
        details=details,
    )


@health_check("vector", deep=True)
def vector_recall(ctx: Context) -> CheckResult:
    """Vector index recall@10 against an exact scan, at memcli's ef_search (--deep).

    Fix: memcli tune (sets ef_search, or says which rebuild reaches the target).
    """
    from dataclasses import asdict

    from psycopg import sql

    from memcli.vector_recall import STATEMENT_TIMEOUT_MS, measure, recall_target

    ctx.require_visible_rows("semantic_memory")
    target = recall_target(ctx.conn)
    queries = max(1, int(ctx.thresholds["recall_queries"]))
    threshold = f"recall@{RECALL_K} ≥ {target:g} (search.recall_target) over {queries} sampled queries"
    index = next((i for i in vector_indexes(ctx) if i["valid"]), None)
    if index is None:
        return CheckResult(Status.SKIP, threshold=threshold, message="no valid vector index to probe")
    embedded, _ = ctx.count_where("semantic_memory", sql.SQL("embedding_vector IS NOT NULL"))
    if embedded < RECALL_MIN_ROWS:
        return CheckResult(
            Status.OK,
            threshold=threshold,
            details={"embedded_rows": embedded},
            message=f"not probed: only {embedded} embedded rows",
        )
    table = ctx.table("semantic_memory")
    operator = sql.SQL(OPERATORS.get(index["opclass"], "<=>"))
    search = sql.SQL(
        "SELECT id FROM {} ORDER BY embedding_vector {} (SELECT embedding_vector FROM {} "
        "WHERE embedding_vector IS NOT NULL LIMIT 1) LIMIT %s"
    ).format(table, operator, table)
    timeout = str(int(max(ctx.thresholds["statement_timeout_ms"], STATEMENT_TIMEOUT_MS)))
    with ctx.local_settings({"statement_timeout": timeout}):
        with ctx.local_settings({"enable_seqscan": "off"}):
            plan = ctx.scalar(sql.SQL("EXPLAIN (FORMAT JSON) ") + search, [RECALL_K])
            uses_index = index["index"] in str(plan)
        measurement = measure(ctx.conn, queries) if uses_index else None
    details: dict[str, Any] = {"index": index["index"], "index_used": uses_index, "k": RECALL_K}
    if measurement is None:
        return CheckResult(
            Status.WARN,
            threshold=threshold,
            details=details,
            message=f"the planner does not use {index['index']} for ORDER BY embedding_vector "
            f"{OPERATORS.get(index['opclass'], '<=>')} ... LIMIT {RECALL_K}",
            hint="check the index's operator class against the search operator",
        )
    details.update(queries=measurement.queries, measurement=asdict(measurement))
    return _recall_verdict(
        measurement.recall,
        target,
        threshold,
        details,
        f"at ef_search {measurement.ef_search} over {measurement.queries} sampled queries ({index['index']}, "
        f"index p50 {measurement.index_p50_ms:.1f} ms, exact {measurement.exact_p50_ms:.0f} ms)",
    )


def _recall_verdict(
    recall: float, target: float, threshold: str, details: dict[str, Any], how: str, hint: str | None = None
) -> CheckResult:
    """A recall@k figure judged against search.recall_target; ``how`` says how it was measured."""
    return CheckResult(
        Status.WARN if recall < target else Status.OK,
        value=recall,
        unit="ratio",
        threshold=threshold,
        estimate=True,
        details=details,
        message=f"recall@{RECALL_K} {recall:.3f} {how}",
        hint=hint,
    )


@health_check("vector")
def vector_recall_measured(ctx: Context) -> CheckResult:
    """Last measured recall@10 meets search.recall_target.

    Fix: memcli tune (sets ef_search, or says which rebuild reaches the target).
    """
    from memcli.vector_recall import last_measurement, recall_target

    target = recall_target(ctx.conn)
    threshold = f"recall@{RECALL_K} ≥ {target:g} (search.recall_target)"
    last = last_measurement(ctx.conn)
    if last is None:
        return CheckResult(
            Status.OK,
            threshold=threshold,
            message="recall not measured yet (memcli health --deep, or memcli tune, measures and records it)",
        )
    rows = ctx.row_estimate("semantic_memory")
    grown = rows > 2 * max(last.rows, 1) and rows >= 10_000
    details = {**last.__dict__, "rows_now": rows}
    note = f"; the table has grown to ~{rows:,.0f} rows since: measure again" if grown else ""
    below = last.recall < target
    return _recall_verdict(
        last.recall,
        target,
        threshold,
        details,
        f"at ef_search {last.ef_search} on {last.rows:,} rows, measured {last.measured_at}{note}",
        hint=(
            "rebuild with larger parameters: memcli index rebuild (memcli tune says which)"
            if below and last.rebuild_recommended
            else "memcli tune"
            if below
            else "memcli health --deep"
            if grown
            else None
        ),
    )


@health_check("vector", deep=True)
def embedding_drift(ctx: Context) -> CheckResult:
    """Stored vectors match what the configured model gives for their texts (--deep).

    Re-embed a sample of stored texts and compare: a silent model change (same name, other weights; a
    provider that swapped its model) shows as a low cosine similarity long before searches look wrong.

    Fix: the model behind the configured name changed: re-embed (memcli reembed --embedder ...) or pin the
    model that wrote the stored vectors.
    """
    import numpy as np
    from psycopg import sql

    from memcli.semantic import use_vectors

    ctx.require_visible_rows("semantic_memory")
    floor = float(ctx.thresholds["drift_min_similarity"])
    samples = max(1, int(ctx.thresholds["drift_samples"]))
    threshold = f"cosine ≥ {floor:g} for each of {samples} sampled memories"
    embedder = ctx.embedder
    if embedder is None:
        return CheckResult(Status.SKIP, threshold=threshold, message="no embedder configured")
    recorded = ctx.settings().get("embedding.model")
    if recorded is None:
        # Nothing embedded yet, so nothing can have drifted: a finding, not a check that could not run.
        return CheckResult(
            Status.OK,
            threshold=threshold,
            message="no embedding model recorded yet: no stored vectors to compare",
        )
    if recorded != embedder.name:
        return CheckResult(
            Status.SKIP,
            threshold=threshold,
            message=f"the configured embedder {embedder.name!r} is not the stored model {recorded!r} "
            "(see embedding_mismatch)",
        )
    use_vectors(ctx.conn)  # stored vectors (cast to vector: a halfvec column too) come back as Vectors
    table = ctx.table("semantic_memory")
    rows = ctx.rows(
        sql.SQL(
            "SELECT id, content_text AS text, embedding_vector::vector AS v FROM {} "
            "WHERE embedding_vector IS NOT NULL AND content_text IS NOT NULL "
            "AND (embedding_model IS NULL OR embedding_model = %s) ORDER BY random() LIMIT %s"
        ).format(table)
        if ctx.row_estimate("semantic_memory") <= ctx.thresholds["exact_count_max_rows"]
        else sql.SQL(
            "SELECT id, content_text AS text, embedding_vector::vector AS v FROM {} TABLESAMPLE SYSTEM (1) "
            "WHERE embedding_vector IS NOT NULL AND content_text IS NOT NULL "
            "AND (embedding_model IS NULL OR embedding_model = %s) LIMIT %s"
        ).format(table),
        [embedder.name, samples],
    )
    if not rows:
        return CheckResult(Status.OK, threshold=threshold, message="not probed: no embedded memories")
    stored = np.array([r["v"].to_numpy() for r in rows], dtype=np.float64)
    if stored.shape[1] != embedder.dimension:
        return CheckResult(
            Status.FAIL,
            threshold=threshold,
            message=f"stored vectors have {stored.shape[1]} dimensions, {embedder.name!r} gives "
            f"{embedder.dimension}",
        )
    fresh = np.asarray(embedder.embed([r["text"] for r in rows]), dtype=np.float64)
    norms = np.linalg.norm(stored, axis=1) * np.linalg.norm(fresh, axis=1)
    norms[norms == 0] = 1.0
    cosines = (stored * fresh).sum(axis=1) / norms
    drifted = [str(r["id"]) for r, c in zip(rows, cosines, strict=True) if c < floor]
    details = {
        "model": embedder.name,
        "sampled": len(rows),
        "min_cosine": round(float(cosines.min()), 6),
        "mean_cosine": round(float(cosines.mean()), 6),
        "drifted_ids": drifted[:20],
    }
    if drifted:
        message = (
            f"{len(drifted)} of {len(rows)} sampled memories re-embed differently with "
            f"{embedder.name!r} (lowest cosine {cosines.min():.3f}): the model behind the name changed"
        )
    else:
        message = f"{len(rows)} sampled memories re-embed the same (lowest cosine {cosines.min():.4f})"
    return CheckResult(
        Status.FAIL if drifted else Status.OK,
        value=round(float(cosines.min()), 4),
        unit="ratio",
        threshold=threshold,
        details=details,
        message=message,
    )
