"""Which tables may be partitioned, by which column, and how their partitions are named and bounded.

``conversation_memory`` is partitioned by ``expires_at``: every row of a partition whose upper bound has
passed has expired, whatever its tier (7 / 90 / 365 days) and however often consolidation or archiving
moved it between tiers (an UPDATE of ``expires_at`` moves the row to its new partition). A partition by
``created_at`` would hold rows of every tier and could be dropped only when its longest-lived tier expired.
The two logs only grow and are kept for a time since they were written: they are partitioned by the time
of writing. Partitions are calendar months in UTC, named ``<table>_YYYY_MM`` (the source document's
``create_memory_partition``), plus one ``<table>_default`` partition for rows with no key (memories that
never expire) and rows outside every planned month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from memcli.schema import names

if TYPE_CHECKING:
    import psycopg

DEFAULT_SUFFIX = "_default"
TWIN_SUFFIX = "__twin"  # the partitioned (or plain) copy of a table while it is being built
OLD_SUFFIX = "__old"  # the original, renamed aside by a conversion's swap and dropped after its commit
CHANGES_SUFFIX = "__changes"  # ids written to the original while an online conversion copies it
CAPTURE_TRIGGER = "memcli_convert_capture"


@dataclass(frozen=True)
class PartitionSpec:
    table: str
    key: str  # the timestamptz column the range partitions bound
    # The key as Postgres computes it, when not the column itself (see memcli_memory_expiry).
    key_expression: str | None = None
    # Expired by key: a partition can go once its upper bound has passed. Otherwise the partition goes
    # once its upper bound is older than the retention setting below.
    expiry_key: bool = False
    retention_setting: str | None = None
    key_nullable: bool = True  # the key column may be NULL (so it cannot join the primary key)
    primary_key: tuple[str, ...] = ("id",)
    # The plain layout's unique constraints other than the primary key: (name, columns). A partitioned
    # table cannot enforce a unique index without the partition key: these are kept by a trigger.
    unique: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def default_partition(self) -> str:
        return self.table + DEFAULT_SUFFIX

    @property
    def twin(self) -> str:
        return self.table + TWIN_SUFFIX

    @property
    def old(self) -> str:
        return self.table + OLD_SUFFIX

    @property
    def changes(self) -> str:
        return self.table + CHANGES_SUFFIX


CONVERSATION_MEMORY = PartitionSpec(
    names.CONVERSATION_MEMORY,
    key="expires_at",
    key_expression="memcli_memory_expiry(expires_at, created_at, memory_type)",
    expiry_key=True,
    unique=(("conversation_memory_session_id_context_key_key", ("session_id", "context_key")),),
)
CONSOLIDATION_LOG = PartitionSpec(
    names.CONSOLIDATION_LOG, key="created_at", retention_setting="retention.consolidation_log_days"
)
MAINTENANCE_LOG = PartitionSpec(
    names.MAINTENANCE_LOG,
    key="started_at",
    key_nullable=False,
    retention_setting="retention.maintenance_log_days",
)

SPECS: tuple[PartitionSpec, ...] = (CONVERSATION_MEMORY, CONSOLIDATION_LOG, MAINTENANCE_LOG)
BY_TABLE: dict[str, PartitionSpec] = {spec.table: spec for spec in SPECS}


def spec_for(table: str) -> PartitionSpec:
    from memcli.errors import ConfigError

    try:
        return BY_TABLE[table]
    except KeyError:
        raise ConfigError(f"{table!r} cannot be partitioned", hint=f"one of: {', '.join(BY_TABLE)}") from None


UNIQUE_TRIGGER = "trigger_memory_unique_key"  # keeps PartitionSpec.unique on the partitioned layout
# ... with RELEASE_TRIGGER, through the key table (revision 0011): records each row's key, releases it
RELEASE_TRIGGER = "trigger_memory_unique_key_release"
UNIQUE_FUNCTION = "memcli_conversation_memory_unique()"
RELEASE_FUNCTION = "memcli_conversation_memory_release()"
KEY_TABLE = names.MEMORY_KEYS


def layout_index_name(table: str, columns: tuple[str, ...]) -> str:
    """The index the partitioned layout gives a primary key or unique constraint it cannot enforce."""
    return f"{table}_{'_'.join(columns)}_idx"


def layout_indexes(table: str, indexes: tuple[str, ...], partitioned: bool) -> tuple[str, ...]:
    """A table's expected index names in its layout (the plain layout's names are the migrations')."""
    spec = BY_TABLE.get(table)
    if spec is None or not partitioned:
        return indexes
    replaced = {name: layout_index_name(table, cols) for name, cols in spec.unique}
    # where the key may be NULL the primary key cannot include it: the id gets a plain index
    ids = (layout_index_name(table, spec.primary_key),) if spec.key_nullable else ()
    return (*(replaced.get(name, name) for name in indexes), *ids)


def layout_triggers(partitioned: list[str]) -> tuple[tuple[str, str], ...]:
    """Triggers the partitioned layout adds to the given (partitioned) tables."""
    return tuple(
        (t, trigger)
        for t in partitioned
        if BY_TABLE.get(t) is not None and BY_TABLE[t].unique
        for trigger in (UNIQUE_TRIGGER, RELEASE_TRIGGER)
    )


def month_start(value: date | datetime) -> date:
    return date(value.year, value.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The partition's range [from, to): the calendar month in UTC."""
    start = month_start(month)
    end = add_months(start, 1)
    return (
        datetime(start.year, start.month, 1, tzinfo=UTC),
        datetime(end.year, end.month, 1, tzinfo=UTC),
    )


def partition_name(table: str, month: date) -> str:
    return f"{table}_{month.year:04d}_{month.month:02d}"


def is_partitioned(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    return bool(row and row[0] == "p")


def partitioned_tables(conn: psycopg.Connection) -> list[str]:
    """The tables of ``SPECS`` that are partitioned in this database."""
    rows = conn.execute(
        "SELECT t FROM unnest(%s::text[]) AS t "
        "WHERE (SELECT relkind FROM pg_class WHERE oid = to_regclass(t)) = 'p'",
        ([spec.table for spec in SPECS],),
    ).fetchall()
    return [str(r[0]) for r in rows]
