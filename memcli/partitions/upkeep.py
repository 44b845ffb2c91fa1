"""Partition upkeep: list partitions, create the months ahead, drop those whose rows have all expired.

How far ahead: ``conversation_memory`` is keyed by ``expires_at``, which a new memory sets up to the longest
tier retention ahead (365 days for archived), so its months are created up to that horizon plus
``partition.premake_months``; the logs are keyed by the time of writing and need only the premade months.

What may go: a ``conversation_memory`` partition whose upper bound has passed holds only expired rows; a log
partition whose upper bound is older than the log's retention (``retention.*_log_days``; none set: logs
are kept) holds only rows past retention. Such a partition is detached (a brief ACCESS EXCLUSIVE lock on
the parent, taken with a short ``lock_timeout`` and retried, so the application never queues behind it for
long), its rows counted, and dropped. A run killed between detaching and dropping leaves a detached table
that the next run drops.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcli.jobs.common import DEFAULT_TIMEOUTS, Timeouts, in_batch, retry_on_lock
from memcli.partitions.layout import (
    BY_TABLE,
    KEY_TABLE,
    SPECS,
    PartitionSpec,
    add_months,
    is_partitioned,
    month_start,
    partition_name,
)
from memcli.settings import get_setting

if TYPE_CHECKING:
    import psycopg

# DDL on a partitioned parent waits at most this long for the application's locks (then retries): every
# statement queued behind a waiting ACCESS EXCLUSIVE request waits as long.
PARTITION_LOCK_TIMEOUT_MS = 100
PARTITION_LOCK_RETRIES = 20
# A conversion plans months back to the oldest row, but no further than this; older rows wait in the
# default partition (and health says so).
MAX_MONTHS_BACK = 36
DEFAULT_ROWS_LIMIT = 100_000  # counting rows in a default partition stops here


def ddl_timeouts(timeouts: Timeouts) -> Timeouts:
    return dataclasses.replace(
        timeouts,
        lock_timeout_ms=min(timeouts.lock_timeout_ms, PARTITION_LOCK_TIMEOUT_MS),
        lock_retries=max(timeouts.lock_retries, PARTITION_LOCK_RETRIES),
    )


@dataclass
class PartitionInfo:
    table: str
    name: str
    lower: datetime | None  # None: the default partition
    upper: datetime | None
    is_default: bool
    rows_estimate: int
    bytes: int
    droppable: bool = False  # every row has expired / is past retention
    keyed_rows_in_default: int | None = None  # default partition only: rows that have a key


@dataclass
class UpkeepResult:
    dry_run: bool
    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    dropped_rows: dict[str, int] = field(default_factory=dict)  # partition -> rows it held
    dropped_by_tier: dict[str, int] = field(default_factory=dict)  # conversation_memory only
    longest_lock_ms: float = 0.0
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(self.dropped_rows.values())


def _now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def retention_of(conn: psycopg.Connection, spec: PartitionSpec) -> timedelta | None:
    """How long a log's rows are kept (None: kept for ever)."""
    if spec.retention_setting is None:
        return None
    value = get_setting(conn, spec.retention_setting)
    if isinstance(value, str):
        value = value.strip() or None
    if value is None or value == "never":
        return None
    return timedelta(days=float(value))


def horizon(conn: psycopg.Connection, spec: PartitionSpec) -> date:
    """The last month that must exist now."""
    premake = int(get_setting(conn, "partition.premake_months"))
    now = _now(conn)
    if spec.expiry_key:
        longest = conn.execute(
            "SELECT max(memory_retention(t)) FROM unnest(ARRAY['short_term', 'long_term', 'archived']) t"
        ).fetchone()[0]  # type: ignore[index]
        now = now + (longest or timedelta(0))
    return add_months(month_start(now), premake)


def required_months(conn: psycopg.Connection, spec: PartitionSpec) -> list[date]:
    current = month_start(_now(conn))
    last = horizon(conn, spec)
    months, month = [], current
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


def drop_cutoff(conn: psycopg.Connection, spec: PartitionSpec, older_than: timedelta | None = None) -> Any:
    """Partitions whose upper bound is at or before this may go (None: none may)."""
    now = _now(conn)
    if spec.expiry_key:
        return now - (older_than or timedelta(0))
    kept = retention_of(conn, spec)
    return None if kept is None else now - kept


