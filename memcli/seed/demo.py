"""Loading the demo dataset (built by ``memcli.seed.demo_data``) into a migrated database.

One transaction, bulk-loaded with COPY; semantic memories embedded on the way; the demo businesses get
their context sections as real ones do. A database that holds real memories or businesses is refused
unless the caller says yes, and a seed that is already loaded is not loaded twice.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli.bulk import copy_rows
from memcli.errors import ConfigError, JobFailedError, NotReadyError
from memcli.schema import names
from memcli.seed.business import SeedResult, seed_sections
from memcli.seed.defaults import ensure_default_settings
from memcli.seed.demo_data import (
    CONVERSATION_COLUMNS,
    DAY,
    DEMO_PREFIX,
    PROFILE_COLUMNS,
    RELEVANCE_COLUMNS,
    SEMANTIC_COLUMNS,
    default_base_time,
    demo_id,
    generate_demo,
    session_prefix,
)
from memcli.seed.sources import source_columns

if TYPE_CHECKING:
    import psycopg

    from memcli.embeddings import Embedder

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class DemoRefusedError(ConfigError):
    """The database holds real memories or businesses: demo rows would mix with them (exit 2; --yes)."""


@dataclass
class DemoResult:
    random_seed: int
    counts: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    users: int = 0
    expired: int = 0  # conversation memories whose expires_at is already past
    near_expiry: int = 0  # conversation memories expiring within the next two days
    heavily_accessed: int = 0  # access_count >= 50
    embedding_model: str | None = None
    embedding_seconds: float = 0.0
    load_seconds: float = 0.0
    base_time: dt.datetime | None = None
    already_loaded: bool = False
    dry_run: bool = False
    settings_added: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def non_demo_holders(conn: psycopg.Connection, business_columns: dict[str, str] | None) -> list[str]:
    """The tables holding rows that are not demo data: memories, and the app's businesses (demo restaurants
    would show up in a live application next to the real ones). ``business_columns``: table_columns of
    businesses."""
    from psycopg import sql

    like = DEMO_PREFIX + "%"
    marker = '{"demo": true}'
    # What tells a memory table's rows that are not demo data.
    not_demo = {
        names.CONVERSATION_MEMORY: "session_id NOT LIKE %(like)s",
        names.SEMANTIC_MEMORY: "session_id NOT LIKE %(like)s",
        names.USER_CONTEXT_PROFILES: "NOT coalesce(profile_data @> %(marker)s::jsonb, false)",
    }
    row = conn.execute(
        sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL("EXISTS (SELECT 1 FROM {} WHERE {})").format(sql.Identifier(table), sql.SQL(where))  # type: ignore[arg-type]
                for table, where in not_demo.items()
            )
        ),
        {"like": like, "marker": marker},
    ).fetchone()
    holders = [table for table, found in zip(not_demo, row or (), strict=True) if found]
    if business_columns:
        # Demo businesses carry settings {"demo": true} and a demo- slug; with neither column, no business can
        # be told apart from a real one.
        if business_columns.get("settings") == "jsonb":
            query = (
                "SELECT EXISTS (SELECT 1 FROM businesses WHERE NOT coalesce(settings @> %s::jsonb, false))"
            )
            row = conn.execute(query, (marker,)).fetchone()
        elif "slug" in business_columns:
            query = "SELECT EXISTS (SELECT 1 FROM businesses WHERE coalesce(slug, '') NOT LIKE %s)"
            row = conn.execute(query, (like,)).fetchone()
        else:
            row = conn.execute("SELECT EXISTS (SELECT 1 FROM businesses)").fetchone()
        if row and row[0]:
            holders.append("businesses")
    return holders


def seed_demo(
    conn: psycopg.Connection,
    embedder: Embedder | None,
    businesses: int = 5,
    sessions: int = 50,
    random_seed: int = 42,
    *,
    yes: bool = False,
    dry_run: bool = False,
    base_time: dt.datetime | None = None,
    progress: Progress | None = None,
) -> DemoResult:
    """Load the demo dataset in one transaction (committed at the end; nothing is written with ``dry_run``).

    Raises DemoRefusedError if the database holds memories or businesses that are not demo data, unless
    ``yes``. Loading a seed that is already loaded does nothing (``already_loaded``). ``embedder`` may be
    None with ``dry_run``.
    """
    from memcli.readiness import require_migrated

    if businesses < 0 or sessions < 0:
        raise ConfigError("--businesses and --sessions must not be negative")
    if sessions > 0 and businesses == 0:
        raise ConfigError("demo sessions need at least one business", hint="pass --businesses 1 or more")
    require_migrated(conn)
    result = DemoResult(random_seed=random_seed, dry_run=dry_run)
    base = base_time or default_base_time()
    result.base_time = base

    app_columns = source_columns(conn)
    holders = non_demo_holders(conn, app_columns["businesses"])
    if holders and not yes:
        raise DemoRefusedError(
            f"this database holds data that is not demo data (in {', '.join(holders)}); "
            "demo rows would mix with it",
            hint="use a fresh database, or pass --yes to add the demo data anyway",
        )
    if holders:
        result.warnings.append(f"added demo data next to existing rows in {', '.join(holders)}")

    if _already_loaded(conn, random_seed, app_columns["businesses"]):
        conn.rollback()
        result.already_loaded = True
        result.warnings.append(
            f"demo data for random seed {random_seed} is already loaded; nothing was added "
            "(pass another --random-seed for more)"
        )
        return result

    if app_columns["businesses"] is None:
        raise NotReadyError("table businesses does not exist", hint="run: memcli migrate (it creates it)")

    # The expiry trigger's own rule (memory_retention: the setting, else the tier's default), so the explicit
    # expires_at are the ones the trigger would have set.
    retention = dict(
        conn.execute(
            "SELECT tier, extract(epoch FROM memory_retention(tier))::float8 / 86400"
            " FROM unnest(%s::text[]) AS t(tier)",
            (list(names.EXPIRING_TIERS),),
        ).fetchall()
    )
    data = generate_demo(
        businesses=businesses,
        sessions=sessions,
        random_seed=random_seed,
        base_time=base,
        retention_days=retention,
    )
    result.sessions = sessions
    result.users = len(data.profiles)
    expiries = [row[10] for row in data.conversation if row[10] is not None]
    result.expired = sum(1 for expires in expiries if expires < base)
    result.near_expiry = sum(1 for expires in expiries if base <= expires <= base + 2 * DAY)
    result.heavily_accessed = sum(1 for row in data.conversation if row[7] >= 50)

    app_rows = {
        "businesses": data.businesses,
        "menu_categories": data.menu_categories,
        "menu_items": data.menu_items,
        "working_hours": data.working_hours,
    }
    plans = {table: _app_plan(table, app_columns[table], rows, result) for table, rows in app_rows.items()}
    memory_loads: dict[str, tuple[Sequence[str], list[Any]]] = {
        names.USER_CONTEXT_PROFILES: (PROFILE_COLUMNS, data.profiles),
        names.CONVERSATION_MEMORY: (CONVERSATION_COLUMNS, data.conversation),
        names.SEMANTIC_MEMORY: (SEMANTIC_COLUMNS, data.semantic),  # its vectors are added when loading
        names.CONTEXT_RELEVANCE: (RELEVANCE_COLUMNS, data.relevance),
    }
    for table, plan in plans.items():
        result.counts[table] = len(plan[1]) if plan else 0
    if dry_run:
        result.counts.update({table: len(rows) for table, (_, rows) in memory_loads.items()})
        result.embedding_model = embedder.name if embedder is not None else None
        conn.rollback()
        return result
    if embedder is None:
        raise ConfigError("an embedder is needed to load demo semantic memories")

    from memcli.embeddings import ensure_compatible
    from memcli.semantic import use_vectors

    result.embedding_model = embedder.name
    try:
        use_vectors(conn)  # numpy rows go into COPY as vector values
        ensure_compatible(conn, embedder)
        started = time.perf_counter()
        vectors = _embed(embedder, [row[4] for row in data.semantic], progress)
        result.embedding_seconds = round(time.perf_counter() - started, 3)

        started = time.perf_counter()
        memory_loads[names.SEMANTIC_MEMORY] = (
            SEMANTIC_COLUMNS,
            [
                (*row[:5], vector, row[5], row[6], row[7], embedder.name, row[8], row[9])
                for row, vector in zip(data.semantic, vectors, strict=True)
            ],
        )
        loads = {table: plan for table, plan in plans.items() if plan is not None} | memory_loads
        for table, (columns, rows) in loads.items():
            result.counts[table] = copy_rows(conn, table, columns, rows, progress=progress, total=len(rows))
        # The demo businesses' context sections, built as `memcli seed` builds them for real ones.
        sections = SeedResult()
        ids = [row["id"] for row in data.businesses]
        if ids:
            seed_sections(conn, sections, ids, refresh=False, dry_run=False, columns=app_columns)
        result.counts["business_context_sections"] = sum(c.created for c in sections.sections.values())
        result.warnings.extend(sections.warnings)
        result.settings_added = ensure_default_settings(conn)
        result.load_seconds = round(time.perf_counter() - started, 3)
    except BaseException as exc:
        conn.rollback()
        import psycopg

        if isinstance(exc, psycopg.errors.NotNullViolation | psycopg.errors.CheckViolation):
            raise JobFailedError(
                f"the demo rows do not fit this database's tables: {str(exc).splitlines()[0]}",
                hint="load the demo into a database memcli migrated from empty",
            ) from exc
        raise
    conn.commit()
    return result


def _already_loaded(conn: psycopg.Connection, seed: int, business_columns: dict[str, str] | None) -> bool:
    like = session_prefix(seed) + "%"
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM conversation_memory WHERE session_id LIKE %s)
            OR EXISTS (SELECT 1 FROM semantic_memory WHERE session_id LIKE %s)
            OR EXISTS (SELECT 1 FROM user_context_profiles WHERE user_id = %s)
        """,
        (like, like, demo_id(seed, "user", 0)),
    ).fetchone()
    if row and row[0]:
        return True
    if business_columns and "id" in business_columns:
        found = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM businesses WHERE id = %s)", (demo_id(seed, "business", 0),)
        )
        return bool(found.fetchone()[0])  # type: ignore[index]
    return False


def _app_plan(
    table: str, columns: dict[str, str] | None, rows: list[dict[str, Any]], result: DemoResult
) -> tuple[list[str], list[tuple[Any, ...]]] | None:
    """The columns of ``rows`` the app's table has, and the rows cut to them; None if the table is absent."""
    if columns is None:
        result.warnings.append(f"table {table} does not exist: no demo {table.replace('_', ' ')}")
        return None
    if not rows:
        return [], []
    kept = [
        name
        for name in rows[0]
        if name in columns
        # Only pass our uuid5 ids where the column is a uuid (an app may number its rows itself).
        and not (name == "id" and columns[name] != "uuid" and table != "businesses")
    ]
    return kept, [tuple(row[name] for name in kept) for row in rows]


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None, batch: int = 128) -> list[Any]:
    vectors: list[Any] = []
    for start in range(0, len(texts), batch):
        vectors.extend(embedder.embed(texts[start : start + batch]))
        if progress is not None:
            progress("embedding", len(vectors), len(texts))
    return vectors
