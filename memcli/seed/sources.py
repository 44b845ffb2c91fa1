"""Reading the application's business tables: one query per table, built from the columns that exist.

An application's tables may carry extra columns or lack optional ones; an absent table or column is
reported as a warning and its sections are skipped.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from memcli.seed.introspect import first_present, table_columns
from memcli.seed.sections import ADDRESS_KEYS, as_object, weekday_index

if TYPE_CHECKING:
    import psycopg

# The application's tables the sections are built from.
SOURCE_TABLES = ("businesses", "menu_items", "menu_categories", "working_hours")


def source_columns(conn: psycopg.Connection) -> dict[str, dict[str, str] | None]:
    """The columns of each of SOURCE_TABLES (None for a table that does not exist)."""
    return {table: table_columns(conn, table) for table in SOURCE_TABLES}


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


def read_businesses(
    conn: psycopg.Connection,
    warnings: list[str],
    ids: list[uuid.UUID] | None,
    columns: dict[str, str] | None,
) -> list[dict[str, Any]] | None:
    from psycopg import sql
    from psycopg.rows import dict_row

    if columns is None:
        warnings.append("table businesses does not exist: no business context to seed")
        return None
    missing = [c for c in ("id", "name") if c not in columns]
    if missing:
        warnings.append(f"table businesses has no {', '.join(missing)} column: no business context to seed")
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
        contact = as_object(row["contact_info"])
        if row["address"] and not any(contact.get(k) for k in ADDRESS_KEYS):
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


def read_menus(
    conn: psycopg.Connection,
    warnings: list[str],
    business_ids: list[uuid.UUID],
    items: dict[str, str] | None,
    categories: dict[str, str] | None,
) -> dict[uuid.UUID, list[dict[str, Any]]] | None:
    """Available items of active categories for the given businesses, in menu order: one query."""
    from psycopg import sql
    from psycopg.rows import dict_row

    if items is None:
        warnings.append("table menu_items does not exist: menu sections skipped")
        return None
    missing = [c for c in ("business_id", "name") if c not in items]
    if missing:
        warnings.append(f"table menu_items has no {', '.join(missing)} column: menu sections skipped")
        return None
    if categories is None:
        warnings.append("table menu_categories does not exist: menu items listed without categories")
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


def read_hours(
    conn: psycopg.Connection,
    warnings: list[str],
    business_ids: list[uuid.UUID],
    columns: dict[str, str] | None,
) -> dict[uuid.UUID, list[tuple[int, Any, Any, bool]]] | None:
    """(weekday 0=Monday, open, close, closed) rows per business: one query."""
    from psycopg import sql

    if columns is None:
        warnings.append("table working_hours does not exist: hours sections skipped")
        return None
    day = first_present(columns, "day_of_week", "weekday", "day")
    if "business_id" not in columns or day is None:
        warnings.append(
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
        warnings.append(f"working_hours: {unknown} rows with an unrecognised day_of_week were ignored")
    return hours