_PARTITIONS = """
SELECT c.relname,
       CASE WHEN m IS NULL THEN NULL ELSE m[1]::timestamptz END,
       CASE WHEN m IS NULL THEN NULL ELSE m[2]::timestamptz END,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT',
       greatest(c.reltuples, 0)::bigint,
       pg_total_relation_size(c.oid)
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
LEFT JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                               $re$FROM \\('([^']*)'\\) TO \\('([^']*)'\\)$re$) m ON true
WHERE i.inhparent = to_regclass(%s)
ORDER BY 2 NULLS FIRST, 1
"""


def list_partitions(
    conn: psycopg.Connection, tables: list[str] | None = None, *, count_default: bool = True
) -> list[PartitionInfo]:
    """The partitions of the partitioned tables (all of ``SPECS`` by default), oldest first per table."""
    from psycopg import sql

    result: list[PartitionInfo] = []
    for spec in SPECS if tables is None else [BY_TABLE[t] for t in tables]:
        if not is_partitioned(conn, spec.table):
            continue
        cutoff = drop_cutoff(conn, spec)
        for name, lower, upper, is_default, estimate, size in conn.execute(
            _PARTITIONS, (spec.table,)
        ).fetchall():
            info = PartitionInfo(spec.table, name, lower, upper, bool(is_default), int(estimate), int(size))
            info.droppable = upper is not None and cutoff is not None and upper <= cutoff
            if info.is_default and count_default:
                row = conn.execute(
                    sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} WHERE {} IS NOT NULL LIMIT %s) s").format(
                        sql.Identifier(name), sql.Identifier(spec.key)
                    ),
                    (DEFAULT_ROWS_LIMIT,),
                ).fetchone()
                info.keyed_rows_in_default = int(row[0]) if row else 0
            result.append(info)
    return result


def missing_months(conn: psycopg.Connection, spec: PartitionSpec) -> list[date]:
    """Months from now to the horizon that have no partition."""
    have = {
        (p.lower.year, p.lower.month)
        for p in list_partitions(conn, [spec.table], count_default=False)
        if p.lower is not None
    }
    return [m for m in required_months(conn, spec) if (m.year, m.month) not in have]


def create_partitions(
    conn: psycopg.Connection,
    spec: PartitionSpec,
    months: list[date],
    *,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    result: UpkeepResult | None = None,
) -> list[str]:
    """Create the months' partitions, one short transaction each (autocommit ``conn``)."""
    created = []
    for month in months:
        started = time.perf_counter()

        def book(name: Any, started: float = started) -> None:
            if result is not None:
                result.longest_lock_ms = max(result.longest_lock_ms, (time.perf_counter() - started) * 1000)

        name = in_batch(
            conn,
            ddl_timeouts(timeouts),
            lambda month=month: conn.execute(
                "SELECT memcli_create_partition(%s::regclass, %s)", (spec.table, month)
            ).fetchone()[0],  # type: ignore[index]
            book,
        )
        created.append(str(name))
    return created


