"""Postgres internals, as ``supabase inspect db`` and PgHero report them.

Everything here reads catalogs and the cumulative statistics views, never the tables themselves, so it
costs the same on an empty database and a billion-row one. Statistics-based values (sizes aside) are
estimates by nature.
"""

from __future__ import annotations

from typing import Any

from memcli.health.core import (
    CheckResult,
    CheckSkipped,
    Context,
    Status,
    counted,
    health_check,
    human_bytes,
    human_duration,
    warn_if,
)
from memcli.health.expected import expected_objects
from memcli.schema.names import MEMORY_TABLES, REQUIRED_TABLES

# Schemas managed by the platform, not by the application or memcli (the Supabase CLI skips the same).
SYSTEM_SCHEMAS = [
    "pg_catalog",
    "information_schema",
    "auth",
    "storage",
    "realtime",
    "_realtime",
    "supabase_functions",
    "supabase_migrations",
    "extensions",
    "graphql",
    "graphql_public",
    "pgbouncer",
    "pgsodium",
    "pgsodium_masks",
    "vault",
    "net",
    "cron",
    "_analytics",
    "pgtle",
    "repack",
]
# Transactions before Postgres stops assigning XIDs (2^31 minus the 1M safety margin), as PgHero counts.
XID_LIMIT = 2_146_483_648


@health_check("internals")
def table_sizes(ctx: Context) -> CheckResult:
    """Table and index sizes (informational).

    Fix: large memory tables: check that cleanup runs and retention settings fit.
    """
    rows = ctx.rows(
        """
        SELECT n.nspname AS schema, c.relname AS table, c.reltuples::bigint AS rows_estimate,
               pg_table_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes,
               pg_total_relation_size(c.oid) AS total_bytes
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm') AND NOT n.nspname = ANY(%s) AND n.nspname !~ '^pg_(toast|temp)'
        ORDER BY pg_total_relation_size(c.oid) DESC
        """,
        (SYSTEM_SCHEMAS,),
    )
    database = int(ctx.scalar("SELECT pg_database_size(current_database())"))
    memory = sum(
        r["total_bytes"] for r in rows if r["schema"] == ctx.schema and r["table"] in REQUIRED_TABLES
    )
    top = rows[:10]
    biggest = ", ".join(f"{r['table']} {human_bytes(r['total_bytes'])}" for r in top[:3])
    return CheckResult(
        Status.OK,
        value=database,
        unit="bytes",
        threshold="informational",
        message=f"database {human_bytes(database)}, memory tables {human_bytes(memory)}; largest: {biggest}",
        estimate=False,
        details={"database_bytes": database, "memory_tables_bytes": memory, "largest": top},
    )


