"""Memory hygiene: expired rows left behind, consolidation backlog, vectors missing or mismatched, orphans.

Counts are exact on tables up to ``exact_count_max_rows`` rows and estimated from a page sample above
(the result says so); the expired backlog is counted through the expires_at index, capped.
"""

from __future__ import annotations

from typing import Any

from memcli.health.core import CheckResult, Context, Status, counted, health_check, human_duration

EXPIRED_COUNT_CAP = 100_000  # counting further through the index would cost more than it tells


def _sql(template: str) -> Any:
    from psycopg import sql

    return sql.SQL(template)  # type: ignore[arg-type]


def _count_text(count: int, estimated: bool, capped: bool = False) -> str:
    prefix = "≥ " if capped else "~" if estimated else ""
    return f"{prefix}{count:,}"


@health_check("hygiene", reads=("conversation_memory",))
def expired_backlog(ctx: Context) -> CheckResult:
    """Expired memories removed by cleanup.

    Fix: run: memcli cleanup (and check that memcli maintain daily is scheduled).
    """
    max_age_h = ctx.thresholds["expired_backlog_max_age_hours"]
    row = ctx.row(
        _sql(
            """
            SELECT min(expires_at) AS oldest, extract(epoch FROM now() - min(expires_at)) AS age,
                   (SELECT count(*) FROM (SELECT 1 FROM {t} WHERE expires_at < now() LIMIT %s) s) AS n
            FROM {t} WHERE expires_at < now()
            """
        ).format(t=ctx.table("conversation_memory")),
        (EXPIRED_COUNT_CAP,),
    )
    assert row is not None
    count, age = int(row["n"]), float(row["age"] or 0)
    capped = count >= EXPIRED_COUNT_CAP
    threshold = f"oldest expired < {max_age_h:g} h ago"
    details = {
        "count": count,
        "capped": capped,
        "oldest_expires_at": row["oldest"],
        "oldest_age_seconds": age,
    }
    message = (
        f"{_count_text(count, False, capped)} expired, oldest expired {human_duration(age)} ago"
        if count
        else "no expired memory waiting"
    )
    return CheckResult(
        Status.WARN if count and age > max_age_h * 3600 else Status.OK,
        value=count,
        unit="count",
        threshold=threshold,
        message=message,
        details=details,
    )


@health_check("hygiene", reads=("conversation_memory",))
def consolidation_backlog(ctx: Context) -> CheckResult:
    """Short-term memories consolidated once past the threshold.

    Fix: run: memcli consolidate (and check that memcli maintain weekly is scheduled).
    """
    min_age_days = float(ctx.settings().get("consolidation.min_age_days") or 5)
    grace_h = ctx.thresholds["consolidation_grace_hours"]
    seconds = min_age_days * 86400 + grace_h * 3600
    count, estimated = ctx.count_where(
        "conversation_memory",
        # expired rows are cleanup's backlog (expired_backlog), not consolidation's: it leaves them alone
        _sql(
            "memory_type = 'short_term' AND created_at < now() - make_interval(secs => %s) "
            "AND (expires_at IS NULL OR expires_at >= now())"
        ),
        [seconds],
    )
    threshold = f"0 short_term older than {min_age_days:g} d + {grace_h:g} h"
    message = (
        f"{_count_text(count, estimated)} short_term memories older than consolidation.min_age_days "
        f"({min_age_days:g} d) + {grace_h:g} h"
        if count
        else "no short_term memory past the consolidation threshold"
    )
    return counted(
        count,
        threshold=threshold,
        message=message,
        estimate=estimated,
        details={"min_age_days": min_age_days, "grace_hours": grace_h},
    )


@health_check("hygiene", reads=("semantic_memory",))
def missing_embeddings(ctx: Context) -> CheckResult:
    """Semantic memories have an embedding.

    Fix: run: memcli embed (embeds rows without a vector).
    """
    grace_min = ctx.thresholds["missing_embedding_grace_minutes"]
    count, estimated = ctx.count_where(
        "semantic_memory",
        _sql("embedding_vector IS NULL AND created_at < now() - make_interval(secs => %s)"),
        [grace_min * 60],
    )
    threshold = f"0 without a vector after {grace_min:g} min"
    return counted(
        count,
        threshold=threshold,
        message=f"{_count_text(count, estimated)} semantic memories without an embedding"
        if count
        else "every semantic memory has an embedding",
        estimate=estimated,
    )


