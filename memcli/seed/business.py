"""Business context: build ``business_context_sections`` from the application's own tables.

For every active business: an ``overview`` (name, category, description, contact), a ``menu`` (available
items of active categories, grouped by category, with prices), ``hours`` (by weekday, closed days marked) and
a ``location`` when the contact info holds an address. Inactive businesses get none.

Each section stores ``source_hash``, a stable hash of the content built from the source rows:

- a plain run inserts missing sections only (ON CONFLICT DO NOTHING) and never rewrites an existing one, so
  a second run changes nothing, hand edits included;
- ``refresh=True`` also rewrites the sections whose built content no longer matches their ``source_hash``
  (a price changed, hours moved), and only those, so ``last_updated`` keeps meaning "the source changed";
  a section memcli built whose source is gone (business deactivated, address removed) is deactivated.

The application's tables may carry extra columns or lack optional ones: the SELECTs are built from the
columns that exist, and an absent source table is skipped with a warning.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.seed.defaults import ensure_default_settings
from memcli.seed.sections import (
    SECTION_ORDER,
    SECTION_TYPES,
    Section,
    hours_content,
    location_content,
    menu_content,
    overview_content,
)
from memcli.seed.sources import read_businesses, read_hours, read_menus, source_columns

if TYPE_CHECKING:
    import psycopg

# Marks a section memcli built whose source disappeared; a later refresh that builds it again reactivates it.
RETIRED = "retired"
# The sections sent to the INSERT and the UPDATE, one JSON array of records (see ``records`` below).
_SECTIONS = (
    "jsonb_to_recordset(%s::jsonb) AS r(business_id uuid, section_type text, section_name text, "
    "section_content jsonb, section_order int, source_hash text)"
)


@dataclass
class SectionCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0  # differs from its source; a plain run leaves it, --refresh rewrites it
    retired: int = 0  # memcli-built section whose source is gone, deactivated by --refresh
    skipped: int = 0  # an active business without the source for this section (no address, no hours ...)


@dataclass
class SeedResult:
    sections: dict[str, SectionCounts] = field(
        default_factory=lambda: {t: SectionCounts() for t in SECTION_TYPES}
    )
    businesses: int = 0  # active businesses in scope
    inactive_businesses: int = 0
    settings_added: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    refresh: bool = False
    dry_run: bool = False
    totals: SectionCounts = field(default_factory=SectionCounts)

    def _total(self) -> None:
        self.totals = SectionCounts(
            **{
                name: sum(getattr(counts, name) for counts in self.sections.values())
                for name in SectionCounts.__dataclass_fields__
            }
        )


def seed_business_context(
    conn: psycopg.Connection,
    business_id: str | uuid.UUID | None = None,
    refresh: bool = False,
    *,
    dry_run: bool = False,
    defaults: bool = True,
    commit: bool = True,
) -> SeedResult:
    """Build the sections (and, with ``defaults``, the missing default settings) in one transaction.

    The transaction is committed at the end (rolled back with ``dry_run``, which reports what would happen);
    ``commit=False`` leaves it open for a caller that seeds more in the same transaction.
    """
    from memcli.readiness import require_migrated

    require_migrated(conn)
    ids: list[uuid.UUID] | None = None
    if business_id is not None:
        ids = [_parse_uuid(business_id)]
    result = SeedResult(refresh=refresh, dry_run=dry_run)
    try:
        if defaults:
            result.settings_added = ensure_default_settings(conn)
        seed_sections(conn, result, ids, refresh=refresh, dry_run=dry_run, columns=source_columns(conn))
    except BaseException:
        conn.rollback()
        raise
    if dry_run:
        conn.rollback()
    elif commit:
        conn.commit()
    result._total()
    return result


def _parse_uuid(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ConfigError(f"business id {value!r} is not a UUID", hint="pass a businesses.id") from None


def seed_sections(
    conn: psycopg.Connection,
    result: SeedResult,
    ids: list[uuid.UUID] | None,
    *,
    refresh: bool,
    dry_run: bool,
    columns: Mapping[str, dict[str, str] | None],
) -> None:
    """``columns``: ``source_columns(conn)``, read once by the caller."""
    businesses = read_businesses(conn, result.warnings, ids, columns["businesses"])
    if businesses is None:
        return
    active = [b for b in businesses if b["active"]]
    result.businesses = len(active)
    result.inactive_businesses = len(businesses) - len(active)
    if ids is not None and not businesses:
        raise ConfigError(
            f"no business with id {ids[0]}", hint="check the id: SELECT id, name FROM businesses"
        )
    if ids is not None and not active:
        result.warnings.append(f"business {ids[0]} is inactive: it gets no context sections")
    active_ids = [b["id"] for b in active]

    built: list[Section] = []
    readable: set[str] = {"overview", "location"}  # types whose source was read (retire only those)
    for business in active:
        built.append(Section(business["id"], "overview", overview_content(business)))
        location = location_content(business["contact_info"])
        if location is None:
            result.sections["location"].skipped += 1
        else:
            built.append(Section(business["id"], "location", location))

    # The sections built from another table's rows: none for a business without rows, and none at all (and
    # none retired) when the table cannot be read.
    from_rows: tuple[tuple[str, dict[uuid.UUID, Any] | None, Callable[[Any], Any]], ...] = (
        (
            "menu",
            read_menus(conn, result.warnings, active_ids, columns["menu_items"], columns["menu_categories"]),
            menu_content,
        ),
        ("hours", read_hours(conn, result.warnings, active_ids, columns["working_hours"]), hours_content),
    )
    for section_type, rows_of, render in from_rows:
        if rows_of is None:
            result.sections[section_type].skipped += len(active)
            continue
        readable.add(section_type)
        for business in active:
            rows = rows_of.get(business["id"])
            if rows:
                built.append(Section(business["id"], section_type, render(rows)))
            else:
                result.sections[section_type].skipped += 1

    _write_sections(conn, result, built, ids, readable, refresh=refresh, dry_run=dry_run)


# --- writing ---------------------------------------------------------------------------------------------


def _write_sections(
    conn: psycopg.Connection,
    result: SeedResult,
    built: list[Section],
    ids: list[uuid.UUID] | None,
    readable: set[str],
    *,
    refresh: bool,
    dry_run: bool,
) -> None:
    from psycopg import sql
    from psycopg.types.json import Jsonb

    existing: dict[tuple[uuid.UUID, str, str], str | None] = {}
    rows = conn.execute(
        """
        SELECT business_id, section_type, section_name, source_hash
        FROM business_context_sections
        WHERE section_type = ANY(%s) AND (%s::uuid[] IS NULL OR business_id = ANY(%s::uuid[]))
        """,
        (list(SECTION_TYPES), ids, ids),
    ).fetchall()
    for business_id, section_type, section_name, source_hash in rows:
        existing[(business_id, section_type, section_name)] = source_hash

    to_create: list[Section] = []
    to_update: list[Section] = []
    for section in built:
        key = (section.business_id, section.section_type, section.name)
        counts = result.sections[section.section_type]
        if key not in existing:
            to_create.append(section)
        elif existing[key] == section.source_hash:
            counts.unchanged += 1
        elif refresh:
            to_update.append(section)
        else:
            counts.stale += 1
    built_keys = {(s.business_id, s.section_type, s.name) for s in built}
    # Only sections memcli built (source_hash set) and whose source table could be read are retired: a
    # hand-written section, or hours while working_hours is unreadable, are left as they are.
    to_retire = [
        key
        for key, source_hash in existing.items()
        if refresh and key not in built_keys and key[1] in readable and source_hash not in (None, RETIRED)
    ]
    stale = sum(c.stale for c in result.sections.values())
    if stale:
        result.warnings.append(
            f"{stale} sections differ from their source rows: run with --refresh to update them"
        )

    if dry_run:
        for section in to_create:
            result.sections[section.section_type].created += 1
        for section in to_update:
            result.sections[section.section_type].updated += 1
        for key in to_retire:
            result.sections[key[1]].retired += 1
        return

    def records(sections: list[Section]) -> Jsonb:
        return Jsonb(
            [
                {
                    "business_id": str(s.business_id),
                    "section_type": s.section_type,
                    "section_name": s.name,
                    "section_content": s.content,
                    "section_order": SECTION_ORDER[s.section_type],
                    "source_hash": s.source_hash,
                }
                for s in sections
            ]
        )

    if to_create:
        # ON CONFLICT DO NOTHING: a concurrent run that created the section first wins; it is then counted
        # as unchanged here.
        created = conn.execute(
            sql.SQL(
                """
            INSERT INTO business_context_sections
                (business_id, section_type, section_name, section_content, section_order, source_hash)
            SELECT r.business_id, r.section_type, r.section_name, r.section_content, r.section_order,
                   r.source_hash
            FROM {sections}
            ON CONFLICT (business_id, section_type, section_name) DO NOTHING
            RETURNING section_type
            """
            ).format(sections=sql.SQL(_SECTIONS)),
            (records(to_create),),
        ).fetchall()
        _tally(result, "created", to_create, created)
    if to_update:
        # The hash guard makes the UPDATE touch (and stamp last_updated on) changed rows only, even when a
        # concurrent refresh got there first. A retired section that is built again comes back active;
        # one an operator deactivated stays inactive.
        updated = conn.execute(
            sql.SQL(
                """
            UPDATE business_context_sections t
            SET section_content = r.section_content,
                section_order = r.section_order,
                source_hash = r.source_hash,
                is_active = CASE WHEN t.source_hash = %s THEN true ELSE t.is_active END,
                last_updated = now()
            FROM {sections}
            WHERE t.business_id = r.business_id AND t.section_type = r.section_type
              AND t.section_name = r.section_name AND t.source_hash IS DISTINCT FROM r.source_hash
            RETURNING t.section_type
            """
            ).format(sections=sql.SQL(_SECTIONS)),
            (RETIRED, records(to_update)),
        ).fetchall()
        _tally(result, "updated", to_update, updated)
    if to_retire:
        retired = conn.execute(
            """
            UPDATE business_context_sections t
            SET is_active = false, source_hash = %s, last_updated = now()
            FROM unnest(%s::uuid[], %s::text[], %s::text[]) AS r(business_id, section_type, section_name)
            WHERE t.business_id = r.business_id AND t.section_type = r.section_type
              AND t.section_name = r.section_name AND t.source_hash IS DISTINCT FROM %s
            RETURNING t.section_type
            """,
            (
                RETIRED,
                [k[0] for k in to_retire],
                [k[1] for k in to_retire],
                [k[2] for k in to_retire],
                RETIRED,
            ),
        ).fetchall()
        _tally(result, "retired", [], retired)


def _tally(result: SeedResult, outcome: str, attempted: list[Section], written: list[tuple[str]]) -> None:
    """Count the sections written under ``outcome``; those attempted but written first by a concurrent
    run count as unchanged."""
    for (section_type,) in written:
        counts = result.sections[section_type]
        setattr(counts, outcome, getattr(counts, outcome) + 1)
    for section_type in _lost(attempted, written):
        result.sections[section_type].unchanged += 1


def _lost(attempted: list[Section], done: list[tuple[str]]) -> list[str]:
    """Section types attempted but not written (a concurrent run wrote them first)."""
    remaining: dict[str, int] = defaultdict(int)
    for section in attempted:
        remaining[section.section_type] += 1
    for (section_type,) in done:
        remaining[section_type] -= 1
    return [t for t, n in remaining.items() for _ in range(n)]
