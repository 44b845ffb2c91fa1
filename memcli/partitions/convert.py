"""Online conversion of a plain table to the partitioned layout.

1. **Set up**: the partitioned twin, with months planned from the oldest key (at most ``MAX_MONTHS_BACK``;
   older rows wait in the default partition) to the horizon, its own triggers off while rows are copied
   in; then, in one short transaction (the only lock on the original before the swap), a change log
   ``<table>__changes`` and statement-level triggers on the original recording the id of every row written
   from then on.
2. **Copy** the original in id order, one batch per transaction; the position is kept in the change log's
   comment, in the batch's transaction, so a killed run resumes after the last committed batch.
3. **Catch up**: the ids in the change log are taken in batches and their rows refreshed in the twin from
   the original (deleted, then copied again if the row still exists), until little is left.
4. **Swap**: a last catch-up pass without any lock, then one batch sent in a single round trip: ``LOCK
   TABLE ... ACCESS EXCLUSIVE`` (a short ``lock_timeout``, retried), the changes made since, the twin's
   triggers on, the original renamed aside and the twin renamed into place (``twin.swap_statements``, read
   from the catalog beforehand), COMMIT. The lock is held for that server-side work only; the original,
   its capture triggers and the change log are dropped afterwards (a killed run's next run drops them).

Until the swap commits the original serves the application unchanged (its triggers add one insert into
the change log per statement). ``abandon`` removes the twin, the triggers and the change log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.jobs.common import (
    DEFAULT_TIMEOUTS,
    Timeouts,
    check_batch_size,
    in_batch,
    own_transactions,
    retry_on_lock,
)
from memcli.partitions.build import copy_columns, set_triggers, triggers_statement
from memcli.partitions.layout import (
    CAPTURE_TRIGGER,
    KEY_TABLE,
    SPECS,
    PartitionSpec,
    add_months,
    is_partitioned,
    month_start,
)
from memcli.partitions.twin import build_twin, swap_statements
from memcli.partitions.upkeep import MAX_MONTHS_BACK, ddl_batch, ddl_timeouts, required_months
from memcli.settings import get_setting

if TYPE_CHECKING:
    import psycopg

ProgressCallback = Callable[[str, int, int | None], None]  # (table, rows done, rows total)
CATCH_UP_ROUNDS = 50  # catch-up passes before the swap takes what is left under its lock
# The swap waits for a catch-up pass that found at most this many changes: what is left for the swap to
# replay under its lock is then a few milliseconds' work.
SWAP_WHEN_FEWER = 200
# The swap's LOCK waits at most ``PARTITION_LOCK_TIMEOUT_MS`` for the application's transactions, then
# gives way and tries again after the next catch-up pass: while it waits every statement on the table
# queues behind it.
SWAP_LOCK_RETRIES = 50


@dataclass
class TableConversion:
    table: str
    status: str = "pending"  # pending | converted | already partitioned | would convert | abandoned
    resumed: bool = False
    rows_copied: int = 0
    rows_caught_up: int = 0
    months: list[str] = field(default_factory=list)
    rows_outside_months: int = 0  # they land in the default partition
    lock_ms: float = 0.0  # how long the swap held the original's ACCESS EXCLUSIVE lock
    swap_attempts: int = 0  # the swap's tries for its lock (each gave way after PARTITION_LOCK_TIMEOUT_MS)
    duration_seconds: float = 0.0


@dataclass
class ConvertResult:
    dry_run: bool
    tables: list[TableConversion] = field(default_factory=list)
    duration_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows_copied for t in self.tables)


def _q(*parts: str) -> Any:
    from psycopg import sql

    return sql.Identifier(*parts)


def _in_progress(conn: psycopg.Connection, spec: PartitionSpec) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (spec.changes,)).fetchone()
    return bool(row and row[0])


def _months(conn: psycopg.Connection, spec: PartitionSpec) -> tuple[list[date], int]:
    """Months from the oldest key (bounded) to the horizon, and how many rows fall before them."""
    from psycopg import sql

    ahead = required_months(conn, spec)
    oldest = conn.execute(sql.SQL("SELECT min({}) FROM {}").format(_q(spec.key), _q(spec.table))).fetchone()[
        0
    ]  # type: ignore[index]
    first = ahead[0]
    if oldest is not None:
        first = max(min(month_start(oldest), first), add_months(ahead[0], -MAX_MONTHS_BACK))
    months, month = [], first
    while month <= ahead[-1]:
        months.append(month)
        month = add_months(month, 1)
    outside = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE {} < %s OR {} >= %s").format(
            _q(spec.table), _q(spec.key), _q(spec.key)
        ),
        (first, add_months(ahead[-1], 1)),
    ).fetchone()[0]  # type: ignore[index]
    return months, int(outside)


def _capture_function(spec: PartitionSpec) -> str:
    return f"{spec.changes}_capture"


def _build(conn: psycopg.Connection, spec: PartitionSpec, months: list[date]) -> None:
    """The empty twin, its own triggers off while rows are copied in (the original is not locked)."""
    build_twin(conn, spec, partitioned=True, months=months)
    set_triggers(conn, spec.twin, False)


def _capture(conn: psycopg.Connection, spec: PartitionSpec, timeouts: Timeouts) -> None:
    """The change log and the triggers filling it: the only step that locks the original before the swap.
    CREATE TRIGGER takes a SHARE ROW EXCLUSIVE lock, which stops the application's writes until the
    commit: the statements are sent as one string (``ddl_batch``), so that is the server's work only."""
    from psycopg import sql

    id_type = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
        "AND attname = %s",
        (spec.table, spec.primary_key[0]),
    ).fetchone()[0]  # type: ignore[index]
    pk = _q(spec.primary_key[0])
    statements = [
        sql.SQL(
            "CREATE TABLE {} (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, id {} NOT NULL)"
        ).format(_q(spec.changes), sql.SQL(id_type)),
        sql.SQL("COMMENT ON TABLE {} IS ''").format(_q(spec.changes)),
    ]
    # Statement-level triggers with transition tables: one INSERT per statement however many rows.
    for event, rows in (
        ("INSERT", ("new_rows",)),
        ("UPDATE", ("old_rows", "new_rows")),
        ("DELETE", ("old_rows",)),
    ):
        function = _q(f"{_capture_function(spec)}_{event.lower()}")
        select = sql.SQL(" UNION ").join(
            sql.SQL("SELECT {} FROM {}").format(pk, sql.Identifier(r)) for r in rows
        )
        statements.append(
            sql.SQL(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
                "INSERT INTO {} (id) {}; RETURN NULL; END $fn$"
            ).format(function, _q(spec.changes), select)
        )
        referencing = sql.SQL(" ").join(
            sql.SQL("{} TABLE AS {}").format(sql.SQL("OLD" if r == "old_rows" else "NEW"), sql.Identifier(r))
            for r in rows
        )
        statements.append(
            sql.SQL(
                "CREATE TRIGGER {} AFTER {} ON {} REFERENCING {} FOR EACH STATEMENT EXECUTE FUNCTION {}()"
            ).format(
                _q(f"{CAPTURE_TRIGGER}_{event.lower()}"),
                sql.SQL(event),
                _q(spec.table),
                referencing,
                function,
            )
        )
    ddl_batch(conn, timeouts, statements)


