"""The vector index on semantic_memory.embedding_vector: present, valid, sized, and (``--deep``) accurate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from memcli.health.core import CheckResult, Context, Status, register

if TYPE_CHECKING:
    import psycopg

# Distance operator each pgvector operator class serves; memcli searches by cosine distance.
OPERATORS = {
    "vector_cosine_ops": "<=>",
    "vector_l2_ops": "<->",
    "vector_ip_ops": "<#>",
    "vector_l1_ops": "<+>",
}
SEARCH_OPCLASS = "vector_cosine_ops"
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
            ORDER BY i.indisvalid DESC, (opc.opcname = %s) DESC, c.relname
            """,
            (ctx.qualified("semantic_memory"), SEARCH_OPCLASS),
        )

    return ctx.memo("vector_indexes", compute)


def _options(index: dict[str, Any]) -> dict[str, str]:
    return dict(option.split("=", 1) for option in index["options"] if "=" in option)


@register(
    "vector_index",
    "vector",
    "Vector index on embedding_vector exists and is valid",
    "CREATE INDEX CONCURRENTLY idx_semantic_memory_vector ON semantic_memory USING hnsw "
    "(embedding_vector vector_cosine_ops) (drop the invalid one first)",
)
def check_vector_index(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    indexes = vector_indexes(ctx)
    threshold = f"a valid hnsw/ivfflat index with {SEARCH_OPCLASS}"
    details = {"indexes": indexes}
    valid = [i for i in indexes if i["valid"]]
    if not indexes:
        return CheckResult(
            "vector_index",
            Status.FAIL,
            value=0,
            unit="count",
            threshold=threshold,
            details=details,
            message="no vector index on semantic_memory.embedding_vector: every search scans the table",
        )
    if not valid:
        return CheckResult(
            "vector_index",
            Status.FAIL,
            value=0,
            unit="count",
            threshold=threshold,
            details=details,
            message=f"vector index {', '.join(i['index'] for i in indexes)} is invalid (failed build)",
        )
    usable = [i for i in valid if i["opclass"] == SEARCH_OPCLASS and not i["partial"]]
    best = (usable or valid)[0]
    described = f"{best['index']} ({best['method']}, {best['opclass']}, {best['bytes'] / 1048576:.1f} MB)"
    if not usable:
        return CheckResult(
            "vector_index",
            Status.WARN,
            value=len(valid),
            unit="count",
            threshold=threshold,
            details=details,
            message=f"{described} does not serve cosine search (<=>), which memcli uses",
            hint="create the index with vector_cosine_ops",
        )
    extra = f"; {len(indexes) - len(valid)} invalid" if len(valid) < len(indexes) else ""
    return CheckResult(
        "vector_index",
        Status.OK if not extra else Status.WARN,
        value=len(usable),
        unit="count",
        threshold=threshold,
        message=f"{described}{extra}",
        details=details,
        hint="drop the invalid vector index: DROP INDEX CONCURRENTLY ..." if extra else None,
    )


@register(
    "ivfflat_lists",
    "vector",
    "ivfflat lists fit the row count",
    "rebuild the ivfflat index with lists = rows/1000 (sqrt(rows) above 1M rows), or switch to hnsw",
)
def check_ivfflat_lists(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    ivf = [i for i in vector_indexes(ctx) if i["method"] == "ivfflat" and i["valid"]]
    factor = ctx.thresholds["ivfflat_lists_factor"]
    threshold = f"lists within {factor:g}x of rows/1000 (sqrt(rows) over 1M)"
    if not ivf:
        return CheckResult(
            "ivfflat_lists", Status.OK, threshold=threshold, message="not applicable: no ivfflat index"
        )
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
        return CheckResult(
            "ivfflat_lists",
            Status.OK,
            value=results[0]["lists"],
            unit="count",
            threshold=threshold,
            estimate=True,
            details=details,
            message=f"not judged: ~{rows:,.0f} rows (ivfflat recall suffers when built on few rows)",
        )
    off = [r for r in results if r["ratio"] is not None and (r["ratio"] > factor or r["ratio"] < 1 / factor)]
    first = (off or results)[0]
    message = (
        f"{first['index']}: lists {first['lists']}, recommended ~{first['recommended']} for ~{rows:,.0f} rows"
    )
    return CheckResult(
        "ivfflat_lists",
        Status.WARN if off else Status.OK,
        value=first["lists"],
        unit="count",
        threshold=threshold,
        estimate=True,
        message=message,
        details=details,
    )


@register(
    "vector_recall",
    "vector",
    "Vector index recall@10 against an exact scan (--deep)",
    "raise hnsw.ef_search (or ivfflat.probes), or rebuild the index (REINDEX INDEX CONCURRENTLY)",
    deep=True,
)
def check_vector_recall(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    ctx.require_visible_rows("semantic_memory")
    warn = ctx.thresholds["recall_warn"]
    queries = max(1, int(ctx.thresholds["recall_queries"]))
    threshold = f"recall@{RECALL_K} ≥ {warn:g} over {queries} sampled queries"
    index = next((i for i in vector_indexes(ctx) if i["valid"]), None)
    if index is None:
        return CheckResult(
            "vector_recall", Status.SKIP, threshold=threshold, message="no valid vector index to probe"
        )
    from psycopg import sql

    table = ctx.table("semantic_memory")
    operator = sql.SQL(OPERATORS.get(index["opclass"], "<=>"))
    embedded, _ = ctx.count_where("semantic_memory", sql.SQL("embedding_vector IS NOT NULL"))
    if embedded < RECALL_MIN_ROWS:
        return CheckResult(
            "vector_recall",
            Status.OK,
            threshold=threshold,
            details={"embedded_rows": embedded},
            message=f"not probed: only {embedded} embedded rows",
        )
    if ctx.row_estimate("semantic_memory") <= ctx.thresholds["exact_count_max_rows"]:
        sample = sql.SQL(
            "SELECT embedding_vector::text AS v FROM {} WHERE embedding_vector IS NOT NULL "
            "ORDER BY random() LIMIT %s"
        ).format(table)
        params: list[Any] = [queries]
    else:
        percent = min(100.0, 100.0 * max(queries * 20, 1000) / ctx.row_estimate("semantic_memory"))
        sample = sql.SQL(
            "SELECT embedding_vector::text AS v FROM {} TABLESAMPLE SYSTEM (%s) "
            "WHERE embedding_vector IS NOT NULL LIMIT %s"
        ).format(table)
        params = [percent, queries]
    vectors = [r["v"] for r in ctx.rows(sample, params)]
    search = sql.SQL("SELECT id FROM {} ORDER BY embedding_vector {} %s::vector LIMIT %s").format(
        table, operator
    )
    # The exact search may read the whole table: give this check a longer statement timeout.
    timeout = str(int(max(ctx.thresholds["statement_timeout_ms"], 60_000)))
    recalls: list[float] = []
    with ctx.local_settings({"statement_timeout": timeout}):
        with ctx.local_settings({"enable_seqscan": "off"}):
            plan = ctx.scalar(sql.SQL("EXPLAIN (FORMAT JSON) ") + search, [vectors[0], RECALL_K])
            uses_index = index["index"] in str(plan)
            approximate = [[r["id"] for r in ctx.rows(search, [v, RECALL_K])] for v in vectors]
        with ctx.local_settings({"enable_indexscan": "off", "enable_bitmapscan": "off"}):
            exact = [[r["id"] for r in ctx.rows(search, [v, RECALL_K])] for v in vectors]
    for found, truth in zip(approximate, exact, strict=True):
        if truth:
            recalls.append(len(set(found) & set(truth)) / len(truth))
    recall = sum(recalls) / len(recalls) if recalls else 1.0
    details = {
        "index": index["index"],
        "queries": len(vectors),
        "k": RECALL_K,
        "per_query": recalls,
        "index_used": uses_index,
    }
    if not uses_index:
        return CheckResult(
            "vector_recall",
            Status.WARN,
            value=round(recall, 4),
            unit="ratio",
            threshold=threshold,
            details=details,
            message=f"the planner does not use {index['index']} for ORDER BY embedding_vector "
            f"{OPERATORS.get(index['opclass'], '<=>')} ... LIMIT {RECALL_K}",
            hint="check the index's operator class against the search operator",
        )
    return CheckResult(
        "vector_recall",
        Status.WARN if recall < warn else Status.OK,
        value=round(recall, 4),
        unit="ratio",
        threshold=threshold,
        details=details,
        message=f"recall@{RECALL_K} {recall:.3f} over {len(vectors)} sampled queries ({index['index']})",
    )


@register(
    "embedding_drift",
    "vector",
    "Stored vectors match what the configured model gives for their texts (--deep)",
    "the model behind the configured name changed: re-embed (memcli reembed --embedder ...) or pin the "
    "model that wrote the stored vectors",
    deep=True,
)
def check_embedding_drift(conn: psycopg.Connection, ctx: Context) -> CheckResult:
    """Re-embed a sample of stored texts and compare: a silent model change (same name, other weights; a
    provider that swapped its model) shows as a low cosine similarity long before searches look wrong."""
    import numpy as np
    from psycopg import sql

    ctx.require_visible_rows("semantic_memory")
    floor = float(ctx.thresholds["drift_min_similarity"])
    samples = max(1, int(ctx.thresholds["drift_samples"]))
    threshold = f"cosine ≥ {floor:g} for each of {samples} sampled memories"
    embedder = ctx.embedder
    if embedder is None:
        return CheckResult(
            "embedding_drift", Status.SKIP, threshold=threshold, message="no embedder configured"
        )
    recorded = ctx.settings().get("embedding.model")
    if recorded is None:
        # Nothing embedded yet, so nothing can have drifted: a finding, not a check that could not run.
        return CheckResult(
            "embedding_drift",
            Status.OK,
            threshold=threshold,
            message="no embedding model recorded yet: no stored vectors to compare",
        )
    if recorded != embedder.name:
        return CheckResult(
            "embedding_drift",
            Status.SKIP,
            threshold=threshold,
            message=f"the configured embedder {embedder.name!r} is not the stored model {recorded!r} "
            "(see embedding_mismatch)",
        )
    table = ctx.table("semantic_memory")
    rows = ctx.rows(
        sql.SQL(
            "SELECT id, content_text AS text, embedding_vector::text AS v FROM {} "
            "WHERE embedding_vector IS NOT NULL AND content_text IS NOT NULL "
            "AND (embedding_model IS NULL OR embedding_model = %s) ORDER BY random() LIMIT %s"
        ).format(table)
        if ctx.row_estimate("semantic_memory") <= ctx.thresholds["exact_count_max_rows"]
        else sql.SQL(
            "SELECT id, content_text AS text, embedding_vector::text AS v FROM {} TABLESAMPLE SYSTEM (1) "
            "WHERE embedding_vector IS NOT NULL AND content_text IS NOT NULL "
            "AND (embedding_model IS NULL OR embedding_model = %s) LIMIT %s"
        ).format(table),
        [embedder.name, samples],
    )
    if not rows:
        return CheckResult(
            "embedding_drift", Status.OK, threshold=threshold, message="not probed: no embedded memories"
        )
    stored = np.array([[float(x) for x in r["v"].strip("[]").split(",")] for r in rows], dtype=np.float64)
    if stored.shape[1] != embedder.dimension:
        return CheckResult(
            "embedding_drift",
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
        return CheckResult(
            "embedding_drift",
            Status.FAIL,
            value=round(float(cosines.min()), 4),
            unit="ratio",
            threshold=threshold,
            details=details,
            message=f"{len(drifted)} of {len(rows)} sampled memories re-embed differently with "
            f"{embedder.name!r} (lowest cosine {cosines.min():.3f}): the model behind the name changed",
        )
    return CheckResult(
        "embedding_drift",
        Status.OK,
        value=round(float(cosines.min()), 4),
        unit="ratio",
        threshold=threshold,
        details=details,
        message=f"{len(rows)} sampled memories re-embed the same (lowest cosine {cosines.min():.4f})",
    )
