"""The demo dataset as plain Python values: restaurants with menus and hours, guests, sessions, memories.

Pure and deterministic: the same ``random_seed`` gives the same rows, ids included (uuid5 of the seed), with
timestamps relative to a base time (by default the start of the current UTC day, so reruns the same day are
identical). No database here: ``memcli.seed.demo`` loads what this builds.

Demo rows are recognisable: every session id starts with ``demo-<seed>-``, every JSON value carries
``"demo": true`` and demo businesses have a ``demo-`` slug. The memories cover every tier, with some already
expired (for cleanup), some close to expiry, some heavily accessed, old short-term rows (for consolidation),
low-importance long-term rows (for archiving) and never-touched archived rows (for forgetting).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memcli.schema.names import EXPIRING_TIERS
from memcli.seed import vocabulary as v
from memcli.seed.sections import WEEKDAYS

DEMO_PREFIX = "demo-"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "demo.memcli")
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)

CONVERSATION_COLUMNS = (
    "id",
    "session_id",
    "user_id",
    "memory_type",
    "context_key",
    "context_value",
    "importance_score",
    "access_count",
    "last_accessed_at",
    "created_at",
    "expires_at",
)
SEMANTIC_COLUMNS = (
    "id",
    "session_id",
    "user_id",
    "content_type",
    "content_text",
    "embedding_vector",
    "metadata",
    "relevance_score",
    "created_at",
    "embedding_model",
    "access_count",
    "last_accessed_at",
)
RELEVANCE_COLUMNS = (
    "id",
    "session_id",
    "context_type",
    "context_key",
    "relevance_score",
    "decay_factor",
    "last_calculated",
    "created_at",
)
PROFILE_COLUMNS = (
    "id",
    "user_id",
    "profile_data",
    "preferences",
    "behavior_patterns",
    "context_history",
    "last_updated",
    "created_at",
)


@dataclass
class DemoData:
    """Every row of a demo dataset, as plain Python values (no database needed to build it)."""

    base_time: dt.datetime
    businesses: list[dict[str, Any]] = field(default_factory=list)
    menu_categories: list[dict[str, Any]] = field(default_factory=list)
    menu_items: list[dict[str, Any]] = field(default_factory=list)
    working_hours: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[tuple[Any, ...]] = field(default_factory=list)
    conversation: list[tuple[Any, ...]] = field(default_factory=list)
    semantic: list[tuple[Any, ...]] = field(default_factory=list)  # without embedding/model (filled at load)
    relevance: list[tuple[Any, ...]] = field(default_factory=list)
    sessions: int = 0


def demo_id(seed: int, *parts: object) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, "/".join([str(seed), *map(str, parts)]))


def session_prefix(seed: int) -> str:
    return f"{DEMO_PREFIX}{seed}-"


def default_base_time() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Business:
    id: uuid.UUID
    name: str
    archetype: v.Archetype
    city: tuple[str, str, str]
    dishes: list[v.Dish]  # available ones
    mains: list[v.Dish]  # available ones that make a meal (no desserts, drinks or sides)
    hours_text: str

    def with_tag(self, *tags: str) -> list[v.Dish]:
        return [d for d in self.dishes if any(t in d.tags for t in tags)]

    def mains_with_tag(self, *tags: str) -> list[v.Dish]:
        return [d for d in self.mains if any(t in d.tags for t in tags)]

    def suitable(self, diet: str | None) -> list[v.Dish]:
        wanted = {
            "vegetarian": ("vegetarian", "vegan"),
            "vegan": ("vegan",),
            "pescatarian": ("fish", "vegetarian", "vegan"),
            "gluten_free": ("gluten_free",),
            "halal": ("vegetarian", "vegan", "fish"),
            "low_carb": ("gluten_free",),
        }.get(diet or "")
        if wanted is None:
            return self.mains or self.dishes
        return self.mains_with_tag(*wanted) or self.with_tag(*wanted) or self.mains or self.dishes


@dataclass
class _Persona:
    user_id: uuid.UUID
    name: str
    diet: str | None
    allergies: tuple[str, ...]
    cuisine: str
    seating: str
    preferred_time: str
    channel: str
    language: tuple[str, str]
    party_size: int
    likes_spicy: bool


def _weighted(rng: random.Random, options: Sequence[tuple[Any, int]]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options], k=1)[0]


def _money(value: float) -> str:
    return f"{value:.2f}"


def _dish_list(dishes: Sequence[v.Dish], limit: int = 4) -> str:
    names = [d.name for d in dishes[:limit]]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _hours_text(hours: Sequence[tuple[int, tuple[tuple[str, str], ...]]]) -> str:
    return "; ".join(
        f"{WEEKDAYS[day]} " + (", ".join(f"{o}-{c}" for o, c in periods) if periods else "closed")
        for day, periods in hours
    )


def _make_businesses(
    rng: random.Random, seed: int, count: int, base: dt.datetime, data: DemoData
) -> list[_Business]:
    made: list[_Business] = []
    used: set[str] = set()
    for index in range(count):
        archetype = v.ARCHETYPES[index % len(v.ARCHETYPES)]
        city = v.CITIES[rng.randrange(len(v.CITIES))]
        name = rng.choice(archetype.names)
        if name in used:
            name = f"{name} {city[0]}"
        if name in used:
            name = f"{name} {index + 1}"
        used.add(name)
        business_id = demo_id(seed, "business", index)
        slug = DEMO_PREFIX + "-".join(name.lower().replace("&", "and").replace("'", "").split())
        contact: dict[str, Any] = {
            "phone": f"+1 555 01{rng.randrange(10):d}{rng.randrange(10):d} {rng.randrange(1000, 10000)}",
            "email": f"hello@{slug.removeprefix(DEMO_PREFIX)}.example",
            "website": f"https://{slug.removeprefix(DEMO_PREFIX)}.example",
        }
        # Every fifth business lists no address: it gets no location section.
        if index % 5 != 4:
            contact.update(
                {
                    "address": f"{rng.randrange(1, 200)} {rng.choice(v.STREETS)}",
                    "city": city[0],
                    "postal_code": city[1],
                    "country": city[2],
                }
            )
        created = base - dt.timedelta(days=400 + index)
        data.businesses.append(
            {
                "id": business_id,
                "name": name,
                "slug": slug,
                "description": archetype.description,
                "category": archetype.category,
                "is_active": True,
                "contact_info": json.dumps(contact),
                "settings": json.dumps({"demo": True, "random_seed": seed}),
                "created_at": created,
                "updated_at": created,
            }
        )
        available: list[v.Dish] = []
        mains: list[v.Dish] = []
        for category_order, (category, description, dishes) in enumerate(archetype.menu):
            category_id = demo_id(seed, "category", index, category)
            data.menu_categories.append(
                {
                    "id": category_id,
                    "business_id": business_id,
                    "name": category,
                    "description": description,
                    "sort_order": category_order,
                    "is_active": True,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            for item_order, dish in enumerate(dishes):
                # A few items are off the menu today (sold out, seasonal): the menu section leaves them out.
                is_available = rng.random() >= 0.08
                price = round(dish.price * rng.choice((0.9, 1.0, 1.0, 1.1)) * 2) / 2
                data.menu_items.append(
                    {
                        "id": demo_id(seed, "item", index, dish.name),
                        "business_id": business_id,
                        "category_id": category_id,
                        "name": dish.name,
                        "description": dish.description,
                        "price": price,
                        "is_available": is_available,
                        "sort_order": item_order,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
                if is_available:
                    available.append(dish)
                    if category not in v.NOT_A_MEAL:
                        mains.append(dish)
        for day, periods in archetype.hours:
            rows = [(o, c, False) for o, c in periods] or [(None, None, True)]
            for period, (opens, closes, closed) in enumerate(rows):
                data.working_hours.append(
                    {
                        "id": demo_id(seed, "hours", index, day, period),
                        "business_id": business_id,
                        "day_of_week": day,
                        "open_time": opens,
                        "close_time": closes,
                        "is_closed": closed,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
        made.append(
            _Business(business_id, name, archetype, city, available, mains, _hours_text(archetype.hours))
        )
    return made


def _make_personas(rng: random.Random, seed: int, count: int) -> list[_Persona]:
    personas = []
    for index in range(count):
        diet = _weighted(rng, v.DIETS)
        allergies: tuple[str, ...] = ()
        if rng.random() < 0.25:
            allergies = tuple(rng.sample(v.ALLERGENS, rng.choice((1, 1, 2))))
        code, language, _ = _weighted(rng, [((c, n, w), w) for c, n, w in v.LANGUAGES])
        personas.append(
            _Persona(
                user_id=demo_id(seed, "user", index),
                name=rng.choice(v.FIRST_NAMES),
                diet=diet,
                allergies=allergies,
                cuisine=rng.choice(v.ARCHETYPES).cuisine,
                seating=rng.choice(v.SEATING),
                preferred_time=rng.choice(v.TIMES),
                channel=rng.choice(v.CHANNELS),
                language=(code, language),
                party_size=rng.choice((1, 2, 2, 2, 3, 4, 4, 5, 6, 8)),
                likes_spicy=rng.random() < 0.3,
            )
        )
    return personas


_DIET_WORDS = {
    "vegetarian": "vegetarian",
    "vegan": "vegan",
    "pescatarian": "pescatarian",
    "gluten_free": "gluten-free",
    "halal": "halal",
    "low_carb": "low-carb",
}


def _topic(
    topic: str, rng: random.Random, p: _Persona, b: _Business, when: dt.datetime
) -> tuple[dict[str, Any], str] | None:
    """(context_value, what the assistant remembers in words) for one topic; None if it does not apply."""
    dishes = b.suitable(p.diet)
    d1, d2 = (
        (rng.sample(dishes, 2) if len(dishes) >= 2 else [dishes[0], dishes[0]]) if dishes else (None, None)
    )
    n = p.party_size
    # "the A and the B", or just "the A" when the kitchen has only one suitable dish
    both = "" if d1 is None or d2 is None else f"the {d1.name}" + ("" if d1 == d2 else f" and the {d2.name}")
    if topic == "dietary_preference":
        if p.diet is None or d1 is None or d2 is None:
            return None
        texts = {
            "vegetarian": (
                f"Guest asked about vegetarian options at {b.name}; recommended {both}, meat-free.",
                f"Asked whether we have vegetarian options for a group of {n}. We have several meat-free "
                f"meals, including {both}.",
                f"{p.name} is vegetarian and does not eat meat or fish; suggested the {d1.name}.",
            ),
            "vegan": (
                f"Customer is vegan and asked which dishes contain no dairy or eggs; recommended {both}.",
                f"{p.name} follows a plant-based diet; the kitchen confirmed the {d1.name} is fully vegan.",
            ),
            "pescatarian": (
                f"Guest eats fish but no meat; suggested {both}.",
                f"{p.name} is pescatarian, so no meat: recommended the {d1.name}.",
            ),
            "gluten_free": (
                f"Customer has coeliac disease and needs gluten-free food; the {d1.name} is gluten-free and "
                "prepared separately.",
                f"{p.name} asked for gluten-free options at {b.name}; offered {both}.",
            ),
            "halal": (
                f"Guest asked whether the meat is halal; offered the {d1.name} while the kitchen checks "
                "the supplier.",
            ),
            "low_carb": (
                "Customer on a low-carb diet asked for dishes without bread, pasta or rice; suggested the "
                f"{d1.name}.",
            ),
        }[p.diet]
        value = {"diet": p.diet, "strict": rng.random() < 0.7, "suggested": sorted({d1.name, d2.name})}
        return value, rng.choice(texts)
    if topic == "allergies":
        if not p.allergies or d1 is None:
            return None
        allergen = p.allergies[0]
        severity = rng.choice(("severe", "severe", "mild"))
        texts = (
            f"Guest has a {severity} {allergen} allergy; the kitchen confirmed the {d1.name} is prepared "
            f"without {allergen}.",
            f"{p.name} is allergic to {' and '.join(p.allergies)} and asked us to flag it on every booking.",
        )
        return {"allergens": list(p.allergies), "severity": severity, "flag_on_booking": True}, rng.choice(
            texts
        )
    if topic == "booking":
        date = (when + dt.timedelta(days=rng.randrange(0, 8))).date()
        status = rng.choice(("confirmed", "confirmed", "confirmed", "pending", "cancelled", "completed"))
        value = {
            "business_id": str(b.id),
            "date": date.isoformat(),
            "time": p.preferred_time,
            "party_size": n,
            "seating": p.seating,
            "status": status,
        }
        weekday = date.strftime("%A")
        if status == "cancelled":
            text = f"Cancelled the {weekday} booking for {n} at {b.name}; may rebook next week."
        else:
            text = (
                f"Booked a table for {n} at {b.name} on {weekday} at {p.preferred_time}; asked for a "
                f"{p.seating} table."
            )
        return value, text
    if topic == "favourite_dish":
        if d1 is None:
            return None
        return (
            {"dish": d1.name, "business_id": str(b.id)},
            f"Regular at {b.name}; their favourite dish is the {d1.name}, ordered on most visits.",
        )
    if topic == "seating_preference":
        return {
            "seating": p.seating
        }, f"Prefers a {p.seating} table and would rather not sit near the kitchen."
    if topic == "last_order":
        if d1 is None or d2 is None:
            return None
        items = sorted({d1.name, d2.name})
        total = sum(d.price for d in {d1.name: d1, d2.name: d2}.values())
        return (
            {"items": items, "total": round(total, 2), "business_id": str(b.id), "channel": "takeaway"},
            f"Ordered {' and '.join(items)} for takeaway from {b.name}, {_money(total)} in total.",
        )
    if topic == "special_occasion":
        occasion = rng.choice(v.OCCASIONS)
        size = max(n, rng.randrange(4, 13))
        return (
            {"occasion": occasion, "party_size": size, "business_id": str(b.id)},
            f"Planning a {occasion} dinner for {size} people at {b.name}; asked whether they can bring "
            "a cake.",
        )
    if topic == "language":
        return {"language": p.language[0]}, f"Prefers to chat in {p.language[1]}."
    if topic == "contact_channel":
        return {"channel": p.channel}, f"Wants booking confirmations and reminders by {p.channel}."
    if topic == "budget":
        amount = rng.choice((20, 25, 30, 40, 60))
        return {"per_person": amount}, f"Looking for dinner at around {amount} per person, drinks included."
    if topic == "feedback":
        rating, comment = rng.choice(v.FEEDBACK)
        return (
            {"rating": rating, "comment": comment, "business_id": str(b.id)},
            f'Left a {rating}-star review of {b.name}: "{comment}"',
        )
    if topic == "kids":
        return (
            {"children": 2, "high_chair": True},
            "Coming with two small children; asked for a high chair and whether there is a kids' menu.",
        )
    if topic == "spice_level":
        if not p.likes_spicy:
            return None
        spicy = b.with_tag("spicy")
        text = (
            f"Loves spicy food and asked for the {spicy[0].name} extra hot."
            if spicy
            else "Likes food very spicy; asked the kitchen to add fresh chillies."
        )
        return {"spice": "extra hot"}, text
    if topic == "delivery_area":
        area = rng.choice(v.AREAS)
        return (
            {"area": area, "business_id": str(b.id)},
            f"Asked whether {b.name} delivers to {area}; delivery runs until 22:00.",
        )
    if topic == "payment":
        return (
            {"split_bill": True, "method": "card"},
            f"Asked whether a group of {max(n, 3)} can split the bill and pay by card.",
        )
    if topic == "cart":
        if d1 is None or d2 is None:
            return None
        return (
            {"items": sorted({d1.name, d2.name}), "business_id": str(b.id), "checked_out": False},
            f"Has {both} in the basket but has not checked out yet.",
        )
    if topic == "current_intent":
        intent = rng.choice(
            ("find a table for tonight", "order takeaway", "check the opening hours", "change a booking")
        )
        return {"intent": intent}, f"Currently trying to {intent} at {b.name}."
    if topic == "opening_hours_question":
        return (
            {"asked": "opening hours", "business_id": str(b.id)},
            f"Asked when {b.name} is open; told them: {b.hours_text}.",
        )
    raise AssertionError(topic)


TOPICS = (
    "dietary_preference",
    "allergies",
    "booking",
    "favourite_dish",
    "seating_preference",
    "last_order",
    "special_occasion",
    "language",
    "contact_channel",
    "budget",
    "feedback",
    "kids",
    "spice_level",
    "delivery_area",
    "payment",
    "cart",
    "current_intent",
    "opening_hours_question",
)
# Topics that describe the person rather than the conversation: stored as user_preference semantics.
PREFERENCE_TOPICS = ("dietary_preference", "allergies", "favourite_dish", "seating_preference", "spice_level")
IMPORTANT_TOPICS = ("allergies", "dietary_preference")


# Session age bands, in days before the base time, cycled so that even a few sessions cover all of them.
_BANDS = ("recent", "mid", "recent", "old", "mid")
_TIERS = {
    "recent": (("short_term", 70), ("long_term", 22), ("semantic", 8)),
    "mid": (("short_term", 25), ("long_term", 60), ("semantic", 10), ("archived", 5)),
    "old": (("long_term", 30), ("archived", 60), ("semantic", 10)),
}


def generate_demo(
    *,
    businesses: int,
    sessions: int,
    random_seed: int,
    base_time: dt.datetime,
    retention_days: dict[str, float] | None = None,
) -> DemoData:
    """Build every demo row in memory. Pure: the same arguments give the same rows.

    Every row gets an explicit expires_at, computed as the expiry trigger would (created_at + the tier's
    retention; the semantic tier never expires), so the rows do not depend on when they are loaded.
    """
    from memcli.settings import DEFAULTS

    retention: dict[str, float | None] = {
        tier: float(DEFAULTS[f"retention.{tier}_days"][0]) for tier in EXPIRING_TIERS
    }
    retention["semantic"] = None
    retention.update(retention_days or {})
    rng = random.Random(random_seed)
    seed = random_seed
    base = base_time
    data = DemoData(base_time=base, sessions=sessions)
    shops = _make_businesses(rng, seed, businesses, base, data)
    personas = _make_personas(rng, seed, max(1, (sessions + 1) // 2) if sessions else 0)
    prefix = session_prefix(seed)
    seen: dict[uuid.UUID, list[tuple[str, dt.datetime, _Business]]] = {}

    for index in range(sessions):
        session_id = f"{prefix}{index:06d}"
        band = _BANDS[index % len(_BANDS)]
        low, high = {"recent": (0.05, 6.9), "mid": (8, 85), "old": (95, 300)}[band]
        started = base - dt.timedelta(seconds=round(rng.uniform(low, high) * 86400))
        persona = rng.choice(personas)
        anonymous = rng.random() < 0.12
        user_id = None if anonymous else persona.user_id
        shop = rng.choice(shops)
        if not anonymous:
            seen.setdefault(persona.user_id, []).append((session_id, started, shop))

        wanted = rng.randint(4, 9)
        candidates = list(TOPICS)
        rng.shuffle(candidates)
        # Known needs first: an assistant that learnt them would not forget them.
        candidates.sort(key=lambda t: t not in IMPORTANT_TOPICS)
        memories: list[tuple[str, dict[str, Any], str, str, dt.datetime]] = []
        for topic in candidates:
            if len(memories) == wanted:
                break
            offset = dt.timedelta(seconds=120 * len(memories) + rng.randrange(0, 180))
            made = _topic(topic, rng, persona, shop, started + offset)
            if made is None:
                continue
            value, text = made
            tier = _weighted(rng, _TIERS[band])
            if not memories and band in ("recent", "mid"):
                # Every recent session has short-term context; every mid-aged one a short-term row that has
                # expired and waits for the cleanup job.
                tier = "short_term"
            memories.append((topic, value, text, tier, started + offset))

        for position, (topic, value, _text, tier, created) in enumerate(memories):
            importance = {
                "short_term": rng.uniform(0.2, 0.7),
                "long_term": rng.uniform(0.3, 0.95) if rng.random() > 0.2 else rng.uniform(0.05, 0.29),
                "archived": rng.uniform(0.05, 0.4),
                "semantic": rng.uniform(0.5, 0.95),
            }[tier]
            if topic in IMPORTANT_TOPICS:
                importance = min(1.0, importance + 0.3)
            days = retention[tier]
            expires = None if days is None else created + dt.timedelta(days=days)
            if expires is not None and tier != "archived" and expires > base and rng.random() < 0.05:
                expires = base + dt.timedelta(minutes=rng.randrange(25 * 60, 47 * 60))  # about to expire
            elif band == "recent" and position == 0 and index % 10 == 0:
                # The first recent session always has one (its first memory is short-term, see above).
                expires = base + dt.timedelta(minutes=rng.randrange(25 * 60, 47 * 60))
            age = base - created
            roll = rng.random()
            if roll < 0.06:
                accesses = rng.randint(50, 400)
                last = base - dt.timedelta(minutes=rng.randrange(0, 48 * 60))
            elif tier == "archived" and roll < 0.5:
                accesses, last = 0, created
            else:
                accesses = rng.randint(
                    1, {"short_term": 6, "long_term": 30, "archived": 3, "semantic": 40}[tier]
                )
                last = created + dt.timedelta(seconds=round(age.total_seconds() * rng.random()))
            last = max(created, min(last, base))
            context_value = {**value, "demo": True}
            data.conversation.append(
                (
                    demo_id(seed, "memory", session_id, topic),
                    session_id,
                    user_id,
                    tier,
                    topic,
                    json.dumps(context_value, sort_keys=True),
                    round(importance, 2),
                    accesses,
                    last,
                    created,
                    expires,
                )
            )

        # What the assistant would embed: one to three things said in this session.
        sayable = [m for m in memories if m[0] not in ("language", "cart", "current_intent")] or memories
        chosen = rng.sample(sayable, min(len(sayable), rng.randint(1, 3)))
        for topic, _, text, _, created in chosen:
            content_type = "user_preference" if topic in PREFERENCE_TOPICS and user_id else "conversation"
            metadata = {
                "demo": True,
                "topic": topic,
                "business_id": str(shop.id),
                "business": shop.name,
                "diet": persona.diet,
            }
            accesses = rng.randint(0, 25)
            data.semantic.append(
                (
                    demo_id(seed, "semantic", session_id, topic),
                    session_id,
                    user_id,
                    content_type,
                    text,
                    json.dumps(metadata, sort_keys=True),
                    round(rng.uniform(0.3, 0.95), 2),
                    created,
                    accesses,
                    None
                    if accesses == 0
                    else max(created, base - dt.timedelta(minutes=rng.randrange(0, 14400))),
                )
            )

        for topic, _, _, _, created in memories:
            if rng.random() < 0.6:
                stale = rng.random() < 0.1
                calculated = max(created, base - dt.timedelta(minutes=rng.randrange(0, 12 * 1440)))
                data.relevance.append(
                    (
                        demo_id(seed, "relevance", session_id, "memory", topic),
                        session_id,
                        "memory",
                        topic,
                        0.005 if stale else round(rng.uniform(0.2, 1.0), 2),
                        round(rng.uniform(0.85, 0.99), 2),
                        calculated,
                        created,
                    )
                )
        data.relevance.append(
            (
                demo_id(seed, "relevance", session_id, "business", shop.id),
                session_id,
                "business",
                str(shop.id),
                round(rng.uniform(0.5, 1.0), 2),
                0.95,
                started,
                started,
            )
        )

    kb_session = f"{prefix}kb"
    for shop in shops:
        for topic, text in _business_texts(shop):
            metadata = {"demo": True, "topic": topic, "business_id": str(shop.id), "business": shop.name}
            created = base - dt.timedelta(days=30)
            data.semantic.append(
                (
                    demo_id(seed, "semantic", "business", shop.id, topic),
                    kb_session,
                    None,
                    "business_info",
                    text,
                    json.dumps(metadata, sort_keys=True),
                    0.8,
                    created,
                    0,
                    None,
                )
            )

    for persona in personas:
        visits = seen.get(persona.user_id, [])
        first = min((s for _, s, _ in visits), default=base - dt.timedelta(days=30))
        last_visit = max(visits, key=lambda item: item[1]) if visits else None
        data.profiles.append(
            (
                demo_id(seed, "profile", persona.user_id),
                persona.user_id,
                json.dumps(
                    {"demo": True, "name": persona.name, "language": persona.language[0]},
                    sort_keys=True,
                ),
                json.dumps(
                    {
                        "diet": persona.diet,
                        "allergies": list(persona.allergies),
                        "favourite_cuisine": persona.cuisine,
                        "seating": persona.seating,
                        "preferred_time": persona.preferred_time,
                        "contact_channel": persona.channel,
                        "likes_spicy": persona.likes_spicy,
                    },
                    sort_keys=True,
                ),
                json.dumps(
                    {
                        "usual_party_size": persona.party_size,
                        "sessions": len(visits),
                        "books_ahead_days": rng.choice((0, 1, 2, 7)),
                        "orders_takeaway": rng.random() < 0.4,
                    },
                    sort_keys=True,
                ),
                json.dumps(
                    {
                        "recent_sessions": [s for s, _, _ in sorted(visits, key=lambda i: i[1])][-5:],
                        "last_business": last_visit[2].name if last_visit else None,
                    },
                    sort_keys=True,
                ),
                last_visit[1] if last_visit else first,
                first - dt.timedelta(days=1),
            )
        )
    return data


def _business_texts(shop: _Business) -> list[tuple[str, str]]:
    a = shop.archetype
    texts = [("overview", f"{shop.name} is a {a.category.lower()} in {shop.city[0]}. {a.description}")]
    vegetarian = shop.with_tag("vegetarian", "vegan")
    if len(vegetarian) >= 2:
        texts.append(
            (
                "vegetarian",
                f"{shop.name} has several meat-free meals: {_dish_list(vegetarian)}. Vegetarian options are "
                "marked on the menu.",
            )
        )
    vegan = shop.with_tag("vegan")
    if vegan:
        texts.append(("vegan", f"Vegan options at {shop.name}: {_dish_list(vegan)}."))
    gluten_free = shop.with_tag("gluten_free")
    if gluten_free:
        texts.append(
            (
                "gluten_free",
                f"Gluten-free dishes at {shop.name}: {_dish_list(gluten_free)}; mention coeliac needs when "
                "booking.",
            )
        )
    nuts = shop.with_tag("nuts")
    if nuts:
        texts.append(("allergens", f"Dishes at {shop.name} that contain nuts: {_dish_list(nuts)}."))
    texts.append(("hours", f"Opening hours of {shop.name}: {shop.hours_text}."))
    texts.append(
        (
            "policies",
            f"Booking policy at {shop.name}: tables are held for 15 minutes; groups of 8 or more pay a "
            "deposit.",
        )
    )
    return texts