# The estimate of heroku pg-extras / `supabase inspect db bloat` (from planner statistics, no table scan).
BLOAT_SQL = """
WITH constants AS (
  SELECT current_setting('block_size')::numeric AS bs, 23 AS hdr, 4 AS ma
), bloat_info AS (
  SELECT ma, bs, schemaname, tablename,
    (datawidth + (hdr + ma - (CASE WHEN hdr %% ma = 0 THEN ma ELSE hdr %% ma END)))::numeric AS datahdr,
    (maxfracsum * (nullhdr + ma - (CASE WHEN nullhdr %% ma = 0 THEN ma ELSE nullhdr %% ma END))) AS nullhdr2
  FROM (
    SELECT schemaname, tablename, hdr, ma, bs,
      sum((1 - null_frac) * avg_width) AS datawidth,
      max(null_frac) AS maxfracsum,
      hdr + (SELECT 1 + count(*) / 8 FROM pg_stats s2
             WHERE null_frac <> 0 AND s2.schemaname = s.schemaname AND s2.tablename = s.tablename) AS nullhdr
    FROM pg_stats s, constants
    WHERE NOT s.schemaname = ANY(%(skip)s)
    GROUP BY 1, 2, 3, 4, 5
  ) AS foo
), table_bloat AS (
  SELECT schemaname, tablename, cc.relpages, bs,
    ceil((cc.reltuples * ((datahdr + ma - (CASE WHEN datahdr %% ma = 0 THEN ma ELSE datahdr %% ma END))
      + nullhdr2 + 4)) / (bs - 20::float)) AS otta
  FROM bloat_info
  JOIN pg_class cc ON cc.relname = bloat_info.tablename
  JOIN pg_namespace nn ON cc.relnamespace = nn.oid AND nn.nspname = bloat_info.schemaname
), index_bloat AS (
  SELECT schemaname, tablename, bs,
    coalesce(c2.relname, '?') AS iname, coalesce(c2.reltuples, 0) AS ituples,
    coalesce(c2.relpages, 0) AS ipages,
    coalesce(ceil((c2.reltuples * (datahdr - 12)) / (bs - 20::float)), 0) AS iotta
  FROM bloat_info
  JOIN pg_class cc ON cc.relname = bloat_info.tablename
  JOIN pg_namespace nn ON cc.relnamespace = nn.oid AND nn.nspname = bloat_info.schemaname
  JOIN pg_index i ON indrelid = cc.oid
  JOIN pg_class c2 ON c2.oid = i.indexrelid
  JOIN pg_am am ON am.oid = c2.relam AND am.amname = 'btree'
)
SELECT type, schemaname AS schema, object_name AS name, bloat::float8 AS bloat,
       raw_waste::float8 AS waste_bytes
FROM (
  SELECT 'table' AS type, schemaname, tablename AS object_name,
    round(CASE WHEN otta = 0 THEN 0.0 ELSE table_bloat.relpages / otta::numeric END, 1) AS bloat,
    CASE WHEN relpages < otta THEN 0
         ELSE (bs * (table_bloat.relpages - otta)::bigint)::bigint END AS raw_waste
  FROM table_bloat
  UNION ALL
  SELECT 'index' AS type, schemaname, tablename || '::' || iname AS object_name,
    round(CASE WHEN iotta = 0 OR ipages = 0 THEN 0.0 ELSE ipages / iotta::numeric END, 1) AS bloat,
    CASE WHEN ipages < iotta THEN 0 ELSE (bs * (ipages - iotta))::bigint END AS raw_waste
  FROM index_bloat
) summary
ORDER BY raw_waste DESC, bloat DESC
LIMIT 20
"""


@health_check("internals")
def bloat(ctx: Context) -> CheckResult:
    """Estimated table and index bloat.

    Fix: VACUUM (or pg_repack / REINDEX CONCURRENTLY for indexes) the listed relations; tune autovacuum.
    """
    rows = ctx.rows(BLOAT_SQL, {"skip": SYSTEM_SCHEMAS})
    factor = ctx.thresholds["bloat_factor_warn"]
    min_waste = ctx.thresholds["bloat_min_waste_mb"] * (1 << 20)
    flagged = [r for r in rows if r["bloat"] >= factor and r["waste_bytes"] >= min_waste]
    worst = max((r["waste_bytes"] for r in rows), default=0)
    threshold = f"bloat < {factor:g}x or waste < {ctx.thresholds['bloat_min_waste_mb']:g} MB"
    details = {"top": rows[:10], "flagged": flagged}
    if flagged:
        listing = ", ".join(
            f"{r['name']} {r['bloat']:g}x ({human_bytes(r['waste_bytes'])})" for r in flagged[:5]
        )
        message = f"{len(flagged)} bloated: {listing}"
    elif rows:
        message = f"largest estimated waste {human_bytes(worst)}"
    else:
        message = "no statistics yet (tables never analyzed)"
    return warn_if(
        flagged, worst, "bytes", threshold=threshold, message=message, details=details, estimate=True
    )


def _autovacuum_trigger(action: str) -> str:
    """When autovacuum acts (``vacuum`` or ``analyze``): threshold + scale factor x rows, the table's own
    storage options first, the server's settings otherwise."""

    def setting(name: str) -> str:
        key = f"autovacuum_{action}_{name}"
        return (
            f"coalesce((SELECT option_value::float8 FROM pg_options_to_table(c.reloptions) "  # noqa: S608
            f"WHERE option_name = '{key}'), current_setting('{key}')::float8)"
        )

    return f"{setting('threshold')} + {setting('scale_factor')} * greatest(c.reltuples, 0)"