def _leftovers(conn: psycopg.Connection, spec: PartitionSpec, cutoff: Any) -> list[str]:
    """Tables detached by a run killed before it dropped them: partition-named, attached to nothing."""
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c
        WHERE c.relkind = 'r'
          AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass(%s))
          AND c.relname ~ ('^' || %s || '_[0-9]{4}_[0-9]{2}$')
          AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
        """,
        (spec.table, spec.table),
    ).fetchall()
    names = []
    for (name,) in rows:
        year, month = int(name[-7:-3]), int(name[-2:])
        upper = datetime(*(add_months(date(year, month, 1), 1).timetuple()[:3]), tzinfo=cutoff.tzinfo)
        if upper <= cutoff:
            names.append(str(name))
    return names


def ddl_batch(conn: psycopg.Connection, timeouts: Timeouts, statements: list[Any]) -> float:
    """Run DDL that locks a table the application uses as one string (autocommit ``conn``): one
    transaction of its own, with the partition DDL's timeouts, that commits as its last statement ends.
    A lock it takes is never held across a round trip to this client (a maintenance transaction holds
    it until the client, perhaps waiting for a core, sends the next statement and the COMMIT). Retried
    when it only timed out waiting for a lock; returns the milliseconds of the successful try."""
    from psycopg import sql

    ddl = ddl_timeouts(timeouts)
    text = ";\n".join(
        [
            sql.SQL("SELECT set_config('lock_timeout', {}, true), set_config('statement_timeout', {}, true)")
            .format(sql.Literal(f"{ddl.lock_timeout_ms}ms"), sql.Literal(f"{ddl.statement_timeout_ms}ms"))
            .as_string(conn),
            *(s.as_string(conn) for s in statements),
        ]
    ).encode()

    def attempt() -> float:
        started = time.perf_counter()
        conn.execute(text)
        return (time.perf_counter() - started) * 1000

    return retry_on_lock(ddl.lock_retries, attempt)


def _detach(conn: psycopg.Connection, spec: PartitionSpec, name: str, timeouts: Timeouts) -> float:
    """Detach partition ``name`` in one round trip (``ddl_batch``); the milliseconds it took.
    ``DETACH ... CONCURRENTLY``, which would not lock out the application at all, is refused while the
    table has a default partition."""
    from psycopg import sql

    return ddl_batch(
        conn,
        timeouts,
        [
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                sql.Identifier(spec.table), sql.Identifier(name)
            )
        ],
    )


KEY_SWEEP_BLOCKS = 16_384  # of the key table per batch: 128 MB, over a million keys (one hash anti-join
# against the memory ids each)


@dataclass
class KeySweepResult:
    """What ``release_stale_keys`` did: keys of rows gone with a dropped partition, removed."""

    dry_run: bool = False
    released: int = 0
    batches: int = 0
    skipped: str | None = None  # why nothing was looked at (plain layout, a conversion under way)
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.released


def release_stale_keys(
    conn: psycopg.Connection,
    *,
    dry_run: bool = False,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> KeySweepResult:
    """Remove from the key table the keys whose row is gone (autocommit ``conn``).

    A partition drop fires no row trigger, so a dropped partition's keys stay recorded; that is allowed (an
    insert of such a key takes the key's lock, finds no row and takes the key over), so the drop does not
    wait for them and they are swept here, the way VACUUM follows a DELETE. The key table is read in ranges
    of blocks (a TID range scan), one batch per transaction; a key is removed only if it still names the
    row found missing, so a key taken over meanwhile stays. Skipped while a conversion fills its twin
    (whose keys name rows not yet in ``conversation_memory``).
    """
    from psycopg import sql

    started = time.perf_counter()
    result = KeySweepResult(dry_run=dry_run)
    spec = BY_TABLE["conversation_memory"]
    if conn.execute("SELECT to_regclass(%s)", (KEY_TABLE,)).fetchone()[0] is None:  # type: ignore[index]
        result.skipped = "no key table"
    elif not is_partitioned(conn, spec.table):
        result.skipped = "plain layout"
    elif conn.execute("SELECT to_regclass(%s)", (spec.twin,)).fetchone()[0] is not None:  # type: ignore[index]
        result.skipped = "a conversion is under way"
    if result.skipped:
        result.duration_seconds = time.perf_counter() - started
        return result
    (_, unique), pk = spec.unique[0], sql.Identifier(spec.primary_key[0])
    a, b = map(sql.Identifier, unique)
    stale = sql.SQL(
        "SELECT k.{a}, k.{b}, k.memory_id FROM {keys} k "
        "WHERE k.ctid >= format('(%%s,0)', %(first)s::bigint)::tid "
        "  AND k.ctid < format('(%%s,0)', %(last)s::bigint)::tid "
        "  AND NOT EXISTS (SELECT 1 FROM {memories} m WHERE m.{pk} = k.memory_id)"
    ).format(keys=sql.Identifier(KEY_TABLE), memories=sql.Identifier(spec.table), a=a, b=b, pk=pk)
    if dry_run:
        statement = sql.SQL("SELECT count(*) FROM ({}) s").format(stale)
    else:
        # the key must still name the missing row when its lock is ours (a concurrent insert may take it
        # over): the join on memory_id is checked again on the row's latest version
        statement = sql.SQL(
            "WITH stale AS MATERIALIZED ({stale}) "
            "DELETE FROM {keys} k USING stale s "
            "WHERE k.{a} = s.{a} AND k.{b} = s.{b} AND k.memory_id = s.memory_id"
        ).format(stale=stale, keys=sql.Identifier(KEY_TABLE), a=a, b=b)
    row = conn.execute(
        "SELECT pg_relation_size(%s) / current_setting('block_size')::bigint", (KEY_TABLE,)
    ).fetchone()
    blocks = int(row[0]) if row else 0
    for first in range(0, blocks, KEY_SWEEP_BLOCKS):
        params = {"first": first, "last": first + KEY_SWEEP_BLOCKS}

        def batch(params: dict[str, int] = params) -> int:
            # a row hidden by row-level security must not look missing: with row_security off, a role the
            # policies apply to gets an error instead of a filtered (and so wrong) answer
            conn.execute("SET LOCAL row_security = off")
            cur = conn.execute(statement, params)
            if dry_run:
                found = cur.fetchone()
                return int(found[0]) if found else 0
            return cur.rowcount

        def book(n: int) -> None:
            result.released += n
            result.batches += 1

        in_batch(conn, timeouts, batch, record=book, rows=None if dry_run else (lambda n: n))
    result.duration_seconds = time.perf_counter() - started
    return result


def drop_partitions(
    conn: psycopg.Connection,
    spec: PartitionSpec,
    *,
    dry_run: bool = False,
    older_than: timedelta | None = None,
    cutoff: datetime | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    result: UpkeepResult | None = None,
) -> UpkeepResult:
    """Detach and drop the table's partitions whose rows have all expired (autocommit ``conn``).

    ``cutoff`` (else now minus ``older_than``, or the log's retention): partitions whose upper bound is at
    or before it go.
    """
    from psycopg import sql

    result = result or UpkeepResult(dry_run=dry_run)
    if not is_partitioned(conn, spec.table):
        return result
    if cutoff is None:
        cutoff = drop_cutoff(conn, spec, older_than)
    if cutoff is None:
        return result
    doomed = [
        p.name
        for p in list_partitions(conn, [spec.table], count_default=False)
        if not p.is_default and p.upper is not None and p.upper <= cutoff
    ]
    leftovers = _leftovers(conn, spec, cutoff)
    tier_column = spec.table == "conversation_memory"
    for name in doomed + leftovers:
        if dry_run:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
            result.dropped.append(name)
            result.dropped_rows[name] = int(row[0]) if row else 0
            continue
        if name in doomed:
            result.longest_lock_ms = max(result.longest_lock_ms, _detach(conn, spec, name, timeouts))
        # Detached: counting and dropping it no longer touches the parent.
        if tier_column:
            counts = conn.execute(
                sql.SQL("SELECT memory_type, count(*) FROM {} GROUP BY 1").format(sql.Identifier(name))
            ).fetchall()
        else:
            counts = conn.execute(
                sql.SQL("SELECT NULL, count(*) FROM {}").format(sql.Identifier(name))
            ).fetchall()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        result.dropped.append(name)
        result.dropped_rows[name] = sum(int(n) for _, n in counts)
        if tier_column:
            for tier, n in counts:
                result.dropped_by_tier[tier] = result.dropped_by_tier.get(tier, 0) + int(n)
    return result


def upkeep(
    conn: psycopg.Connection,
    *,
    dry_run: bool = False,
    drop: bool = True,
    tables: list[str] | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> UpkeepResult:
    """Create the missing months ahead and drop expired partitions, for every partitioned table."""
    from memcli.jobs.common import own_transactions

    started = time.perf_counter()
    result = UpkeepResult(dry_run=dry_run)
    with own_transactions(conn):
        for spec in SPECS if tables is None else [BY_TABLE[t] for t in tables]:
            if not is_partitioned(conn, spec.table):
                continue
            missing = missing_months(conn, spec)
            if dry_run:
                result.created.extend(partition_name(spec.table, m) for m in missing)
            else:
                result.created.extend(
                    create_partitions(conn, spec, missing, timeouts=timeouts, result=result)
                )
            if drop:
                drop_partitions(conn, spec, dry_run=dry_run, timeouts=timeouts, result=result)
    result.duration_seconds = time.perf_counter() - started
    return result