def _drop_capture(conn: psycopg.Connection, spec: PartitionSpec) -> None:
    from psycopg import sql

    for event in ("insert", "update", "delete"):
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(
                _q(f"{CAPTURE_TRIGGER}_{event}"), _q(spec.table)
            )
        )
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_q(f"{_capture_function(spec)}_{event}")))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_q(spec.changes)))


def _drop_leftovers(conn: psycopg.Connection, spec: PartitionSpec, timeouts: Timeouts) -> None:
    """After the swap: the original (renamed aside, no longer read by anyone), its capture triggers and the
    change log. Its ACCESS EXCLUSIVE lock is on the old table alone, so the application does not wait."""
    from psycopg import sql

    def work() -> None:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_q(spec.old)))  # its capture triggers too
        for event in ("insert", "update", "delete"):
            conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_q(f"{_capture_function(spec)}_{event}"))
            )
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_q(spec.changes)))

    in_batch(conn, timeouts, work)


def _position(conn: psycopg.Connection, spec: PartitionSpec) -> str | None:
    row = conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (spec.changes,)).fetchone()
    return (row[0] or None) if row else None


def _copy_batch(
    conn: psycopg.Connection, spec: PartitionSpec, after: str | None, size: int
) -> tuple[str | None, int]:
    from psycopg import sql

    columns = sql.SQL(", ").join(map(_q, copy_columns(conn, spec.table)))
    pk = _q(spec.primary_key[0])
    where = sql.SQL("WHERE {} > %(after)s").format(pk) if after is not None else sql.SQL("")
    row = conn.execute(
        sql.SQL(
            "WITH batch AS (SELECT {cols} FROM {src} {where} ORDER BY {pk} LIMIT %(size)s), "
            "ins AS (INSERT INTO {twin} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM batch){keys} "
            "SELECT (SELECT b.{pk} FROM batch b ORDER BY b.{pk} DESC LIMIT 1)::text, count(*) FROM batch"
        ).format(
            cols=columns,
            src=_q(spec.table),
            where=where,
            pk=pk,
            twin=_q(spec.twin),
            keys=_record_keys(spec, "batch") if _keeps_keys(conn, spec) else sql.SQL(""),
        ),
        {"after": after, "size": size},
    ).fetchone()
    last, n = (row[0], int(row[1])) if row else (None, 0)
    if n:
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(_q(spec.changes), sql.Literal(last)))
    return last, n


