"""memcli seed: business context sections from the application's tables, and default settings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from memcli.seed import seed_business_context
from memcli.seed.sections import content_hash, hours_content, location_content, weekday_index

ROMA = "11111111-1111-1111-1111-000000000001"  # active, address, closed on Monday
LEAF = "11111111-1111-1111-1111-000000000002"  # active, address, closed at the weekend
HARBOUR = "11111111-1111-1111-1111-000000000003"  # inactive, no address
TYPES = {"overview", "menu", "hours", "location"}


def sections(dsn: str) -> dict[tuple[str, str], dict[str, Any]]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT business_id::text AS business, section_type, section_name, section_content, "
            "section_order, is_active, last_updated, source_hash FROM business_context_sections"
        ).fetchall()
    return {(row["business"], row["section_type"]): row for row in rows}


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def seed_json(cli, dsn: str, *args: str) -> dict[str, Any]:
    result = cli("seed", "--json", *args, dsn=dsn)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_sections_hold_the_app_data(cli, migrated_app_db):
    report = seed_json(cli, migrated_app_db)

    assert report["totals"]["created"] == 8
    assert report["businesses"] == 2 and report["inactive_businesses"] == 1
    found = sections(migrated_app_db)
    assert set(found) == {(b, t) for b in (ROMA, LEAF) for t in TYPES}  # the inactive business gets none

    menu = found[(ROMA, "menu")]["section_content"]
    assert [(c["name"], [(i["name"], i["price"]) for i in c["items"]]) for c in menu["categories"]] == [
        ("Pizza", [("Margherita", 9.5), ("Diavola", 11)]),
        ("Pasta", [("Spaghetti Carbonara", 12.5)]),
    ]
    assert "Truffle Risotto" not in json.dumps(menu)  # unavailable today

    hours = found[(ROMA, "hours")]["section_content"]
    assert hours["days"][0] == {"day": "Monday", "day_of_week": 0, "closed": True, "periods": []}
    assert hours["days"][4]["periods"] == [{"open": "12:00", "close": "23:00"}]
    assert hours["closed_days"] == ["Monday"]
    assert found[(LEAF, "hours")]["section_content"]["closed_days"] == ["Saturday", "Sunday"]

    location = found[(ROMA, "location")]["section_content"]
    assert location["address"] == "Via Appia 12" and location["city"] == "Berlin"
    assert location["text"] == "Via Appia 12, Berlin 10115, DE"

    overview = found[(ROMA, "overview")]["section_content"]
    assert overview["name"] == "Trattoria Roma" and overview["category"] == "restaurant"
    assert overview["description"].startswith("Family-run Italian")
    assert overview["contact"]["phone"] == "+49 30 1234567"
    assert overview["contact"]["website"] == "https://trattoria-roma.example"
    assert "address" not in overview["contact"]
    assert [found[(ROMA, t)]["section_order"] for t in ("overview", "menu", "hours", "location")] == [
        0,
        1,
        2,
        3,
    ]

    with psycopg.connect(migrated_app_db) as conn:
        view = conn.execute("SELECT count(*) FROM active_business_context").fetchone()[0]
    assert view == 8


def test_second_run_changes_nothing(migrated_app_db):
    with psycopg.connect(migrated_app_db) as conn:
        first = seed_business_context(conn)
        before = sections(migrated_app_db)
        second = seed_business_context(conn)
        refreshed = seed_business_context(conn, refresh=True)

    assert first.totals.created == 8
    for result in (second, refreshed):
        assert (result.totals.created, result.totals.updated, result.totals.unchanged) == (0, 0, 8)
        assert result.totals.stale == result.totals.retired == 0
        assert result.settings_added == []
    assert sections(migrated_app_db) == before  # contents and last_updated alike


def test_refresh_rewrites_only_the_changed_menu(cli, migrated_app_db):
    seed_json(cli, migrated_app_db)
    before = sections(migrated_app_db)
    execute(migrated_app_db, "UPDATE menu_items SET price = 12.00 WHERE name = 'Diavola'")

    plain = cli("seed", dsn=migrated_app_db)
    assert plain.exit_code == 0
    assert "--refresh" in plain.stderr  # the stale section is reported, not rewritten
    assert sections(migrated_app_db) == before

    report = seed_json(cli, migrated_app_db, "--refresh")
    assert report["sections"]["menu"] == {
        "created": 0,
        "updated": 1,
        "unchanged": 1,
        "stale": 0,
        "retired": 0,
        "skipped": 0,
    }
    assert report["totals"]["updated"] == 1 and report["totals"]["unchanged"] == 7
    after = sections(migrated_app_db)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {(ROMA, "menu")}
    assert after[(ROMA, "menu")]["last_updated"] > before[(ROMA, "menu")]["last_updated"]
    pizza = after[(ROMA, "menu")]["section_content"]["categories"][0]
    assert pizza["items"][1] == {"name": "Diavola", "description": "Spicy salami, chili", "price": 12}


def test_refresh_deactivates_and_restores_a_business_sections(migrated_app_db):
    with psycopg.connect(migrated_app_db) as conn:
        seed_business_context(conn)
        execute(migrated_app_db, f"UPDATE businesses SET is_active = false WHERE id = '{LEAF}'")
        retired = seed_business_context(conn, refresh=True)
        active = {k for k, row in sections(migrated_app_db).items() if row["is_active"]}
        execute(migrated_app_db, f"UPDATE businesses SET is_active = true WHERE id = '{LEAF}'")
        restored = seed_business_context(conn, refresh=True)

    assert retired.totals.retired == 4
    assert active == {(ROMA, t) for t in TYPES}
    assert restored.totals.updated == 4
    assert all(row["is_active"] for row in sections(migrated_app_db).values())


def test_one_business(cli, migrated_app_db):
    report = seed_json(cli, migrated_app_db, "--business", LEAF)
    assert report["totals"]["created"] == 4
    assert {key[0] for key in sections(migrated_app_db)} == {LEAF}

    inactive = seed_json(cli, migrated_app_db, "--business", HARBOUR)
    assert inactive["totals"]["created"] == 0
    assert any("inactive" in w for w in inactive["warnings"])

    for bad in ("not-a-uuid", "99999999-9999-9999-9999-999999999999"):
        result = cli("seed", "--business", bad, dsn=migrated_app_db)
        assert result.exit_code == 2
        assert result.stderr.startswith("Error:")


def test_dry_run_writes_nothing(cli, migrated_app_db):
    report = seed_json(cli, migrated_app_db, "--dry-run")
    assert report["dry_run"] is True and report["totals"]["created"] == 8
    assert sections(migrated_app_db) == {}


def test_missing_source_table_is_a_warning(cli, migrated_app_db):
    execute(migrated_app_db, "DROP TABLE working_hours")

    result = cli("seed", dsn=migrated_app_db)
    assert result.exit_code == 0
    assert "warning: table working_hours does not exist" in result.stderr

    found = sections(migrated_app_db)
    assert {t for _, t in found} == {"overview", "menu", "location"}
    report = seed_json(cli, migrated_app_db)
    assert report["sections"]["hours"]["skipped"] == 2
    assert report["warnings"] == ["table working_hours does not exist: hours sections skipped"]


def test_app_tables_lacking_optional_columns(migrated_app_db):
    execute(
        migrated_app_db,
        "ALTER TABLE menu_items DROP COLUMN description, DROP COLUMN sort_order",
        "ALTER TABLE menu_categories DROP COLUMN is_active, DROP COLUMN sort_order, DROP COLUMN description",
        "ALTER TABLE working_hours DROP COLUMN is_closed",
        "ALTER TABLE businesses DROP COLUMN description, DROP COLUMN website_url, DROP COLUMN phone",
    )
    with psycopg.connect(migrated_app_db) as conn:
        result = seed_business_context(conn)

    assert result.totals.created == 8 and result.warnings == []
    found = sections(migrated_app_db)
    menu = found[(ROMA, "menu")]["section_content"]
    names = [(c["name"], [i["name"] for i in c["items"]]) for c in menu["categories"]]
    assert names == [("Pasta", ["Spaghetti Carbonara"]), ("Pizza", ["Diavola", "Margherita"])]  # by name
    assert found[(ROMA, "hours")]["section_content"]["closed_days"] == ["Monday"]  # no times: closed
    assert "description" not in found[(ROMA, "overview")]["section_content"]


def test_without_categories_table_items_are_listed_plainly(migrated_app_db):
    execute(migrated_app_db, "DROP TABLE menu_categories CASCADE")
    with psycopg.connect(migrated_app_db) as conn:
        result = seed_business_context(conn)
    assert result.totals.created == 8
    assert any("menu_categories" in w for w in result.warnings)
    menu = sections(migrated_app_db)[(LEAF, "menu")]["section_content"]
    assert menu["categories"] == [
        {
            "name": "Other",
            "items": [
                {"name": "Buddha Bowl", "description": "Quinoa, chickpeas, tahini", "price": 10.9},
                {"name": "Vegan Chocolate Cake", "price": 4.5},
            ],
        }
    ]


def test_default_settings_added_never_overwritten(migrated_db):
    execute(
        migrated_db,
        "DELETE FROM memory_settings WHERE key = 'cleanup.batch_size'",
        "UPDATE memory_settings SET value = '0.5' WHERE key = 'search.min_similarity'",
    )
    with psycopg.connect(migrated_db) as conn:
        result = seed_business_context(conn)
        values = dict(conn.execute("SELECT key, value FROM memory_settings").fetchall())
    assert result.settings_added == ["cleanup.batch_size"]
    assert values["cleanup.batch_size"] == 5000 and values["search.min_similarity"] == 0.5
    assert result.totals.created == 0  # memcli created the core tables empty


def test_missing_dimension_setting_comes_from_the_vector_column(migrated_db):
    execute(
        migrated_db,
        "ALTER TABLE semantic_memory ALTER COLUMN embedding_vector TYPE vector(8)",
        "DELETE FROM memory_settings WHERE key = 'embedding.dimension'",
    )
    with psycopg.connect(migrated_db) as conn:
        result = seed_business_context(conn)
        query = "SELECT value FROM memory_settings WHERE key = 'embedding.dimension'"
        value = conn.execute(query).fetchone()[0]
    assert result.settings_added == ["embedding.dimension"] and value == 8


def test_not_migrated_exits_4(cli, app_db):
    for args in (("seed",), ("seed", "--demo")):
        result = cli(*args, dsn=app_db)
        assert result.exit_code == 4
        assert "memcli migrate" in result.stderr


def test_demo_options_need_demo(cli, migrated_db):
    result = cli("seed", "--sessions", "3", dsn=migrated_db)
    assert result.exit_code == 2 and "--demo" in result.stderr
    result = cli("seed", "--demo", "--refresh", dsn=migrated_db)
    assert result.exit_code == 2


# --- building the contents, without a database -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (6, 6), (7, 6), ("2", 2), ("monday", 0), ("Sun", 6), ("Thursday", 3), (9, None), ("x", None)],
)
def test_weekday_index(value, expected):
    assert weekday_index(value) == expected


def test_hours_content_marks_closed_and_unlisted_days():
    content = hours_content(
        [
            (0, None, None, True),
            (1, dt.time(18), dt.time(22), False),
            (1, dt.time(12), dt.time(15), False),
            (2, "09:00:00", "17:00:00", False),
        ]
    )
    days = content["days"]
    assert days[0]["closed"] is True
    assert days[1]["periods"] == [{"open": "12:00", "close": "15:00"}, {"open": "18:00", "close": "22:00"}]
    assert days[2]["periods"] == [{"open": "09:00", "close": "17:00"}]
    assert days[3]["closed"] is None  # no row: not listed, not "closed"
    assert content["closed_days"] == ["Monday"]
    assert content["text"].startswith("Monday: closed; Tuesday: 12:00-15:00, 18:00-22:00; Wednesday: 09:00")


def test_location_needs_an_address():
    assert location_content({"city": "Bremen", "phone": "1"}) is None
    nested = location_content({"address": {"street": "Hafenstrasse 1", "city": "Bremen"}, "phone": "1"})
    assert nested == {"street": "Hafenstrasse 1", "city": "Bremen", "text": "Hafenstrasse 1, Bremen"}


def test_content_hash_ignores_key_order():
    assert content_hash("menu", {"a": 1, "b": [1, 2]}) == content_hash("menu", {"b": [1, 2], "a": 1})
    assert content_hash("menu", {"a": 1}) != content_hash("hours", {"a": 1})


def test_a_business_with_a_blank_name_still_gets_its_sections(migrated_app_db):
    execute(migrated_app_db, f"UPDATE businesses SET name = ' ' WHERE id = '{LEAF}'")
    with psycopg.connect(migrated_app_db) as conn:
        result = seed_business_context(conn)
    assert result.totals.created == 8
    overview = sections(migrated_app_db)[(LEAF, "overview")]["section_content"]
    assert "name" not in overview and overview["text"].startswith(overview["category"])
