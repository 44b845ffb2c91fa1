"""The partitioned layout: months ahead exist, nothing piles up in a default partition, nothing overdue.

On the plain layout each check is OK and says so. Partition facts come from the catalog (bounds, sizes);
rows in a default partition are counted through the key's index, capped.
"""

from __future__ import annotations

from memcli.health.core import CheckResult, Context, Status, health_check
from memcli.partitions import upkeep
from memcli.partitions.layout import BY_TABLE, partition_name, partitioned_tables

PLAIN = "plain layout: no partitioned table"


def _partitions(ctx: Context) -> list[upkeep.PartitionInfo]:
    return ctx.memo("partitions", lambda: upkeep.list_partitions(ctx.conn))


@health_check("operations")
def partitions_ahead(ctx: Context) -> CheckResult:
    """Partitions exist for the months ahead.

    Fix: run: memcli maintain daily (or memcli partition upkeep); check that the daily job is scheduled.
    """
    conn = ctx.conn
    tables = partitioned_tables(conn)
    if not tables:
        return CheckResult(Status.OK, threshold="-", message=PLAIN)
    missing: dict[str, list[str]] = {}
    current_missing = False
    for table in tables:
        spec = BY_TABLE[table]
        months = upkeep.missing_months(conn, spec)
        if months:
            missing[table] = [partition_name(table, m) for m in months]
            current_missing = current_missing or months[0] == upkeep.required_months(conn, spec)[0]
    count = sum(len(v) for v in missing.values())
    threshold = "every month up to the longest retention ahead"
    if not count:
        return CheckResult(
            Status.OK,
            value=0,
            unit="count",
            threshold=threshold,
            message=f"months ahead present ({', '.join(tables)})",
        )
    first = next(iter(missing.values()))[0]
    # this month's partition missing: new rows are landing in the default partition right now
    return CheckResult(
        Status.FAIL if current_missing else Status.WARN,
        value=count,
        unit="count",
        threshold=threshold,
        message=f"{count} partition(s) missing, first {first}",
        details={"missing": missing},
    )


@health_check("hygiene")
def partition_default_rows(ctx: Context) -> CheckResult:
    """Rows outside every planned month.

    Fix: create their months with SELECT memcli_create_partition('<table>'::regclass, '<month>') (moves them
    out of the default partition), or let cleanup remove expired ones.
    """
    defaults = [p for p in _partitions(ctx) if p.is_default]
    if not defaults:
        return CheckResult(Status.OK, threshold="-", message=PLAIN)
    limit = ctx.thresholds["partition_default_rows_warn"]
    counts = {p.table: p.keyed_rows_in_default or 0 for p in defaults}
    total = sum(counts.values())
    status = Status.WARN if total > limit else Status.OK
    stray = ", ".join(f"{t}: {n:,}" for t, n in counts.items() if n)
    return CheckResult(
        status,
        value=total,
        unit="count",
        threshold=f"<= {limit:,.0f}",
        message=f"{total:,} row(s) in default partitions ({stray})"
        if total
        else "default partitions hold no row with a key",
        details={"by_table": counts, "capped_at": upkeep.DEFAULT_ROWS_LIMIT},
    )


@health_check("hygiene")
def partitions_overdue(ctx: Context) -> CheckResult:
    """Expired partitions dropped.

    Fix: run: memcli cleanup --expired (memories) or memcli maintain daily (logs).
    """
    partitions = _partitions(ctx)
    if not partitions:
        return CheckResult(Status.OK, threshold="-", message=PLAIN)
    overdue = [p for p in partitions if p.droppable]
    if not overdue:
        return CheckResult(
            Status.OK, value=0, unit="count", threshold="0", message="no partition past its expiry"
        )
    return CheckResult(
        Status.WARN,
        value=len(overdue),
        unit="count",
        threshold="0",
        message=f"{len(overdue)} partition(s) hold only expired rows: "
        + ", ".join(p.name for p in overdue[:5]),
        details={"partitions": [p.name for p in overdue], "bytes": sum(p.bytes for p in overdue)},
    )