def _catch_up_statement(conn: psycopg.Connection, spec: PartitionSpec, size: int | None) -> Any:
    """Refresh in the twin the rows of (up to ``size``) logged ids; returns how many entries it took.

    The ids are handed to both tables as one array (``= ANY``): the planner then looks them up by the
    primary key whatever it believes of the change log's size. Joined to the log instead, a stale
    estimate of it (the log swells and empties while rows are copied) made it scan both whole tables,
    under the swap's lock."""
    from psycopg import sql

    columns = sql.SQL(", ").join(map(_q, copy_columns(conn, spec.table)))
    pk = _q(spec.primary_key[0])
    taken = (
        sql.SQL("DELETE FROM {log} WHERE seq IN (SELECT seq FROM {log} ORDER BY seq LIMIT {size})").format(
            log=_q(spec.changes), size=sql.Literal(size)
        )
        if size
        else sql.SQL("DELETE FROM {log}").format(log=_q(spec.changes))
    )
    keys = sql.SQL("")
    if _keeps_keys(conn, spec):
        (_, unique), key_table = spec.unique[0], _q(KEY_TABLE)
        a, b = map(_q, unique)
        # The keys of the refreshed rows as they are now; a removed row's key, unless a row has it now.
        keys = sql.SQL(
            ", fresh AS (SELECT {pk}, {a}, {b} FROM {src} WHERE {pk} = ANY (ARRAY(SELECT id FROM ids))), "
            "unkeyed AS (DELETE FROM {keys} k USING gone g WHERE k.{a} = g.{a} AND k.{b} = g.{b} "
            "            AND k.memory_id = g.{pk} "
            "            AND NOT EXISTS (SELECT 1 FROM {src} s WHERE s.{a} = g.{a} AND s.{b} = g.{b}))"
            "{record}"
        ).format(pk=pk, a=a, b=b, src=_q(spec.table), keys=key_table, record=_record_keys(spec, "fresh"))
    return sql.SQL(
        "WITH taken AS ({taken} RETURNING id), "
        "ids AS (SELECT DISTINCT id FROM taken), "
        "gone AS (DELETE FROM {twin} WHERE {pk} = ANY (ARRAY(SELECT id FROM ids)) RETURNING *), "
        "ins AS (INSERT INTO {twin} ({cols}) OVERRIDING SYSTEM VALUE "
        "        SELECT {cols} FROM {src} WHERE {pk} = ANY (ARRAY(SELECT id FROM ids))){keys} "
        "SELECT 'caught_up', count(*)::float8 FROM taken"
    ).format(
        taken=taken,
        twin=_q(spec.twin),
        pk=pk,
        cols=columns,
        src=_q(spec.table),
        keys=keys,
    )


def _keeps_keys(conn: psycopg.Connection, spec: PartitionSpec) -> bool:
    """The partitioned layout keeps this table's unique key in the key table (revision 0011 on)."""
    if not spec.unique:
        return False
    return conn.execute("SELECT to_regclass(%s)", (KEY_TABLE,)).fetchone()[0] is not None  # type: ignore[index]


def _record_keys(spec: PartitionSpec, rows: str) -> Any:
    """A CTE recording in the key table the keys of the rows of CTE ``rows``: the twin's triggers are off
    while rows are copied in, so the copy records what the unique-key trigger would have."""
    from psycopg import sql

    (_, unique), pk = spec.unique[0], _q(spec.primary_key[0])
    a, b = map(_q, unique)
    return sql.SQL(
        ", keyed AS (INSERT INTO {keys} ({a}, {b}, memory_id) SELECT {a}, {b}, {pk} FROM {rows} "
        "ON CONFLICT ({a}, {b}) DO UPDATE SET memory_id = EXCLUDED.memory_id)"
    ).format(keys=_q(KEY_TABLE), a=a, b=b, pk=pk, rows=_q(rows))


