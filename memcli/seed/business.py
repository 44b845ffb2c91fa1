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

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcli.errors import ConfigError
from memcli.seed.introspect import first_present, table_columns

if TYPE_CHECKING:
    import psycopg

SECTION_TYPES = ("overview", "menu", "hours", "location")
# The application's tables the sections are built from.
SOURCE_TABLES = ("businesses", "menu_items", "menu_categories", "working_hours")
SECTION_NAMES = {"overview": "Overview", "menu": "Menu", "hours": "Opening hours", "location": "Location"}
SECTION_ORDER = {"overview": 0, "menu": 1, "hours": 2, "location": 3}
# Marks a section memcli built whose source disappeared; a later refresh that builds it again reactivates it.
RETIRED = "retired"

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_NAMES = {name[:3].lower(): index for index, name in enumerate(WEEKDAYS)}

# Keys of businesses.contact_info that describe where the business is (location section) rather than how to
# reach it (overview contact).
LOCATION_KEYS = (
    "address",
    "address_line1",
    "address_line2",
    "street",
    "neighborhood",
    "city",
    "state",
    "region",
    "postal_code",
    "postcode",
    "zip",
    "country",
    "latitude",
    "longitude",
    "lat",
    "lng",
    "maps_url",
    "google_maps_url",
    "directions",
    "parking",
)
_ADDRESS_KEYS = ("address", "address_line1", "street")


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


@dataclass
class _Section:
    business_id: uuid.UUID
    section_type: str
    content: dict[str, Any]

    @property
    def name(self) -> str:
        return SECTION_NAMES[self.section_type]

    @property
    def source_hash(self) -> str:
        return content_hash(self.section_type, self.content)


