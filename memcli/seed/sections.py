"""Business context sections as content: pure functions from the application's rows to section JSON.

No database here: ``memcli.seed.sources`` reads the rows, ``memcli.seed.business`` writes the sections.
Each section's ``source_hash`` is a stable hash of its content, so a rerun can tell a changed source.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SECTION_TYPES = ("overview", "menu", "hours", "location")
SECTION_NAMES = {"overview": "Overview", "menu": "Menu", "hours": "Opening hours", "location": "Location"}
SECTION_ORDER = {"overview": 0, "menu": 1, "hours": 2, "location": 3}

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
ADDRESS_KEYS = ("address", "address_line1", "street")


@dataclass
class Section:
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


def as_object(value: Any) -> dict[str, Any]:
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
        (location[k] for k in (*ADDRESS_KEYS, "street", "line1") if not _empty(location.get(k))), None
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