def _forget_keys(conn: psycopg.Connection, spec: PartitionSpec) -> None:
    """Empty the key table while the table is plain (its unique constraint does the work there): keys a
    conversion recorded before it was abandoned. TRUNCATE: nothing else uses the table then, and a
    conversion abandoned late may have recorded as many keys as the table has rows."""
    from psycopg import sql

    if _keeps_keys(conn, spec) and not is_partitioned(conn, spec.table):
        conn.execute(sql.SQL("TRUNCATE {}").format(_q(KEY_TABLE)))


def _catch_up_batch(conn: psycopg.Connection, spec: PartitionSpec, size: int | None) -> int:
    row = conn.execute(_catch_up_statement(conn, spec, size)).fetchone()
    return int(row[1]) if row else 0


def _catch_up(conn: psycopg.Connection, spec: PartitionSpec, size: int, timeouts: Timeouts) -> int:
    """One pass over the change log, a batch per transaction; how many entries it took."""
    taken = 0
    while True:
        n = in_batch(conn, timeouts, lambda: _catch_up_batch(conn, spec, size))
        taken += n
        if n < size:
            return taken


def _swap_batch(conn: psycopg.Connection, spec: PartitionSpec, timeouts: Timeouts) -> list[Any]:
    """The swap as one transaction in one batch, COMMIT included: lock, the last changes, the twin's
    triggers on, the renames. It reports the changes taken (``caught_up``) and how long the lock had been
    held when the COMMIT began (``held_ms``)."""
    from psycopg import sql

    return [
        sql.SQL("BEGIN"),
        sql.SQL(
            "SELECT set_config('lock_timeout', {}, true), set_config('statement_timeout', {}, true)"
        ).format(
            sql.Literal(f"{ddl_timeouts(timeouts).lock_timeout_ms}ms"),
            sql.Literal(f"{timeouts.statement_timeout_ms}ms"),
        ),
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(_q(spec.table)),
        sql.SQL("SELECT set_config('memcli.swap_locked_at', clock_timestamp()::text, true)"),
        _catch_up_statement(conn, spec, None),
        triggers_statement(spec.twin, True),
        *swap_statements(conn, spec, keep_original=True),  # renamed aside with its capture triggers
        sql.SQL(
            "SELECT 'held_ms', 1000 * extract(epoch FROM clock_timestamp() "
            "- current_setting('memcli.swap_locked_at')::timestamptz)::float8"
        ),
        sql.SQL("COMMIT"),
    ]


def _run_swap(conn: psycopg.Connection, batch: list[Any]) -> dict[str, float]:
    """Run the swap batch in one round trip (autocommit ``conn``); the figures it reported. On an error the
    server skips the rest of the batch, COMMIT included: the transaction is rolled back here."""
    from psycopg.pq import TransactionStatus

    try:
        cursor = conn.execute(";\n".join(s.as_string(conn) for s in batch).encode())
    except BaseException:
        if not conn.closed and conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise
    figures: dict[str, float] = {}
    while True:
        if cursor.description is not None and len(cursor.description) == 2:
            for name, value in cursor.fetchall():
                if name in ("caught_up", "held_ms"):
                    figures[str(name)] = float(value)
        if not cursor.nextset():
            return figures