def _dimension(value: Any) -> int | None:
    """A dimension setting as a number: 384, 384.0 and "384" all count; anything else is none."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and number > 0 else None


@health_check("hygiene", reads=("semantic_memory",))
def embedding_mismatch(ctx: Context) -> CheckResult:
    """Embeddings match the recorded model and dimension.

    Fix: clear the odd rows' vectors (SET embedding_vector = NULL) and run memcli embed with the recorded
    model, or correct memory_settings.
    """
    settings = ctx.settings()
    dim = _dimension(settings.get("embedding.dimension"))
    model = settings.get("embedding.model")
    column = ctx.row(
        """
        SELECT a.atttypmod AS typmod, format_type(a.atttypid, a.atttypmod) AS type
        FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attname = 'embedding_vector'
          AND NOT a.attisdropped
        """,
        (ctx.qualified("semantic_memory"),),
    )
    threshold = f"column, rows and settings agree (dimension {dim}, model {model or 'not recorded'})"
    if column is None:
        return CheckResult(
            Status.FAIL,
            threshold=threshold,
            message="semantic_memory has no embedding_vector column",
            hint="run: memcli migrate",
        )
    column_dim = int(column["typmod"]) if column["typmod"] and column["typmod"] > 0 else None
    problems: list[str] = []
    status = Status.OK
    details: dict[str, Any] = {
        "settings_dimension": dim,
        "column_type": column["type"],
        "settings_model": model,
    }
    if dim is not None and column_dim is not None and column_dim != dim:
        status = Status.FAIL
        problems.append(f"column is {column['type']} but settings say {dim} dimensions")
    mismatched = 0
    estimated = False
    if column_dim is None and dim is not None:
        # An unconstrained vector column lets rows of any dimension in: count the odd ones.
        n, est = ctx.count_where(
            "semantic_memory",
            _sql("embedding_vector IS NOT NULL AND vector_dims(embedding_vector) <> %s"),
            [dim],
        )
        details["rows_other_dimension"] = n
        if n:
            status = Status.FAIL
            problems.append(f"{_count_text(n, est)} rows with a dimension other than {dim}")
        mismatched += n
        estimated = estimated or est
    if "embedding_model" in ctx.columns("semantic_memory"):
        if model is not None:
            n, est = ctx.count_where(
                "semantic_memory",
                _sql(
                    "embedding_vector IS NOT NULL AND embedding_model IS NOT NULL AND embedding_model <> %s"
                ),
                [str(model)],
            )
            details["rows_other_model"] = n
            if n:
                status = max(status, Status.WARN, key=lambda s: s.severity)
                problems.append(f"{_count_text(n, est)} rows embedded by another model than {model}")
            mismatched += n
            estimated = estimated or est
        else:
            n, est = ctx.count_where("semantic_memory", _sql("embedding_model IS NOT NULL"), [])
            if n:
                status = max(status, Status.WARN, key=lambda s: s.severity)
                problems.append(f"{_count_text(n, est)} rows name a model but memory_settings records none")
                estimated = estimated or est
    return CheckResult(
        status,
        value=mismatched,
        unit="count",
        threshold=threshold,
        message="; ".join(problems) or f"column {column['type']} matches settings; no row from another model",
        estimate=estimated and bool(problems),
        details=details,
    )


@health_check("hygiene", reads=("context_relevance", "conversation_memory", "semantic_memory"))
def orphaned_rows(ctx: Context) -> CheckResult:
    """No rows pointing at memories or businesses that are gone.

    Fix: run: memcli cleanup (removes relevance rows of sessions without memories); deactivate the sections of
    inactive businesses.
    """
    found: dict[str, int] = {}
    estimated = False
    n, est = ctx.count_where(
        "context_relevance",
        _sql(
            "NOT EXISTS (SELECT 1 FROM {cm} cm WHERE cm.session_id = cr.session_id) "
            "AND NOT EXISTS (SELECT 1 FROM {sm} sm WHERE sm.session_id = cr.session_id)"
        ).format(cm=ctx.table("conversation_memory"), sm=ctx.table("semantic_memory")),
        [],
        alias="cr",
    )
    found["context_relevance without memories"] = n
    estimated |= est
    if ctx.has_table("business_context_sections") and ctx.has_table("businesses"):
        ctx.require_visible_rows("business_context_sections")
        active = "is_active" in ctx.columns("businesses")
        condition = (
            "s.business_id IS NULL OR NOT EXISTS (SELECT 1 FROM {b} b WHERE b.id = s.business_id)"
            if not active
            else "s.business_id IS NULL OR NOT EXISTS (SELECT 1 FROM {b} b WHERE b.id = s.business_id "
            "AND (b.is_active IS NOT FALSE OR s.is_active IS NOT TRUE))"
        )
        n, est = ctx.count_where(
            "business_context_sections", _sql(condition).format(b=ctx.table("businesses")), [], alias="s"
        )
        found["business sections of missing or inactive businesses"] = n
        estimated |= est
    total = sum(found.values())
    listing = ", ".join(f"{_count_text(v, estimated)} {k}" for k, v in found.items() if v)
    return counted(
        total, threshold="0", message=listing or "no orphaned rows", estimate=estimated, details=found
    )
