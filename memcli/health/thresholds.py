"""Health thresholds: defaults, where each comes from, and overrides from ``[health.thresholds]``.

Sources: PgHero (ankane/pghero, lib/pghero.rb and lib/pghero/methods/*), the Supabase CLI's
``supabase inspect db`` queries (supabase/cli internal/inspect/*), heroku pg-extras (bloat), pgvector's
README and CHANGELOG, the PostgreSQL documentation. Where no tool has a number, the default is memcli's own
choice and says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memcli.errors import ConfigError


@dataclass(frozen=True)
class Threshold:
    default: float
    description: str
    source: str


THRESHOLDS: dict[str, Threshold] = {
    # -- how health itself runs
    "statement_timeout_ms": Threshold(5000, "per-statement timeout of every check query", "memcli"),
    "lock_timeout_ms": Threshold(1000, "a check waits at most this long for a lock", "memcli"),
    "exact_count_max_rows": Threshold(
        10000,
        "tables up to this many rows are counted exactly; larger ones from a page sample (estimate)",
        "memcli: matches PgHero's 10,000-row floor for missing-index warnings, so health's own reads never "
        "add sequential scans on tables that check watches",
    ),
    "sample_rows": Threshold(
        20000, "rows' worth of pages sampled for an estimate on a large table", "memcli"
    ),
    # -- server
    "latency_warn_ms": Threshold(
        100, "round-trip latency that warns", "memcli: same-region round trips are ~1 ms"
    ),
    "latency_fail_ms": Threshold(1000, "round-trip latency that fails", "memcli"),
    # -- memory hygiene
    "expired_backlog_max_age_hours": Threshold(
        48, "an expired memory still present this long after expiry warns", "memcli: twice the daily cleanup"
    ),
    "consolidation_grace_hours": Threshold(
        168,
        "unexpired short_term memories older than consolidation.min_age_days plus this grace are a backlog",
        "memcli: consolidation runs weekly",
    ),
    "missing_embedding_grace_minutes": Threshold(
        60, "semantic memories without a vector older than this warn", "memcli: embedding runs in batches"
    ),
    "partition_default_rows_warn": Threshold(
        1000,
        "rows with a partition key waiting in a default partition (outside every planned month) that warn",
        "memcli: upkeep creates the months ahead, so only strays land there",
    ),
    # -- operations
    "maintenance_daily_hours": Threshold(24, "period of the daily maintenance run", "memcli schedule"),
    "maintenance_weekly_hours": Threshold(168, "period of the weekly maintenance run", "memcli schedule"),
    "maintenance_monthly_hours": Threshold(
        744, "period of the monthly maintenance run (31 days)", "memcli schedule"
    ),
    "maintenance_fail_factor": Threshold(
        2, "a job with no success within this many periods fails", "issue: twice its period"
    ),
    "failed_runs_window_hours": Threshold(24, "failed maintenance runs in this window warn", "memcli"),
    # -- Postgres internals
    "cache_hit_ratio_warn": Threshold(
        0.99, "table / index cache hit ratio below this warns", "PgHero cache_hit_rate_threshold 99; supabase"
    ),
    "cache_hit_min_blocks": Threshold(
        10000,
        "block reads needed before the cache hit ratio is judged",
        "memcli: a young database's ratio is noise",
    ),
    "unused_index_max_scans": Threshold(
        50, "non-unique indexes scanned fewer times are unused", "supabase inspect db unused-indexes; PgHero"
    ),
    "unused_index_min_table_pages": Threshold(
        5, "only indexes of tables larger than this many pages count", "supabase inspect db unused-indexes"
    ),
    "seq_scan_min_rows": Threshold(10000, "tables with fewer rows are never flagged for seq scans", "PgHero"),
    "seq_scan_min_scans": Threshold(
        100,
        "scans (sequential + index) a table needs before its index use is judged",
        "memcli: PgHero judges after one index scan, which flags freshly loaded tables",
    ),
    "seq_scan_index_use_warn": Threshold(
        0.95, "share of scans using an index below which a large table warns", "PgHero missing_indexes (95%)"
    ),
    "bloat_factor_warn": Threshold(
        10, "estimated bloat factor that warns", "heroku pg-extras / supabase bloat"
    ),
    "bloat_min_waste_mb": Threshold(
        100, "only relations wasting at least this much count", "PgHero index_bloat min_size 100 MB"
    ),
    "dead_tuples_min_rows": Threshold(
        10000, "dead tuples below this never warn", "memcli: small tables vacuum fast"
    ),
    "vacuum_stale_hours": Threshold(
        24,
        "dead tuples past the autovacuum trigger (supabase vacuum-stats 'expect autovacuum') with no "
        "(auto)vacuum for this long warn; same for analyze",
        "memcli: autovacuum normally acts within autovacuum_naptime (1 min)",
    ),
    "long_transaction_warn_seconds": Threshold(
        300, "a transaction open this long warns", "supabase inspect db long-running-queries (5 minutes)"
    ),
    "long_transaction_fail_seconds": Threshold(
        3600, "a transaction open this long fails", "memcli: it holds back vacuum on every table"
    ),
    "blocked_warn_seconds": Threshold(
        0,
        "sessions waiting on a lock held by another for longer than this warn",
        "supabase inspect db blocking",
    ),
    "connections_warn_ratio": Threshold(0.8, "connections used / max_connections that warns", "memcli"),
    "connections_fail_ratio": Threshold(0.95, "connections used / max_connections that fails", "memcli"),
    "wraparound_warn_age": Threshold(
        1_000_000_000,
        "age(datfrozenxid) that warns",
        "memcli: half the ~2.1 billion XID space, 5x autovacuum_freeze_max_age",
    ),
    "wraparound_fail_left": Threshold(
        10_000_000, "transactions left before shutdown that fail", "PgHero transaction_id_danger"
    ),
    "sequence_warn_ratio": Threshold(
        0.9, "share of a sequence's range used that warns", "PgHero sequence_danger"
    ),
    # -- vector index
    "ivfflat_lists_factor": Threshold(
        4,
        "ivfflat lists further than this factor from rows/1000 (sqrt(rows) over 1M) warn",
        "pgvector README recommends rows/1000; the factor is memcli's",
    ),
    "recall_queries": Threshold(10, "sampled query vectors for the recall probe (--deep)", "memcli"),
    "drift_min_similarity": Threshold(
        0.98,
        "a stored vector re-embedded with the configured model below this cosine fails (--deep)",
        "memcli",
    ),
    "drift_samples": Threshold(20, "stored texts re-embedded by the drift check (--deep)", "memcli"),
}

# pgvector releases before this have HNSW vacuum bugs (0.8.3: possible index corruption with HNSW
# vacuuming; 0.8.4: "hnsw graph not repaired" error and errors with inserts during HNSW vacuuming).
PGVECTOR_MIN_VERSION = "0.8.4"


class Thresholds(Mapping[str, float]):
    """The defaults with the config file's overrides applied."""

    def __init__(self, overrides: Mapping[str, float] | None = None) -> None:
        self._values = {key: t.default for key, t in THRESHOLDS.items()}
        self.overridden: set[str] = set()
        for key, value in (overrides or {}).items():
            self._values[key] = value
            self.overridden.add(key)

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def load_thresholds(overrides: Mapping[str, Any] | None) -> Thresholds:
    """Validate ``[health.thresholds]`` (unknown keys and non-numbers are ConfigError, exit 2)."""
    clean: dict[str, float] = {}
    for key, value in (overrides or {}).items():
        if key not in THRESHOLDS:
            raise ConfigError(
                f"unknown health threshold {key!r} in [health.thresholds]",
                hint=f"known: {', '.join(sorted(THRESHOLDS))}",
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(
                f"health threshold {key} must be a non-negative number, not {value!r}",
                hint=f"{key} = {THRESHOLDS[key].default:g}",
            )
        clean[key] = float(value)
    return Thresholds(clean)