def convert_table(
    conn: psycopg.Connection,
    spec: PartitionSpec,
    *,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> TableConversion:
    """Convert one table (autocommit ``conn``; the caller holds the ``partitions`` job lock)."""
    from psycopg import sql

    started = time.perf_counter()
    result = TableConversion(spec.table)
    if is_partitioned(conn, spec.table):
        if not dry_run:  # a run killed right after its swap
            _drop_leftovers(conn, spec, timeouts)
        result.status = "already partitioned"
        return result
    size = check_batch_size(batch_size if batch_size is not None else get_setting(conn, "cleanup.batch_size"))
    total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_q(spec.table))).fetchone()[0]  # type: ignore[index]
    resumed = _in_progress(conn, spec)
    if not resumed:
        months, result.rows_outside_months = _months(conn, spec)
        result.months = [f"{m:%Y_%m}" for m in months]
        if dry_run:
            result.status = "would convert"
            result.rows_copied = int(total)
            return result
        if conn.execute("SELECT to_regclass(%s)", (spec.twin,)).fetchone()[0] is None:  # type: ignore[index]
            in_batch(conn, timeouts, lambda: (_forget_keys(conn, spec), _build(conn, spec, months)))
        # Copying starts only once every later write is logged.
        _capture(conn, spec, timeouts)
    else:
        result.resumed = True
        if dry_run:
            result.status = "would resume"
            return result

    # Copy.
    after = _position(conn, spec)
    if progress:
        progress(spec.table, 0, int(total))
    while True:
        last, n = in_batch(conn, timeouts, lambda after=after: _copy_batch(conn, spec, after, size))
        if n == 0:
            break
        after = last
        result.rows_copied += n
        if progress:
            progress(spec.table, result.rows_copied, max(int(total), result.rows_copied))

    # Catch up until one pass finds little to do.
    for _ in range(CATCH_UP_ROUNDS):
        taken = _catch_up(conn, spec, size, timeouts)
        result.rows_caught_up += taken
        if taken <= SWAP_WHEN_FEWER:
            break
    # The statistics go with the twin into the original's place. Analysed there, after the swap, each
    # partition's new statistics would invalidate the application's plans on the table one after another
    # (a replanning stall per partition, seconds of them); here the application does not read the twin.
    conn.execute(sql.SQL("ANALYZE {}").format(_q(spec.twin)))

    # Swap under a short lock: a waiting ACCESS EXCLUSIVE request queues the application behind it. The
    # statements are prepared from the catalog first and sent as one batch, so the lock is held for the
    # server's work (the last few changes, catalog renames), never for round trips to this client.
    batch = _swap_batch(conn, spec, timeouts)

    def catch_up() -> None:  # what came in meanwhile, unlocked
        result.rows_caught_up += _catch_up(conn, spec, size, timeouts)

    def swap() -> dict[str, float]:
        result.swap_attempts += 1
        return _run_swap(conn, batch)

    # A try that gave way rolled back: the original serves on, still logging its changes (a later run
    # resumes here); what came in meanwhile is caught up again before the next try.
    catch_up()
    figures = retry_on_lock(
        SWAP_LOCK_RETRIES, swap, pause=lambda tries: min(0.05 * tries, 1.0), between=catch_up
    )
    # measured by the server, from the lock to the COMMIT (which then flushes and releases it)
    result.lock_ms = figures.get("held_ms", 0.0)
    result.rows_caught_up += int(figures.get("caught_up", 0))
    _drop_leftovers(conn, spec, timeouts)
    result.status = "converted"
    result.duration_seconds = time.perf_counter() - started
    return result


def abandon_table(
    conn: psycopg.Connection, spec: PartitionSpec, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> TableConversion:
    """Remove an unfinished conversion's twin, triggers and change log; the original is untouched."""
    from psycopg import sql

    result = TableConversion(spec.table)
    if (
        not _in_progress(conn, spec)
        and conn.execute("SELECT to_regclass(%s)", (spec.twin,)).fetchone()[0] is None
    ):  # type: ignore[index]
        result.status = "nothing to abandon"
        return result

    def work() -> None:
        _drop_capture(conn, spec)
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(_q(spec.twin)))
        _forget_keys(conn, spec)

    in_batch(conn, ddl_timeouts(timeouts), work)
    result.status = "abandoned"
    return result


def convert(
    conn: psycopg.Connection,
    tables: list[str] | None = None,
    *,
    dry_run: bool = False,
    abandon: bool = False,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
) -> ConvertResult:
    """Convert the tables (all of ``SPECS`` by default) to the partitioned layout, or abandon that."""
    from memcli.partitions.layout import spec_for

    started = time.perf_counter()
    specs = SPECS if not tables else tuple(spec_for(t) for t in tables)
    result = ConvertResult(dry_run=dry_run)
    with own_transactions(conn):
        row = conn.execute("SELECT to_regprocedure('memcli_create_partition(regclass, date)')").fetchone()
        if row is None or row[0] is None:
            raise ConfigError(
                "this database's schema predates the partitioned layout", hint="run: memcli migrate"
            )
        for spec in specs:
            if abandon:
                result.tables.append(abandon_table(conn, spec, timeouts))
            else:
                result.tables.append(
                    convert_table(
                        conn,
                        spec,
                        dry_run=dry_run,
                        batch_size=batch_size,
                        progress=progress,
                        timeouts=timeouts,
                    )
                )
    result.duration_seconds = time.perf_counter() - started
    return result