def content_hash(section_type: str, content: dict[str, Any]) -> str:
    """Stable across runs and machines: canonical JSON (sorted keys, no spaces) through SHA-256."""
    canonical = json.dumps({"type": section_type, "content": content}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
        _seed_sections(conn, result, ids, refresh=refresh, dry_run=dry_run, columns=source_columns(conn))
    except BaseException:
        conn.rollback()
        raise
    if dry_run:
        conn.rollback()
    elif commit:
        conn.commit()
    result._total()
    return result


def ensure_default_settings(conn: psycopg.Connection) -> list[str]:
    """Insert the default settings whose key is missing; never overwrite a value. Returns the keys added.

    A default of None (the embedding model, recorded at the first write of an embedding) is left absent;
    a missing embedding.dimension is restored from the vector column, not from the 384 default.
    """
    from psycopg.types.json import Jsonb

    from memcli.embeddings import stored_dimension
    from memcli.settings import DEFAULTS

    defaults = {key: value for key, (value, _) in DEFAULTS.items()}
    defaults["embedding.dimension"] = stored_dimension(conn) or defaults["embedding.dimension"]
    rows = [
        {"key": key, "value": Jsonb(defaults[key]), "description": description}
        for key, (_, description) in DEFAULTS.items()
        if defaults[key] is not None
    ]
    added = conn.execute(
        """
        INSERT INTO memory_settings (key, value, description)
        SELECT s.key, s.value, s.description
        FROM unnest(%s::text[], %s::jsonb[], %s::text[]) AS s(key, value, description)
        ON CONFLICT (key) DO NOTHING
        RETURNING key
        """,
        ([r["key"] for r in rows], [r["value"] for r in rows], [r["description"] for r in rows]),
    ).fetchall()
    return sorted(key for (key,) in added)


def _parse_uuid(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ConfigError(f"business id {value!r} is not a UUID", hint="pass a businesses.id") from None


# --- reading the source tables -------------------------------------------------------------------------


def source_columns(conn: psycopg.Connection) -> dict[str, dict[str, str] | None]:
    """The columns of each of SOURCE_TABLES (None for a table that does not exist)."""
    return {table: table_columns(conn, table) for table in SOURCE_TABLES}


def _seed_sections(
    conn: psycopg.Connection,
    result: SeedResult,
    ids: list[uuid.UUID] | None,
    *,
    refresh: bool,
    dry_run: bool,
    columns: Mapping[str, dict[str, str] | None],
) -> None:
    """``columns``: ``source_columns(conn)``, read once by the caller."""
    businesses = _read_businesses(conn, result, ids, columns["businesses"])
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

    built: list[_Section] = []
    readable: set[str] = {"overview", "location"}  # types whose source was read (retire only those)
    for business in active:
        built.append(_Section(business["id"], "overview", overview_content(business)))
        location = location_content(business["contact_info"])
        if location is None:
            result.sections["location"].skipped += 1
        else:
            built.append(_Section(business["id"], "location", location))

    menus = _read_menus(conn, result, active_ids, columns["menu_items"], columns["menu_categories"])
    if menus is not None:
        readable.add("menu")
        for business in active:
            items = menus.get(business["id"])
            if items:
                built.append(_Section(business["id"], "menu", menu_content(items)))
            else:
                result.sections["menu"].skipped += 1
    else:
        result.sections["menu"].skipped += len(active)

    hours = _read_hours(conn, result, active_ids, columns["working_hours"])
    if hours is not None:
        readable.add("hours")
        for business in active:
            rows = hours.get(business["id"])
            if rows:
                built.append(_Section(business["id"], "hours", hours_content(rows)))
            else:
                result.sections["hours"].skipped += 1
    else:
        result.sections["hours"].skipped += len(active)

    _write_sections(conn, result, built, ids, readable, refresh=refresh, dry_run=dry_run)


def _select_list(alias: str, columns: dict[str, str], wanted: dict[str, str | None]) -> Any:
    """``alias.column AS name`` for each wanted name whose column exists, NULL for the others."""
    from psycopg import sql

    parts = []
    for name, column in wanted.items():
        if column is not None and column in columns:
            parts.append(
                sql.SQL("{}.{} AS {}").format(
                    sql.Identifier(alias), sql.Identifier(column), sql.Identifier(name)
                )
            )
        else:
            parts.append(sql.SQL("NULL AS {}").format(sql.Identifier(name)))
    return sql.SQL(", ").join(parts)


def _read_businesses(
    conn: psycopg.Connection,
    result: SeedResult,
    ids: list[uuid.UUID] | None,
    columns: dict[str, str] | None,
) -> list[dict[str, Any]] | None:
    from psycopg import sql
    from psycopg.rows import dict_row

    if columns is None:
        result.warnings.append("table businesses does not exist: no business context to seed")
        return None
    missing = [c for c in ("id", "name") if c not in columns]
    if missing:
        result.warnings.append(
            f"table businesses has no {', '.join(missing)} column: no business context to seed"
        )
        return None
    wanted = {
        "id": "id",
        "name": "name",
        "category": "category",
        "description": "description",
        "contact_info": "contact_info",
        "email": "email",
        "phone": "phone",
        "website": first_present(columns, "website_url", "website"),
        "address": "address",
        "is_active": "is_active",
    }
    query = sql.SQL("SELECT {} FROM businesses b").format(_select_list("b", columns, wanted))
    params: list[Any] = []
    if ids is not None:
        query += sql.SQL(" WHERE b.id = ANY(%s)")
        params.append(ids)
    query += sql.SQL(" ORDER BY b.id")
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(query, params).fetchall()
    businesses = []
    for row in rows:
        contact = _as_object(row["contact_info"])
        if row["address"] and not any(contact.get(k) for k in _ADDRESS_KEYS):
            contact["address"] = row["address"]
        businesses.append(
            {
                "id": row["id"],
                "name": row["name"],
                "category": row["category"],
                "description": row["description"],
                "contact_info": contact,
                "columns_contact": {"email": row["email"], "phone": row["phone"], "website": row["website"]},
                # NULL counts as active, as the column's default (true) says.
                "active": row["is_active"] is not False,
            }
        )
    return businesses


def _read_menus(
    conn: psycopg.Connection,
    result: SeedResult,
    business_ids: list[uuid.UUID],
    items: dict[str, str] | None,
    categories: dict[str, str] | None,
) -> dict[uuid.UUID, list[dict[str, Any]]] | None:
    """Available items of active categories for the given businesses, in menu order: one query."""
    from psycopg import sql
    from psycopg.rows import dict_row

    if items is None:
        result.warnings.append("table menu_items does not exist: menu sections skipped")
        return None
    missing = [c for c in ("business_id", "name") if c not in items]
    if missing:
        result.warnings.append(f"table menu_items has no {', '.join(missing)} column: menu sections skipped")
        return None
    if categories is None:
        result.warnings.append("table menu_categories does not exist: menu items listed without categories")
    join = categories is not None and "category_id" in items and {"id", "name"} <= set(categories)

    available = first_present(items, "is_available", "available")
    selected = _select_list(
        "i",
        items,
        {
            "business_id": "business_id",
            "item_id": "id",
            "name": "name",
            "description": "description",
            "price": "price",
            "sort_order": "sort_order",
        },
    )
    category_columns = {
        "category": "name",
        "category_description": "description",
        "category_order": "sort_order",
    }
    if join:
        assert categories is not None
        selected = sql.SQL(", ").join([selected, _select_list("c", categories, category_columns)])
        source = sql.SQL("menu_items i LEFT JOIN menu_categories c ON c.id = i.category_id")
    else:
        selected = sql.SQL(", ").join([selected, _select_list("c", {}, category_columns)])
        source = sql.SQL("menu_items i")
    conditions = [sql.SQL("i.business_id = ANY(%s)")]
    if available:
        # NULL counts as available, as the column's default (true) says.
        conditions.append(sql.SQL("i.{} IS NOT FALSE").format(sql.Identifier(available)))
    if join and categories is not None and "is_active" in categories:
        # An item whose category the app hides is not on the menu either.
        conditions.append(sql.SQL("c.is_active IS NOT FALSE"))
    query = sql.SQL("SELECT {} FROM {} WHERE {}").format(selected, source, sql.SQL(" AND ").join(conditions))
    menus: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(query, [business_ids]):
            menus[row["business_id"]].append(row)
    return menus


def _read_hours(
    conn: psycopg.Connection,
    result: SeedResult,
    business_ids: list[uuid.UUID],
    columns: dict[str, str] | None,
) -> dict[uuid.UUID, list[tuple[int, Any, Any, bool]]] | None:
    """(weekday 0=Monday, open, close, closed) rows per business: one query."""
    from psycopg import sql

    if columns is None:
        result.warnings.append("table working_hours does not exist: hours sections skipped")
        return None
    day = first_present(columns, "day_of_week", "weekday", "day")
    if "business_id" not in columns or day is None:
        result.warnings.append(
            "table working_hours has no business_id or day_of_week column: hours sections skipped"
        )
        return None
    query = sql.SQL("SELECT {} FROM working_hours w WHERE w.business_id = ANY(%s)").format(
        _select_list(
            "w",
            columns,
            {
                "business_id": "business_id",
                "day": day,
                "open_time": first_present(columns, "open_time", "opens_at", "open"),
                "close_time": first_present(columns, "close_time", "closes_at", "close"),
                "is_closed": first_present(columns, "is_closed", "closed"),
            },
        )
    )
    hours: dict[uuid.UUID, list[tuple[int, Any, Any, bool]]] = defaultdict(list)
    unknown = 0
    for business_id, day_value, open_time, close_time, is_closed in conn.execute(query, [business_ids]):
        weekday = weekday_index(day_value)
        if weekday is None:
            unknown += 1
            continue
        hours[business_id].append((weekday, open_time, close_time, bool(is_closed)))
    if unknown:
        result.warnings.append(f"working_hours: {unknown} rows with an unrecognised day_of_week were ignored")
    return hours


# --- building the contents (pure functions) -------------------------------------------------------------


def _as_object(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _plain(value: Any) -> Any:
    """JSON-friendly and stable: Decimal prices become numbers, times text, empty values None."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not _empty(v)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ({}, [])


def overview_content(business: dict[str, Any]) -> dict[str, Any]:
    contact = {k: v for k, v in business["contact_info"].items() if k not in LOCATION_KEYS and not _empty(v)}
    for key, value in business.get("columns_contact", {}).items():
        if not _empty(value) and _empty(contact.get(key)):
            contact[key] = value
    content: dict[str, Any] = {
        "name": business["name"],
        "category": business["category"],
        "description": business["description"],
        "contact": _plain(contact),
    }
    content = {k: _plain(v) for k, v in content.items() if not _empty(v)}
    # A blank name is dropped with the other empty values: the category then heads the text alone.
    name, category = content.get("name"), content.get("category")
    title = f"{name} ({category})" if name and category else name or category
    parts = [title] if title else []
    if content.get("description"):
        parts.append(content["description"])
    for key in sorted(content.get("contact", {})):
        value = content["contact"][key]
        if isinstance(value, str | int | float):
            parts.append(f"{key.replace('_', ' ')}: {value}")
    content["text"] = ". ".join(p.rstrip(".") for p in parts) + "."
    return content


def location_content(contact_info: dict[str, Any]) -> dict[str, Any] | None:
    """The location section, or None when the contact info holds no address."""
    location: dict[str, Any] = {}
    for key in LOCATION_KEYS:
        value = contact_info.get(key)
        if isinstance(value, dict):  # {"address": {"street": ..., "city": ...}}
            for inner_key, inner in value.items():
                if not _empty(inner):
                    location.setdefault(inner_key, inner)
        elif not _empty(value):
            location[key] = value
    street = next(
        (location[k] for k in (*_ADDRESS_KEYS, "street", "line1") if not _empty(location.get(k))), None
    )
    if street is None:
        return None
    location = _plain(location)
    lines = [
        str(location[k])
        for k in ("address", "address_line1", "street", "line1", "address_line2", "neighborhood")
        if k in location
    ]
    town = " ".join(
        str(location[k])
        for k in ("city", "state", "region", "postal_code", "postcode", "zip")
        if k in location
    )
    text = ", ".join(dict.fromkeys([*lines, town, str(location.get("country", ""))]))
    location["text"] = ", ".join(part for part in text.split(", ") if part)
    return location


def _price_text(price: Any) -> str:
    if isinstance(price, int | float):
        return f"{price:.2f}"
    return str(price)


def menu_content(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Items grouped by category; categories and items in the app's sort order, then by name."""

    def order(value: Any) -> tuple[int, Any]:
        return (1, 0) if value is None else (0, value)

    rows = sorted(
        items,
        key=lambda r: (
            order(r.get("category_order")),
            r.get("category") is None,
            r.get("category") or "",
            order(r.get("sort_order")),
            r["name"],
            str(r.get("item_id")),
        ),
    )
    categories: dict[str, dict[str, Any]] = {}
    for row in rows:
        category_name = row.get("category") or "Other"
        category = categories.get(category_name)
        if category is None:
            category = {"name": category_name, "items": []}
            if not _empty(row.get("category_description")):
                category["description"] = _plain(row["category_description"])
            categories[category_name] = category
        item = {"name": _plain(row["name"])}
        if not _empty(row.get("description")):
            item["description"] = _plain(row["description"])
        if row.get("price") is not None:
            item["price"] = _plain(row["price"])
        category["items"].append(item)
    text = "; ".join(
        f"{c['name']}: "
        + ", ".join(i["name"] + (f" ({_price_text(i['price'])})" if "price" in i else "") for i in c["items"])
        for c in categories.values()
    )
    return {
        "categories": list(categories.values()),
        "item_count": sum(len(c["items"]) for c in categories.values()),
        "text": text,
    }


def weekday_index(value: Any) -> int | None:
    """0=Monday..6=Sunday from an int (7 also means Sunday) or a day name ("Mon", "monday")."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            value = int(text)
        else:
            return _DAY_NAMES.get(text[:3])
    if isinstance(value, int | decimal.Decimal | float) and int(value) == value:
        number = int(value)
        if 0 <= number <= 6:
            return number
        if number == 7:
            return 6
    return None


def _time_text(value: Any) -> str | None:
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return text[:5] if len(text) == 8 and text[2] == ":" and text[5] == ":" else text
    return None


def hours_content(rows: Sequence[tuple[int, Any, Any, bool]]) -> dict[str, Any]:
    """All seven days. A day whose rows give no opening period (is_closed, or no times) is closed; a day
    with no row at all is "not listed" (closed: null): the app may simply not have entered it, and an
    assistant should not tell a guest it is closed."""
    periods: dict[int, set[tuple[str, str]]] = defaultdict(set)
    listed: set[int] = set()
    for weekday, open_time, close_time, closed in rows:
        listed.add(weekday)
        opens, closes = _time_text(open_time), _time_text(close_time)
        if not closed and opens and closes:
            periods[weekday].add((opens, closes))
    days = []
    for index, name in enumerate(WEEKDAYS):
        day_periods = sorted(periods.get(index, ()))
        days.append(
            {
                "day": name,
                "day_of_week": index,
                "closed": (not day_periods) if index in listed else None,
                "periods": [{"open": o, "close": c} for o, c in day_periods],
            }
        )

    def describe(day: dict[str, Any]) -> str:
        if day["closed"] is None:
            return "not listed"
        if day["closed"]:
            return "closed"
        return ", ".join(f"{p['open']}-{p['close']}" for p in day["periods"])

    return {
        "days": days,
        "closed_days": [d["day"] for d in days if d["closed"]],
        "text": "; ".join(f"{d['day']}: {describe(d)}" for d in days),
    }


# --- writing ---------------------------------------------------------------------------------------------


def _write_sections(
    conn: psycopg.Connection,
    result: SeedResult,
    built: list[_Section],
    ids: list[uuid.UUID] | None,
    readable: set[str],
    *,
    refresh: bool,
    dry_run: bool,
) -> None:
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

    to_create: list[_Section] = []
    to_update: list[_Section] = []
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

    def records(sections: list[_Section]) -> Jsonb:
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
            """
            INSERT INTO business_context_sections
                (business_id, section_type, section_name, section_content, section_order, source_hash)
            SELECT r.business_id, r.section_type, r.section_name, r.section_content, r.section_order,
                   r.source_hash
            FROM jsonb_to_recordset(%s::jsonb) AS r(business_id uuid, section_type text, section_name text,
                                                  section_content jsonb, section_order int, source_hash text)
            ON CONFLICT (business_id, section_type, section_name) DO NOTHING
            RETURNING section_type
            """,
            (records(to_create),),
        ).fetchall()
        for (section_type,) in created:
            result.sections[section_type].created += 1
        for section_type in _lost(to_create, created):
            result.sections[section_type].unchanged += 1
    if to_update:
        # The hash guard makes the UPDATE touch (and stamp last_updated on) changed rows only, even when a
        # concurrent refresh got there first. A retired section that is built again comes back active;
        # one an operator deactivated stays inactive.
        updated = conn.execute(
            """
            UPDATE business_context_sections t
            SET section_content = r.section_content,
                section_order = r.section_order,
                source_hash = r.source_hash,
                is_active = CASE WHEN t.source_hash = %s THEN true ELSE t.is_active END,
                last_updated = now()
            FROM jsonb_to_recordset(%s::jsonb) AS r(business_id uuid, section_type text, section_name text,
                                                  section_content jsonb, section_order int, source_hash text)
            WHERE t.business_id = r.business_id AND t.section_type = r.section_type
              AND t.section_name = r.section_name AND t.source_hash IS DISTINCT FROM r.source_hash
            RETURNING t.section_type
            """,
            (RETIRED, records(to_update)),
        ).fetchall()
        for (section_type,) in updated:
            result.sections[section_type].updated += 1
        for section_type in _lost(to_update, updated):
            result.sections[section_type].unchanged += 1
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
        for (section_type,) in retired:
            result.sections[section_type].retired += 1


def _lost(attempted: list[_Section], done: list[tuple[str]]) -> list[str]:
    """Section types attempted but not written (a concurrent run wrote them first)."""
    remaining: dict[str, int] = defaultdict(int)
    for section in attempted:
        remaining[section.section_type] += 1
    for (section_type,) in done:
        remaining[section_type] -= 1
    return [t for t, n in remaining.items() for _ in range(n)]