_TABLE_STATS_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, c.reltuples::float8 AS reltuples,
       s.n_live_tup, s.n_dead_tup, s.n_mod_since_analyze,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum)) AS vacuum_age,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze)) AS analyze_age,
       coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'autovacuum_enabled'), 'on') AS autovacuum_enabled,
       {vacuum_trigger} AS vacuum_trigger,
       {analyze_trigger} AS analyze_trigger,
       s.seq_scan, s.seq_tup_read, s.idx_scan
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE NOT s.schemaname = ANY(%s)
""".format(  # noqa: S608 - built from the constant names above
    vacuum_trigger=_autovacuum_trigger("vacuum"), analyze_trigger=_autovacuum_trigger("analyze")
)


def _table_stats(ctx: Context) -> list[dict[str, Any]]:
    return ctx.memo("table_stats", lambda: ctx.rows(_TABLE_STATS_SQL, (SYSTEM_SCHEMAS,)))


def _overdue(ctx: Context, changes: str, trigger: str, age: str) -> list[dict[str, Any]]:
    """Tables whose ``changes`` (dead tuples, or changes since analyze) passed both dead_tuples_min_rows and
    their autovacuum ``trigger``, with no (auto)vacuum or analyze for vacuum_stale_hours (``age``)."""
    min_rows = ctx.thresholds["dead_tuples_min_rows"]
    stale_s = ctx.thresholds["vacuum_stale_hours"] * 3600
    return [
        r
        for r in _table_stats(ctx)
        if r[changes] >= min_rows and r[changes] > r[trigger] and (r[age] is None or r[age] > stale_s)
    ]


@health_check("internals")
def dead_tuples(ctx: Context) -> CheckResult:
    """Dead tuples vacuumed (autovacuum keeps up).

    Fix: VACUUM (ANALYZE) the listed tables; look for long transactions holding back vacuum; tune autovacuum.
    """
    min_rows = ctx.thresholds["dead_tuples_min_rows"]
    rows = _table_stats(ctx)
    flagged = _overdue(ctx, "n_dead_tup", "vacuum_trigger", "vacuum_age")
    dead = sum(r["n_dead_tup"] for r in rows)
    threshold = (
        f"no table over its autovacuum trigger with ≥ {min_rows:g} dead tuples and no vacuum for "
        f"{ctx.thresholds['vacuum_stale_hours']:g} h"
    )
    top = sorted(rows, key=lambda r: r["n_dead_tup"], reverse=True)[:5]
    details = {
        "flagged": [_vacuum_row(r) for r in flagged],
        "most_dead": [_vacuum_row(r) for r in top if r["n_dead_tup"]],
    }
    if flagged:
        listing = ", ".join(
            f"{r['table']} {r['n_dead_tup']:,} dead (last vacuum {human_duration(r['vacuum_age'])} ago"
            + (", autovacuum disabled" if r["autovacuum_enabled"] in ("off", "false") else "")
            + ")"
            for r in flagged[:5]
        )
        message = f"{len(flagged)} tables need vacuum: {listing}"
    else:
        message = f"{dead:,} dead tuples in all; autovacuum keeps up"
    return warn_if(
        flagged, dead, "count", threshold=threshold, message=message, details=details, estimate=True
    )


def _vacuum_row(r: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "schema",
        "table",
        "n_live_tup",
        "n_dead_tup",
        "vacuum_trigger",
        "last_vacuum",
        "last_autovacuum",
        "last_analyze",
        "last_autoanalyze",
        "n_mod_since_analyze",
        "autovacuum_enabled",
    )
    return {k: r[k] for k in keys}


@health_check("internals")
def stale_statistics(ctx: Context) -> CheckResult:
    """Planner statistics current (autoanalyze keeps up).

    Fix: ANALYZE the listed tables.
    """
    min_rows = ctx.thresholds["dead_tuples_min_rows"]
    flagged = _overdue(ctx, "n_mod_since_analyze", "analyze_trigger", "analyze_age")
    threshold = (
        f"no table over its autoanalyze trigger with ≥ {min_rows:g} changes and no analyze for "
        f"{ctx.thresholds['vacuum_stale_hours']:g} h"
    )
    if flagged:
        listing = ", ".join(
            f"{r['table']} {r['n_mod_since_analyze']:,} changes "
            f"(last analyze {human_duration(r['analyze_age'])} ago)"
            for r in flagged[:5]
        )
        message = f"{len(flagged)} tables with stale statistics: {listing}"
    else:
        message = "statistics current on every table"
    return counted(
        len(flagged),
        threshold=threshold,
        message=message,
        details={"flagged": [_vacuum_row(r) for r in flagged]} if flagged else {},
    )


def _cache_hit(ctx: Context, view: str, hit: str, read: str, what: str) -> CheckResult:
    """The hit ratio of the blocks counted in ``view`` (tables or indexes)."""
    from psycopg import sql

    row = ctx.row(
        sql.SQL(
            "SELECT coalesce(sum({hit}), 0)::float8 AS hit, coalesce(sum({read}), 0)::float8 AS read FROM {v}"
        ).format(hit=sql.Identifier(hit), read=sql.Identifier(read), v=sql.Identifier("pg_catalog", view))
    )
    assert row is not None
    total = row["hit"] + row["read"]
    ratio = row["hit"] / total if total else None
    warn = ctx.thresholds["cache_hit_ratio_warn"]
    min_blocks = ctx.thresholds["cache_hit_min_blocks"]
    threshold = f"≥ {warn:.0%} once {min_blocks:,.0f} blocks were read"
    details = {"blocks_hit": row["hit"], "blocks_read": row["read"]}
    if ratio is None or total < min_blocks:
        status = Status.OK
        message = f"not judged yet: {total:,.0f} {what} block accesses since the statistics reset"
    else:
        status = Status.WARN if ratio < warn else Status.OK
        message = f"{ratio:.2%} of {what} block reads served from shared buffers"
        ratio = round(ratio, 5)
    return CheckResult(
        status, value=ratio, unit="ratio", threshold=threshold, details=details, message=message
    )


@health_check("internals")
def cache_hit_table(ctx: Context) -> CheckResult:
    """Table cache hit ratio.

    Fix: the working set does not fit in shared_buffers: raise shared_buffers / RAM, or cut what is read
    """
    return _cache_hit(ctx, "pg_statio_user_tables", "heap_blks_hit", "heap_blks_read", "table")


@health_check("internals")
def cache_hit_index(ctx: Context) -> CheckResult:
    """Index cache hit ratio.

    Fix: the indexes do not fit in shared_buffers: raise shared_buffers / RAM, drop unused indexes
    """
    return _cache_hit(ctx, "pg_statio_user_indexes", "idx_blks_hit", "idx_blks_read", "index")


@health_check("internals")
def unused_indexes(ctx: Context) -> CheckResult:
    """No unused indexes slowing writes.

    Fix: DROP INDEX CONCURRENTLY the listed indexes if no query needs them (check replicas too).
    """
    max_scans = ctx.thresholds["unused_index_max_scans"]
    # The indexes of a partitioned table's partitions count as the one index they belong to.
    rows = ctx.rows(
        """
        SELECT n.nspname AS schema, tc.relname AS table, ic.relname AS index,
               sum(ui.idx_scan)::bigint AS scans, sum(pg_relation_size(i.indexrelid))::bigint AS bytes
        FROM pg_stat_user_indexes ui JOIN pg_index i ON i.indexrelid = ui.indexrelid
        CROSS JOIN LATERAL (SELECT coalesce(pg_partition_root(ui.indexrelid), ui.indexrelid) AS idx,
                                   coalesce(pg_partition_root(ui.relid), ui.relid) AS tbl) root
        JOIN pg_class ic ON ic.oid = root.idx JOIN pg_class tc ON tc.oid = root.tbl
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE NOT i.indisunique AND i.indisvalid AND NOT n.nspname = ANY(%s)
        GROUP BY 1, 2, 3
        HAVING sum(ui.idx_scan) < %s
           AND sum(pg_relation_size(ui.relid)) > %s * current_setting('block_size')::bigint
        ORDER BY 5 DESC
        """,
        (SYSTEM_SCHEMAS, max_scans, ctx.thresholds["unused_index_min_table_pages"]),
    )
    try:
        ours = set(expected_objects(ctx).indexes)
    except CheckSkipped:
        ours = set()
    own = [r for r in rows if r["schema"] == ctx.schema and r["index"] in ours]
    others = [r for r in rows if r not in own]
    pages = ctx.thresholds["unused_index_min_table_pages"]
    threshold = f"≥ {max_scans:g} scans (non-unique indexes of tables > {pages:g} pages)"
    # memcli's own indexes serve its jobs and the documented queries; dropping one fails schema_objects.
    # Scan counts start over at a statistics reset: say since when they count.
    since = ctx.scalar("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
    details = {"unused": others, "unused_memcli_indexes": own, "stats_reset": since}
    if others:
        listing = ", ".join(
            f"{r['index']} ({human_bytes(r['bytes'])}, {r['scans']} scans)" for r in others[:5]
        )
        since_text = f" since the statistics reset at {since:%Y-%m-%d %H:%M}" if since else ""
        message = f"{len(others)} unused{since_text}: {listing}"
    else:
        note = f"; {len(own)} of memcli's own are little used so far" if own else ""
        message = f"no unused index{note}"
    return counted(len(others), threshold=threshold, message=message, details=details)


@health_check("internals")
def seq_scans(ctx: Context) -> CheckResult:
    """Large memory tables read through indexes.

    Fix: find the query (pg_stat_statements) that scans the table and add or fix its index.
    """
    min_rows = ctx.thresholds["seq_scan_min_rows"]
    min_share = ctx.thresholds["seq_scan_index_use_warn"]
    min_scans = ctx.thresholds["seq_scan_min_scans"]
    rows = [r for r in _table_stats(ctx) if r["schema"] == ctx.schema and r["table"] in MEMORY_TABLES]
    flagged = []
    for r in rows:
        scans = (r["seq_scan"] or 0) + (r["idx_scan"] or 0)
        r["index_share"] = (r["idx_scan"] or 0) / scans if scans else None
        if r["n_live_tup"] >= min_rows and scans >= max(min_scans, 1) and r["index_share"] < min_share:
            flagged.append(r)
    threshold = (
        f"≥ {min_share:.0%} of scans use an index on tables ≥ {min_rows:,.0f} rows "
        f"(judged after {min_scans:,.0f} scans)"
    )
    keys = ("table", "n_live_tup", "seq_scan", "seq_tup_read", "idx_scan", "index_share")
    details = {"tables": [{k: r[k] for k in keys} for r in rows]}
    if flagged:
        listing = ", ".join(
            f"{r['table']} ({r['n_live_tup']:,} rows, {r['seq_scan']:,} seq scans, "
            f"{r['index_share']:.0%} indexed)"
            for r in flagged
        )
        message = f"sequential scans on large memory tables: {listing}"
    else:
        message = "large memory tables are read through their indexes"
    return counted(len(flagged), threshold=threshold, estimate=True, message=message, details=details)


@health_check("internals")
def long_transactions(ctx: Context) -> CheckResult:
    """No long-running transactions.

    Fix: end it (pg_terminate_backend(pid)) if it is stuck; fix the application that leaves transactions open.
    """
    warn_s = ctx.thresholds["long_transaction_warn_seconds"]
    fail_s = ctx.thresholds["long_transaction_fail_seconds"]
    rows = ctx.rows(
        """
        SELECT pid, usename AS user, application_name, state, xact_start,
               extract(epoch FROM clock_timestamp() - xact_start)::float8 AS seconds,
               left(query, 200) AS query
        FROM pg_stat_activity
        WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL
        ORDER BY xact_start
        """
    )
    prepared = ctx.rows(
        """
        SELECT gid, owner AS user, database, prepared,
               extract(epoch FROM clock_timestamp() - prepared)::float8 AS seconds
        FROM pg_prepared_xacts ORDER BY prepared
        """
    )
    hidden = int(
        ctx.scalar(
            """
            SELECT count(*) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND backend_type = 'client backend' AND state IS NULL
            """
        )
    )
    longest = max([r["seconds"] for r in rows] + [p["seconds"] for p in prepared], default=0.0)
    long_rows = [r for r in rows if r["seconds"] >= warn_s]
    long_prepared = [p for p in prepared if p["seconds"] >= warn_s]
    threshold = f"< {human_duration(warn_s)} (fail ≥ {human_duration(fail_s)})"
    details = {"long": long_rows, "prepared": long_prepared, "sessions_not_visible": hidden}
    if long_rows or long_prepared:
        status = Status.FAIL if longest >= fail_s else Status.WARN
        parts = [
            f"pid {r['pid']} ({r['user'] or '?'}, {r['application_name'] or '-'}, {r['state']}) open "
            f"{human_duration(r['seconds'])}"
            for r in long_rows[:3]
        ] + [f"prepared transaction {p['gid']} {human_duration(p['seconds'])}" for p in long_prepared[:3]]
        message = f"{len(long_rows) + len(long_prepared)} long: {'; '.join(parts)}"
    elif hidden:
        raise CheckSkipped(
            f"cannot see the transactions of {hidden} sessions of other roles",
            hint="grant the role pg_monitor (or pg_read_all_stats)",
        )
    else:
        status, message = Status.OK, f"longest open transaction {human_duration(longest)}"
    return CheckResult(
        status, value=round(longest, 1), unit="seconds", threshold=threshold, message=message, details=details
    )


@health_check("internals")
def blocking_locks(ctx: Context) -> CheckResult:
    """No session blocked by another's locks.

    Fix: find the blocking pid's transaction (often 'idle in transaction') and end it or let it finish.
    """
    warn_s = ctx.thresholds["blocked_warn_seconds"]
    rows = ctx.rows(
        """
        SELECT a.pid, a.usename AS user, a.application_name, a.wait_event_type, a.wait_event,
               extract(epoch FROM clock_timestamp() - a.query_start)::float8 AS waiting_seconds,
               left(a.query, 200) AS query, b.blocked_by
        FROM pg_stat_activity a
        CROSS JOIN LATERAL (SELECT pg_blocking_pids(a.pid) AS blocked_by) b
        WHERE a.pid <> pg_backend_pid() AND cardinality(b.blocked_by) > 0
        ORDER BY a.query_start
        """
    )
    blockers_ids = sorted({pid for r in rows for pid in r["blocked_by"]})
    blockers = (
        ctx.rows(
            """
        SELECT pid, usename AS user, application_name, state,
               extract(epoch FROM clock_timestamp() - xact_start)::float8 AS transaction_seconds,
               left(query, 200) AS query
        FROM pg_stat_activity WHERE pid = ANY(%s)
        """,
            (blockers_ids,),
        )
        if blockers_ids
        else []
    )
    blocked = [r for r in rows if r["waiting_seconds"] is None or r["waiting_seconds"] >= warn_s]
    threshold = f"0 sessions blocked ≥ {warn_s:g} s"
    details = {"blocked": rows, "blockers": blockers}
    if blocked:
        longest = max((r["waiting_seconds"] or 0) for r in blocked)
        by = ", ".join(
            f"pid {b['pid']} ({b['state'] or '?'}, transaction {human_duration(b['transaction_seconds'])})"
            for b in blockers[:3]
        ) or ", ".join(str(p) for p in blockers_ids)
        message = f"{len(blocked)} blocked (longest {human_duration(longest)}) by {by}"
    else:
        message = "no session waits on another's lock"
    return counted(len(blocked), threshold=threshold, message=message, details=details)


@health_check("internals")
def connections(ctx: Context) -> CheckResult:
    """Connections used vs max_connections.

    Fix: use a connection pooler (PgBouncer / Supavisor) or raise max_connections.
    """
    row = ctx.row(
        """
        SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS used,
               current_setting('max_connections')::int AS max,
               current_setting('superuser_reserved_connections')::int
               + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0) AS reserved
        """
    )
    assert row is not None
    available = max(1, row["max"] - row["reserved"])
    ratio = row["used"] / available
    warn, fail = ctx.thresholds["connections_warn_ratio"], ctx.thresholds["connections_fail_ratio"]
    status = Status.FAIL if ratio >= fail else Status.WARN if ratio >= warn else Status.OK
    return CheckResult(
        status,
        value=round(ratio, 4),
        unit="ratio",
        threshold=f"< {warn:.0%} of {available} (fail ≥ {fail:.0%})",
        message=f"{row['used']} of {available} usable connections ({ratio:.0%}; {row['reserved']} reserved)",
        details=dict(row),
    )


@health_check("internals")
def wraparound(ctx: Context) -> CheckResult:
    """Transaction-ID wraparound headroom.

    Fix: VACUUM (FREEZE) the oldest tables now; find what blocks freezing (long transactions, replication
    slots).
    """
    rows = ctx.rows(
        """
        SELECT datname AS database, age(datfrozenxid)::bigint AS xid_age,
               mxid_age(datminmxid)::bigint AS mxid_age
        FROM pg_database WHERE datallowconn ORDER BY age(datfrozenxid) DESC
        """
    )
    worst = max(rows, key=lambda r: max(r["xid_age"], r["mxid_age"]))
    age = max(worst["xid_age"], worst["mxid_age"])
    left = XID_LIMIT - age
    warn_age = ctx.thresholds["wraparound_warn_age"]
    fail_left = ctx.thresholds["wraparound_fail_left"]
    status = Status.FAIL if left < fail_left else Status.WARN if age >= warn_age else Status.OK
    return CheckResult(
        status,
        value=age,
        unit="count",
        threshold=f"age < {warn_age:,.0f} (fail with < {fail_left:,.0f} left)",
        message=f"oldest unfrozen XID age {age:,} in {worst['database']} ({left:,} transactions left)",
        details={"databases": rows},
    )


@health_check("internals")
def sequences(ctx: Context) -> CheckResult:
    """Sequences far from their limit.

    Fix: ALTER the column and sequence to bigint before the sequence runs out.
    """
    rows = ctx.rows(
        """
        SELECT s.schemaname AS schema, s.sequencename AS sequence, s.last_value, s.increment_by,
               has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
               least(s.max_value, CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                                  WHEN 'int4'::regtype THEN 2147483647
                                                  ELSE 9223372036854775807 END)::float8 AS max_value,
               a.attrelid::regclass::text AS owned_by_table, a.attname AS owned_by_column
        FROM pg_sequences s
        JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.sequencename
        LEFT JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass
             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
        LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE NOT s.schemaname = ANY(%s)
        """,
        (SYSTEM_SCHEMAS,),
    )
    warn = ctx.thresholds["sequence_warn_ratio"]
    unreadable = [r["sequence"] for r in rows if not r["readable"]]
    for r in rows:
        used = r["last_value"] if r["last_value"] is not None and r["increment_by"] > 0 else 0
        r["ratio"] = used / r["max_value"] if r["max_value"] else 0.0
    flagged = [r for r in rows if r["ratio"] >= warn]
    worst = max((r["ratio"] for r in rows), default=0.0)
    threshold = f"< {warn:.0%} of the range (of the column type where smaller)"
    details = {"sequences": len(rows), "flagged": flagged, "unreadable": unreadable}
    if flagged:
        listing = ", ".join(f"{r['sequence']} {r['ratio']:.0%}" for r in flagged[:5])
        message = f"{len(flagged)} near their limit: {listing}"
    elif unreadable:
        raise CheckSkipped(
            f"cannot read {len(unreadable)} of {len(rows)} sequences ({', '.join(unreadable[:3])})",
            hint="grant SELECT on the sequences (GRANT SELECT ON ALL SEQUENCES IN SCHEMA ...)",
        )
    else:
        message = f"{len(rows)} sequences, the fullest at {worst:.2%}"
    return CheckResult(
        Status.WARN if flagged else Status.OK,
        value=round(worst, 6),
        unit="ratio",
        threshold=threshold,
        message=message,
        details=details,
    )
